import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { MeasureMemorizationRequest, MeasurementResult } from '../../src/gen/memometer/v1/memometer.js';
import { parseReportFile, reportFileToJson } from '../../src/report/report-file.js';
import { fixture } from './support.js';

const URI = 's3://bucket/runs/a/report.json';
const text = readFileSync('test/report/fixtures/this.json', 'utf8');
/** The fixture as JSON, typed loosely enough to be broken on purpose below. */
interface ReportJson {
  measurementId: string;
  request: Record<string, unknown>;
  result: Record<string, unknown> & { depths: { memorizationScore: unknown; curve: unknown[] }[] };
}
const json = () => JSON.parse(text) as ReportJson;

/** The error parseReportFile throws for `body`. */
function failure(body: unknown): InvalidArgumentError {
  try {
    parseReportFile(typeof body === 'string' ? body : JSON.stringify(body), URI);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError);
    return error as InvalidArgumentError;
  }
  throw new Error('parsed');
}

describe('report.json', () => {
  it('is written as the server always wrote it, and reads back to the same messages', () => {
    const report = fixture('this');
    const written = reportFileToJson(report);
    expect(written).toBe(JSON.stringify({
      measurementId: report.measurementId,
      request: MeasureMemorizationRequest.toJSON(report.request),
      result: MeasurementResult.toJSON(report.result),
    }, null, 2));
    expect(parseReportFile(written, URI)).toEqual(report);
    expect(report.result.depths[1]!.baseline?.memorizationScoreDelta).toBeGreaterThan(0.2);
  });

  it.each([
    ['not JSON', '{"measurementId": ', /invalid JSON/],
    ['an array', [], /expected a JSON object/],
    ['no measurement id', { ...json(), measurementId: 7 }, /measurementId must be a string/],
    ['no request', { ...json(), request: undefined }, /request must be an object/],
    ['no result', { ...json(), result: 'done' }, /result must be an object/],
    ['no depths', { ...json(), result: { ...json().result, depths: [] } }, /result.depths must list at least one depth/],
    ['a depth that is no object', { ...json(), result: { ...json().result, depths: [1] } }, /result.depths must hold objects/],
    ['a score that is no number', (() => {
      const j = json();
      j.result.depths[1]!.memorizationScore = 'high';
      return j;
    })(), /result\.depths\[1\]\.memorizationScore must be a finite number/],
    ['a curve value that is no number', (() => {
      const j = json();
      j.result.depths[0]!.curve[2] = 'x';
      return j;
    })(), /result\.depths\[0\]\.curve\[2\] must be a finite number/],
    ['an unknown mode', { ...json(), result: { ...json().result, mode: 'MODE_SIDEWAYS' } }, /result\.mode has an unknown value/],
    ['an unknown optimizer', { ...json(), request: { ...json().request, optimizer: 'OPTIMIZER_MAGIC' } }, /request\.optimizer has an unknown value/],
  ])('refuses a file with %s, naming the URI', (_, body, message) => {
    const error = failure(body);
    expect(error.subject).toBe(URI);
    expect(error.message).toMatch(new RegExp(`^${URI}: not a memometer report.json: `));
    expect(error.message).toMatch(message);
  });
});
