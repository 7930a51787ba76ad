import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { inject } from 'vitest';
import { MemometerClient, type MemometerClientOptions } from '../../src/clients/client.js';
import { loadServerConfig, type ServerConfig } from '../../src/server/config.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { createS3Client, s3ConfigFromEnv } from '../../src/storage/s3-config.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { EXAMPLE_DATASET, EXAMPLE_MODEL } from './engine.js';
import { readLocalModel } from '../../src/clients/local-files.js';
import { writeModelArtifacts } from '../../src/storage/model-reader.js';
import { readFile } from 'node:fs/promises';

/** S3 settings (KServe-style env vars) pointing at the real test server from the global setup. */
export function s3Env(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  const s3 = inject('s3Server');
  if (s3.error !== undefined) throw new Error(`the S3 test server is not running: ${s3.error}`);
  return {
    AWS_ACCESS_KEY_ID: s3.accessKey,
    AWS_SECRET_ACCESS_KEY: s3.secretKey,
    AWS_REGION: s3.region,
    S3_ENDPOINT: s3.endpoint,
    ...overrides,
  };
}

export function s3Store(bucket: string, env = s3Env()): S3Store {
  return new S3Store(createS3Client(s3ConfigFromEnv(env)), bucket);
}

/** A fresh bucket holding the example model (model/) and dataset (data/fashion.npz). */
export async function exampleBucket(name: string): Promise<{ store: S3Store; modelUri: string; datasetUri: string }> {
  const store = s3Store(name);
  await store.client.makeBucket(name).catch((e: { code?: string }) => {
    if (e.code !== 'BucketAlreadyOwnedByYou' && e.code !== 'BucketAlreadyExists') throw e;
  });
  await writeModelArtifacts(store, 'model', await readLocalModel(EXAMPLE_MODEL));
  await store.put('data/fashion.npz', new Uint8Array(await readFile(EXAMPLE_DATASET)));
  return { store, modelUri: `s3://${name}/model`, datasetUri: `s3://${name}/data/fashion.npz` };
}

export interface TestService {
  address: string;
  config: ServerConfig;
  server: RunningServer;
  /** A data root holding examples/ (fashion-cnn, fashion-mnist-2k.npz). */
  dataRoot: string;
  /** A temp folder outside the data root, the state location unless settings name one. */
  stateDir: string;
  client(options?: Partial<MemometerClientOptions> | string): MemometerClient;
  stop(): Promise<void>;
}

/**
 * A real server on 127.0.0.1 with a temp data root, and state in a temp folder beside it unless
 * settings name a state URI (`stateUri: ''`: the server's default location).
 */
export async function startTestService(settings: Record<string, string> = {}, env: NodeJS.ProcessEnv = s3Env()): Promise<TestService> {
  const dataRoot = await mkdtemp(path.join(tmpdir(), 'memometer-root-'));
  const stateDir = await mkdtemp(path.join(tmpdir(), 'memometer-state-'));
  await cp('examples', path.join(dataRoot, 'examples'), { recursive: true });
  const config = loadServerConfig({}, { host: '127.0.0.1', port: '0', dataRoot, stateUri: stateDir, shutdownGraceSeconds: '0', ...settings });
  const server = await startServer(config, env);
  const address = `127.0.0.1:${server.port}`;
  const clients: MemometerClient[] = [];
  return {
    address,
    config,
    server,
    dataRoot,
    stateDir,
    client: (options = {}) => {
      const given = typeof options === 'string' ? { token: options } : options;
      const client = new MemometerClient({ address, retries: 0, ...given });
      clients.push(client);
      return client;
    },
    stop: async () => {
      clients.forEach((c) => c.close());
      await server.shutdown();
      await rm(dataRoot, { recursive: true, force: true });
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
