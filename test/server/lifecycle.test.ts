import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemometerClient } from '../../src/clients/client.js';
import { MeasurementState, type MeasureMemorizationRequest } from '../../src/gen/memometer/v1/memometer.js';
import { SERVICE_NAME } from '../../src/server/server.js';
import { healthCheck, reflectedServices } from '../support/grpc-probes.js';
import { s3Store, startTestService, type TestService } from '../support/service.js';

let service: TestService;
beforeAll(async () => {
  service = await startTestService({ maxConcurrent: '1', maxQueued: '0' });
});
afterAll(() => service?.stop());

const LONG = {
  modelUri: 'examples/fashion-cnn',
  datasetUri: 'examples/fashion-mnist-2k.npz',
  inputScaling: { scale: 1 / 255, mean: [], std: [] },
  epochs: 1000, // the server's default bound (MEMOMETER_MAX_EPOCHS)
};

/** Starts a long measurement; `running` resolves with its id at its first epoch. */
function startLong(client: MemometerClient, request: Partial<MeasureMemorizationRequest> = {}, signal?: AbortSignal) {
  let firstEpoch!: (id: string) => void;
  const running = new Promise<string>((resolve) => (firstEpoch = resolve));
  const outcome = (async () => {
    let id = '';
    try {
      for await (const message of client.stream({ ...LONG, ...request }, signal)) {
        if (message.event?.$case === 'started') id = message.event.value.measurementId;
        if (message.event?.$case === 'epoch') firstEpoch(id);
      }
      return undefined;
    } catch (error) {
      firstEpoch(id);
      return error as ServiceError;
    }
  })();
  return { running, outcome };
}

/** The stored record once it reaches a final state. */
async function settled(client: MemometerClient, id: string) {
  for (;;) {
    const m = await client.getMeasurement(id);
    if (m.state >= MeasurementState.MEASUREMENT_STATE_SUCCEEDED) return m;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('health and reflection', () => {
  it('serve grpc.health.v1 and list the service through reflection', async () => {
    expect(await healthCheck(service.address)).toBe('SERVING');
    expect(await healthCheck(service.address, SERVICE_NAME)).toBe('SERVING');
    expect(await reflectedServices(service.address)).toEqual(expect.arrayContaining([SERVICE_NAME, 'grpc.health.v1.Health']));
  });
});

describe('cancellation, deadlines and limits', () => {
  it('a client that cancels stops training within a step, frees every tensor, and the measurement is CANCELLED', async () => {
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    const client = service.client();
    const { running, outcome } = startLong(client, {}, controller.signal);
    const id = await running;
    controller.abort();
    expect((await outcome)?.code).toBe(status.CANCELLED);
    const stored = await settled(client, id);
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
    expect(stored.error).toEqual({ code: 'CANCELLED', message: 'the client cancelled the call' });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a passed deadline ends the stream with DEADLINE_EXCEEDED and stops the measurement', async () => {
    const client = service.client({ measureDeadlineMs: 2500 });
    const { running, outcome } = startLong(client);
    const id = await running;
    expect((await outcome)?.code).toBe(status.DEADLINE_EXCEEDED);
    const stored = await settled(service.client(), id);
    expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
    expect(stored.error?.code).toBe('DEADLINE_EXCEEDED');
  });

  it('refuses work beyond the running slot and the queue with RESOURCE_EXHAUSTED, and CancelMeasurement stops a run', async () => {
    const client = service.client();
    const { running, outcome } = startLong(client);
    const id = await running;
    const busy = await client.measure({ ...LONG, epochs: 1 }).catch((e: ServiceError) => e);
    expect(busy).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/the server is busy: 1 measurements running and 0 queued/) });
    const cancelled = await client.cancelMeasurement(id);
    expect(cancelled.state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
    expect(cancelled.error).toEqual({ code: 'CANCELLED', message: 'cancelled by CancelMeasurement' });
    expect(await outcome).toMatchObject({ code: status.CANCELLED, details: 'cancelled by CancelMeasurement' });
    // A finished measurement is returned unchanged.
    expect((await client.cancelMeasurement(id)).state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
  });

  it('CancelMeasurement the instant `started` arrives stops the run: the record stays CANCELLED', async () => {
    const client = service.client();
    let id = '';
    let cancelled: Promise<unknown> | undefined;
    const outcome = (async () => {
      try {
        // A short run: before the fix it often finished and was recorded SUCCEEDED after the cancel.
        for await (const message of client.stream({ ...LONG, epochs: 2 })) {
          if (message.event?.$case !== 'started') continue;
          id = message.event.value.measurementId;
          cancelled = client.cancelMeasurement(id);
        }
        return undefined;
      } catch (error) {
        return error as ServiceError;
      }
    })();
    expect(await outcome).toMatchObject({ code: status.CANCELLED, details: 'cancelled by CancelMeasurement' });
    expect(await cancelled).toMatchObject({ state: MeasurementState.MEASUREMENT_STATE_CANCELLED });
    expect((await settled(client, id)).state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
  });
});

describe('replicas', () => {
  it('CancelMeasurement sent to another replica stops the run on the replica that owns it', async () => {
    await s3Store('lifecycle').client.makeBucket('lifecycle');
    const owner = await startTestService({ stateUri: 's3://lifecycle/state' });
    const other = await startTestService({ stateUri: 's3://lifecycle/state' });
    try {
      const { running, outcome } = startLong(owner.client());
      const id = await running;
      expect((await other.client().cancelMeasurement(id)).state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
      expect(await outcome).toMatchObject({ code: status.CANCELLED, details: 'cancelled by CancelMeasurement' });
    } finally {
      await other.stop();
      await owner.stop();
    }
  });
});

describe('shutdown (SIGTERM)', () => {
  it('goes NOT_SERVING, refuses new work, cancels what outlives the grace period and writes no report', async () => {
    const stopping = await startTestService({ shutdownGraceSeconds: '1' });
    const client = stopping.client();
    const { running, outcome } = startLong(client, { outputUri: 'out/run' });
    const id = await running;
    const shutdown = stopping.server.shutdown();
    expect(await healthCheck(stopping.address)).toBe('NOT_SERVING');
    expect(await client.measure({ ...LONG, epochs: 1 }).catch((e: ServiceError) => e)).toMatchObject({ code: status.UNAVAILABLE });
    expect(await outcome).toMatchObject({ code: status.CANCELLED, details: 'the server is shutting down' });
    await shutdown;
    const replica = await startTestService({ stateUri: stopping.stateDir });
    try {
      const stored = await replica.client().getMeasurement(id);
      expect(stored.state).toBe(MeasurementState.MEASUREMENT_STATE_CANCELLED);
      expect(existsSync(path.join(stopping.dataRoot, 'out/run/report.json'))).toBe(false);
    } finally {
      await replica.stop();
      await stopping.stop();
    }
  });
});
