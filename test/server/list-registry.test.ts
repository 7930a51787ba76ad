/**
 * The listing index through MeasurementRegistry, on the two state stores a server uses: a local
 * folder (FileStore) and a bucket on the real S3 test server (S3Store with a key prefix).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ListMeasurementsRequest, MeasureMemorizationRequest, MeasurementState, type Measurement } from '../../src/gen/memometer/v1/memometer.js';
import { INDEX_PREFIX, listPage, PAGE_LIMITS, type IndexSource } from '../../src/server/list-index.js';
import { MeasurementRegistry } from '../../src/server/registry.js';
import { createS3Client, s3ConfigFromEnv } from '../../src/storage/s3-config.js';
import { FileStore } from '../../src/storage/file-store.js';
import { S3Store } from '../../src/storage/s3-store.js';
import type { StateStore } from '../../src/storage/store.js';
import { s3Env } from '../support/service.js';
import { ids, pages, seed } from './list-support.js';

let dir: string;
afterAll(() => dir && rm(dir, { recursive: true, force: true }));

const stores: [string, () => Promise<StateStore>][] = [
  ['FileStore', async () => new FileStore((dir = await mkdtemp(path.join(tmpdir(), 'memometer-list-')))) ],
  ['S3Store', async () => {
    const client = createS3Client(s3ConfigFromEnv(s3Env()));
    await client.makeBucket('listing-registry').catch((e: { code?: string }) => {
      if (e.code !== 'BucketAlreadyOwnedByYou') throw e;
    });
    return new S3Store(client, 'listing-registry', { prefix: `state-${Date.now()}` });
  }],
];

describe.each(stores)('the listing index on %s', (_, open) => {
  let store: StateStore;
  let registry: MeasurementRegistry;
  /** Newest first: b SUCCEEDED, a FAILED, b RUNNING, a SUCCEEDED, b CANCELLED, a QUEUED, a SUCCEEDED. */
  let all: Measurement[];
  const list = (r: { filter?: string; pageSize?: number; pageToken?: string }) =>
    registry.list({ filter: '', pageSize: 0, pageToken: '', ...r });

  beforeAll(async () => {
    store = await open();
    registry = new MeasurementRegistry(store);
    all = await seed(registry, [
      { model: 'a', state: 'SUCCEEDED' }, { model: 'a', state: 'QUEUED' }, { model: 'b', state: 'CANCELLED' }, { model: 'a', state: 'SUCCEEDED' },
      { model: 'b', state: 'RUNNING' }, { model: 'a', state: 'FAILED' }, { model: 'b', state: 'SUCCEEDED' },
    ]);
  });

  it('writes one index entry per measurement, holding model, time and id', async () => {
    const keys = await store.list(INDEX_PREFIX);
    expect(keys).toHaveLength(7);
    expect(keys.map((k) => k.slice(-36))).toEqual(ids(all));
    const body = JSON.parse(new TextDecoder().decode(await store.get(keys[0]!))) as unknown;
    expect(body).toEqual({ measurementId: all[0]!.measurementId, modelUri: 'b', createTime: all[0]!.createTime!.toISOString() });
  });

  it('lists newest first, with current states, on one page', async () => {
    const page = await list({});
    expect(ids(page.measurements)).toEqual(ids(all));
    expect(page.measurements.map((m) => m.state)).toEqual(all.map((m) => m.state));
    expect(page.measurements[0]!.result!.depths).toHaveLength(2);
    expect(page.nextPageToken).toBe('');
  });

  it('pages with tokens: every measurement once, in order, and no token after the last page', async () => {
    expect(await pages(list, '', 3)).toEqual([ids(all.slice(0, 3)), ids(all.slice(3, 6)), ids(all.slice(6))]);
    expect(await pages(list, '', 7)).toEqual([ids(all)]);
  });

  it('filters on model, state and create time, and pages through the matches', async () => {
    const of = (pred: (m: Measurement) => boolean) => ids(all.filter(pred));
    expect((await pages(list, 'model_uri = "a"', 2)).flat()).toEqual(of((m) => m.request!.modelUri === 'a'));
    expect(await pages(list, 'state = SUCCEEDED', 1)).toEqual(of((m) => m.state === MeasurementState.MEASUREMENT_STATE_SUCCEEDED).map((id) => [id]));
    expect((await pages(list, 'state = SUCCEEDED AND model_uri = "a"', 1)).flat()).toEqual(ids([all[3]!, all[6]!]));
    const mid = all[3]!.createTime!.toISOString();
    expect((await pages(list, `create_time >= "${mid}"`, 2)).flat()).toEqual(ids(all.slice(0, 4)));
    expect((await pages(list, `create_time < "${mid}"`, 2)).flat()).toEqual(ids(all.slice(4)));
    expect((await pages(list, `create_time > "${mid}" AND create_time <= "${all[1]!.createTime!.toISOString()}"`, 5)).flat()).toEqual(ids(all.slice(1, 3)));
    expect(await pages(list, 'model_uri = "none"', 5)).toEqual([[]]);
  });

  it('keeps pages stable while measurements are added', async () => {
    const first = await list({ pageSize: 4 });
    const [newer] = await seed(registry, [{ model: 'c', state: 'QUEUED' }]);
    const rest = await list({ pageSize: 4, pageToken: first.nextPageToken });
    expect([...ids(first.measurements), ...ids(rest.measurements)]).toEqual(ids(all));
    expect((await list({ pageSize: 1 })).measurements[0]!.measurementId).toBe(newer!.measurementId);
    all.unshift(newer!);
  });

  it('refuses a negative page_size, a foreign token and a token of another filter; clamps page_size to 1000', async () => {
    await expect(list({ pageSize: -1 })).rejects.toThrowError(/^page_size: must not be negative, got -1$/);
    await expect(list({ pageToken: 'bm90IGEgdG9rZW4' })).rejects.toThrowError(/^page_token: is not a next_page_token of ListMeasurements$/);
    await expect(list({ pageToken: Buffer.from('{"after":"measurements/x.json","filter":"x"}').toString('base64url') }))
      .rejects.toThrowError(/^page_token: is not a next_page_token/);
    const { nextPageToken } = await list({ pageSize: 1, filter: 'model_uri = "a"' });
    await expect(list({ pageToken: nextPageToken, filter: 'model_uri = "b"' })).rejects.toThrowError(/^page_token: was issued for another filter/);
    // The same filter spelled otherwise is the same filter.
    expect((await list({ pageToken: nextPageToken, filter: "model_uri='a'" })).measurements.length).toBeGreaterThan(0);
    expect((await list({ pageSize: 5000 })).measurements).toHaveLength(all.length);
  });

  /** listPage over the store, recording every LIST of the index as [startAfter, limit]. */
  const counted = () => {
    const lists: [string, number][] = [];
    const source: IndexSource = {
      keysAfter: (startAfter, limit) => (lists.push([startAfter, limit]), store.listAfter(INDEX_PREFIX, startAfter, limit)),
      read: (id) => registry.get(id),
    };
    return { lists, source };
  };

  it('a page reads a bounded number of records: a rare state ends pages early, with a token', async () => {
    const { source } = counted();
    const list = (r: ListMeasurementsRequest) => listPage(source, r, { ...PAGE_LIMITS, reads: 2 });
    const seen = await pages(list, 'state = FAILED', 10);
    expect(seen.flat()).toEqual(ids(all.filter((m) => m.state === MeasurementState.MEASUREMENT_STATE_FAILED)));
    expect(seen.length).toBe(Math.ceil(all.length / 2));
    expect(seen.some((p) => p.length === 0)).toBe(true);
  });

  it('a page scans a bounded number of index keys: a rare model ends pages early, with a token', async () => {
    const { lists, source } = counted();
    const list = (r: ListMeasurementsRequest) => listPage(source, r, { reads: 1000, keys: 2, chunk: 2 });
    const seen = await pages(list, 'model_uri = "a"', 10);
    expect(seen.flat()).toEqual(ids(all.filter((m) => m.request!.modelUri === 'a')));
    // 2 keys a page: at least one page per 2 entries (one more when the last key ends a page).
    expect(seen.length).toBeGreaterThanOrEqual(Math.ceil(all.length / 2));
    expect(lists.every(([, limit]) => limit === 2)).toBe(true);
  });

  it('a page lists the index from its token, a chunk at a time, not the whole index', async () => {
    const { lists, source } = counted();
    const keys = await store.list(INDEX_PREFIX);
    const limits = { reads: 1000, keys: 10_000, chunk: 2 };
    const first = await listPage(source, { filter: '', pageSize: 2, pageToken: '' }, limits);
    expect(ids(first.measurements)).toEqual(ids(all.slice(0, 2)));
    // The two entries, then one more chunk to see that a later entry exists.
    expect(lists).toEqual([['', 2], [keys[1]!, 2]]);
    lists.length = 0;
    const second = await listPage(source, { filter: '', pageSize: 2, pageToken: first.nextPageToken }, limits);
    expect(ids(second.measurements)).toEqual(ids(all.slice(2, 4)));
    expect(lists).toEqual([[keys[1]!, 2], [keys[3]!, 2]]);
  });

  it('does not list the superseded twin of a request_id, nor records written without an index entry', async () => {
    const request = MeasureMemorizationRequest.fromPartial({ requestId: `twin-${Date.now()}`, modelUri: 'twins', datasetUri: 'd' });
    const [first, second] = [await registry.create(request), await registry.create(request)];
    expect(second.created).toBe(false);
    const legacy = { ...first.measurement, measurementId: 'legacy-record-0000', requestId: '' };
    await registry.save(legacy); // as every record before the index existed
    const twins = await list({ filter: 'model_uri = "twins"' });
    expect(ids(twins.measurements)).toEqual([first.measurement.measurementId]);
    expect((await registry.get('legacy-record-0000')).measurementId).toBe('legacy-record-0000');
  });

  it('reindex() lists records that have no index entry, except superseded twins; a second run writes nothing', async () => {
    const before = (await list({ pageSize: 1000 })).measurements.length;
    const legacy = { ...all[0]!, measurementId: 'legacy-record-reindex', requestId: '' };
    await registry.save(legacy);
    const { records, added } = await registry.reindex();
    expect(added).toBe(2); // legacy-record-reindex, and legacy-record-0000 of the test before (not its superseded twin)
    const listed = ids((await list({ pageSize: 1000 })).measurements);
    expect(listed).toHaveLength(before + 2);
    expect(listed).toEqual(expect.arrayContaining([legacy.measurementId, 'legacy-record-0000']));
    expect((await list({ filter: 'model_uri = "twins"' })).measurements).toHaveLength(2); // the winner and legacy-record-0000
    expect(await registry.reindex()).toEqual({ records, added: 0 });
  });

  it('reindex() lists a measurement whose creator died before listing it, and not a twin that has yet to supersede itself', async () => {
    // The store refuses the first index write, as if the replica died right before it.
    let refused = false;
    const dying: StateStore = Object.assign(Object.create(store) as StateStore, {
      put: (key: string, body: Uint8Array | string) => {
        if (key.startsWith(INDEX_PREFIX) && !refused) {
          refused = true;
          return Promise.reject(new Error('replica died'));
        }
        return store.put(key, body);
      },
    });
    const request = MeasureMemorizationRequest.fromPartial({ requestId: `orphan-${Date.now()}`, modelUri: 'orphans', datasetUri: 'd' });
    await expect(new MeasurementRegistry(dying).create(request)).rejects.toThrowError('replica died');
    expect((await list({ filter: 'model_uri = "orphans"' })).measurements).toEqual([]);
    const orphan = (await registry.findByRequestId(request.requestId))!;
    // A twin of the same request_id caught between its record and its supersede (still QUEUED).
    await registry.save({ ...orphan, measurementId: 'queued-twin-0000' });
    expect(await registry.reindex()).toMatchObject({ added: 1 });
    expect(ids((await list({ filter: 'model_uri = "orphans"' })).measurements)).toEqual([orphan.measurementId]);
  });
});
