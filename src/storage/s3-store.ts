import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';

import type { BucketItem, Client } from 'minio';

import {
  FailedPreconditionError,
  InvalidArgumentError,
  MemometerError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from '../errors.js';
import { errorCode } from './fs-errors.js';
import { isValidBucketName } from './s3-config.js';
import { checkKey, checkListLimit, checkPrefix, isValidKey, utf8Order, type StateStore } from './store.js';

export interface S3StoreOptions {
  /**
   * A key prefix inside the bucket, e.g. `models/` (a trailing '/' is added when missing): key
   * `a/b.npz` is then the object `models/a/b.npz`, and `list` returns keys without the prefix.
   */
  prefix?: string;
}

/** S3 error codes that mean the credentials were not accepted (who is calling is unknown). */
const UNAUTHENTICATED_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidSecurity',
  'MissingSecurityHeader',
  'AuthorizationHeaderMalformed',
  'RequestTimeTooSkewed',
]);
/** S3 error codes that mean the caller is known but not allowed. */
const PERMISSION_CODES = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem', 'InvalidObjectState']);
/** S3 error codes of a busy or broken server. */
const UNAVAILABLE_CODES = new Set(['SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'OperationAborted']);
/** Socket-level error codes (Node and undici) of an endpoint that cannot be reached or went away. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ESOCKETTIMEDOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
/** The minio client's own argument checks (their errors have a name, no code). */
const MINIO_ARGUMENT_ERRORS = new Set(['InvalidBucketNameError', 'InvalidObjectNameError', 'InvalidPrefixError', 'InvalidArgumentError']);
/** TLS errors: the endpoint's certificate was not accepted. */
const TLS_CERT_CODE = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT/;
/** TLS errors: no TLS session at all (e.g. https spoken to an http port). */
const TLS_HANDSHAKE_CODE = /^(EPROTO|ERR_SSL_.*|ERR_TLS_.*)$/;

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** An error the minio client made from an S3 error response (it has a `code`, maybe ''). */
function isS3Error(e: unknown): boolean {
  return e instanceof Error && e.name === 'S3Error';
}

function isHeadNotFound(e: unknown): boolean {
  const code = errorCode(e);
  return code === 'NotFound' || code === 'NoSuchKey';
}

/**
 * Reads a response body into one Uint8Array. With a Content-Length (what S3 sends for a GET) the
 * array is allocated once at that size and every chunk is copied straight into it; without one the
 * chunks are kept and copied once at the end.
 */
/** The body did not have the announced length. */
class BodyLengthError extends Error {}

async function readAll(stream: Readable): Promise<Uint8Array> {
  const header = (stream as Partial<IncomingMessage>).headers?.['content-length'];
  const expected = header !== undefined ? Number(header) : NaN;
  if (Number.isSafeInteger(expected) && expected >= 0) {
    const out = new Uint8Array(expected);
    let offset = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (offset + chunk.byteLength > expected) {
        stream.destroy();
        throw new BodyLengthError(`the S3 endpoint sent more than the announced ${expected} bytes`);
      }
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    if (offset !== expected) {
      throw new BodyLengthError(`the object body ended after ${offset} of ${expected} bytes`);
    }
    return out;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    chunks.push(chunk);
    total += chunk.byteLength;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * A {@link StateStore} (an object store with create-if-absent writes) over one S3 bucket (through
 * a minio client; see `createS3Client` in s3-config.ts), optionally under a key prefix. Keys follow the same rules as FileStore's. `put`
 * is one PUT up to the client's part size (64 MiB by default) and a multipart upload above it;
 * either way readers see the old object or the new one, never a part.
 *
 * Errors are the typed errors of errors.ts: a missing object is NotFoundError(key), a missing
 * bucket NotFoundError(bucket); refused credentials (bad key id or signature) UnauthenticatedError,
 * a refused permission PermissionDeniedError; an endpoint that cannot be reached, times out or
 * fails with a 5xx UnavailableError. Messages name the bucket and key, never the secret.
 */
/** How long a writer without conditional PUTs waits for concurrent writers before reading back. */
const CLAIM_SETTLE_MS = 400;

export class S3Store implements StateStore {
  readonly bucket: string;
  /** '' or a prefix ending in '/'. */
  readonly prefix: string;

  constructor(
    readonly client: Client,
    bucket: string,
    options: S3StoreOptions = {},
  ) {
    if (typeof bucket !== 'string' || !isValidBucketName(bucket)) {
      throw new InvalidArgumentError(
        `${JSON.stringify(bucket)} is not a valid bucket name (3-63 characters of a-z, 0-9, '.', '-', starting and ending with a letter or digit)`,
        'bucket',
      );
    }
    this.bucket = bucket;
    const prefix = (options.prefix ?? '').replace(/^\/+/, '').replace(/\/+$/, '');
    if (prefix !== '') checkKey(prefix);
    this.prefix = prefix === '' ? '' : `${prefix}/`;
  }

  /** `s3://bucket/prefix/key`, for messages. */
  location(key = ''): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  private objectName(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }

  /**
   * Maps a minio / S3 / socket error to the typed errors. `key` is the store key (or the list
   * prefix) the operation was about; it is the subject of the error (the bucket when it is '').
   */
  private mapError(e: unknown, key: string, op: string): unknown {
    const code = errorCode(e);
    const options = { cause: e };
    const where = this.location(key);
    const subject = key === '' ? this.bucket : key;
    const detail = (text: string) => `${text} (${code ?? 'error'}: ${errorMessage(e)})`;
    if (code === 'NoSuchKey' || code === 'NotFound') {
      return new NotFoundError(`no such object: ${where}`, subject, options);
    }
    if (code === 'NoSuchBucket') {
      return new NotFoundError(`no such bucket: cannot ${op} ${where}`, this.bucket, options);
    }
    if (code !== undefined && UNAUTHENTICATED_CODES.has(code)) {
      const hint =
        code === 'RequestTimeTooSkewed'
          ? 'the local clock is too far off the server clock'
          : 'check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY';
      return new UnauthenticatedError(detail(`the S3 endpoint did not accept the credentials to ${op} ${where}; ${hint}`), subject, options);
    }
    if (code !== undefined && PERMISSION_CODES.has(code)) {
      return new PermissionDeniedError(detail(`access denied: cannot ${op} ${where}`), subject, options);
    }
    if (code === 'EntityTooLarge' || code === 'QuotaExceeded' || code === 'ServiceQuotaExceeded') {
      return new ResourceExhaustedError(detail(`cannot ${op} ${where}`), subject, options);
    }
    if (code === 'InvalidArgument' || code === 'KeyTooLongError' || (e instanceof Error && MINIO_ARGUMENT_ERRORS.has(e.name))) {
      return new InvalidArgumentError(detail(`cannot ${op} ${where}`), subject, options);
    }
    if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
      return new UnavailableError(detail(`the S3 endpoint failed to ${op} ${where}`), subject, options);
    }
    if (code !== undefined && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR'))) {
      return new UnavailableError(detail(`cannot reach the S3 endpoint to ${op} ${where}`), subject, options);
    }
    if (code !== undefined && TLS_CERT_CODE.test(code)) {
      return new FailedPreconditionError(
        detail(`the S3 endpoint's TLS certificate was not accepted (to ${op} ${where}; S3_VERIFY_SSL=0 turns verification off)`),
        subject,
        options,
      );
    }
    if (code !== undefined && TLS_HANDSHAKE_CODE.test(code)) {
      return new FailedPreconditionError(
        detail(`no TLS session with the S3 endpoint (to ${op} ${where}; does it speak https? S3_USE_HTTPS=0 selects http)`),
        subject,
        options,
      );
    }
    // minio's retry loop gives up with a plain Error after retryable statuses (500, 503, ...).
    const message = errorMessage(e);
    if (/Retryable HTTP status|Retries exhausted|socket hang up/i.test(message)) {
      return new UnavailableError(`the S3 endpoint failed to ${op} ${where} (${message})`, subject, options);
    }
    if (isS3Error(e)) {
      // An error response without a code this store knows (e.g. an HTML error page, as Swift
      // sends for requests without S3 credentials): keep the cause, add where it happened.
      return new Error(
        `the S3 endpoint refused to ${op} ${where} (${code || 'no S3 error code'}${message ? `: ${message}` : ''})`,
        options,
      );
    }
    return e;
  }

  async get(key: string): Promise<Uint8Array> {
    const stream = await this.open(key);
    try {
      return await readAll(stream);
    } catch (e) {
      stream.destroy();
      if (e instanceof BodyLengthError) {
        throw new UnavailableError(`${e.message}: ${this.location(key)}`, key, { cause: e });
      }
      if (e instanceof RangeError) {
        throw new ResourceExhaustedError(`cannot hold the object in memory: ${this.location(key)}`, key, { cause: e });
      }
      throw this.mapError(e, key, 'get');
    }
  }

  /**
   * The object as a stream, for objects too large to hold in memory. Resolves once the store has
   * answered (so a missing object rejects here); errors while reading are mapped like get()'s.
   */
  async getStream(key: string): Promise<Readable> {
    const source = await this.open(key);
    const out = new PassThrough({ highWaterMark: source.readableHighWaterMark });
    source.on('error', (e) => out.destroy(this.mapError(e, key, 'get') as Error));
    out.on('close', () => source.destroy());
    source.pipe(out);
    return out;
  }

  private async open(key: string): Promise<Readable> {
    const name = this.objectName(key);
    try {
      return await this.client.getObject(this.bucket, name);
    } catch (e) {
      throw this.mapError(e, key, 'get');
    }
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const name = this.objectName(key);
    const buf =
      typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    try {
      // With the size the client sends one PUT up to its part size, and a multipart upload above.
      await this.client.putObject(this.bucket, name, buf, buf.byteLength);
    } catch (e) {
      throw this.mapError(e, key, 'put');
    }
  }

  /** Whether the endpoint takes conditional PUTs; learned on first use (Swift's s3api does not). */
  private conditionalPuts: boolean | undefined;

  /**
   * Creates the object only if none exists at `key`; false when one does. S3 and MinIO take a
   * conditional PUT (If-None-Match: *). An endpoint without conditional PUTs (OpenStack Swift's
   * s3api answers NotImplemented) gets the strongest substitute on plain PUTs: look, write,
   * wait for concurrent writers to land, read back twice; the writer whose bytes survived wins.
   * Two winners need a writer that looked before another's PUT landed and wrote 0.8 s later
   * (documented in the README's failure table). It needs `body` to be unique to the writer.
   */
  async putIfAbsent(key: string, body: string): Promise<boolean> {
    const name = this.objectName(key);
    const buf = Buffer.from(body, 'utf8');
    if (this.conditionalPuts !== false) {
      try {
        await this.client.putObject(this.bucket, name, buf, buf.byteLength, { 'If-None-Match': '*' });
        this.conditionalPuts = true;
        return true;
      } catch (e) {
        const code = errorCode(e);
        if (code === 'PreconditionFailed' || code === 'ConditionalRequestConflict') return false;
        if (code !== 'NotImplemented') throw this.mapError(e, key, 'put');
        this.conditionalPuts = false;
      }
    }
    if (await this.exists(key)) return false;
    await this.put(key, body);
    // A late concurrent writer overwrites within the settle time: the claim must survive twice.
    for (let check = 0; check < 2; check++) {
      await new Promise((resolve) => setTimeout(resolve, CLAIM_SETTLE_MS));
      if (!Buffer.from(await this.get(key)).equals(buf)) return false;
    }
    return true;
  }

  async exists(key: string): Promise<boolean> {
    const name = this.objectName(key);
    try {
      await this.client.statObject(this.bucket, name);
      return true;
    } catch (e) {
      if (isHeadNotFound(e)) return this.absent(key, e);
      const code = errorCode(e);
      if (code === 'AccessDenied' || (code === '' && isS3Error(e))) {
        // A HEAD answer has no body, so the client only knows the status: 403 for refused
        // credentials and a refused permission alike, nothing for other 4xx/5xx. Ask again with a
        // GET of one byte, whose answer names the reason.
        return this.existsByGet(name, key, e);
      }
      throw this.mapError(e, key, 'stat');
    }
  }

  /**
   * The object's size from a HEAD (its Content-Length). A missing object is NotFoundError(key), a
   * missing bucket NotFoundError(bucket); a HEAD refused without a reason is asked again as a GET
   * of one byte, like {@link exists}.
   */
  async size(key: string): Promise<number> {
    const name = this.objectName(key);
    try {
      return (await this.client.statObject(this.bucket, name)).size;
    } catch (e) {
      if (isHeadNotFound(e)) {
        await this.absent(key, e);
        throw new NotFoundError(`no such object: ${this.location(key)}`, key, { cause: e });
      }
      const code = errorCode(e);
      if (code === 'AccessDenied' || (code === '' && isS3Error(e))) return this.sizeByGet(name, key, e);
      throw this.mapError(e, key, 'stat');
    }
  }

  private async sizeByGet(name: string, key: string, headError: unknown): Promise<number> {
    let stream: Readable;
    try {
      stream = await this.client.getPartialObject(this.bucket, name, 0, 1);
    } catch (e) {
      const code = errorCode(e);
      if (code === 'InvalidRange') return 0; // an empty object
      const mapped = this.mapError(e, key, 'stat');
      throw mapped instanceof MemometerError ? mapped : this.mapError(headError, key, 'stat');
    }
    stream.destroy();
    // `Content-Range: bytes 0-0/<size>`
    const range = (stream as Partial<IncomingMessage>).headers?.['content-range'];
    const total = typeof range === 'string' ? Number(/\/(\d+)$/.exec(range)?.[1]) : NaN;
    if (!Number.isSafeInteger(total)) throw this.mapError(headError, key, 'stat');
    return total;
  }

  /** After a 404 for `key`: false, or NotFoundError(bucket) when the bucket is what is missing. */
  private async absent(key: string, cause: unknown): Promise<false> {
    let bucketExists: boolean;
    try {
      bucketExists = await this.client.bucketExists(this.bucket);
    } catch (e) {
      if (errorCode(e) === 'AccessDenied') return false; // cannot tell; the key lookup said 404
      throw this.mapError(e, key, 'stat');
    }
    if (bucketExists) return false;
    throw new NotFoundError(`no such bucket: cannot stat ${this.location(key)}`, this.bucket, { cause });
  }

  private async existsByGet(name: string, key: string, headError: unknown): Promise<boolean> {
    try {
      const stream = await this.client.getPartialObject(this.bucket, name, 0, 1);
      stream.destroy();
      return true;
    } catch (e) {
      const code = errorCode(e);
      if (code === 'NoSuchKey') return false;
      if (code === 'InvalidRange') return true; // an empty object
      const mapped = this.mapError(e, key, 'stat');
      throw mapped instanceof MemometerError ? mapped : this.mapError(headError, key, 'stat');
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of this.keys(prefix, '')) keys.push(key);
    return keys.sort();
  }

  async listAfter(prefix: string, startAfter: string, limit: number): Promise<string[]> {
    checkListLimit(limit);
    const keys: string[] = [];
    // Leaving the loop early destroys the listing stream: no LIST request past the page.
    for await (const key of this.keys(prefix, startAfter)) {
      if (keys.push(key) === limit) break;
    }
    return keys;
  }

  /** The store keys under `prefix` after `startAfter`, in the server's (UTF-8 byte) order. */
  private async *keys(prefix: string, startAfter: string): AsyncGenerator<string> {
    checkPrefix(prefix);
    const full = this.prefix + prefix;
    // S3 lists names after start-after; one below the prefix changes nothing, so send only one inside it.
    const after = utf8Order(startAfter, prefix) > 0 ? this.prefix + startAfter : undefined;
    try {
      const stream = this.client.listObjectsV2(this.bucket, full, true, after);
      for await (const item of stream as AsyncIterable<BucketItem>) {
        const name = item.name;
        if (name === undefined || !name.startsWith(this.prefix)) continue;
        const key = name.slice(this.prefix.length);
        // Skip "folder" markers (`a/`) and other names that are not valid store keys: get() would
        // reject them.
        if (isValidKey(key)) yield key;
      }
    } catch (e) {
      throw this.mapError(e, prefix, 'list');
    }
  }
}
