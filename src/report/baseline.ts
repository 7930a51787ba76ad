/**
 * Comparing a measurement with a baseline report (an earlier report.json), like MLflow's
 * validation thresholds against a baseline model: per-depth deltas, and the gate on how much the
 * memorization score may rise. Pure: the server and the CLI read the report, this compares.
 */
import { clip, FailedPreconditionError, InvalidArgumentError, MemometerError } from '../errors.js';
import { effectiveOptions, FIELD_OF_OPTION } from '../api/request.js';
import type { DepthResult, MeasureMemorizationRequest } from '../gen/memometer/v1/memometer.js';
import type { MeasureOptions } from '../metric/types.js';
import type { ReportFile } from './report-file.js';

/**
 * The subject of errors about the baseline: the server names it `baseline_report_uri`, the CLI
 * `--baseline` (FIELD_OF_OPTION, FLAG_OF_OPTION).
 */
export const BASELINE_SUBJECT = 'baselineReportUri';

/** A baseline's report.json can hold at most this many bytes (a report is a few KiB per depth). */
export const MAX_BASELINE_BYTES = 16 * 2 ** 20;

/** A baseline report and where it was read from. */
export interface Baseline {
  uri: string;
  report: ReportFile;
}

/** What a comparison adds to a result (the API's fields, also on the CLI's engine-shaped result). */
export interface Compared {
  depths: DepthResult[];
  baselineReportUri: string;
  baselineDifferences: string[];
}

/** Options that change scores (not where things are read from or written to, nor threads or memory). */
const COMPARED_OPTIONS = [
  'copyDepths', 'numRandomLabels', 'mode', 'heads', 'headInit', 'epochs', 'batchSize', 'learningRate', 'optimizer',
  'weightDecay', 'lambda', 'labelSmoothing', 'reinitialize', 'seeds', 'maxSamples', 'heldOutFraction',
] as const satisfies readonly (keyof MeasureOptions)[];

type Setting = string | number | boolean | readonly (string | number)[] | undefined;

const show = (value: Setting): string =>
  value === undefined || (Array.isArray(value) && value.length === 0) ? 'unset' : Array.isArray(value) ? value.join(',') : String(value);

/** The settings of a request as [field, value] pairs, defaults applied. */
function settings(request: MeasureMemorizationRequest): [string, string][] {
  const o = effectiveOptions(request);
  const scaling = o.inputScaling;
  return [
    ...COMPARED_OPTIONS.map((key): [string, string] => [FIELD_OF_OPTION[key]!, show(o[key])]),
    ['input_scaling.scale', show(scaling?.scale ?? 1)],
    ['input_scaling.offset', show(scaling?.offset ?? 0)],
    ['input_scaling.mean', show(scaling?.mean)],
    ['input_scaling.std', show(scaling?.std)],
    ['dataset_uri', request.datasetUri],
  ];
}

/**
 * The settings in which `request` differs from the baseline's, as `field: baseline -> this`,
 * defaults applied (an unset epochs equals epochs 10). The model, output, request id and the
 * baseline itself are not settings: comparing models is the point.
 */
export function settingsDifferences(baselineRequest: MeasureMemorizationRequest, request: MeasureMemorizationRequest): string[] {
  let before: [string, string][];
  try {
    before = settings(baselineRequest);
  } catch (error) {
    if (!(error instanceof MemometerError)) throw error;
    const field = error.subject ? `${FIELD_OF_OPTION[error.subject] ?? error.subject}: ` : '';
    throw new InvalidArgumentError(`the baseline's request is malformed: ${field}${error.detail}`, BASELINE_SUBJECT, { cause: error });
  }
  const after = settings(request);
  return before.flatMap(([field, value], i) => (value === after[i]![1] ? [] : [`${field}: ${clip(value)} -> ${clip(after[i]![1])}`]));
}

/**
 * The differences a comparison goes ahead with: none, or any when `allowDifferent`; otherwise a
 * FailedPreconditionError listing them. Called before measuring, so a wrong baseline fails fast.
 */
export function checkBaseline(baseline: Baseline, request: MeasureMemorizationRequest, allowDifferent: boolean): string[] {
  const differences = settingsDifferences(baseline.report.request, request);
  if (differences.length > 0 && !allowDifferent) {
    throw new FailedPreconditionError(
      `the baseline ${clip(baseline.uri)} was measured with other settings (${differences.join('; ')}); ` +
        'measure with its settings, or allow different ones (allow_different_settings, --allow-different-settings)',
      BASELINE_SUBJECT,
    );
  }
  return differences;
}

/**
 * `result` with each depth's baseline scores and deltas (depths the baseline did not measure
 * get none), the baseline's URI and the settings that differ. Throws like {@link checkBaseline}.
 */
export function withBaseline<R extends { depths: DepthResult[] }>(
  result: R,
  request: MeasureMemorizationRequest,
  baseline: Baseline,
  allowDifferent: boolean,
): Omit<R, keyof Compared> & Compared {
  const differences = checkBaseline(baseline, request, allowDifferent);
  const before = new Map(baseline.report.result.depths.map((d) => [d.copyDepth, d]));
  const depths = result.depths.map((d): DepthResult => {
    const b = before.get(d.copyDepth);
    if (!b) return d;
    return {
      ...d,
      baseline: {
        memorizationScore: b.memorizationScore,
        memorizationScoreDelta: d.memorizationScore - b.memorizationScore,
        randomLabelAccuracy: b.randomLabelAccuracy,
        randomLabelAccuracyDelta: d.randomLabelAccuracy - b.randomLabelAccuracy,
      },
    };
  });
  return { ...result, depths, baselineReportUri: baseline.uri, baselineDifferences: differences };
}

/**
 * The gate: one line per depth whose memorization score rose by more than `threshold` over the
 * baseline (depths without a baseline cannot fail it).
 */
export function increasesAbove(result: { depths: DepthResult[] }, threshold: number): string[] {
  return result.depths
    .filter((d) => d.baseline && d.baseline.memorizationScoreDelta > threshold)
    .map((d) => {
      const b = d.baseline!;
      return `memorization score at copy depth ${d.copyDepth} rose by ${b.memorizationScoreDelta.toFixed(4)} ` +
        `(baseline ${b.memorizationScore.toFixed(4)}, now ${d.memorizationScore.toFixed(4)}), more than ${threshold}`;
    });
}
