import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Readable } from 'node:stream';

import type { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';

import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from '../../src/errors.js';
import {
  createS3Client,
  describeS3Config,
  parseS3Endpoint,
  parseS3Uri,
  s3ConfigFromEnv,
  type S3Config,
} from '../../src/storage/s3-config.js';
import { S3Store } from '../../src/storage/s3-store.js';
import type { ProvidedS3Server } from '../support/s3-global-setup.js';
import { S3_TEST_LIST_PAGE, startS3Server } from '../support/s3-server.js';

type ServerInfo = Exclude<ProvidedS3Server, { error: string }>;

/**
 * The server of the globalSetup (test/support/s3-global-setup.ts). Without that setup configured
 * (inject gives undefined) this file starts its own server, so it runs either way.
 */
async function acquireServer(): Promise<{ info: ServerInfo; release: () => Promise<void> }> {
  const provided = inject('s3Server') as ProvidedS3Server | undefined;
  if (provided === undefined) {
    const server = await startS3Server();
    return { info: server, release: () => server.stop() };
  }
  if (provided.error !== undefined) throw new Error(provided.error);
  return { info: provided, release: async () => undefined };
}

function configFor(info: ServerInfo, overrides: Partial<S3Config> = {}): S3Config {
  return {
    endPoint: info.host,
    port: info.port,
    useSSL: false,
    verifySSL: true,
    region: info.region,
    accessKey: info.accessKey,
    secretKey: info.secretKey,
    ...overrides,
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function listen<T extends HttpServer | NetServer>(server: T): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

const bucket = `memometer-test-${randomBytes(4).toString('hex')}`;

describe('S3Store against Swift + s3api', () => {
  let info: ServerInfo;
  let release: () => Promise<void> = async () => undefined;
  let client: Client;
  let store: S3Store;

  beforeAll(async () => {
    ({ info, release } = await acquireServer());
    client = createS3Client(configFor(info));
    await client.makeBucket(bucket, info.region);
    store = new S3Store(client, bucket);
  });
  afterAll(async () => {
    await release();
  });

  it('round-trips bytes and UTF-8 strings', async () => {
    await store.put('a/b/c.bin', new Uint8Array([1, 2, 3]));
    await store.put('hello.txt', 'héllo ✓');
    await store.put('empty.bin', new Uint8Array(0));
    const got = await store.get('a/b/c.bin');
    expect(got).toBeInstanceOf(Uint8Array);
    expect(Array.from(got)).toEqual([1, 2, 3]);
    expect(new TextDecoder().decode(await store.get('hello.txt'))).toBe('héllo ✓');
    expect((await store.get('empty.bin')).byteLength).toBe(0);
    // A view into a larger buffer writes only the view.
    const backing = new Uint8Array([9, 9, 4, 5, 6, 9]);
    await store.put('view.bin', backing.subarray(2, 5));
    expect(Array.from(await store.get('view.bin'))).toEqual([4, 5, 6]);
  });

  it('replaces an existing object', async () => {
    await store.put('x/obj', 'one');
    await store.put('x/obj', 'two');
    expect(new TextDecoder().decode(await store.get('x/obj'))).toBe('two');
  });

  it('round-trips a 3 MB and a 12 MB object (single PUT), and getStream reads them', async () => {
    for (const size of [3 * 1024 * 1024, 12 * 1024 * 1024]) {
      const body = new Uint8Array(randomBytes(size));
      const key = `big/${size}.bin`;
      await store.put(key, body);
      const got = await store.get(key);
      expect(got.byteLength).toBe(size);
      expect(sameBytes(got, body)).toBe(true);
      const streamed = await readStream(await store.getStream(key));
      expect(sameBytes(streamed, body)).toBe(true);
    }
  });

  it('round-trips a 12 MB object through a multipart upload (5 MiB parts)', async () => {
    const multipart = new S3Store(createS3Client(configFor(info, { partSize: 5 * 1024 * 1024 })), bucket);
    const body = new Uint8Array(randomBytes(12 * 1024 * 1024));
    await multipart.put('big/multipart.bin', body);
    const stat = await client.statObject(bucket, 'big/multipart.bin');
    expect(stat.size).toBe(body.byteLength);
    // A multipart ETag is "<md5 of the part md5s>-<number of parts>". (minio 8.0.7 reads its part
    // splitter with read(), which can merge parts: a Buffer body may go up as a single part.)
    expect(stat.etag).toMatch(/-\d+$/);
    expect(sameBytes(await store.get('big/multipart.bin'), body)).toBe(true);
  });

  it('exists is true for objects only', async () => {
    await store.put('d/e.txt', 'x');
    expect(await store.exists('d/e.txt')).toBe(true);
    expect(await store.exists('d')).toBe(false); // a "folder"
    expect(await store.exists('d/missing')).toBe(false);
  });

  it('lists keys by plain prefix, recursively and sorted', async () => {
    const listing = new S3Store(client, bucket, { prefix: 'listing' });
    for (const key of ['data/train-2.npz', 'data/train-1.npz', 'data/test.npz', 'data/sub/deep/x.bin', 'model.json', 'data-other.txt']) {
      await listing.put(key, key);
    }
    // A "folder" marker written by other tools is not a store key.
    await client.putObject(bucket, 'listing/data/marker/', Buffer.alloc(0), 0);
    expect(await listing.list('data/')).toEqual(['data/sub/deep/x.bin', 'data/test.npz', 'data/train-1.npz', 'data/train-2.npz']);
    expect(await listing.list('data/train-')).toEqual(['data/train-1.npz', 'data/train-2.npz']);
    expect(await listing.list('data')).toEqual([
      'data-other.txt',
      'data/sub/deep/x.bin',
      'data/test.npz',
      'data/train-1.npz',
      'data/train-2.npz',
    ]);
    expect(await listing.list('')).toEqual([
      'data-other.txt',
      'data/sub/deep/x.bin',
      'data/test.npz',
      'data/train-1.npz',
      'data/train-2.npz',
      'model.json',
    ]);
    expect(await listing.list('nothing/')).toEqual([]);
    expect(await listing.list('data/sub/deep/x.bin')).toEqual(['data/sub/deep/x.bin']);
    // The store prefix is applied to get and stripped from list.
    expect(new TextDecoder().decode(await listing.get('model.json'))).toBe('model.json');
    expect(await store.list('listing/data/train-')).toEqual(['listing/data/train-1.npz', 'listing/data/train-2.npz']);
  });

  it('lists more than one page of keys', async () => {
    // The test server answers at most S3_TEST_LIST_PAGE (50) keys per ListObjectsV2 request.
    const paged = new S3Store(client, bucket, { prefix: 'paged' });
    const keys = Array.from({ length: 2 * S3_TEST_LIST_PAGE + 5 }, (_, i) => `k/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => paged.put(k, '')));
    }
    // One request gets one page only (the store follows the continuation tokens).
    const page = await client.listObjectsV2Query(bucket, 'paged/k/', '', '', 1000, '');
    expect(page.isTruncated).toBe(true);
    expect(page.objects.length).toBe(S3_TEST_LIST_PAGE);
    expect(await paged.list('k/')).toEqual(keys);
  });

  it('a missing object rejects with NotFoundError naming the key', async () => {
    const err = await store.get('no/such.npz').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).subject).toBe('no/such.npz');
    expect((err as Error).message).toContain('no/such.npz');
    expect((err as Error).message).toContain(bucket);
    await expect(store.get('d')).rejects.toBeInstanceOf(NotFoundError); // a "folder"
    await expect(store.getStream('no/such.npz')).rejects.toBeInstanceOf(NotFoundError);
    const prefixed = await new S3Store(client, bucket, { prefix: 'pre/fix/' }).get('k').catch((e: unknown) => e);
    expect(prefixed).toBeInstanceOf(NotFoundError);
    expect((prefixed as NotFoundError).subject).toBe('k');
    expect((prefixed as Error).message).toContain(`s3://${bucket}/pre/fix/k`);
  });

  it('a missing bucket rejects with NotFoundError naming the bucket', async () => {
    const missing = new S3Store(client, 'memometer-no-such-bucket');
    for (const op of [
      () => missing.get('k'),
      () => missing.put('k', 'x'),
      () => missing.list(''),
      () => missing.exists('k'),
    ]) {
      const err = await op().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as NotFoundError).subject).toBe('memometer-no-such-bucket');
      expect((err as Error).message).toContain('memometer-no-such-bucket');
    }
  });

  it('refused credentials reject with UnauthenticatedError, never showing the secret', async () => {
    // Swift's s3api (tempauth) answers SignatureDoesNotMatch for a wrong secret and for an unknown
    // access key alike (AWS answers InvalidAccessKeyId for the latter): both are UNAUTHENTICATED.
    // A HEAD (exists) gets a bare 403; the store asks again with a GET to learn the reason.
    const wrongSecret = 'not-the-secret-Zq8';
    for (const overrides of [{ secretKey: wrongSecret }, { accessKey: 'nobody:nobody', secretKey: wrongSecret }]) {
      const bad = new S3Store(createS3Client(configFor(info, overrides)), bucket);
      for (const op of [() => bad.get('hello.txt'), () => bad.put('k', 'x'), () => bad.list(''), () => bad.exists('hello.txt')]) {
        const err = await op().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(UnauthenticatedError);
        expect((err as UnauthenticatedError).kind).toBe('UNAUTHENTICATED');
        expect((err as Error).message).toContain(bucket);
        expect((err as Error).message).toContain('AWS_SECRET_ACCESS_KEY');
        expect((err as Error).message).not.toContain(wrongSecret);
        expect((err as Error).message).not.toContain(info.secretKey);
      }
    }
    const err = await new S3Store(createS3Client(configFor(info, { secretKey: wrongSecret })), bucket)
      .get('hello.txt')
      .catch((e: unknown) => e);
    expect((err as UnauthenticatedError).subject).toBe('hello.txt');
  });

  it('an endpoint with nothing listening rejects with UnavailableError at once', async () => {
    const port = await closedPort();
    const down = new S3Store(createS3Client(configFor(info, { port, requestTimeoutMs: 2_000 })), bucket);
    const t0 = performance.now();
    for (const op of [() => down.get('k'), () => down.put('k', 'x'), () => down.exists('k'), () => down.list('')]) {
      const err = await op().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toContain('ECONNREFUSED');
      expect((err as Error).message).toContain(bucket);
    }
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it('an endpoint that never answers rejects with UnavailableError after the request timeout', async () => {
    const sockets = new Set<Socket>();
    const silent = createNetServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    const port = await listen(silent);
    try {
      const slow = new S3Store(createS3Client(configFor(info, { port, requestTimeoutMs: 300 })), bucket);
      const t0 = performance.now();
      const err = await slow.get('k').catch((e: unknown) => e);
      const elapsed = performance.now() - t0;
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toContain('ETIMEDOUT');
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(3_000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('maps the S3 error codes of other servers (AWS, MinIO) to typed errors', async () => {
    // A stand-in server answering every request with one S3 error; a HEAD gets the bare status,
    // as S3 sends it.
    let answer = { status: 403, code: 'AccessDenied' };
    const fake = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(answer.status, { 'content-type': 'application/xml' });
      if (req.method === 'HEAD') return res.end();
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answer.code}</Code><Message>m</Message>` +
          `<Resource>/${bucket}/k</Resource><RequestId>r</RequestId></Error>`,
      );
    });
    const port = await listen(fake);
    try {
      const remote = new S3Store(createS3Client(configFor(info, { port, maxRetries: 0 })), bucket);
      const cases: [{ status: number; code: string }, new (...args: never[]) => Error][] = [
        [{ status: 403, code: 'AccessDenied' }, PermissionDeniedError],
        [{ status: 403, code: 'InvalidAccessKeyId' }, UnauthenticatedError],
        [{ status: 400, code: 'ExpiredToken' }, UnauthenticatedError],
        [{ status: 503, code: 'SlowDown' }, UnavailableError],
        [{ status: 500, code: 'InternalError' }, UnavailableError],
        [{ status: 404, code: 'NoSuchKey' }, NotFoundError],
      ];
      for (const [status, type] of cases) {
        answer = status;
        for (const op of [() => remote.get('k'), () => remote.exists('k')]) {
          const err = await op().catch((e: unknown) => e);
          expect(err, `${status.code}`).toBeInstanceOf(type);
          expect((err as Error).message).toContain(bucket);
        }
      }
      // With minio's default retry (once, after a back-off; it warns on the console) a 503 ends
      // the same way.
      answer = { status: 503, code: 'SlowDown' };
      const retrying = new S3Store(createS3Client(configFor(info, { port })), bucket);
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
      try {
        await expect(retrying.get('k')).rejects.toBeInstanceOf(UnavailableError);
        expect(warn).toHaveBeenCalledWith(expect.stringContaining('Retrying request'));
      } finally {
        warn.mockRestore();
      }
    } finally {
      fake.closeAllConnections();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  it('a body cut short rejects with UnavailableError', async () => {
    const cut = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': '1000', 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(400));
      setTimeout(() => res.destroy(), 20);
    });
    const port = await listen(cut);
    try {
      const remote = new S3Store(createS3Client(configFor(info, { port, maxRetries: 0 })), bucket);
      const err = await remote.get('k').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toContain(`s3://${bucket}/k`);
      const stream = await remote.getStream('k');
      await expect(readStream(stream)).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      cut.closeAllConnections();
      await new Promise<void>((resolve) => cut.close(() => resolve()));
    }
  });

  it('rejects invalid keys, prefixes and buckets with InvalidArgumentError before any request', async () => {
    for (const key of ['', '/abs', 'a//b', 'a/./b', '../x', 'a\\b', 'a/', 'nul\0']) {
      await expect(store.get(key)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(store.put(key, 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(store.exists(key)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(store.list('/x')).rejects.toBeInstanceOf(InvalidArgumentError);
    // Longer than S3's 1024 bytes: the client refuses it.
    await expect(store.get('k'.repeat(1100))).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => new S3Store(client, 'Bad_Bucket')).toThrow(InvalidArgumentError);
    expect(() => new S3Store(client, 'ab')).toThrow(InvalidArgumentError);
    expect(() => new S3Store(client, bucket, { prefix: 'a/../b' })).toThrow(InvalidArgumentError);
  });
});

describe('parseS3Uri', () => {
  it('splits bucket and key', () => {
    expect(parseS3Uri('s3://bucket/key/path')).toEqual({ bucket: 'bucket', key: 'key/path' });
    expect(parseS3Uri('s3://my.bucket-1/models/cnn/model.json')).toEqual({ bucket: 'my.bucket-1', key: 'models/cnn/model.json' });
    expect(parseS3Uri('s3://bucket/models/cnn/')).toEqual({ bucket: 'bucket', key: 'models/cnn/' });
    expect(parseS3Uri('s3://bucket')).toEqual({ bucket: 'bucket', key: '' });
    expect(parseS3Uri('s3://bucket/')).toEqual({ bucket: 'bucket', key: '' });
    expect(parseS3Uri('S3://bucket/k')).toEqual({ bucket: 'bucket', key: 'k' });
    expect(parseS3Uri('s3://bucket/with space/ünï.npz')).toEqual({ bucket: 'bucket', key: 'with space/ünï.npz' });
  });

  it('rejects malformed URIs with InvalidArgumentError naming the field', () => {
    const bad = [
      'bucket/key',
      'http://bucket/key',
      's3:/bucket/key',
      's3://',
      's3:///key',
      's3://Bucket/key',
      's3://ab/key',
      's3://bucket_name/key',
      's3://-bucket/key',
      's3://192.168.1.1/key',
      's3://bucket//key',
      's3://bucket/a//b',
      's3://bucket/a/../b',
      's3://bucket/./b',
      's3://bucket/a\\b',
      '',
    ];
    for (const uri of bad) {
      let err: unknown;
      try {
        parseS3Uri(uri, 'model_uri');
      } catch (e) {
        err = e;
      }
      expect(err, uri).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).subject, uri).toBe('model_uri');
      expect((err as Error).message, uri).toMatch(/^model_uri: /);
    }
    expect(() => parseS3Uri('nope')).toThrow(/^uri: /);
  });
});

describe('S3 settings from the environment', () => {
  const creds = { AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 's3cr3t/Key+' };

  it('defaults to AWS S3 over https in us-east-1', () => {
    expect(s3ConfigFromEnv({})).toEqual({ endPoint: 's3.amazonaws.com', useSSL: true, verifySSL: true, region: 'us-east-1' });
  });

  it('reads credentials, region and a host:port S3_ENDPOINT with S3_USE_HTTPS', () => {
    const config = s3ConfigFromEnv({
      ...creds,
      AWS_DEFAULT_REGION: 'eu-west-1',
      S3_ENDPOINT: 'minio.kubeflow:9000',
      S3_USE_HTTPS: '0',
      S3_VERIFY_SSL: '0',
      AWS_SESSION_TOKEN: 'tok',
    });
    expect(config).toEqual({
      endPoint: 'minio.kubeflow',
      port: 9000,
      useSSL: false,
      verifySSL: false,
      region: 'eu-west-1',
      accessKey: 'AKID',
      secretKey: 's3cr3t/Key+',
      sessionToken: 'tok',
    });
    expect(s3ConfigFromEnv({ AWS_REGION: 'ap-south-1', AWS_DEFAULT_REGION: 'eu-west-1' }).region).toBe('ap-south-1');
    expect(s3ConfigFromEnv({ S3_ENDPOINT: 'storage.example.com' })).toMatchObject({ endPoint: 'storage.example.com', useSSL: true });
    expect(s3ConfigFromEnv({ S3_ENDPOINT: 'storage.example.com' }).port).toBeUndefined();
    expect(s3ConfigFromEnv({ S3_ENDPOINT: 'h:1', S3_USE_HTTPS: '1' }).useSSL).toBe(true);
    expect(s3ConfigFromEnv({ S3_ENDPOINT: '[::1]:9000', S3_USE_HTTPS: 'false' })).toMatchObject({ endPoint: '::1', port: 9000, useSSL: false });
  });

  it('takes the scheme from a URL endpoint, and AWS_ENDPOINT_URL when S3_ENDPOINT is unset', () => {
    expect(s3ConfigFromEnv({ S3_ENDPOINT: 'http://127.0.0.1:8080' })).toMatchObject({ endPoint: '127.0.0.1', port: 8080, useSSL: false });
    expect(s3ConfigFromEnv({ S3_ENDPOINT: 'https://s3.local/', S3_USE_HTTPS: '0' })).toMatchObject({ endPoint: 's3.local', useSSL: true });
    expect(s3ConfigFromEnv({ AWS_ENDPOINT_URL: 'http://minio:9000' })).toMatchObject({ endPoint: 'minio', port: 9000, useSSL: false });
    expect(s3ConfigFromEnv({ AWS_ENDPOINT_URL: 'http://other:1', S3_ENDPOINT: 'first:2' })).toMatchObject({ endPoint: 'first', port: 2 });
  });

  it('rejects malformed values with InvalidArgumentError naming the variable', () => {
    const cases: [Record<string, string>, string][] = [
      [{ AWS_ACCESS_KEY_ID: 'AKID' }, 'AWS_SECRET_ACCESS_KEY'],
      [{ AWS_SECRET_ACCESS_KEY: 'secret-value-x' }, 'AWS_ACCESS_KEY_ID'],
      [{ S3_USE_HTTPS: 'maybe' }, 'S3_USE_HTTPS'],
      [{ S3_VERIFY_SSL: '2' }, 'S3_VERIFY_SSL'],
      [{ S3_ENDPOINT: 'ftp://host:21' }, 'S3_ENDPOINT'],
      [{ S3_ENDPOINT: 'http://host:9000/some/path' }, 'S3_ENDPOINT'],
      [{ S3_ENDPOINT: 'host:notaport' }, 'S3_ENDPOINT'],
      [{ S3_ENDPOINT: 'http://user:pw@host' }, 'S3_ENDPOINT'],
      [{ AWS_ENDPOINT_URL: 'http://host:99999' }, 'AWS_ENDPOINT_URL'],
    ];
    for (const [env, subject] of cases) {
      let err: unknown;
      try {
        s3ConfigFromEnv(env);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(env)).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).subject).toBe(subject);
      expect((err as Error).message).not.toContain('secret-value-x');
    }
  });

  it('parses endpoints on their own', () => {
    expect(parseS3Endpoint('localhost')).toEqual({ endPoint: 'localhost' });
    expect(parseS3Endpoint('https://s3.eu-west-1.amazonaws.com:443')).toEqual({ endPoint: 's3.eu-west-1.amazonaws.com', useSSL: true });
    expect(parseS3Endpoint(' http://10.0.0.5:9000 ')).toEqual({ endPoint: '10.0.0.5', port: 9000, useSSL: false });
    expect(() => parseS3Endpoint('', 'endpoint')).toThrow(/^endpoint: /);
  });

  it('describes a config without the secret, and builds clients', () => {
    const config = s3ConfigFromEnv({ ...creds, S3_ENDPOINT: 'minio:9000', S3_USE_HTTPS: '1', S3_VERIFY_SSL: '0' });
    const text = describeS3Config(config);
    expect(text).toBe('https://minio:9000 (region us-east-1, access key AKID, TLS certificate not verified)');
    expect(text).not.toContain('s3cr3t');
    expect(createS3Client(config)).toBeDefined();
    expect(createS3Client(s3ConfigFromEnv({}))).toBeDefined();
    expect(() => createS3Client({ ...config, port: 70000 })).toThrow(InvalidArgumentError);
    expect(() => createS3Client({ ...config, endPoint: 'bad host!' })).toThrow(InvalidArgumentError);
  });

  it('maps a failed TLS handshake to FailedPreconditionError', async () => {
    // A plain-http server spoken to over https fails the TLS handshake (EPROTO).
    const plain = createHttpServer((_req, res) => res.end());
    const port = await listen(plain);
    try {
      const store = new S3Store(createS3Client({ endPoint: '127.0.0.1', port, useSSL: true, verifySSL: true, region: 'us-east-1', requestTimeoutMs: 2_000 }), 'some-bucket');
      const err = await store.get('k').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FailedPreconditionError);
    } finally {
      plain.closeAllConnections();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});
