import { mkdir, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemometerClient } from '../../src/clients/client.js';
import { MeasurementState, Optimizer, type MeasureMemorizationRequest } from '../../src/gen/memometer/v1/memometer.js';
import { encodeNpz } from '../../src/storage/formats/npz.js';
import { exampleBucket, s3Env, startTestService, type TestService } from '../support/service.js';

let service: TestService;
let bucket: Awaited<ReturnType<typeof exampleBucket>>;

const LOCAL = { modelUri: 'examples/fashion-cnn', datasetUri: 'examples/fashion-mnist-2k.npz' };
const SCALED = { inputScaling: { scale: 1 / 255, mean: [], std: [] } };

beforeAll(async () => {
  bucket = await exampleBucket('errors');
  service = await startTestService();
  const root = service.dataRoot;
  await mkdir(path.join(root, 'bad/model'), { recursive: true });
  await writeFile(path.join(root, 'bad/model/model.json'), '{"modelTopology": {');
  await writeFile(path.join(root, 'bad/corrupt.npz'), 'PK\x03\x04 this is not a zip archive');
  await writeFile(path.join(root, 'bad/wide.npz'), encodeNpz({
    x: { data: new Float32Array(20 * 700), shape: [20, 700] },
    y: { data: new Int32Array(20), shape: [20] },
  }));
  await symlink('/etc', path.join(root, 'escape'));
});
afterAll(() => service?.stop());

/** The gRPC status a call ends with. */
async function failure(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  const error = (await call.then(() => undefined, (e: unknown) => e)) as ServiceError | undefined;
  if (!error) throw new Error('the call succeeded');
  return { code: status[error.code], details: error.details };
}

const measure = (client: MemometerClient, request: Partial<MeasureMemorizationRequest>) =>
  client.measure({ ...LOCAL, ...SCALED, epochs: 1, ...request });

describe('INVALID_ARGUMENT names the field', () => {
  it.each([
    [{ copyDepths: [99] }, /^copy_depths: copy depth 99 is not a valid cut: the model has 7 layers; valid depths: 1-7$/],
    [{ numRandomLabels: 1 }, /^num_random_labels: must be an integer in \[2, 1000000\], got 1$/],
    [{ mode: 7 }, /^mode: unknown value 7$/],
    [{ modelUri: '' }, /^model_uri: is required$/],
    [{ modelUri: 's3://' }, /^model_uri: the S3 URI 's3:\/\/' names no bucket$/],
    [{ datasetUri: 'ftp://host/data.npz' }, /^dataset_uri: unsupported URI scheme in 'ftp:\/\/host\/data.npz'/],
    [{ datasetUri: 'bad/wide.npz' }, /^dataset_uri: sample shape \[700\] does not match the model input shape \[28, 28, 1\] \(NHWC\) or its NCHW form \[1, 28, 28\]$/],
    [{ modelUri: 'bad/model' }, /model\.json/],
    [{ datasetUri: 'bad/corrupt.npz' }, /corrupt\.npz/],
    [{ regularizationLambda: 2 }, /^regularization_lambda: applies only in joint mode/],
  ])('%j', async (request, message) => {
    const { code, details } = await failure(measure(service.client(), request));
    expect(code).toBe('INVALID_ARGUMENT');
    expect(details).toMatch(message);
  });
});

describe('NOT_FOUND', () => {
  it('for a missing object, a missing bucket and an unknown measurement', async () => {
    const client = service.client();
    expect(await failure(measure(client, { modelUri: 's3://errors/nope/model' }))).toMatchObject({ code: 'NOT_FOUND', details: expect.stringMatching(/nope\/model/) });
    expect(await failure(measure(client, { datasetUri: 's3://no-such-bucket/data.npz' }))).toMatchObject({ code: 'NOT_FOUND', details: expect.stringMatching(/no-such-bucket/) });
    expect(await failure(measure(client, { datasetUri: 'missing.npz' }))).toMatchObject({ code: 'NOT_FOUND' });
    expect(await failure(client.getMeasurement('no-such-id'))).toEqual({ code: 'NOT_FOUND', details: "measurement_id: no measurement 'no-such-id'" });
  });
});

describe('PERMISSION_DENIED and UNAUTHENTICATED', () => {
  it('keeps remote callers inside the data root: absolute paths, .. tricks and symbolic links', async () => {
    const client = service.client();
    for (const uri of ['/etc/passwd', 'file:///etc/passwd', '../../../etc/passwd', 'examples/../../etc/passwd']) {
      expect(await failure(measure(client, { datasetUri: uri }))).toMatchObject({ code: 'PERMISSION_DENIED', details: expect.stringMatching(/^dataset_uri: .* is outside the data root$/) });
    }
    expect(await failure(measure(client, { datasetUri: 'escape/passwd' }))).toEqual({
      code: 'PERMISSION_DENIED', details: 'escape/passwd: resolves outside the data root (symbolic link)',
    });
  });

  it('refuses local paths on a server without a data root, and buckets outside the allow-list', async () => {
    const strict = await startTestService({ dataRoot: '', allowedBuckets: 'models-only' });
    try {
      const client = strict.client();
      expect(await failure(measure(client, {}))).toMatchObject({ code: 'PERMISSION_DENIED', details: expect.stringMatching(/^model_uri: local paths are disabled/) });
      expect(await failure(measure(client, { modelUri: bucket.modelUri, datasetUri: bucket.datasetUri }))).toMatchObject({
        code: 'PERMISSION_DENIED', details: "model_uri: bucket 'errors' is not in the server's allow-list",
      });
    } finally {
      await strict.stop();
    }
  });

  it('reports storage credentials the S3 server refuses', async () => {
    const wrong = await startTestService({}, s3Env({ AWS_SECRET_ACCESS_KEY: 'not-the-secret' }));
    try {
      const { code, details } = await failure(measure(wrong.client(), { modelUri: bucket.modelUri }));
      expect(['UNAUTHENTICATED', 'PERMISSION_DENIED']).toContain(code);
      expect(details).toMatch(/errors/);
      expect(details).not.toMatch(/not-the-secret/);
    } finally {
      await wrong.stop();
    }
  });

  it('requires the bearer token when the server has one', async () => {
    const guarded = await startTestService({ apiToken: 'sekret' });
    try {
      expect(await failure(guarded.client().getMeasurement('x'))).toEqual({ code: 'UNAUTHENTICATED', details: 'authorization: a bearer token is required' });
      expect(await failure(guarded.client('wrong').getMeasurement('x'))).toEqual({ code: 'UNAUTHENTICATED', details: 'authorization: the bearer token is not valid' });
      expect(await failure(measure(guarded.client(), {}))).toMatchObject({ code: 'UNAUTHENTICATED' });
      expect((await failure(guarded.client('sekret').getMeasurement('x'))).code).toBe('NOT_FOUND');
    } finally {
      await guarded.stop();
    }
  });
});

describe('RESOURCE_EXHAUSTED: limits', () => {
  it('refuses data sets above the byte and sample limits, and heads above the memory budget', async () => {
    const limited = await startTestService({ maxDatasetBytes: '1000', maxSamples: '100', memoryBudgetBytes: '1000000' });
    try {
      const client = limited.client();
      expect(await failure(measure(client, {}))).toMatchObject({ code: 'RESOURCE_EXHAUSTED', details: expect.stringMatching(/^dataset_uri: '.*fashion-mnist-2k\.npz' is \d+ bytes, over the limit of 1000 bytes$/) });
    } finally {
      await limited.stop();
    }
    const few = await startTestService({ maxSamples: '100', memoryBudgetBytes: '1000000' });
    try {
      const client = few.client();
      expect(await failure(measure(client, {}))).toMatchObject({ code: 'RESOURCE_EXHAUSTED', details: expect.stringMatching(/^dataset_uri: examples\/fashion-mnist-2k\.npz:x\.npy: shape \[2000, 28, 28\] holds 2000 samples, over the limit of 100$/) });
      expect(await failure(measure(client, { maxSamples: 40, copyDepths: [5], numRandomLabels: 5000 }))).toMatchObject({
        code: 'RESOURCE_EXHAUSTED', details: expect.stringMatching(/^the server's memory budget \(MEMOMETER_MEMORY_BUDGET_BYTES\): the measurement needs about/),
      });
    } finally {
      await few.stop();
    }
  });
});

describe('FAILED_PRECONDITION: training diverged', () => {
  it('ends the stream with the typed error and records the measurement as FAILED with its message', async () => {
    const client = service.client();
    let id = '';
    const stream = client.stream({ ...LOCAL, ...SCALED, epochs: 2, copyDepths: [2], maxSamples: 300, learningRate: 1e9, optimizer: Optimizer.OPTIMIZER_SGD });
    const ended = (async () => {
      for await (const message of stream) if (message.event?.$case === 'started') id = message.event.value.measurementId;
    })();
    const { code, details } = await failure(ended);
    expect(code).toBe('FAILED_PRECONDITION');
    expect(details).toMatch(/^learning_rate: training diverged at copy depth 2, epoch 1: the random-label loss .*; the learning rate \(1000000000\) is likely too high: lower it$/);
    const stored = await client.getMeasurement(id);
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_FAILED);
    expect(stored.error).toEqual({ code: 'FAILED_PRECONDITION', message: details });
  });
});
