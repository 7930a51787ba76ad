/**
 * ListMeasurements through real gRPC servers: two replicas sharing their state in a bucket of the
 * real S3 test server, so a measurement made on one is listed by the other.
 */
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemometerClient } from '../../src/clients/client.js';
import { MeasurementState, type Measurement } from '../../src/gen/memometer/v1/memometer.js';
import { MeasurementRegistry } from '../../src/server/registry.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { exampleBucket, startTestService, type TestService } from '../support/service.js';
import { ids, pages, seed } from './list-support.js';

const TOKEN = 'list-token';
let bucket: Awaited<ReturnType<typeof exampleBucket>>;
let a: TestService;
let b: TestService;
/** Reads through replica b, which requires the bearer token. */
let client: MemometerClient;

beforeAll(async () => {
  bucket = await exampleBucket('listing');
  a = await startTestService({ stateUri: 's3://listing/state' });
  b = await startTestService({ stateUri: 's3://listing/state', apiToken: TOKEN });
  client = b.client(TOKEN);
});
afterAll(async () => {
  await Promise.all([a, b].filter(Boolean).map((s) => s.stop()));
});

/** The gRPC status a call ends with. */
async function failure(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  const error = (await call.then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
  if (!error) throw new Error('the call succeeded');
  return { code: status[error.code], details: error.details };
}

describe('ListMeasurements', () => {
  let measured: string;
  let seeded: Measurement[];

  beforeAll(async () => {
    const outcome = await a.client().measure({
      modelUri: bucket.modelUri, datasetUri: bucket.datasetUri, copyDepths: [1], epochs: 1, maxSamples: 200,
      inputScaling: { scale: 1 / 255, mean: [], std: [] },
    });
    measured = outcome.measurementId;
    // Records as another replica would have written them, after the measurement.
    seeded = await seed(new MeasurementRegistry(new S3Store(bucket.store.client, 'listing', { prefix: 'state' })), [
      { model: 's3://listing/x', state: 'SUCCEEDED' }, { model: 's3://listing/y', state: 'FAILED' },
      { model: 's3://listing/x', state: 'RUNNING' }, { model: 's3://listing/y', state: 'SUCCEEDED' }, { model: 's3://listing/x', state: 'CANCELLED' },
    ]);
  });

  it('lists on one replica what another measured, newest first, with its result', async () => {
    const page = await client.list();
    expect(ids(page.measurements)).toEqual([...ids(seeded), measured]);
    expect(page.nextPageToken).toBe('');
    const [m] = (await client.list({ filter: `model_uri = "${bucket.modelUri}"` })).measurements;
    expect(m).toMatchObject({ measurementId: measured, state: MeasurementState.MEASUREMENT_STATE_SUCCEEDED });
    expect(m!.result!.depths.map((d) => d.copyDepth)).toEqual([1]);
  });

  it('pages with next_page_token, and the client iterates over every page', async () => {
    const list = (r: { filter: string; pageSize: number; pageToken: string }) => client.list(r);
    expect(await pages(list, '', 2)).toEqual([ids(seeded.slice(0, 2)), ids(seeded.slice(2, 4)), [seeded[4]!.measurementId, measured]]);
    const all: string[] = [];
    for await (const m of client.listAll({ pageSize: 1 })) all.push(m.measurementId);
    expect(all).toEqual([...ids(seeded), measured]);
  });

  it('filters on model, state and create time', async () => {
    const listed = async (filter: string) => ids((await client.list({ filter })).measurements);
    expect(await listed('model_uri = "s3://listing/x"')).toEqual(ids([seeded[0]!, seeded[2]!, seeded[4]!]));
    const succeeded = seeded.filter((m) => m.state === MeasurementState.MEASUREMENT_STATE_SUCCEEDED);
    expect(await listed('state = SUCCEEDED')).toEqual([...ids(succeeded), measured]);
    expect(await listed('state = MEASUREMENT_STATE_FAILED AND model_uri = "s3://listing/y"')).toEqual([seeded[3]!.measurementId]);
    expect(await listed(`create_time >= "${seeded[2]!.createTime!.toISOString()}"`)).toEqual(ids(seeded.slice(0, 3)));
    expect(await listed(`create_time < "${seeded[4]!.createTime!.toISOString()}"`)).toEqual([measured]);
  });

  it('INVALID_ARGUMENT names page_size, page_token or filter and the bad part', async () => {
    expect(await failure(client.list({ pageSize: -5 }))).toEqual({ code: 'INVALID_ARGUMENT', details: 'page_size: must not be negative, got -5' });
    expect(await failure(client.list({ pageToken: 'garbage' }))).toEqual({ code: 'INVALID_ARGUMENT', details: 'page_token: is not a next_page_token of ListMeasurements' });
    const { nextPageToken } = await client.list({ pageSize: 1, filter: 'state = SUCCEEDED' });
    expect(await failure(client.list({ pageToken: nextPageToken, filter: 'state = FAILED' }))).toMatchObject({
      code: 'INVALID_ARGUMENT', details: expect.stringMatching(/^page_token: was issued for another filter/),
    });
    expect(await failure(client.list({ filter: 'state = SUCCEEDED OR state = FAILED' }))).toEqual({
      code: 'INVALID_ARGUMENT', details: "filter: expected AND after 'state = SUCCEEDED', got 'OR' (only AND joins conditions)",
    });
    expect(await failure(client.list({ filter: 'create_time > "last week"' }))).toMatchObject({
      code: 'INVALID_ARGUMENT', details: expect.stringMatching(/^filter: 'last week' is not an RFC 3339 timestamp/),
    });
  });

  it('requires the bearer token like the other RPCs', async () => {
    expect(await failure(b.client().list())).toEqual({ code: 'UNAUTHENTICATED', details: 'authorization: a bearer token is required' });
  });
});
