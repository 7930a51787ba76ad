/** report.json: what a measurement wrote, as typed API messages, and its checked parser. */
import { clip, InvalidArgumentError } from '../errors.js';
import { MeasureMemorizationRequest, MeasurementResult } from '../gen/memometer/v1/memometer.js';

export interface ReportFile {
  /** The server's id; empty for a local CLI run. */
  measurementId: string;
  request: MeasureMemorizationRequest;
  result: MeasurementResult;
}

/** The report.json text (proto JSON names, two-space indent). */
export function reportFileToJson(r: ReportFile): string {
  const json = {
    measurementId: r.measurementId,
    request: MeasureMemorizationRequest.toJSON(r.request),
    result: MeasurementResult.toJSON(r.result),
  };
  return JSON.stringify(json, null, 2);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The path of the first number that is not finite (fromJSON turns a non-number into NaN). */
function firstNonFinite(value: unknown, at: string): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : at;
  const entries = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v] as const)
    : isObject(value) ? Object.entries(value).map(([k, v]) => [`.${k}`, v] as const) : [];
  for (const [key, v] of entries) {
    const bad = firstNonFinite(v, at + key);
    if (bad) return bad;
  }
  return undefined;
}

/** ts-proto reads an unknown enum name as UNRECOGNIZED (-1). */
const UNRECOGNIZED = -1;

/**
 * A report.json read back (a baseline, a report to render): the file must hold a measurement id,
 * a request and a result with at least one depth, all numbers finite and all enums known.
 * Anything else is an InvalidArgumentError whose subject is `uri`.
 */
export function parseReportFile(text: string, uri: string): ReportFile {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`not a memometer report.json: ${why}`, clip(uri));
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return fail(`invalid JSON (${(error as Error).message})`);
  }
  if (!isObject(json)) return fail('expected a JSON object');
  if (typeof json.measurementId !== 'string') return fail('measurementId must be a string');
  if (!isObject(json.request)) return fail('request must be an object');
  if (!isObject(json.result)) return fail('result must be an object');
  if (!Array.isArray(json.result.depths) || json.result.depths.length === 0) return fail('result.depths must list at least one depth');
  if (!json.result.depths.every(isObject)) return fail('result.depths must hold objects');
  const report = {
    measurementId: json.measurementId,
    request: MeasureMemorizationRequest.fromJSON(json.request),
    result: MeasurementResult.fromJSON(json.result),
  };
  const { request, result } = report;
  const enums: Record<string, number> = { 'request.mode': request.mode, 'request.headSharing': request.headSharing, 'request.headInit': request.headInit,
    'request.optimizer': request.optimizer, 'result.mode': result.mode, 'result.headSharing': result.headSharing };
  const unknown = Object.entries(enums).find(([, v]) => v === UNRECOGNIZED);
  if (unknown) return fail(`${unknown[0]} has an unknown value`);
  const nonFinite = firstNonFinite(report, '');
  if (nonFinite) return fail(`${nonFinite.slice(1)} must be a finite number`);
  return report;
}
