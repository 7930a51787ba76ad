import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from 'minio';
import { InvalidArgumentError, PermissionDeniedError } from '../errors.js';
import { ConfinedFileStore } from '../storage/confined-file-store.js';
import { FileStore } from '../storage/file-store.js';
import { createS3Client, parseS3Uri, s3ConfigFromEnv } from '../storage/s3-config.js';
import { S3Store } from '../storage/s3-store.js';
import type { ObjectStore } from '../storage/store.js';

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
}

/** Turns request URIs into stores, enforcing what a remote caller may reach. */
export class Locations {
  private client?: Client;
  private readonly local?: ConfinedFileStore;

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

  /** `s3://bucket/key`, `file:///path`, or a path (absolute, or relative to the data root). */
  resolve(uri: string, field: string): Location {
    if (/^s3:\/\//i.test(uri)) {
      const { bucket, key } = parseS3Uri(uri, field);
      if (this.policy.allowedBuckets.length && !this.policy.allowedBuckets.includes(bucket)) {
        throw new PermissionDeniedError(`bucket '${bucket}' is not in the server's allow-list`, field);
      }
      const uriOf = (k: string) => `s3://${bucket}/${k}`;
      return { store: this.s3(bucket), key, uri: uriOf(key), uriOf };
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !/^file:\/\//i.test(uri)) {
      throw new InvalidArgumentError(`unsupported URI scheme in '${uri}'; use s3:// or a local path`, field);
    }
    if (!this.local) {
      throw new PermissionDeniedError('local paths are disabled on this server (start it with --data-root)', field);
    }
    const root = this.local.root;
    let target: string;
    try {
      target = /^file:\/\//i.test(uri) ? fileURLToPath(uri) : path.resolve(root, uri);
    } catch (error) {
      throw new InvalidArgumentError(`malformed file URI '${uri}'`, field, { cause: error });
    }
    const relative = path.relative(root, target);
    if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
      throw new PermissionDeniedError(`'${uri}' is outside the data root`, field);
    }
    const uriOf = (k: string) => path.join(root, ...k.split('/'));
    return { store: this.local, key: relative.split(path.sep).join('/'), uri: target, uriOf };
  }

  /** The server's own state store (trusted configuration, not subject to the data root). */
  stateStore(stateUri: string): ObjectStore {
    if (/^s3:\/\//i.test(stateUri)) {
      const { bucket, key } = parseS3Uri(stateUri, 'MEMOMETER_STATE_URI');
      this.client ??= createS3Client(s3ConfigFromEnv(this.env));
      return new S3Store(this.client, bucket, { prefix: key });
    }
    return new FileStore(/^file:\/\//i.test(stateUri) ? fileURLToPath(stateUri) : stateUri);
  }
}
