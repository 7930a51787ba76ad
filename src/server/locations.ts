import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from 'minio';
import { InvalidArgumentError, PermissionDeniedError, quote } from '../errors.js';
import { ConfinedFileStore } from '../storage/confined-file-store.js';
import { FileStore } from '../storage/file-store.js';
import { createS3Client, parseS3Uri, s3ConfigFromEnv } from '../storage/s3-config.js';
import { S3Store } from '../storage/s3-store.js';
import type { ObjectStore, StateStore } from '../storage/store.js';
import { timed } from '../storage/timed-store.js';

/** A URI resolved to a store and a key in it. */
export interface Location {
  store: ObjectStore;
  key: string;
  /** The URI as the client should see it (normalised). */
  uri: string;
  /** The URI of another key in the same store. */
  uriOf(key: string): string;
}

export interface LocationPolicy {
  /** Local paths must lie inside this folder; none: local paths are refused. */
  dataRoot?: string;
  /** When non-empty, only these buckets. */
  allowedBuckets: string[];
  /**
   * Every call to a store this class hands out (request locations and the state store) rejects
   * with UnavailableError after this many seconds without an answer (default 30).
   */
  storageTimeoutSeconds?: number;
}

const DEFAULT_STORAGE_TIMEOUT_SECONDS = 30;

/** Longest file name (one path segment) and path, in bytes, that Linux file systems accept. */
const NAME_MAX = 255;
const PATH_MAX = 4095;
/** Longest S3 object key, in bytes. */
const S3_KEY_MAX = 1024;

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** Refuses local paths the OS would refuse with ENAMETOOLONG, naming the field instead of a key. */
function checkPathLength(target: string, field: string): void {
  if (bytes(target) > PATH_MAX) {
    throw new InvalidArgumentError(`the path is ${bytes(target)} bytes long; the file system allows at most ${PATH_MAX}`, field);
  }
  const long = target.split(path.sep).find((segment) => bytes(segment) > NAME_MAX);
  if (long !== undefined) {
    throw new InvalidArgumentError(`the path segment ${quote(long)} is ${bytes(long)} bytes long; the file system allows at most ${NAME_MAX}`, field);
  }
}

/** Where the server keeps its records: never readable or writable through a request's URIs. */
type StateLocation = { kind: 's3'; bucket: string; prefix: string } | { kind: 'local'; dir: string };

const underPrefix = (prefix: string, key: string) => {
  const p = prefix.replace(/\/+$/, '');
  const k = key.replace(/\/+$/, '');
  return p === '' || k === p || k.startsWith(p + '/');
};
const underDir = (dir: string, target: string) => {
  const relative = path.relative(dir, target);
  return relative === '' || (relative !== '..' && !relative.startsWith('..' + path.sep) && !path.isAbsolute(relative));
};

/** Turns request URIs into stores, enforcing what a remote caller may reach. */
export class Locations {
  private client?: Client;
  private readonly local?: ConfinedFileStore;
  private readonly state: StateLocation[] = [];

  constructor(
    private readonly policy: LocationPolicy,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    if (policy.dataRoot) this.local = new ConfinedFileStore(path.resolve(policy.dataRoot));
  }

  private s3(bucket: string): S3Store {
    this.client ??= createS3Client(s3ConfigFromEnv(this.env));
    return new S3Store(this.client, bucket);
  }

  /** `store` with the storage deadline on every call; errors name the key by `uriOf`. */
  private timed<S extends ObjectStore>(store: S, uriOf: (key: string) => string): S {
    const seconds = this.policy.storageTimeoutSeconds ?? DEFAULT_STORAGE_TIMEOUT_SECONDS;
    return timed(store, { timeoutMs: seconds * 1000, describe: uriOf });
  }

  /** `s3://bucket/key`, `file:///path`, or a path (absolute, or relative to the data root). */
  resolve(uri: string, field: string): Location {
    if (/^s3:\/\//i.test(uri)) {
      const { bucket, key } = parseS3Uri(uri, field);
      if (this.policy.allowedBuckets.length && !this.policy.allowedBuckets.includes(bucket)) {
        throw new PermissionDeniedError(`bucket ${quote(bucket)} is not in the server's allow-list`, field);
      }
      if (bytes(key) > S3_KEY_MAX) {
        throw new InvalidArgumentError(`the object key is ${bytes(key)} bytes long; S3 allows at most ${S3_KEY_MAX}`, field);
      }
      if (this.state.some((s) => s.kind === 's3' && s.bucket === bucket && underPrefix(s.prefix, key))) {
        throw new PermissionDeniedError(`${quote(uri)} is inside the server's state location`, field);
      }
      const uriOf = (k: string) => `s3://${bucket}/${k}`;
      return { store: this.timed(this.s3(bucket), uriOf), key, uri: uriOf(key), uriOf };
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !/^file:\/\//i.test(uri)) {
      throw new InvalidArgumentError(`unsupported URI scheme in ${quote(uri)}; use s3:// or a local path`, field);
    }
    if (!this.local) {
      throw new PermissionDeniedError('local paths are disabled on this server (start it with --data-root)', field);
    }
    if (uri.includes('\0')) throw new InvalidArgumentError('a path must not contain NUL characters', field);
    const root = this.local.root;
    let target: string;
    try {
      target = /^file:\/\//i.test(uri) ? fileURLToPath(uri) : path.resolve(root, uri);
    } catch (error) {
      throw new InvalidArgumentError(`malformed file URI ${quote(uri)}`, field, { cause: error });
    }
    const relative = path.relative(root, target);
    if (relative === '' || !underDir(root, target)) {
      throw new PermissionDeniedError(`${quote(uri)} is outside the data root`, field);
    }
    if (this.local.isExcluded(target)) {
      throw new PermissionDeniedError(`${quote(uri)} is inside the server's state folder`, field);
    }
    checkPathLength(target, field);
    const uriOf = (k: string) => path.join(root, ...k.split('/'));
    return { store: this.timed(this.local, uriOf), key: relative.split(path.sep).join('/'), uri: target, uriOf };
  }

  /**
   * The server's own state store (trusted configuration, not subject to the data root). From
   * then on, request URIs that reach into it are PERMISSION_DENIED, wherever it lies.
   */
  stateStore(stateUri: string): StateStore {
    if (/^s3:\/\//i.test(stateUri)) {
      const { bucket, key } = parseS3Uri(stateUri, 'MEMOMETER_STATE_URI');
      this.client ??= createS3Client(s3ConfigFromEnv(this.env));
      this.state.push({ kind: 's3', bucket, prefix: key });
      const prefix = key.replace(/\/+$/, '');
      return this.timed(new S3Store(this.client, bucket, { prefix: key }), (k) => `s3://${bucket}/${prefix ? `${prefix}/` : ''}${k}`);
    }
    const dir = path.resolve(/^file:\/\//i.test(stateUri) ? fileURLToPath(stateUri) : stateUri);
    this.state.push({ kind: 'local', dir });
    this.local?.exclude(dir);
    return this.timed(new FileStore(dir), (k) => path.join(dir, ...k.split('/')));
  }
}
