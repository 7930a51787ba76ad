/**
 * The mapping between the API's request (proto) and the engine's options, both ways: the
 * server reads requests, the CLI and TS client write them. One table per enum serves both.
 */
import { InvalidArgumentError } from '../errors.js';
import { resolveOptions } from '../metric/options.js';
import type { MeasureOptions } from '../metric/types.js';
import {
  HeadInit,
  HeadSharing,
  MeasureMemorizationRequest,
  Mode,
  Optimizer,
} from '../gen/memometer/v1/memometer.js';

/** Engine option -> request field, so engine errors name what the client sent. */
export const FIELD_OF_OPTION: Record<string, string> = {
  copyDepths: 'copy_depths',
  numRandomLabels: 'num_random_labels',
  mode: 'mode',
  heads: 'head_sharing',
  headInit: 'head_init',
  epochs: 'epochs',
  batchSize: 'batch_size',
  learningRate: 'learning_rate',
  optimizer: 'optimizer',
  weightDecay: 'weight_decay',
  lambda: 'regularization_lambda',
  labelSmoothing: 'label_smoothing',
  reinitialize: 'reinitialize',
  seeds: 'seeds',
  maxSamples: 'max_samples',
  heldOutFraction: 'held_out_fraction',
  inputScaling: 'input_scaling',
  'inputScaling.scale': 'input_scaling.scale',
  'inputScaling.offset': 'input_scaling.offset',
  'inputScaling.mean': 'input_scaling.mean',
  'inputScaling.std': 'input_scaling.std',
  'dataset.x': 'dataset_uri',
  'dataset.y': 'dataset_uri',
  'dataset.x_test': 'dataset_uri',
  'dataset.y_test': 'dataset_uri',
  model: 'model_uri',
  baselineReportUri: 'baseline_report_uri',
  memoryBudgetBytes: "the server's memory budget (MEMOMETER_MEMORY_BUDGET_BYTES)",
};

export const MODES = [[Mode.MODE_FROZEN, 'frozen'], [Mode.MODE_JOINT, 'joint']] as const;
export const SHARINGS = [[HeadSharing.HEAD_SHARING_PER_CLASS, 'per-class'], [HeadSharing.HEAD_SHARING_SHARED, 'shared']] as const;
const INITS = [[HeadInit.HEAD_INIT_FRESH, 'fresh'], [HeadInit.HEAD_INIT_TOP, 'top']] as const;
const OPTIMIZERS = [[Optimizer.OPTIMIZER_ADAM, 'adam'], [Optimizer.OPTIMIZER_SGD, 'sgd'], [Optimizer.OPTIMIZER_MOMENTUM, 'momentum']] as const;

type Table = readonly (readonly [number, string])[];

/** Proto enum -> engine value; 0 (unspecified) means the default. */
function fromProto<T extends Table>(table: T, value: number, field: string): T[number][1] | undefined {
  if (value === 0) return undefined;
  const entry = table.find(([v]) => v === value);
  if (!entry) throw new InvalidArgumentError(`unknown value ${value}`, field);
  return entry[1];
}

/** The engine value of a proto enum value that is set (the table's first entry otherwise). */
export function nameOf<T extends Table>(table: T, value: number): T[number][1] {
  return (table.find(([v]) => v === value) ?? table[0]!)[1];
}

/** Engine value -> proto enum; unset stays unspecified (the server's default). */
export function toProto(table: Table, value: string | undefined): number {
  return table.find(([, name]) => name === value)?.[0] ?? 0;
}

/** Zero means "not set" for proto3 scalars: the engine default applies. */
const orDefault = (value: number) => (value === 0 ? undefined : value);
const listOrDefault = (values: number[]) => (values.length === 0 ? undefined : values);

/**
 * What a server accepts in one request, checked when it arrives (before any storage access), so
 * that no client can ask for unbounded work or make the server store unbounded records. The
 * server's settings (MEMOMETER_MAX_EPOCHS, ...) set them; these are the defaults.
 */
export interface RequestBounds {
  maxEpochs: number;
  maxSeeds: number;
  maxCopyDepths: number;
  /** In characters. */
  maxRequestIdLength: number;
  /** In characters, for model_uri, dataset_uri, output_uri and baseline_report_uri each. */
  maxUriLength: number;
}

export const DEFAULT_REQUEST_BOUNDS: Readonly<RequestBounds> = {
  maxEpochs: 1000,
  maxSeeds: 16,
  maxCopyDepths: 32,
  maxRequestIdLength: 128,
  maxUriLength: 2048,
};

const URI_FIELDS = [
  ['modelUri', 'model_uri'], ['datasetUri', 'dataset_uri'], ['outputUri', 'output_uri'], ['baselineReportUri', 'baseline_report_uri'],
] as const;

/** `must be at most 1000, got 100000`; with `unit`: `must list at most 16 seeds, got 20000`. */
function atMost(value: number, max: number, field: string, verb = 'be', unit = ''): void {
  if (value > max) throw new InvalidArgumentError(`must ${verb} at most ${max}${unit}, got ${value}`, field);
}

/** Refuses requests beyond the server's bounds, naming the field; never echoes the value itself. */
export function checkRequestBounds(request: MeasureMemorizationRequest, bounds: RequestBounds = DEFAULT_REQUEST_BOUNDS): void {
  atMost([...request.requestId].length, bounds.maxRequestIdLength, 'request_id', 'be', ' characters long');
  for (const [key, field] of URI_FIELDS) {
    const uri = request[key];
    atMost([...uri].length, bounds.maxUriLength, field, 'be', ' characters long');
    if (uri.includes('\0')) throw new InvalidArgumentError('must not contain NUL characters', field);
  }
  if (!request.modelUri.trim()) throw new InvalidArgumentError('is required', 'model_uri');
  if (!request.datasetUri.trim()) throw new InvalidArgumentError('is required', 'dataset_uri');
  atMost(request.epochs, bounds.maxEpochs, 'epochs');
  atMost(request.seeds.length, bounds.maxSeeds, 'seeds', 'list', ' seeds');
  atMost(request.copyDepths.length, bounds.maxCopyDepths, 'copy_depths', 'list', ' depths');
  const std = request.inputScaling?.std ?? [];
  const zero = std.findIndex((v) => v === 0);
  if (zero >= 0) throw new InvalidArgumentError(`must hold non-zero numbers, got 0 at index ${zero}`, 'input_scaling.std');
}

/**
 * Engine options from a request, after {@link checkRequestBounds}; every option is checked here
 * too (the engine's own checks, errors naming the option), so a bad request fails before the
 * server reads a byte of storage.
 */
export function optionsFromRequest(request: MeasureMemorizationRequest, bounds: RequestBounds = DEFAULT_REQUEST_BOUNDS): Partial<MeasureOptions> {
  checkRequestBounds(request, bounds);
  const options = engineOptions(request);
  resolveOptions(options);
  return options;
}

/**
 * Every setting a request measures with, defaults applied (what two measurements must share to
 * be compared). Checks the options like {@link optionsFromRequest}, without the server's bounds.
 */
export function effectiveOptions(request: MeasureMemorizationRequest): MeasureOptions {
  // An explicit headWorkers keeps MEMOMETER_HEAD_WORKERS out of it: it changes no score.
  return resolveOptions({ ...engineOptions(request), headWorkers: 'auto' });
}

function engineOptions(request: MeasureMemorizationRequest): Partial<MeasureOptions> {
  const scaling = request.inputScaling;
  return {
    copyDepths: listOrDefault(request.copyDepths),
    numRandomLabels: orDefault(request.numRandomLabels),
    mode: fromProto(MODES, request.mode, 'mode'),
    heads: fromProto(SHARINGS, request.headSharing, 'head_sharing'),
    headInit: fromProto(INITS, request.headInit, 'head_init'),
    epochs: orDefault(request.epochs),
    batchSize: orDefault(request.batchSize),
    learningRate: orDefault(request.learningRate),
    optimizer: fromProto(OPTIMIZERS, request.optimizer, 'optimizer'),
    weightDecay: orDefault(request.weightDecay),
    lambda: orDefault(request.regularizationLambda),
    labelSmoothing: orDefault(request.labelSmoothing),
    reinitialize: request.reinitialize || undefined,
    seeds: listOrDefault(request.seeds),
    maxSamples: orDefault(request.maxSamples),
    heldOutFraction: orDefault(request.heldOutFraction),
    inputScaling: scaling
      ? { scale: scaling.scale, offset: scaling.offset, mean: listOrDefault(scaling.mean), std: listOrDefault(scaling.std) }
      : undefined,
  };
}

/** A request carrying engine options (what the CLI's --server mode sends). */
export function requestFromOptions(
  uris: { modelUri: string; datasetUri: string; outputUri?: string; requestId?: string; baselineReportUri?: string; allowDifferentSettings?: boolean },
  o: Partial<MeasureOptions>,
): MeasureMemorizationRequest {
  return MeasureMemorizationRequest.fromPartial({
    ...uris,
    copyDepths: o.copyDepths,
    numRandomLabels: o.numRandomLabels,
    mode: toProto(MODES, o.mode),
    headSharing: toProto(SHARINGS, o.heads),
    headInit: toProto(INITS, o.headInit),
    epochs: o.epochs,
    batchSize: o.batchSize,
    learningRate: o.learningRate,
    optimizer: toProto(OPTIMIZERS, o.optimizer),
    weightDecay: o.weightDecay,
    regularizationLambda: o.lambda,
    labelSmoothing: o.labelSmoothing,
    reinitialize: o.reinitialize,
    seeds: o.seeds,
    maxSamples: o.maxSamples,
    heldOutFraction: o.heldOutFraction,
    inputScaling: o.inputScaling,
  });
}
