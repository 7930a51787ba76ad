/**
 * Nothing hangs and nothing runs twice, through real servers sharing their state in a real S3
 * bucket: one measurement per request_id however many clients send it at once, and a
 * measurement whose replica is killed is taken over by another one, which the client's retry
 * (same request_id) follows to the result.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeasureMemorizationRequest, MeasurementState, type MeasureMemorizationResponse } from '../../src/gen/memometer/v1/memometer.js';
import { MemometerClient } from '../../src/clients/client.js';
import { MeasurementRegistry } from '../../src/server/registry.js';
import { createS3Client, s3ConfigFromEnv } from '../../src/storage/s3-config.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { exampleBucket, s3Env, startTestService, type TestService } from '../support/service.js';

const STATE = 's3://leases/state';
let bucket: Awaited<ReturnType<typeof exampleBucket>>;
const replicas: TestService[] = [];

beforeAll(async () => {
  bucket = await exampleBucket('leases');
  for (let i = 0; i < 2; i++) replicas.push(await startTestService({ stateUri: STATE, leaseSeconds: '2', maxQueued: '16' }));
});
afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
});

const request = (requestId: string, epochs = 1) => ({
  requestId, modelUri: bucket.modelUri, datasetUri: bucket.datasetUri, copyDepths: [2], epochs, maxSamples: 300,
  inputScaling: { scale: 1 / 255, mean: [], std: [] },
});

/** `memometer serve` as its own process, sharing the state bucket; resolves with its port. */
function serveProcess(): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/clients/main.ts', 'serve', '--host', '127.0.0.1', '--port', '0'], {
    env: { ...process.env, ...s3Env(), OTEL_TRACES_EXPORTER: 'none', MEMOMETER_STATE_URI: STATE, MEMOMETER_LEASE_SECONDS: '2' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /serving on 127\.0\.0\.1:(\d+)/.exec(stderr);
      if (match) resolve({ child, address: `127.0.0.1:${match[1]}` });
    });
    child.on('exit', (code) => reject(new Error(`exited early with ${code}: ${stderr}`)));
  });
}

describe('exactly one measurement per request_id', () => {
  it('10 clients sending the same request_id at once to two replicas get one measurement and its result', async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => replicas[i % 2]!.client().measure(request('same-id-at-once'))),
    );
    const ids = new Set(outcomes.map((o) => o.measurementId));
    expect(ids.size).toBe(1);
    for (const o of outcomes) expect(o.result).toEqual(outcomes[0]!.result);
    const stored = await replicas[0]!.client().getMeasurement([...ids][0]!);
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_SUCCEEDED);
  });

  it('a call that read a claim before it settled, and attached to the twin that then lost, follows the winner', async () => {
    // What S3Store.putIfAbsent's fallback (no conditional writes) allows for a moment: the
    // request_id's claim object names a twin that later sees another claim and supersedes itself.
    const store = new S3Store(createS3Client(s3ConfigFromEnv(s3Env())), 'leases', { prefix: 'state' });
    const registry = new MeasurementRegistry(store);
    const requestId = `unsettled-claim-${Date.now()}`;
    const { measurement: winner } = await registry.create(MeasureMemorizationRequest.fromPartial(request(requestId)));
    const now = new Date();
    const twin = { ...winner, measurementId: randomUUID(), createTime: now, updateTime: now };
    await registry.save(twin);
    // The registry's claim object of a request_id (registry.ts requestKey), naming the twin.
    const claimKey = `requests/${createHash('sha256').update(requestId).digest('hex')}.json`;
    await store.put(claimKey, JSON.stringify({ measurementId: twin.measurementId }));

    const started: string[] = [];
    let attached!: () => void;
    const attachedToTwin = new Promise<void>((resolve) => (attached = resolve));
    const outcome = (async () => {
      let result: MeasureMemorizationResponse['event'];
      for await (const message of replicas[0]!.client().stream(request(requestId))) {
        if (message.event?.$case === 'started') {
          started.push(message.event.value.measurementId);
          attached();
        }
        if (message.event?.$case === 'result') result = message.event;
      }
      return result;
    })();
    await attachedToTwin;
    // The claim settles on the winner; the twin supersedes itself, as a losing create() does.
    await store.put(claimKey, JSON.stringify({ measurementId: winner.measurementId }));
    await registry.transition(twin, 'supersede', { code: 'ALREADY_EXISTS', message: 'superseded: another request with the same request_id created the measurement first' });

    expect((await outcome)?.$case).toBe('result');
    expect(started).toEqual([twin.measurementId, winner.measurementId]);
    expect((await registry.get(winner.measurementId)).state).toBe(MeasurementState.MEASUREMENT_STATE_SUCCEEDED);
  });
});

/** Starts a long measurement on a separate serve process, kills it at the first epoch; returns the id. */
async function killedMidRun(requestId: string): Promise<string> {
  const { child, address } = await serveProcess();
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const first = new MemometerClient({ address, retries: 0 });
  let measurementId = '';
  try {
    for await (const message of first.stream(request(requestId, 30))) {
      if (message.event?.$case === 'started') measurementId = message.event.value.measurementId;
      if (message.event?.$case === 'epoch') {
        child.kill('SIGKILL');
        break;
      }
    }
  } catch {
    // The stream breaks with the process.
  } finally {
    first.close();
  }
  await exited;
  expect(measurementId).not.toBe('');
  return measurementId;
}

describe('leases', () => {
  it('a pipeline that only polls GetMeasurement sees the measurement of a killed replica taken over and finished', async () => {
    const id = await killedMidRun('killed-then-polled');
    const client = replicas[0]!.client();
    const killedAt = Date.now();
    let state = (await client.getMeasurement(id)).state;
    while (state !== MeasurementState.MEASUREMENT_STATE_SUCCEEDED && Date.now() - killedAt < 90_000) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      state = (await client.getMeasurement(id)).state;
    }
    expect(state).toBe(MeasurementState.MEASUREMENT_STATE_SUCCEEDED);
  });


  it('a measurement whose replica is SIGKILLed mid-run is taken over; the client\'s retry gets its result', async () => {
    const measurementId = await killedMidRun('killed-mid-run');
    const killedAt = Date.now();
    // The retry, as every client sends it: the same request, the same request_id, another replica.
    const messages: MeasureMemorizationResponse[] = [];
    for await (const message of replicas[1]!.client().stream({ ...request('killed-mid-run', 30) })) messages.push(message);
    const started = messages[0]!.event!.value as { measurementId: string; existing: boolean };
    expect(started).toMatchObject({ measurementId, existing: true });
    expect(messages.at(-1)!.event!.$case).toBe('result');
    expect(messages.some((m) => m.event?.$case === 'epoch')).toBe(true);
    const stored = await replicas[0]!.client().getMeasurement(measurementId);
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_SUCCEEDED);
    // Taken over within the lease (2 s) and a poll or two, not at the client's deadline.
    expect(Date.now() - killedAt).toBeLessThan(120_000);
  });
});
