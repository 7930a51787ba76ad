import { InvalidArgumentError } from '../errors.js';

/** Everything `memometer serve` can be told; each setting has an env var, flags win. */
export interface ServerConfig {
  host: string;
  port: number;
  /** Local paths in requests must resolve inside this folder; none: local paths are refused. */
  dataRoot?: string;
  /** Where measurement records live (s3://bucket/prefix or a local folder), shared by replicas. */
  stateUri?: string;
  /** When set, every RPC needs `authorization: Bearer <token>`. */
  apiToken?: string;
  /** When non-empty, s3:// URIs must name one of these buckets. */
  allowedBuckets: string[];
  /** Measurements running at once in this process (one GPU: 1). */
  maxConcurrent: number;
  /** Measurements admitted and waiting; beyond, RESOURCE_EXHAUSTED. */
  maxQueued: number;
  /** On SIGTERM, running measurements get this long to finish before they are cancelled. */
  shutdownGraceSeconds: number;
  maxDatasetBytes: number;
  maxSamples: number;
  memoryBudgetBytes: number;
}

/** The environment variables behind each setting (documented in the README and deploy/). */
export const SERVER_ENV = {
  host: 'MEMOMETER_HOST',
  port: 'MEMOMETER_PORT',
  dataRoot: 'MEMOMETER_DATA_ROOT',
  stateUri: 'MEMOMETER_STATE_URI',
  apiToken: 'MEMOMETER_API_TOKEN',
  allowedBuckets: 'MEMOMETER_ALLOWED_BUCKETS',
  maxConcurrent: 'MEMOMETER_MAX_CONCURRENT',
  maxQueued: 'MEMOMETER_MAX_QUEUED',
  shutdownGraceSeconds: 'MEMOMETER_SHUTDOWN_GRACE_SECONDS',
  maxDatasetBytes: 'MEMOMETER_MAX_DATASET_BYTES',
  maxSamples: 'MEMOMETER_MAX_SAMPLES',
  memoryBudgetBytes: 'MEMOMETER_MEMORY_BUDGET_BYTES',
} as const satisfies Record<keyof ServerConfig, string>;

export const SERVER_DEFAULTS = {
  host: '0.0.0.0',
  port: 50051,
  allowedBuckets: [],
  maxConcurrent: 1,
  maxQueued: 8,
  shutdownGraceSeconds: 30,
  maxDatasetBytes: 2 * 1024 ** 3,
  maxSamples: 1_000_000,
  memoryBudgetBytes: 4 * 1024 ** 3,
} satisfies Partial<ServerConfig>;

type Raw = Partial<Record<keyof ServerConfig, string>>;

function integer(raw: string | undefined, name: string, min: number, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`must be an integer >= ${min}, got '${raw}'`, name);
  }
  return value;
}

const text = (raw: string | undefined) => (raw === undefined || raw === '' ? undefined : raw);

/**
 * Settings from env vars, overridden by flags (`flags` holds raw strings keyed like the config;
 * `names` says how to name a setting in errors: the flag when it came from one).
 */
export function loadServerConfig(env: NodeJS.ProcessEnv, flags: Raw = {}): ServerConfig {
  const raw = (key: keyof ServerConfig) => flags[key] ?? env[SERVER_ENV[key]];
  const name = (key: keyof ServerConfig) =>
    flags[key] !== undefined ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : SERVER_ENV[key];
  const num = (key: keyof ServerConfig, min: number, fallback: number) => integer(raw(key), name(key), min, fallback);
  return {
    host: text(raw('host')) ?? SERVER_DEFAULTS.host,
    port: num('port', 0, SERVER_DEFAULTS.port),
    dataRoot: text(raw('dataRoot')),
    stateUri: text(raw('stateUri')),
    apiToken: text(raw('apiToken')),
    allowedBuckets: (text(raw('allowedBuckets')) ?? '').split(',').map((b) => b.trim()).filter(Boolean),
    maxConcurrent: num('maxConcurrent', 1, SERVER_DEFAULTS.maxConcurrent),
    maxQueued: num('maxQueued', 0, SERVER_DEFAULTS.maxQueued),
    shutdownGraceSeconds: num('shutdownGraceSeconds', 0, SERVER_DEFAULTS.shutdownGraceSeconds),
    maxDatasetBytes: num('maxDatasetBytes', 1, SERVER_DEFAULTS.maxDatasetBytes),
    maxSamples: num('maxSamples', 1, SERVER_DEFAULTS.maxSamples),
    memoryBudgetBytes: num('memoryBudgetBytes', 1, SERVER_DEFAULTS.memoryBudgetBytes),
  };
}
