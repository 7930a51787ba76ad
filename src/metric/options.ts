import { InvalidArgumentError } from '../errors.js';
import { HEAD_SHARING, MODES, type MeasureOptions } from './types.js';
import { OPTIMIZERS } from './train/optimizer.js';

export const DEFAULT_OPTIONS: Readonly<MeasureOptions> = {
  copyDepths: [1],
  numRandomLabels: 10,
  mode: 'frozen',
  heads: 'per-class',
  headInit: 'fresh',
  epochs: 10,
  batchSize: 256,
  learningRate: 1e-3,
  optimizer: 'adam',
  weightDecay: 0,
  lambda: 0,
  labelSmoothing: 0,
  reinitialize: false,
  seeds: [0],
  heldOutFraction: 0.1,
  memoryBudgetBytes: 2 * 1024 ** 3,
  headWorkers: 'auto',
};

/** The environment variable that sets headWorkers (an explicit option wins over it). */
export const HEAD_WORKERS_ENV = 'MEMOMETER_HEAD_WORKERS';
/** More threads than this cannot pay: each holds its own copy of the model. */
const MAX_HEAD_WORKERS = 64;

/** headWorkers from the option, else from MEMOMETER_HEAD_WORKERS; errors name where it came from. */
function headWorkersSetting(given: Partial<MeasureOptions>): number | 'auto' {
  const fromEnv = given.headWorkers === undefined;
  const raw = fromEnv ? process.env[HEAD_WORKERS_ENV]?.trim() || 'auto' : given.headWorkers;
  if (raw === 'auto') return raw;
  const value = typeof raw === 'string' ? Number(raw) : raw;
  if (!Number.isInteger(value) || value! < 1 || value! > MAX_HEAD_WORKERS) {
    throw new InvalidArgumentError(
      `must be 'auto' or an integer in [1, ${MAX_HEAD_WORKERS}], got ${typeof raw === 'string' ? `'${raw}'` : raw}`,
      fromEnv ? HEAD_WORKERS_ENV : 'headWorkers',
    );
  }
  return value!;
}

/** Checks the engine's environment settings once, so a server refuses to start on a bad one. */
export function checkEngineEnvironment(): void {
  headWorkersSetting({});
}

function integer(value: number, field: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`must be an integer in [${min}, ${max}], got ${value}`, field);
  }
}

function real(value: number, field: string, check: (v: number) => boolean, range: string): void {
  if (!Number.isFinite(value) || !check(value)) {
    throw new InvalidArgumentError(`must be ${range}, got ${value}`, field);
  }
}

function oneOf<T extends string>(value: T, field: string, allowed: readonly T[]): void {
  if (!allowed.includes(value)) {
    throw new InvalidArgumentError(`must be one of ${allowed.join(', ')}, got '${value}'`, field);
  }
}

/** Fills in defaults and checks every option; errors name the option. */
export function resolveOptions(given: Partial<MeasureOptions>): MeasureOptions {
  const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
  const o: MeasureOptions = { ...DEFAULT_OPTIONS, ...defined };
  if (!Array.isArray(o.copyDepths) || o.copyDepths.length === 0) {
    throw new InvalidArgumentError('must list at least one copy depth', 'copyDepths');
  }
  o.copyDepths.forEach((d) => integer(d, 'copyDepths', 1, 10_000));
  o.copyDepths = [...new Set(o.copyDepths)].sort((a, b) => a - b);
  integer(o.numRandomLabels, 'numRandomLabels', 2, 1_000_000);
  oneOf(o.mode, 'mode', MODES);
  oneOf(o.heads, 'heads', HEAD_SHARING);
  oneOf(o.headInit, 'headInit', ['fresh', 'top'] as const);
  oneOf(o.optimizer, 'optimizer', OPTIMIZERS);
  integer(o.epochs, 'epochs', 1, 100_000);
  integer(o.batchSize, 'batchSize', 1, 1_000_000);
  real(o.learningRate, 'learningRate', (v) => v > 0, '> 0');
  real(o.weightDecay, 'weightDecay', (v) => v >= 0, '>= 0');
  real(o.lambda, 'lambda', (v) => v >= 0, '>= 0');
  real(o.labelSmoothing, 'labelSmoothing', (v) => v >= 0 && v < 1, 'in [0, 1)');
  real(o.heldOutFraction, 'heldOutFraction', (v) => v > 0 && v < 1, 'in (0, 1)');
  real(o.memoryBudgetBytes, 'memoryBudgetBytes', (v) => v > 0, '> 0');
  o.headWorkers = headWorkersSetting(given);
  if (!Array.isArray(o.seeds) || o.seeds.length === 0) {
    throw new InvalidArgumentError('must list at least one seed', 'seeds');
  }
  o.seeds.forEach((s) => integer(s, 'seeds', 0, 2 ** 32 - 1));
  if (o.maxSamples !== undefined) integer(o.maxSamples, 'maxSamples', 1);
  const s = o.inputScaling;
  for (const key of ['scale', 'offset'] as const) {
    if (s?.[key] !== undefined) real(s[key], `inputScaling.${key}`, () => true, 'a finite number');
  }
  for (const key of ['mean', 'std'] as const) {
    const bad = s?.[key]?.findIndex((v) => !Number.isFinite(v)) ?? -1;
    if (bad >= 0) throw new InvalidArgumentError(`must hold finite numbers, got ${s![key]![bad]} at index ${bad}`, `inputScaling.${key}`);
  }
  if (o.mode === 'frozen' && (o.lambda > 0 || o.labelSmoothing > 0 || o.reinitialize)) {
    const field = o.lambda > 0 ? 'lambda' : o.labelSmoothing > 0 ? 'labelSmoothing' : 'reinitialize';
    throw new InvalidArgumentError('applies only in joint mode (frozen mode trains no backbone)', field);
  }
  return o;
}
