import { parseArgs } from 'node:util';
import { InvalidArgumentError, MemometerError } from '../errors.js';
import type { MeasureOptions } from '../metric/types.js';

/** Flags of `memometer measure`, shared by the local and the --server mode. */
export const MEASURE_FLAGS = {
  model: { type: 'string' },
  dataset: { type: 'string' },
  depth: { type: 'string' },
  labels: { type: 'string' },
  mode: { type: 'string' },
  heads: { type: 'string' },
  'head-init': { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  optimizer: { type: 'string' },
  'weight-decay': { type: 'string' },
  lambda: { type: 'string' },
  'label-smoothing': { type: 'string' },
  reinit: { type: 'boolean' },
  seed: { type: 'string' },
  'max-samples': { type: 'string' },
  'held-out-fraction': { type: 'string' },
  scale: { type: 'string' },
  offset: { type: 'string' },
  mean: { type: 'string' },
  std: { type: 'string' },
  'memory-budget-mb': { type: 'string' },
  backend: { type: 'string' },
  'head-workers': { type: 'string' },
  output: { type: 'string' },
  report: { type: 'string' },
  server: { type: 'string' },
  'fail-above': { type: 'string' },
  baseline: { type: 'string' },
  'fail-above-increase': { type: 'string' },
  'allow-different-settings': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Which flag sets each engine option, so errors about an option name the flag the user typed. */
export const FLAG_OF_OPTION: Record<string, string> = {
  copyDepths: '--depth',
  numRandomLabels: '--labels',
  mode: '--mode',
  heads: '--heads',
  headInit: '--head-init',
  epochs: '--epochs',
  batchSize: '--batch-size',
  learningRate: '--lr',
  optimizer: '--optimizer',
  weightDecay: '--weight-decay',
  lambda: '--lambda',
  labelSmoothing: '--label-smoothing',
  reinitialize: '--reinit',
  seeds: '--seed',
  maxSamples: '--max-samples',
  heldOutFraction: '--held-out-fraction',
  'inputScaling.scale': '--scale',
  'inputScaling.offset': '--offset',
  'inputScaling.mean': '--mean',
  'inputScaling.std': '--std',
  memoryBudgetBytes: '--memory-budget-mb',
  backend: '--backend',
  MEMOMETER_BACKEND: '--backend',
  headWorkers: '--head-workers',
  MEMOMETER_HEAD_WORKERS: '--head-workers',
  baselineReportUri: '--baseline',
};

export type MeasureValues = ReturnType<typeof parseMeasureArgs>['values'];

export function parseMeasureArgs(args: string[]) {
  return parseArgs({ args, options: MEASURE_FLAGS, strict: true, allowPositionals: false });
}

function number(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) {
    throw new InvalidArgumentError(`expects a number, got '${value}'`, flag);
  }
  return parsed;
}

function numbers(value: string | undefined, flag: string): number[] | undefined {
  return value?.split(',').map((part) => number(part.trim(), flag)!);
}

/** Engine options from the flags; values are checked by the engine, which names the option. */
export function measureOptionsFrom(v: MeasureValues): Partial<MeasureOptions> {
  const scaling = {
    scale: number(v.scale, '--scale'),
    offset: number(v.offset, '--offset'),
    mean: numbers(v.mean, '--mean'),
    std: numbers(v.std, '--std'),
  };
  const budget = number(v['memory-budget-mb'], '--memory-budget-mb');
  return {
    copyDepths: numbers(v.depth, '--depth'),
    numRandomLabels: number(v.labels, '--labels'),
    mode: v.mode as MeasureOptions['mode'] | undefined,
    heads: v.heads as MeasureOptions['heads'] | undefined,
    headInit: v['head-init'] as MeasureOptions['headInit'] | undefined,
    epochs: number(v.epochs, '--epochs'),
    batchSize: number(v['batch-size'], '--batch-size'),
    learningRate: number(v.lr, '--lr'),
    optimizer: v.optimizer as MeasureOptions['optimizer'] | undefined,
    weightDecay: number(v['weight-decay'], '--weight-decay'),
    lambda: number(v.lambda, '--lambda'),
    labelSmoothing: number(v['label-smoothing'], '--label-smoothing'),
    reinitialize: v.reinit,
    seeds: numbers(v.seed, '--seed'),
    maxSamples: number(v['max-samples'], '--max-samples'),
    heldOutFraction: number(v['held-out-fraction'], '--held-out-fraction'),
    inputScaling: Object.values(scaling).some((x) => x !== undefined) ? scaling : undefined,
    memoryBudgetBytes: budget === undefined ? undefined : budget * 2 ** 20,
    headWorkers: v['head-workers'] === 'auto' ? 'auto' : number(v['head-workers'], '--head-workers'),
  };
}

/** An error message for humans, naming the flag where the error is about an option. */
export function describeForCli(error: MemometerError): string {
  const flag = error.subject ? FLAG_OF_OPTION[error.subject] : undefined;
  return flag ? `${flag}: ${error.detail}` : error.message;
}
