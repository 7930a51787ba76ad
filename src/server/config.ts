import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_REQUEST_BOUNDS, type RequestBounds } from '../api/request.js';
import { InvalidArgumentError } from '../errors.js';

/** Everything `memometer serve` can be told; each setting has an env var, flags win. */
export interface ServerConfig extends RequestBounds {
  host: string;
  port: number;
  /** Local paths in requests must resolve inside this folder; none: local paths are refused. */
  dataRoot?: string;
  /**
   * Where measurement records live (s3://bucket/prefix or a local folder), shared by replicas.
   * Unset: `$XDG_STATE_HOME/memometer`, else `<os tmp>/memometer-state` (defaultStateUri);
   * never inside the data root unless configured so, and request URIs never reach it.
   */
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
  /** Bytes of one model (all its objects: model.json and shards, or the .onnx/.keras/.h5 file). */
  maxModelBytes: number;
  maxSamples: number;
  memoryBudgetBytes: number;
  /** A running measurement's lease on its record: renewed every third of it; expired, another replica takes the run over. */
  leaseSeconds: number;
  /** Runs of one measurement (the first and the take-overs) before it is recorded as FAILED. */
  maxAttempts: number;
  /**
   * Every call to a store (request URIs and the state store) fails with UNAVAILABLE when the store
   * has not answered within this many seconds: a stalled or dead endpoint frees the slot.
   */
  storageTimeoutSeconds: number;
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
  maxModelBytes: 'MEMOMETER_MAX_MODEL_BYTES',
  maxSamples: 'MEMOMETER_MAX_SAMPLES',
  memoryBudgetBytes: 'MEMOMETER_MEMORY_BUDGET_BYTES',
  leaseSeconds: 'MEMOMETER_LEASE_SECONDS',
  maxAttempts: 'MEMOMETER_MAX_ATTEMPTS',
  storageTimeoutSeconds: 'MEMOMETER_STORAGE_TIMEOUT_SECONDS',
  maxEpochs: 'MEMOMETER_MAX_EPOCHS',
  maxSeeds: 'MEMOMETER_MAX_SEEDS',
  maxCopyDepths: 'MEMOMETER_MAX_COPY_DEPTHS',
  maxRequestIdLength: 'MEMOMETER_MAX_REQUEST_ID_LENGTH',
  maxUriLength: 'MEMOMETER_MAX_URI_LENGTH',
} as const satisfies Record<keyof ServerConfig, string>;

export const SERVER_DEFAULTS = {
  host: '0.0.0.0',
  port: 50051,
  allowedBuckets: [],
  maxConcurrent: 1,
  maxQueued: 8,
  shutdownGraceSeconds: 30,
  maxDatasetBytes: 2 * 1024 ** 3,
  maxModelBytes: 2 * 1024 ** 3,
  maxSamples: 1_000_000,
  memoryBudgetBytes: 4 * 1024 ** 3,
  leaseSeconds: 30,
  maxAttempts: 3,
  storageTimeoutSeconds: 30,
  ...DEFAULT_REQUEST_BOUNDS,
} satisfies Partial<ServerConfig>;

/**
 * Where records live when MEMOMETER_STATE_URI is not set: the XDG state folder
 * (`$XDG_STATE_HOME/memometer`), else `<os tmp>/memometer-state` (lost on reboot: set
 * MEMOMETER_STATE_URI for records that last, an s3:// prefix for replicas). Never inside the
 * data root, so that clients cannot read or overwrite records through their URIs.
 */
export function defaultStateUri(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_STATE_HOME;
  return xdg && path.isAbsolute(xdg) ? path.join(xdg, 'memometer') : path.join(os.tmpdir(), 'memometer-state');
}

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
    maxModelBytes: num('maxModelBytes', 1, SERVER_DEFAULTS.maxModelBytes),
    maxSamples: num('maxSamples', 1, SERVER_DEFAULTS.maxSamples),
    memoryBudgetBytes: num('memoryBudgetBytes', 1, SERVER_DEFAULTS.memoryBudgetBytes),
    leaseSeconds: num('leaseSeconds', 1, SERVER_DEFAULTS.leaseSeconds),
    maxAttempts: num('maxAttempts', 1, SERVER_DEFAULTS.maxAttempts),
    storageTimeoutSeconds: num('storageTimeoutSeconds', 1, SERVER_DEFAULTS.storageTimeoutSeconds),
    maxEpochs: num('maxEpochs', 1, SERVER_DEFAULTS.maxEpochs),
    maxSeeds: num('maxSeeds', 1, SERVER_DEFAULTS.maxSeeds),
    maxCopyDepths: num('maxCopyDepths', 1, SERVER_DEFAULTS.maxCopyDepths),
    maxRequestIdLength: num('maxRequestIdLength', 1, SERVER_DEFAULTS.maxRequestIdLength),
    maxUriLength: num('maxUriLength', 1, SERVER_DEFAULTS.maxUriLength),
  };
}
