/**
 * Issue 10: the server's records are out of the clients' reach. By default they live outside the
 * data root; wherever an operator puts them (even inside the data root, or in a bucket the
 * clients use), model, dataset and output URIs that reach them are PERMISSION_DENIED.
 */
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemometerClient } from '../../src/clients/client.js';
import type { MeasureMemorizationRequest } from '../../src/gen/memometer/v1/memometer.js';
import { defaultStateUri } from '../../src/server/config.js';
import { s3Env, s3Store, startTestService, type TestService } from '../support/service.js';

const LOCAL = { modelUri: 'examples/fashion-cnn', datasetUri: 'examples/fashion-mnist-2k.npz' };
const SCALED = { inputScaling: { scale: 1 / 255, mean: [], std: [] } };
const FIELDS = [['modelUri', 'model_uri'], ['datasetUri', 'dataset_uri'], ['outputUri', 'output_uri']] as const;

async function failure(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  const error = (await call.then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
  if (!error) throw new Error('the call succeeded');
  return { code: status[error.code], details: error.details };
}

const measure = (client: MemometerClient, request: Partial<MeasureMemorizationRequest>) =>
  client.measure({ ...LOCAL, ...SCALED, epochs: 1, maxSamples: 200, ...request });

/** The id of a measurement recorded and failed at once (its data set is missing). */
async function recordOne(client: MemometerClient): Promise<string> {
  let id = '';
  const call = (async () => {
    for await (const m of client.stream({ ...LOCAL, datasetUri: 'missing.npz' })) {
      if (m.event?.$case === 'started') id = m.event.value.measurementId;
    }
  })();
  expect((await failure(call)).code).toBe('NOT_FOUND');
  return id;
}

describe('the default state location', () => {
  let xdg: string;
  beforeAll(async () => {
    xdg = await mkdtemp(path.join(tmpdir(), 'memometer-xdg-'));
  });
  afterAll(() => rm(xdg, { recursive: true, force: true }));

  it('is the XDG state folder, else the OS temp folder: never the data root', () => {
    expect(defaultStateUri({ XDG_STATE_HOME: '/var/lib/state' })).toBe('/var/lib/state/memometer');
    expect(defaultStateUri({})).toBe(path.join(tmpdir(), 'memometer-state'));
    expect(defaultStateUri({ XDG_STATE_HOME: 'relative/dir' })).toBe(path.join(tmpdir(), 'memometer-state'));
  });

  it('keeps records outside the data root, where client URIs cannot reach them', async () => {
    const service = await startTestService({ stateUri: '' }, { ...s3Env(), XDG_STATE_HOME: xdg });
    try {
      const client = service.client();
      const id = await recordOne(client);
      const record = path.join(xdg, 'memometer', 'measurements', `${id}.json`);
      expect(existsSync(record)).toBe(true);
      expect(await readdir(service.dataRoot)).toEqual(['examples']);
      for (const [key, field] of FIELDS) {
        expect(await failure(measure(client, { [key]: record }))).toEqual({
          code: 'PERMISSION_DENIED', details: expect.stringMatching(new RegExp(`^${field}: '/.* is outside the data root$`)),
        });
      }
    } finally {
      await service.stop();
    }
  });

  it('is refused to clients even when it falls inside the data root', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'memometer-root-xdg-'));
    const service = await startTestService({ dataRoot: root, stateUri: '' }, { ...s3Env(), XDG_STATE_HOME: path.join(root, 'xdg') });
    try {
      const client = service.client();
      const id = await recordOne(client);
      expect(existsSync(path.join(root, 'xdg/memometer/measurements', `${id}.json`))).toBe(true);
      const { code, details } = await failure(measure(client, { modelUri: `xdg/memometer/measurements/${id}.json` }));
      expect(code).toBe('PERMISSION_DENIED');
      expect(details).toMatch(/^model_uri: .* is inside the server's state folder$/);
    } finally {
      await service.stop();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('a state folder configured inside the data root', () => {
  let service: TestService;
  let state: string;
  let id: string;
  beforeAll(async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'memometer-root-state-'));
    await cp('examples', path.join(root, 'examples'), { recursive: true });
    state = path.join(root, 'records');
    service = await startTestService({ dataRoot: root, stateUri: state });
    await symlink('records', path.join(root, 'innocent'));
    id = await recordOne(service.client());
  });
  afterAll(async () => {
    await service?.stop();
    if (state) await rm(path.dirname(state), { recursive: true, force: true });
  });

  it.each(FIELDS)('refuses %s into it, by relative path, by .., by file URL and by absolute path', async (key, field) => {
    const client = service.client();
    const record = path.join(state, 'measurements', `${id}.json`);
    for (const uri of [`records/measurements/${id}.json`, 'records', `examples/../records/requests`, pathToFileURL(record).href, record]) {
      const { code, details } = await failure(measure(client, { [key]: uri }));
      expect(code).toBe('PERMISSION_DENIED');
      expect(details).toMatch(new RegExp(`^${field}: .* is inside the server's state folder$`));
    }
  });

  it('refuses a symbolic link into it', async () => {
    const { code, details } = await failure(measure(service.client(), { modelUri: `innocent/measurements/${id}.json` }));
    expect(code).toBe('PERMISSION_DENIED');
    expect(details).toBe(`innocent/measurements/${id}.json: resolves into the server's state folder`);
  });

  it('writes no report into it: output_uri there fails before any work', async () => {
    const before = await readdir(state, { recursive: true });
    expect((await failure(measure(service.client(), { outputUri: 'records/evil' }))).code).toBe('PERMISSION_DENIED');
    const after = await readdir(state, { recursive: true });
    expect(after.filter((f) => f.includes('evil'))).toEqual([]);
    expect(after.filter((f) => !before.includes(f)).every((f) => ['measurements', 'requests', 'leases', 'claims', 'index'].some((folder) => f.startsWith(folder)))).toBe(true);
  });
});

describe('state in a bucket clients also use', () => {
  let service: TestService;
  beforeAll(async () => {
    const store = s3Store('state-location');
    await store.client.makeBucket('state-location').catch((e: { code?: string }) => {
      if (e.code !== 'BucketAlreadyOwnedByYou' && e.code !== 'BucketAlreadyExists') throw e;
    });
    service = await startTestService({ stateUri: 's3://state-location/memometer/state' });
    await recordOne(service.client());
  });
  afterAll(() => service?.stop());

  it.each(FIELDS)('refuses %s under the state prefix, and only there', async (key, field) => {
    const client = service.client();
    for (const uri of ['s3://state-location/memometer/state', 's3://state-location/memometer/state/', 's3://state-location/memometer/state/measurements/x.json']) {
      expect(await failure(measure(client, { [key]: uri }))).toEqual({
        code: 'PERMISSION_DENIED', details: `${field}: '${uri}' is inside the server's state location`,
      });
    }
    if (key !== 'outputUri') {
      // A sibling prefix that merely starts the same way is the client's: missing, not refused.
      expect((await failure(measure(client, { [key]: 's3://state-location/memometer/statement.npz' }))).code).toBe('NOT_FOUND');
    }
  });
});
