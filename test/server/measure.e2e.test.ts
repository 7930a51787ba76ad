import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MeasureMemorizationResponse } from '../../src/gen/memometer/v1/memometer.js';
import { MeasurementState, Mode } from '../../src/gen/memometer/v1/memometer.js';
import { readModelArtifacts } from '../../src/storage/model-reader.js';
import { exampleBucket, startTestService, type TestService } from '../support/service.js';

let service: TestService;
let bucket: Awaited<ReturnType<typeof exampleBucket>>;

beforeAll(async () => {
  bucket = await exampleBucket('e2e');
  service = await startTestService({ stateUri: 's3://e2e/state' });
});
afterAll(() => service?.stop());

const request = () => ({
  modelUri: bucket.modelUri,
  datasetUri: bucket.datasetUri,
  outputUri: 's3://e2e/runs/first',
  copyDepths: [1, 2],
  epochs: 3,
  inputScaling: { scale: 1 / 255, mean: [], std: [] },
});

describe('MeasureMemorization end to end (real S3 server, real gRPC server on 127.0.0.1)', () => {
  it('streams the id, the plan, progress, depth results and the final result; the report is in the bucket first', async () => {
    const client = service.client();
    const messages: MeasureMemorizationResponse[] = [];
    let reportExistedAtResult = false;
    for await (const message of client.stream({ ...request(), requestId: 'e2e-first' })) {
      messages.push(message);
      if (message.event?.$case === 'result') reportExistedAtResult = await bucket.store.exists('runs/first/report.json');
    }
    const cases = messages.map((m) => m.event?.$case);
    expect(cases[0]).toBe('started');
    expect(cases[1]).toBe('planned');
    expect(cases[2]).toBe('features');
    expect(cases.filter((c) => c === 'epoch')).toHaveLength(6);
    expect(cases.filter((c) => c === 'depthResult')).toHaveLength(2);
    expect(cases.at(-1)).toBe('result');
    expect(reportExistedAtResult).toBe(true);

    const result = messages.at(-1)!.event!.value as Extract<MeasureMemorizationResponse['event'], { $case: 'result' }>['value'];
    expect(result.mode).toBe(Mode.MODE_FROZEN);
    expect(result.backend).toBe('wasm');
    expect(result.trainSamples).toBe(2000);
    expect(result.reportUri).toBe('s3://e2e/runs/first/report.json');
    expect(result.depths.map((d) => d.copyDepth)).toEqual([1, 2]);
    const d2 = result.depths[1]!;
    expect(d2.randomLabelAccuracy).toBeGreaterThan(0.15);
    expect(d2.chance).toBeCloseTo(0.1);
    expect(Math.abs(d2.heldOutRandomLabelAccuracy - 0.1)).toBeLessThan(0.06);

    const report = JSON.parse(new TextDecoder().decode(await bucket.store.get('runs/first/report.json'))) as {
      request: { modelUri: string };
      result: { depths: { randomLabelAccuracy: number }[] };
    };
    expect(report.result.depths[1]!.randomLabelAccuracy).toBe(d2.randomLabelAccuracy);
    expect(report.request.modelUri).toBe(bucket.modelUri);

    const id = (messages[0]!.event!.value as { measurementId: string }).measurementId;
    const stored = await client.getMeasurement(id);
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_SUCCEEDED);
    expect(stored.result).toEqual(result);
  });

  it('joint mode writes the fine-tuned model next to the report', async () => {
    const { result } = await service.client().measure({ ...request(), outputUri: 's3://e2e/runs/joint', mode: Mode.MODE_JOINT, copyDepths: [1], epochs: 1 });
    expect(result.fineTunedModelUri).toBe('s3://e2e/runs/joint/model');
    const artifacts = await readModelArtifacts(bucket.store, 'runs/joint/model');
    expect(artifacts.weightSpecs?.length).toBeGreaterThan(0);
    expect(await bucket.store.exists('runs/joint/report.json')).toBe(true);
  });

  it('answers a retry with the same request_id with the existing measurement, without running again', async () => {
    const client = service.client();
    const first = await client.measure({ ...request(), outputUri: '', requestId: 'e2e-retry' });
    const messages: MeasureMemorizationResponse[] = [];
    for await (const message of client.stream({ ...request(), outputUri: '', requestId: 'e2e-retry' })) messages.push(message);
    expect(messages.map((m) => m.event?.$case)).toEqual(['started', 'result']);
    const started = messages[0]!.event!.value as { measurementId: string; existing: boolean };
    expect(started).toMatchObject({ measurementId: first.measurementId, existing: true });
    expect(messages[1]!.event!.value).toEqual(first.result);
  });

  it('keeps state in the bucket: another replica (or a restarted process) answers GetMeasurement', async () => {
    const client = service.client();
    const { measurementId, result } = await client.measure({ ...request(), outputUri: '', epochs: 1, copyDepths: [1] });
    const replica = await startTestService({ stateUri: 's3://e2e/state' });
    try {
      const stored = await replica.client().getMeasurement(measurementId);
      expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_SUCCEEDED);
      expect(stored.result).toEqual(result);
    } finally {
      await replica.stop();
    }
  });
});
