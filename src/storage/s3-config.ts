/**
 * S3 settings, read from environment variables in the convention KServe's storage initializer
 * uses (so a model server configured for KServe works unchanged), `s3://bucket/key` URIs, and the
 * minio client built from them.
 *
 * | variable                               | meaning                                                   |
 * |----------------------------------------|-----------------------------------------------------------|
 * | AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY | credentials (both or neither; neither = anonymous)      |
 * | AWS_SESSION_TOKEN                      | optional session token of temporary credentials           |
 * | AWS_REGION, else AWS_DEFAULT_REGION    | region (default us-east-1)                                |
 * | S3_ENDPOINT                            | `host[:port]`, or a URL `http(s)://host[:port]`           |
 * | AWS_ENDPOINT_URL                       | a URL `http(s)://host[:port]`; used when S3_ENDPOINT is unset |
 * | S3_USE_HTTPS                           | "1" (default) or "0": the scheme for an endpoint without one |
 * | S3_VERIFY_SSL                          | "1" (default) or "0": verify the server's TLS certificate |
 *
 * Without an endpoint the client talks to AWS S3 (`s3.amazonaws.com`, https).
 */
import * as http from 'node:http';
import * as https from 'node:https';

import { Client, type ClientOptions } from 'minio';

import { InvalidArgumentError, quote } from '../errors.js';

export const DEFAULT_S3_REGION = 'us-east-1';
export const DEFAULT_S3_REQUEST_TIMEOUT_MS = 60_000;

export interface S3Config {
  /** Host name or IP address of the endpoint (no scheme, no port). */
  endPoint: string;
  /** Port; undefined = the scheme's default (443 / 80). */
  port?: number;
  /** https (true) or http (false). */
  useSSL: boolean;
  /** Verify the server's TLS certificate (https only). */
  verifySSL: boolean;
  region: string;
  /** Undefined (with secretKey) = anonymous requests. */
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  /**
   * A request fails with a timeout error (mapped to UnavailableError by S3Store) when its socket
   * is idle this long: while connecting, waiting for the response, or between body chunks.
   * Default {@link DEFAULT_S3_REQUEST_TIMEOUT_MS}; 0 = no timeout.
   */
  requestTimeoutMs?: number;
  /** Multipart part size in bytes (minimum 5 MiB); default: the client's (64 MiB and up). */
  partSize?: number;
  /** How often a request answered with a retryable status (500, 503, ...) is retried; default 1. */
  maxRetries?: number;
}

type Env = Record<string, string | undefined>;

/** '0'/'1' (also false/true, no/yes, off/on), case-insensitive; empty or unset = `fallback`. */
function envFlag(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new InvalidArgumentError(`must be "0" or "1", got ${JSON.stringify(env[name])}`, name);
}

function envString(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

export interface ParsedEndpoint {
  endPoint: string;
  port?: number;
  /** Set when the value named a scheme. */
  useSSL?: boolean;
}

/**
 * Parses an endpoint: `host`, `host:port`, `[v6addr]:port`, or `http(s)://host[:port][/]`.
 * A path, query, or credentials in the URL are rejected (the client cannot use them).
 */
export function parseS3Endpoint(value: string, subject = 'S3_ENDPOINT'): ParsedEndpoint {
  const text = value.trim();
  if (text === '') throw new InvalidArgumentError('the endpoint is empty', subject);
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text);
  let url: URL;
  try {
    url = new URL(hasScheme ? text : `http://${text}`);
  } catch {
    throw new InvalidArgumentError(`not a host[:port] or http(s)://host[:port] endpoint: ${JSON.stringify(value)}`, subject);
  }
  if (hasScheme && url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError(`the endpoint scheme must be http or https, got ${JSON.stringify(url.protocol)}`, subject);
  }
  if (url.username || url.password) {
    throw new InvalidArgumentError('the endpoint must not contain credentials; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY', subject);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new InvalidArgumentError(`the endpoint must be host[:port] without a path, got ${JSON.stringify(value)}`, subject);
  }
  // A scheme-less value with a path ("host/x") or other junk shows up as a different host.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new InvalidArgumentError(`no host in endpoint ${JSON.stringify(value)}`, subject);
  const out: ParsedEndpoint = { endPoint: host };
  if (url.port !== '') out.port = Number(url.port);
  if (hasScheme) out.useSSL = url.protocol === 'https:';
  return out;
}

/**
 * Reads {@link S3Config} from environment variables (see the table at the top of this file).
 * Throws InvalidArgumentError naming the variable for a malformed value, or for only one of the
 * two credential variables.
 */
export function s3ConfigFromEnv(env: Env = process.env): S3Config {
  const accessKey = envString(env, 'AWS_ACCESS_KEY_ID');
  // Not trimmed beyond blanks-only: a secret is used exactly as given.
  const secretRaw = env.AWS_SECRET_ACCESS_KEY;
  const secretKey = secretRaw !== undefined && secretRaw.trim() !== '' ? secretRaw : undefined;
  if ((accessKey === undefined) !== (secretKey === undefined)) {
    const missing = accessKey === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY';
    throw new InvalidArgumentError(
      'is not set, but its partner is: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither for anonymous access',
      missing,
    );
  }
  const region = envString(env, 'AWS_REGION') ?? envString(env, 'AWS_DEFAULT_REGION') ?? DEFAULT_S3_REGION;
  const useHttps = envFlag(env, 'S3_USE_HTTPS', true);
  const verifySSL = envFlag(env, 'S3_VERIFY_SSL', true);

  const s3Endpoint = envString(env, 'S3_ENDPOINT');
  const endpointUrl = envString(env, 'AWS_ENDPOINT_URL');
  let parsed: ParsedEndpoint;
  if (s3Endpoint !== undefined) {
    parsed = parseS3Endpoint(s3Endpoint, 'S3_ENDPOINT');
  } else if (endpointUrl !== undefined) {
    parsed = parseS3Endpoint(endpointUrl, 'AWS_ENDPOINT_URL');
  } else {
    parsed = { endPoint: 's3.amazonaws.com' };
  }

  const config: S3Config = {
    endPoint: parsed.endPoint,
    // An explicit scheme wins; S3_USE_HTTPS decides for host[:port] endpoints.
    useSSL: parsed.useSSL ?? useHttps,
    verifySSL,
    region,
  };
  if (parsed.port !== undefined) config.port = parsed.port;
  if (accessKey !== undefined && secretKey !== undefined) {
    config.accessKey = accessKey;
    config.secretKey = secretKey;
    const token = envString(env, 'AWS_SESSION_TOKEN');
    if (token !== undefined) config.sessionToken = token;
  }
  return config;
}

/** The config as text for logs and messages: everything but the secret and the session token. */
export function describeS3Config(config: S3Config): string {
  const scheme = config.useSSL ? 'https' : 'http';
  const host = config.endPoint.includes(':') ? `[${config.endPoint}]` : config.endPoint;
  const port = config.port !== undefined ? `:${config.port}` : '';
  const who = config.accessKey !== undefined ? `access key ${config.accessKey}` : 'anonymous';
  const tls = config.useSSL && !config.verifySSL ? ', TLS certificate not verified' : '';
  return `${scheme}://${host}${port} (region ${config.region}, ${who}${tls})`;
}

export interface S3Uri {
  bucket: string;
  /** The key or key prefix after `bucket/`: '' for `s3://bucket` or `s3://bucket/`. */
  key: string;
}

/** The bucket names S3 accepts (and the minio client checks): 3-63 of a-z 0-9 . -, no IP form. */
export function isValidBucketName(bucket: string): boolean {
  return (
    bucket.length >= 3 &&
    bucket.length <= 63 &&
    /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(bucket) &&
    !bucket.includes('..') &&
    !/\d+\.\d+\.\d+\.\d+/.test(bucket)
  );
}

/**
 * Splits `s3://bucket/key/path` into `{ bucket: 'bucket', key: 'key/path' }`. The key may be empty
 * (`s3://bucket`, `s3://bucket/`) or end with '/' (a "folder" prefix). Throws InvalidArgumentError
 * whose subject is `subject` (the field the URI came from, e.g. 'model_uri') for anything else:
 * another scheme, no or an invalid bucket name, empty / '.' / '..' key segments, '\\' or NUL.
 */
export function parseS3Uri(uri: string, subject = 'uri'): S3Uri {
  if (typeof uri !== 'string') throw new InvalidArgumentError(`an s3:// URI must be a string, got ${typeof uri}`, subject);
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/is.exec(uri);
  if (!m) {
    throw new InvalidArgumentError(`expected an S3 URI of the form s3://bucket/key, got ${quote(uri)}`, subject);
  }
  const bucket = m[1] ?? '';
  const key = m[2] ?? '';
  if (bucket === '') throw new InvalidArgumentError(`the S3 URI ${quote(uri)} names no bucket`, subject);
  if (!isValidBucketName(bucket)) {
    throw new InvalidArgumentError(
      `${quote(bucket)} in ${quote(uri)} is not a valid bucket name (3-63 characters of a-z, 0-9, '.', '-', starting and ending with a letter or digit)`,
      subject,
    );
  }
  if (key.includes('\\') || key.includes('\0')) {
    throw new InvalidArgumentError(`the key in ${quote(uri)} contains '\\' or NUL; keys use '/' separators`, subject);
  }
  const segments = key === '' ? [] : key.replace(/\/$/, '').split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new InvalidArgumentError(`the key in ${quote(uri)} has an empty, '.' or '..' segment`, subject);
  }
  return { bucket, key };
}

/** A transport whose requests fail with an ETIMEDOUT error after `timeoutMs` of socket idleness. */
function timeoutTransport(base: typeof http | typeof https, timeoutMs: number): NonNullable<ClientOptions['transport']> {
  const request = ((options: http.RequestOptions, callback?: (res: http.IncomingMessage) => void) => {
    const req = base.request(options, callback);
    req.setTimeout(timeoutMs, () => {
      const err = Object.assign(new Error(`no data from the S3 endpoint for ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
      req.destroy(err);
    });
    return req;
  }) as unknown as typeof http.request;
  return { request };
}

/**
 * A minio client for `config`: path-style requests (what S3-compatible servers expect), the region
 * set (default us-east-1, so no location lookups), an idle timeout on every request, and for
 * S3_VERIFY_SSL=0 an https agent that accepts any certificate.
 */
export function createS3Client(config: S3Config): Client {
  const timeoutMs = config.requestTimeoutMs ?? DEFAULT_S3_REQUEST_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new InvalidArgumentError(`must be a non-negative number of milliseconds, got ${timeoutMs}`, 'requestTimeoutMs');
  }
  if (config.port !== undefined && !(Number.isInteger(config.port) && config.port > 0 && config.port < 65536)) {
    throw new InvalidArgumentError(`must be a TCP port (1-65535), got ${config.port}`, 'port');
  }
  const options: ClientOptions = {
    endPoint: config.endPoint,
    useSSL: config.useSSL,
    region: config.region || DEFAULT_S3_REGION,
    pathStyle: true,
  };
  if (config.maxRetries !== undefined) {
    options.retryOptions = config.maxRetries <= 0 ? { disableRetry: true } : { maximumRetryCount: config.maxRetries };
  }
  if (config.port !== undefined) options.port = config.port;
  if (config.accessKey !== undefined) options.accessKey = config.accessKey;
  if (config.secretKey !== undefined) options.secretKey = config.secretKey;
  if (config.sessionToken !== undefined) options.sessionToken = config.sessionToken;
  if (config.partSize !== undefined) options.partSize = config.partSize;
  if (timeoutMs > 0) options.transport = timeoutTransport(config.useSSL ? https : http, timeoutMs);
  if (config.useSSL && !config.verifySSL) {
    options.transportAgent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
  }
  try {
    return new Client(options);
  } catch (e) {
    // minio validates the endpoint, port and part size; its messages never contain the secret.
    const message = (e as Error).message;
    const subject = /part ?size/i.test(message) ? 'partSize' : 'S3_ENDPOINT';
    throw new InvalidArgumentError(`invalid S3 client settings: ${message}`, subject, { cause: e });
  }
}
