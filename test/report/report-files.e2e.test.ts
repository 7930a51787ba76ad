import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShownResult } from '../../src/clients/report.js';
import { parseReportFile } from '../../src/report/report-file.js';
import { runCli } from '../support/cli.js';
import { exampleBucket, s3Env, startTestService, type TestService } from '../support/service.js';
import { marksByChart } from './support.js';

let service: TestService;
let bucket: Awaited<ReturnType<typeof exampleBucket>>;
let dir: string;

beforeAll(async () => {
  bucket = await exampleBucket('reports');
  service = await startTestService();
  dir = await mkdtemp(path.join(tmpdir(), 'memometer-report-files-'));
});
afterAll(async () => {
  await service?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const text = async (key: string) => new TextDecoder().decode(await bucket.store.get(key));

describe('report.html next to report.json (real server and S3, real CLI processes)', () => {
  it('the server writes both under output_uri, names both in the result, and draws the baseline the request named', async () => {
    const request = {
      modelUri: bucket.modelUri, datasetUri: bucket.datasetUri, copyDepths: [1, 2], epochs: 2, seeds: [0, 1],
      inputScaling: { scale: 1 / 255, mean: [], std: [] },
    };
    const first = await service.client().measure({ ...request, outputUri: 's3://reports/runs/first' });
    expect(first.result.reportUri).toBe('s3://reports/runs/first/report.json');
    expect(first.result.reportHtmlUri).toBe('s3://reports/runs/first/report.html');
    const report = parseReportFile(await text('runs/first/report.json'), first.result.reportUri);
    expect(report).toEqual({ measurementId: first.measurementId, request: expect.objectContaining({ modelUri: bucket.modelUri }), result: first.result });
    const html = await text('runs/first/report.html');
    expect(html).toMatch(/^<!doctype html>/);
    expect(marksByChart(html).score).toMatchObject({ point: 2, errorbar: 2 });

    const second = await service.client().measure({ ...request, outputUri: 's3://reports/runs/second', baselineReportUri: first.result.reportUri });
    expect(second.result.depths[0]!.baseline).toBeDefined();
    const compared = await text('runs/second/report.html');
    // 2 depths, this measurement and the baseline (its full report: spread, held-out, curves).
    expect(marksByChart(compared).accuracy).toMatchObject({ point: 8, errorbar: 4 });
    expect(marksByChart(compared).curves).toMatchObject({ 'line mark': 4 });
    expect(compared).toContain('Compared with the baseline');
  });

  it('measure --report FILE.html writes FILE.html and FILE.json, locally and with --server', async () => {
    const common = ['--depth', '1,2', '--epochs', '1', '--max-samples', '300', '--quiet', '--json'];
    const local = await runCli(['measure', ...common, '--report', path.join(dir, 'local.html')]);
    expect(local.code, local.stderr).toBe(0);
    const localReport = parseReportFile(await readFile(path.join(dir, 'local.json'), 'utf8'), 'local.json');
    expect(localReport.measurementId).toBe('');
    expect(localReport.request.copyDepths).toEqual([1, 2]);
    expect(localReport.result.reportHtmlUri).toBe(path.join(dir, 'local.html'));
    expect(localReport.result.depths[1]!.randomLabelAccuracy).toBe((JSON.parse(local.stdout) as ShownResult).depths[1]!.randomLabelAccuracy);
    expect(marksByChart(await readFile(path.join(dir, 'local.html'), 'utf8')).score).toMatchObject({ point: 2 });

    const remote = await runCli(['measure', ...common, '--server', service.address, '--model', 'examples/fashion-cnn',
      '--dataset', 'examples/fashion-mnist-2k.npz', '--scale', String(1 / 255), '--report', path.join(dir, 'remote.html')], s3Env());
    expect(remote.code, remote.stderr).toBe(0);
    const remoteReport = parseReportFile(await readFile(path.join(dir, 'remote.json'), 'utf8'), 'remote.json');
    expect(remoteReport.measurementId).toBe((JSON.parse(remote.stdout) as { measurementId: string }).measurementId);
    expect(remoteReport.measurementId).not.toBe('');
    expect(remoteReport.result.backend).toBe('wasm');
    expect(existsSync(path.join(dir, 'remote.html'))).toBe(true);
  });

  it('refuses a --report name that is not .html before measuring', async () => {
    const { code, stderr } = await runCli(['measure', '--depth', '1', '--report', path.join(dir, 'report.json')]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/memometer: --report: expects a file name ending in \.html/);
  });
});
