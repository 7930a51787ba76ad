/**
 * An ONNX model through the real service: model_uri is an s3:// .onnx file, the plan names the
 * format, and joint mode writes the fine-tuned model back as ONNX, which onnxruntime runs.
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MeasureMemorizationResponse } from '../../src/gen/memometer/v1/memometer.js';
import { Mode } from '../../src/gen/memometer/v1/memometer.js';
import { ModelProto } from '../../src/gen/onnx/onnx.js';
import { parseNpz } from '../../src/storage/formats/npz.js';
import { exampleBucket, startTestService, type TestService } from '../support/service.js';

const FIXTURE = 'test/fixtures/onnx/resnet_bn_kept';
let service: TestService;
let bucket: Awaited<ReturnType<typeof exampleBucket>>;

beforeAll(async () => {
  bucket = await exampleBucket('onnx-e2e');
  await bucket.store.put('models/resnet.onnx', readFileSync(`${FIXTURE}.onnx`));
  service = await startTestService({ stateUri: 's3://onnx-e2e/state' });
});
afterAll(() => service?.stop());

const request = (mode: Mode, outputUri: string) => ({
  modelUri: 's3://onnx-e2e/models/resnet.onnx',
  datasetUri: bucket.datasetUri,
  outputUri,
  mode,
  copyDepths: [1, 2, 3],
  epochs: 1,
  maxSamples: 100,
  inputScaling: { scale: 1 / 255, mean: [], std: [] },
});

async function outputs(bytes: Uint8Array): Promise<Float32Array> {
  const x = parseNpz(readFileSync(`${FIXTURE}.npz`)).get('x')!;
  const session = await ort.InferenceSession.create(bytes);
  const out = await session.run({ input: new ort.Tensor('float32', x.data as Float32Array, x.shape) });
  return out[session.outputNames[0]!]!.data as Float32Array;
}

const FIXTURES = ['cnn', 'resnet_bn_folded', 'resnet_bn_kept', 'mobilenet', 'view_flatten', 'mlp_ln_gelu', 'pool_variants', 'pad_asym', 'convtranspose'];

describe.each(FIXTURES)('the ONNX fixture %s as an s3:// model', (name) => {
  it.each([Mode.MODE_FROZEN, Mode.MODE_JOINT])('is measured at depths 1-3 (mode %i)', async (mode) => {
    await bucket.store.put(`fixtures/${name}.onnx`, readFileSync(`test/fixtures/onnx/${name}.onnx`));
    const { result } = await service.client().measure({
      ...request(mode, ''), modelUri: `s3://onnx-e2e/fixtures/${name}.onnx`, maxSamples: 40, batchSize: 20,
    });
    expect(result.depths.map((d) => d.copyDepth)).toEqual([1, 2, 3]);
  });
});

describe('an ONNX model in object storage', () => {
  it('is measured in frozen mode; the plan says onnx and NCHW', async () => {
    const messages: MeasureMemorizationResponse[] = [];
    for await (const message of service.client().stream(request(Mode.MODE_FROZEN, ''))) messages.push(message);
    const plan = messages.find((m) => m.event?.$case === 'planned')!.event!.value as { modelFormat: string; modelInputLayout: string };
    expect(plan).toMatchObject({ modelFormat: 'onnx', modelInputLayout: 'NCHW' });
    expect(messages.at(-1)!.event!.$case).toBe('result');
  });

  it('in joint mode is written back as ONNX next to the report: onnxruntime runs it, and it learned', async () => {
    const { result } = await service.client().measure(request(Mode.MODE_JOINT, 's3://onnx-e2e/runs/joint'));
    expect(result.fineTunedModelUri).toBe('s3://onnx-e2e/runs/joint/model.onnx');
    const tuned = await bucket.store.get('runs/joint/model.onnx');
    const original = readFileSync(`${FIXTURE}.onnx`);
    // The same graph, other weights.
    const [a, b] = [ModelProto.decode(original).graph!, ModelProto.decode(tuned).graph!];
    expect(b.node.map((n) => n.opType)).toEqual(a.node.map((n) => n.opType));
    expect(b.initializer.map((t) => t.name)).toEqual(a.initializer.map((t) => t.name));
    const [before, after] = [await outputs(original), await outputs(tuned)];
    expect(after.length).toBe(before.length);
    expect(after.every(Number.isFinite)).toBe(true);
    expect(Math.max(...after.map((v, i) => Math.abs(v - before[i]!)))).toBeGreaterThan(1e-4);
    expect(await bucket.store.exists('runs/joint/report.json')).toBe(true);
  });
});
