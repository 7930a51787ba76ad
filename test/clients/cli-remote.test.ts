import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShownResult } from '../../src/clients/report.js';
import { runCli } from '../support/cli.js';
import { s3Env, s3Store, startTestService, type TestService } from '../support/service.js';

let service: TestService;

beforeAll(async () => {
  await s3Store('cli').client.makeBucket('cli');
  service = await startTestService();
});
afterAll(() => service?.stop());

const cli = (...args: string[]) => runCli(args, s3Env());
/** `measure --json` output: the result, and where the service wrote things. */
type MeasureJson = ShownResult & { reportUri?: string; fineTunedModelUri?: string };

describe('memometer upload and measure --server', () => {
  it('uploads the example to a bucket, measures it through the service, and prints the same JSON as a local run', async () => {
    const upload = await cli('upload', '--to', 's3://cli/run1', '--model', 'examples/fashion-cnn', '--dataset', 'examples/fashion-mnist-2k.npz');
    expect(upload.code).toBe(0);
    const uris = JSON.parse(upload.stdout) as { modelUri: string; datasetUri: string };
    expect(uris).toEqual({ modelUri: 's3://cli/run1/model', datasetUri: 's3://cli/run1/fashion-mnist-2k.npz' });

    const common = ['--depth', '1,2', '--epochs', '2', '--scale', String(1 / 255), '--json', '--quiet'];
    const remote = await cli('measure', '--server', service.address, '--model', uris.modelUri, '--dataset', uris.datasetUri, '--output', 's3://cli/run1/out', ...common);
    expect(remote.code).toBe(0);
    const report = JSON.parse(remote.stdout) as MeasureJson;
    expect(report.depths.map((d: { copyDepth: number }) => d.copyDepth)).toEqual([1, 2]);
    expect(report.reportUri).toBe('s3://cli/run1/out/report.json');
    expect(await s3Store('cli').exists('run1/out/report.json')).toBe(true);

    const local = await cli('measure', '--model', 'examples/fashion-cnn', '--dataset', 'examples/fashion-mnist-2k.npz', ...common);
    const localReport = JSON.parse(local.stdout) as MeasureJson;
    // Same keys, per depth and at the top (the remote report adds where the service wrote things).
    expect(Object.keys(report.depths[0]!).sort()).toEqual(Object.keys(localReport.depths[0]!).sort());
    for (const key of Object.keys(localReport)) expect(report).toHaveProperty(key);
    // Same seed, same data, same backend: the same scores.
    expect(report.depths[1]!.randomLabelAccuracy).toBe(localReport.depths[1]!.randomLabelAccuracy);
  });

  it('uploads an ONNX file as it is, and the service measures it in joint mode and writes it back as ONNX', async () => {
    const upload = await cli('upload', '--to', 's3://cli/onnx', '--model', 'test/fixtures/onnx/mobilenet.onnx');
    expect(upload.code, upload.stderr).toBe(0);
    expect(JSON.parse(upload.stdout)).toEqual({ modelUri: 's3://cli/onnx/mobilenet.onnx' });
    const original = await s3Store('cli').get('onnx/mobilenet.onnx');
    expect(Buffer.from(original).equals(readFileSync('test/fixtures/onnx/mobilenet.onnx'))).toBe(true);
    const remote = await cli('measure', '--server', service.address, '--model', 's3://cli/onnx/mobilenet.onnx', '--dataset', 'examples/fashion-mnist-2k.npz',
      '--mode', 'joint', '--depth', '1,2', '--epochs', '1', '--max-samples', '60', '--output', 's3://cli/onnx/out', '--json', '--quiet', '--scale', String(1 / 255));
    expect(remote.code, remote.stderr).toBe(0);
    expect((JSON.parse(remote.stdout) as MeasureJson).fineTunedModelUri).toBe('s3://cli/onnx/out/model.onnx');
  });

  it('reports the service\'s status and exits 2 for a bad request', async () => {
    const { code, stderr } = await cli('measure', '--server', service.address, '--model', 'examples/fashion-cnn', '--dataset', 'examples/fashion-mnist-2k.npz', '--depth', '99');
    expect(code).toBe(2);
    expect(stderr).toMatch(/memometer: INVALID_ARGUMENT: copy_depths: copy depth 99 is not a valid cut/);
  });
});
