/**
 * Every storage call has a deadline (MEMOMETER_STORAGE_TIMEOUT_SECONDS): an S3 endpoint that
 * stops answering (its processes SIGSTOPped) or dies (SIGKILLed) in the middle of a measurement
 * ends the stream with UNAVAILABLE within the deadline and a few seconds, frees the admission
 * slot, leaves the server SERVING, and a retry with the same request_id never hangs.
 *
 * Through real servers: the gRPC server on 127.0.0.1 and a SEPARATE Swift + s3api instance per
 * test file (test/support/s3-server.ts on ports of its own), never the global one other tests use.
 */
import { readFile } from 'node:fs/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { readLocalModel } from '../../src/clients/local-files.js';
import { MeasurementState, type MeasureMemorizationRequest, type MeasureMemorizationResponse } from '../../src/gen/memometer/v1/memometer.js';
import { createS3Client, s3ConfigFromEnv } from '../../src/storage/s3-config.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { writeModelArtifacts } from '../../src/storage/model-reader.js';
import { EXAMPLE_DATASET, EXAMPLE_MODEL } from '../support/engine.js';
import { healthCheck } from '../support/grpc-probes.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { startTestService, type TestService } from '../support/service.js';

const TIMEOUT_S = 2;
/** The deadline, the epoch still running when the store stalls, and scheduling slack. */
const ENDS_WITHIN_MS = TIMEOUT_S * 1000 + 10_000;
const BUCKET = 'faults';

const started: S3TestServer[] = [];
const services: TestService[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.stop()));
});
afterAll(async () => {
  for (const s3 of started) {
    signalAll(s3, 'SIGCONT'); // a stopped server handles stop()'s SIGTERM only once continued
    await s3.stop();
  }
});

/** Sends `signal` to every process of the store (each server runs in its own process group). */
function signalAll(s3: S3TestServer, signal: NodeJS.Signals): void {
  for (const pgid of s3.pids) {
    try {
      process.kill(-pgid, signal);
    } catch {
      // the group is gone (killed)
    }
  }
}

/** A second Swift + s3api instance holding the example model and data set in bucket `faults`. */
async function faultyS3(): Promise<{ s3: S3TestServer; env: NodeJS.ProcessEnv }> {
  const s3 = await startS3Server();
  started.push(s3);
  const env = { AWS_ACCESS_KEY_ID: s3.accessKey, AWS_SECRET_ACCESS_KEY: s3.secretKey, AWS_REGION: s3.region, S3_ENDPOINT: s3.endpoint };
  const store = new S3Store(createS3Client(s3ConfigFromEnv(env)), BUCKET);
  await store.client.makeBucket(BUCKET);
  await writeModelArtifacts(store, 'model', await readLocalModel(EXAMPLE_MODEL));
  await store.put('data/fashion.npz', new Uint8Array(await readFile(EXAMPLE_DATASET)));
  return { s3, env };
}

async function service(env: NodeJS.ProcessEnv, settings: Record<string, string> = {}): Promise<TestService> {
  const svc = await startTestService({ storageTimeoutSeconds: String(TIMEOUT_S), leaseSeconds: '2', maxQueued: '0', ...settings }, env);
  services.push(svc);
  return svc;
}

const SCALED = { inputScaling: { scale: 1 / 255, mean: [], std: [] } };
const onS3 = (requestId: string, output: string): Partial<MeasureMemorizationRequest> => ({
  requestId, modelUri: `s3://${BUCKET}/model`, datasetUri: `s3://${BUCKET}/data/fashion.npz`, outputUri: `s3://${BUCKET}/${output}`,
  copyDepths: [2], epochs: 2, maxSamples: 300, ...SCALED,
});
const LOCAL: Partial<MeasureMemorizationRequest> = {
  modelUri: 'examples/fashion-cnn', datasetUri: 'examples/fashion-mnist-2k.npz', copyDepths: [1], epochs: 1, maxSamples: 200, ...SCALED,
};

interface Outcome {
  messages: MeasureMemorizationResponse[];
  error?: ServiceError;
  /** When the fault was made (0: none). */
  faultAt: number;
  endedAt: number;
}

/** Streams `request`, calling `fault` at the first epoch event, until the stream ends. */
async function streamWithFault(svc: TestService, request: Partial<MeasureMemorizationRequest>, fault?: () => void): Promise<Outcome> {
  const outcome: Outcome = { messages: [], faultAt: 0, endedAt: 0 };
  // The client's own deadline only guards the test: the server must end the stream long before.
  const client = svc.client({ measureDeadlineMs: 60_000 });
  try {
    for await (const message of client.stream(request)) {
      outcome.messages.push(message);
      if (fault && !outcome.faultAt && message.event?.$case === 'epoch') {
        fault();
        outcome.faultAt = Date.now();
      }
    }
  } catch (error) {
    outcome.error = error as ServiceError;
  }
  outcome.endedAt = Date.now();
  return outcome;
}

const codeOf = (o: Outcome) => (o.error ? status[o.error.code] : 'OK');
const measurementIdOf = (o: Outcome) => (o.messages[0]?.event?.$case === 'started' ? o.messages[0].event.value.measurementId : '');

/** The slot is free: with one slot and no queue, a busy server would refuse at once (RESOURCE_EXHAUSTED). */
async function localMeasurementSucceeds(svc: TestService): Promise<void> {
  const outcome = await svc.client().measure(LOCAL);
  expect(outcome.result.depths.length).toBe(1);
}

/** A retry with the same request_id: its result or a terminal status, well before the guard deadline. */
async function retryEnds(svc: TestService, request: Partial<MeasureMemorizationRequest>, measurementId: string): Promise<Outcome> {
  const retry = await streamWithFault(svc, request);
  expect(retry.messages[0]?.event).toMatchObject({ $case: 'started', value: { measurementId, existing: true } });
  const last = retry.messages.at(-1)?.event?.$case;
  if (!retry.error) expect(last).toBe('result');
  else expect(['UNAVAILABLE', 'FAILED_PRECONDITION', 'CANCELLED', 'INTERNAL']).toContain(codeOf(retry));
  return retry;
}

describe('a stalled S3 endpoint (SIGSTOP) mid-run', () => {
  let fault: Awaited<ReturnType<typeof faultyS3>>;

  it('ends the stream with UNAVAILABLE within the storage timeout, frees the slot, stays SERVING; a retry after SIGCONT ends', async () => {
    fault = await faultyS3();
    const svc = await service(fault.env);
    const request = onS3('paused-mid-run', 'out-paused');
    const outcome = await streamWithFault(svc, request, () => signalAll(fault.s3, 'SIGSTOP'));
    try {
      expect(outcome.faultAt).toBeGreaterThan(0);
      expect(codeOf(outcome)).toBe('UNAVAILABLE');
      expect(outcome.error!.details).toMatch(`the store did not answer within ${TIMEOUT_S} s: put s3://${BUCKET}/out-paused/report.json`);
      expect(outcome.endedAt - outcome.faultAt).toBeLessThan(ENDS_WITHIN_MS);
      console.info(`[storage-faults] paused S3: the stream ended ${outcome.endedAt - outcome.faultAt} ms after SIGSTOP`);

      // While S3 is still stopped: the server is healthy and its only slot is free.
      expect(await healthCheck(svc.address)).toBe('SERVING');
      expect(svc.server.service.running).toBe(0);
      await localMeasurementSucceeds(svc);
      const id = measurementIdOf(outcome);
      const stored = await svc.client().getMeasurement(id);
      expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_FAILED);
      expect(stored.error).toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      signalAll(fault.s3, 'SIGCONT');
    }
    const retry = await retryEnds(svc, request, measurementIdOf(outcome));
    expect(codeOf(retry)).toBe('UNAVAILABLE'); // the recorded outcome, at once
  });

  it('with the state store on the stalled endpoint too: UNAVAILABLE, slot free, SERVING; after SIGCONT the retry is taken over or ends', async () => {
    fault ??= await faultyS3();
    const svc = await service(fault.env, { stateUri: `s3://${BUCKET}/state` });
    const request = { ...onS3('paused-state', 'out-paused-state'), epochs: 30 };
    const outcome = await streamWithFault(svc, request, () => signalAll(fault.s3, 'SIGSTOP'));
    try {
      expect(outcome.faultAt).toBeGreaterThan(0);
      expect(codeOf(outcome)).toBe('UNAVAILABLE');
      // The lease renewal (every third of the lease) or the remote-cancel check hits the deadline first.
      expect(outcome.error!.details).toMatch(`within ${TIMEOUT_S} s`);
      // The deadline of the call that stalls, then of the FAILED record's write.
      expect(outcome.endedAt - outcome.faultAt).toBeLessThan(ENDS_WITHIN_MS + TIMEOUT_S * 1000);
      console.info(`[storage-faults] paused S3 holding the state: the stream ended ${outcome.endedAt - outcome.faultAt} ms after SIGSTOP`);
      expect(await healthCheck(svc.address)).toBe('SERVING');
      expect(svc.server.service.running).toBe(0);
      // A new measurement cannot be recorded while the state store is stopped: UNAVAILABLE, not a hang.
      const sentAt = Date.now();
      const refused = await streamWithFault(svc, { ...LOCAL, requestId: 'while-state-stopped' });
      expect(codeOf(refused)).toBe('UNAVAILABLE');
      expect(refused.endedAt - sentAt).toBeLessThan(ENDS_WITHIN_MS);
    } finally {
      signalAll(fault.s3, 'SIGCONT');
    }
    const resumedAt = Date.now();
    await retryEnds(svc, request, measurementIdOf(outcome));
    console.info(`[storage-faults] the retry after SIGCONT ended in ${Date.now() - resumedAt} ms`);
    await localMeasurementSucceeds(svc);
  });
});

describe('a dead S3 endpoint (SIGKILL) mid-run', () => {
  it('ends the stream with UNAVAILABLE within the storage timeout, frees the slot, stays SERVING; a retry ends', async () => {
    const { s3, env } = await faultyS3();
    const svc = await service(env);
    const request = onS3('killed-mid-run', 'out-killed');
    const outcome = await streamWithFault(svc, request, () => signalAll(s3, 'SIGKILL'));
    expect(outcome.faultAt).toBeGreaterThan(0);
    expect(codeOf(outcome)).toBe('UNAVAILABLE');
    expect(outcome.error!.details).toMatch(`s3://${BUCKET}/out-killed/report.json`);
    expect(outcome.endedAt - outcome.faultAt).toBeLessThan(ENDS_WITHIN_MS);
    console.info(`[storage-faults] killed S3: the stream ended ${outcome.endedAt - outcome.faultAt} ms after SIGKILL`);
    expect(await healthCheck(svc.address)).toBe('SERVING');
    expect(svc.server.service.running).toBe(0);
    await localMeasurementSucceeds(svc);
    const startedAt = Date.now();
    const retry = await retryEnds(svc, request, measurementIdOf(outcome));
    expect(codeOf(retry)).toBe('UNAVAILABLE');
    expect(Date.now() - startedAt).toBeLessThan(ENDS_WITHIN_MS);
  });
});
