import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MeasureMemorizationRequest, MeasureMemorizationResponse, MeasurementResult } from '../../src/gen/memometer/v1/memometer.js';
import { parseReportFile } from '../../src/report/report-file.js';
import { exampleBucket, startTestService, type TestService } from '../support/service.js';

let service: TestService;
let bucket: Awaited<ReturnType<typeof exampleBucket>>;
let base: MeasurementResult;

const request = (fields: Partial<MeasureMemorizationRequest> = {}): Partial<MeasureMemorizationRequest> => ({
  modelUri: bucket.modelUri,
  datasetUri: bucket.datasetUri,
  copyDepths: [1, 2],
  epochs: 2,
  inputScaling: { scale: 1 / 255, mean: [], std: [] },
  ...fields,
});

beforeAll(async () => {
  bucket = await exampleBucket('baseline');
  service = await startTestService();
  base = (await service.client().measure(request({ outputUri: 's3://baseline/runs/base' }))).result;
  await bucket.store.put('runs/bad/report.json', '{"measurementId": "x", "request": {}, "result": {"depths": []}}');
  await writeFile(path.join(service.dataRoot, 'not-json.json'), 'not json');
});
afterAll(() => service?.stop());

/** The messages a stream sent before it ended with an error, and the error's status. */
async function refusal(fields: Partial<MeasureMemorizationRequest>): Promise<{ messages: number; code: string; details: string }> {
  const messages: MeasureMemorizationResponse[] = [];
  try {
    for await (const message of service.client().stream(request(fields))) messages.push(message);
  } catch (e) {
    const error = e as ServiceError;
    return { messages: messages.length, code: status[error.code], details: error.details };
  }
  throw new Error('the measurement succeeded');
}

describe('MeasureMemorization with baseline_report_uri (real gRPC server, real S3)', () => {
  it('puts the per-depth deltas and the differences in the result, report.json and the stored measurement', async () => {
    const client = service.client();
    const { measurementId, result } = await client.measure(request({
      outputUri: 's3://baseline/runs/longer', copyDepths: [2, 3], epochs: 4,
      baselineReportUri: base.reportUri, allowDifferentSettings: true,
    }));
    expect(result.baselineReportUri).toBe('s3://baseline/runs/base/report.json');
    expect(result.baselineDifferences).toEqual(['copy_depths: 1,2 -> 2,3', 'epochs: 2 -> 4']);
    const [d2, d3] = result.depths;
    const before = base.depths[1]!;
    expect(d2!.baseline).toEqual({
      memorizationScore: before.memorizationScore,
      memorizationScoreDelta: d2!.memorizationScore - before.memorizationScore,
      randomLabelAccuracy: before.randomLabelAccuracy,
      randomLabelAccuracyDelta: d2!.randomLabelAccuracy - before.randomLabelAccuracy,
    });
    // Twice the epochs: the heads memorize more.
    expect(d2!.baseline!.memorizationScoreDelta).toBeGreaterThan(0);
    expect(d3!.baseline).toBeUndefined(); // the baseline did not measure depth 3

    const report = parseReportFile(new TextDecoder().decode(await bucket.store.get('runs/longer/report.json')), 'report.json');
    expect(report.result.depths[0]!.baseline).toEqual(d2!.baseline);
    expect(report.result.baselineDifferences).toEqual(result.baselineDifferences);
    expect(report.request.baselineReportUri).toBe(base.reportUri);
    expect((await client.getMeasurement(measurementId)).result).toEqual(result);
  });

  it('refuses a baseline measured with other settings with FAILED_PRECONDITION before recording anything', async () => {
    const { messages, code, details } = await refusal({ epochs: 3, numRandomLabels: 10, baselineReportUri: base.reportUri });
    expect(messages).toBe(0);
    expect(code).toBe('FAILED_PRECONDITION');
    expect(details).toMatch(/^baseline_report_uri: the baseline s3:\/\/baseline\/runs\/base\/report\.json was measured with other settings \(epochs: 2 -> 3\)/);
  });

  it.each([
    ['s3://baseline/runs/none/report.json', 'NOT_FOUND', /^baseline_report_uri: no report at 's3:\/\/baseline\/runs\/none\/report\.json'$/],
    ['none/report.json', 'NOT_FOUND', /^baseline_report_uri: no report at '.*none\/report\.json'$/],
    ['s3://baseline/runs/bad/report.json', 'INVALID_ARGUMENT', /^baseline_report_uri: s3:\/\/baseline\/runs\/bad\/report\.json: not a memometer report\.json: result\.depths must list at least one depth$/],
    ['not-json.json', 'INVALID_ARGUMENT', /^baseline_report_uri: .*not-json\.json: not a memometer report\.json: invalid JSON/],
    ['/etc/passwd', 'PERMISSION_DENIED', /^baseline_report_uri: '\/etc\/passwd' is outside the data root$/],
  ])('answers a baseline at %s with %s naming the field', async (baselineReportUri, code, details) => {
    const refused = await refusal({ baselineReportUri });
    expect(refused).toMatchObject({ messages: 0, code });
    expect(refused.details).toMatch(details);
  });
});
