import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, ResourceExhaustedError } from '../../src/errors.js';
import {
  DepthResult,
  HeadSharing,
  MeasureMemorizationRequest,
  MeasurementResult,
  Mode,
  Optimizer,
} from '../../src/gen/memometer/v1/memometer.js';
import { checkRequestBounds } from '../../src/api/request.js';
import { checkBaseline, increasesAbove, MAX_BASELINE_BYTES, settingsDifferences, withBaseline, type Baseline } from '../../src/report/baseline.js';
import { readBaseline } from '../../src/report/baseline-reader.js';
import { reportFileToJson } from '../../src/report/report-file.js';
import type { ObjectStore } from '../../src/storage/store.js';
import { caught } from '../support/errors.js';

const request = (fields: Partial<MeasureMemorizationRequest> = {}) =>
  MeasureMemorizationRequest.fromPartial({ modelUri: 's3://b/model', datasetUri: 's3://b/data.npz', ...fields });

const depth = (copyDepth: number, memorizationScore: number, randomLabelAccuracy: number) =>
  DepthResult.fromPartial({ copyDepth, memorizationScore, randomLabelAccuracy, chance: 0.1 });

const baseline = (depths: DepthResult[], fields: Partial<MeasureMemorizationRequest> = {}): Baseline => ({
  uri: 's3://b/runs/old/report.json',
  report: { measurementId: 'm-old', request: request(fields), result: MeasurementResult.fromPartial({ depths }) },
});

describe('settingsDifferences', () => {
  it('applies the defaults: an unset setting equals its default, set explicitly', () => {
    const explicit = request({
      copyDepths: [1], numRandomLabels: 10, mode: Mode.MODE_FROZEN, headSharing: HeadSharing.HEAD_SHARING_PER_CLASS, epochs: 10,
      batchSize: 256, learningRate: 1e-3, optimizer: Optimizer.OPTIMIZER_ADAM, seeds: [0], heldOutFraction: 0.1,
      inputScaling: { scale: 1, offset: 0, mean: [], std: [] },
    });
    expect(settingsDifferences(request(), explicit)).toEqual([]);
    // Depths are a set: order and repeats do not count.
    expect(settingsDifferences(request({ copyDepths: [2, 1] }), request({ copyDepths: [1, 2, 2] }))).toEqual([]);
  });

  it('lists each differing setting as "field: baseline -> this", the data set included', () => {
    const differences = settingsDifferences(
      request({ epochs: 3, inputScaling: { scale: 1 / 255, mean: [], std: [] } }),
      request({ epochs: 5, mode: Mode.MODE_JOINT, copyDepths: [1, 2], datasetUri: 's3://b/other.npz', seeds: [0, 1] }),
    );
    expect(differences).toEqual([
      'copy_depths: 1 -> 1,2',
      'mode: frozen -> joint',
      'epochs: 3 -> 5',
      'seeds: 0 -> 0,1',
      'input_scaling.scale: 0.00392156862745098 -> 1',
      'dataset_uri: s3://b/data.npz -> s3://b/other.npz',
    ]);
  });

  it('ignores the model, the output, the request id and the baseline fields', () => {
    const other = request({ modelUri: 's3://b/new-model', outputUri: 's3://b/out', requestId: 'r', baselineReportUri: 's3://b/x', allowDifferentSettings: true });
    expect(settingsDifferences(request(), other)).toEqual([]);
  });

  it('refuses a malformed baseline request as the baseline\'s fault', () => {
    const error = caught(() => settingsDifferences(request({ epochs: 0, numRandomLabels: 1 }), request()));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe("baselineReportUri: the baseline's request is malformed: num_random_labels: must be an integer in [2, 1000000], got 1");
  });
});

describe('baseline_report_uri', () => {
  it('is bounded like the other URIs when a request arrives', () => {
    const error = caught(() => checkRequestBounds(request({ baselineReportUri: 's3://b/'.padEnd(3000, 'x') })));
    expect(error.message).toBe('baseline_report_uri: must be at most 2048 characters long, got 3000');
    expect(caught(() => checkRequestBounds(request({ baselineReportUri: 'a\0b' }))).message).toBe('baseline_report_uri: must not contain NUL characters');
  });
});

describe('withBaseline', () => {
  const result = MeasurementResult.fromPartial({ depths: [depth(1, 0.2, 0.28), depth(2, 0.5, 0.55), depth(3, 0.6, 0.64)] });

  it('fills each depth\'s baseline scores and deltas, and the URI', () => {
    const compared = withBaseline(result, request(), baseline([depth(1, 0.25, 0.325), depth(2, 0.4, 0.46), depth(3, 0.6, 0.64)]), false);
    expect(compared.baselineReportUri).toBe('s3://b/runs/old/report.json');
    expect(compared.baselineDifferences).toEqual([]);
    expect(compared.depths[0]!.baseline!.memorizationScore).toBe(0.25);
    expect(compared.depths[0]!.baseline!.memorizationScoreDelta).toBeCloseTo(-0.05);
    expect(compared.depths[0]!.baseline!.randomLabelAccuracy).toBe(0.325);
    expect(compared.depths[0]!.baseline!.randomLabelAccuracyDelta).toBeCloseTo(-0.045);
    expect(compared.depths[1]!.baseline!.memorizationScoreDelta).toBeCloseTo(0.1);
    expect(compared.depths[2]!.baseline!.memorizationScoreDelta).toBe(0);
    expect(compared.depths.map((d) => d.memorizationScore)).toEqual([0.2, 0.5, 0.6]);
    // The result still encodes as the API's message.
    expect(MeasurementResult.fromJSON(MeasurementResult.toJSON(compared)).depths[1]!.baseline).toEqual(compared.depths[1]!.baseline);
  });

  it('refuses a baseline measured with other settings, listing them', () => {
    const old = baseline([depth(1, 0.25, 0.325)], { copyDepths: [1], epochs: 3 });
    const error = caught(() => withBaseline(result, request({ copyDepths: [1, 2, 3] }), old, false));
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect(error.message).toMatch(/^baselineReportUri: the baseline s3:\/\/b\/runs\/old\/report\.json was measured with other settings \(copy_depths: 1 -> 1,2,3; epochs: 3 -> 10\)/);
    expect(error.message).toMatch(/allow_different_settings, --allow-different-settings/);
  });

  it('compares the depths both measured when different settings are allowed, listing the differences', () => {
    const old = baseline([depth(1, 0.25, 0.325), depth(4, 0.9, 0.91)], { copyDepths: [1, 4], epochs: 3 });
    const compared = withBaseline(result, request({ copyDepths: [1, 2, 3] }), old, true);
    expect(compared.baselineDifferences).toEqual(['copy_depths: 1,4 -> 1,2,3', 'epochs: 3 -> 10']);
    expect(compared.depths.map((d) => d.baseline?.memorizationScore)).toEqual([0.25, undefined, undefined]);
    expect(checkBaseline(old, request({ copyDepths: [1, 2, 3] }), true)).toEqual(compared.baselineDifferences);
  });
});

describe('increasesAbove', () => {
  const compared = withBaseline(
    MeasurementResult.fromPartial({ depths: [depth(1, 0.2, 0.28), depth(2, 0.5, 0.55), depth(3, 0.7, 0.73)] }),
    request(), baseline([depth(1, 0.25, 0.325), depth(2, 0.4, 0.46)]), true,
  );

  it('names each depth whose score rose by more than the threshold, with both scores and the delta', () => {
    expect(increasesAbove(compared, 0.05)).toEqual(['memorization score at copy depth 2 rose by 0.1000 (baseline 0.4000, now 0.5000), more than 0.05']);
    expect(increasesAbove(compared, 0.1)).toEqual([]); // not more than
    expect(increasesAbove(compared, 0)).toHaveLength(1); // depth 1 fell; depth 3 has no baseline
  });

  it('passes a result without a baseline', () => {
    expect(increasesAbove(MeasurementResult.fromPartial({ depths: [depth(1, 0.9, 0.91)] }), 0)).toEqual([]);
  });
});

describe('readBaseline', () => {
  const store = (objects: Record<string, string>): ObjectStore => ({
    get: async (key) => {
      if (!(key in objects)) throw new NotFoundError('no such object in the store', key);
      return new TextEncoder().encode(objects[key]);
    },
    size: async (key) => {
      if (!(key in objects)) throw new NotFoundError('no such object in the store', key);
      return key === 'huge.json' ? MAX_BASELINE_BYTES + 1 : new TextEncoder().encode(objects[key]).length;
    },
    put: async () => undefined,
    exists: async (key) => key in objects,
    list: async () => Object.keys(objects),
  });
  const old = baseline([depth(1, 0.25, 0.325)]);
  const objects = store({ 'report.json': reportFileToJson(old.report), 'bad.json': '{"measurementId": 1}', 'huge.json': '{}' });
  const read = (key: string) => readBaseline({ store: objects, key, uri: `s3://b/${key}` });

  it('reads a report.json as typed messages', async () => {
    const { uri, report } = await read('report.json');
    expect(uri).toBe('s3://b/report.json');
    expect(report.result.depths[0]!.memorizationScore).toBe(0.25);
    expect(report.request.datasetUri).toBe('s3://b/data.npz');
  });

  it('names the baseline in every error: missing, malformed, too large', async () => {
    await expect(read('missing.json')).rejects.toThrow(NotFoundError);
    await expect(read('missing.json')).rejects.toThrow("baselineReportUri: no report at 's3://b/missing.json'");
    await expect(read('bad.json')).rejects.toThrow(InvalidArgumentError);
    await expect(read('bad.json')).rejects.toThrow('baselineReportUri: s3://b/bad.json: not a memometer report.json: measurementId must be a string');
    await expect(read('huge.json')).rejects.toThrow(ResourceExhaustedError);
    await expect(read('huge.json')).rejects.toThrow(/^baselineReportUri: 'huge\.json' is 16777217 bytes, over the limit/);
  });
});
