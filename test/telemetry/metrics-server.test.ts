// Metrics of real measurements through the real gRPC server (one slot, a queue of one), read
// with a MetricReader that the test collects from.
import { status } from '@grpc/grpc-js';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTelemetry, type Telemetry } from '../../src/telemetry/setup.js';
import { CollectingReader, count, points, value } from './metrics-support.js';

const reader = new CollectingReader();
let telemetry: Telemetry;
let support: typeof import('../support/service.js');
let service: Awaited<ReturnType<typeof support.startTestService>>;

beforeAll(async () => {
  // Spans go to memory (no OTLP to localhost); metrics to the test's reader.
  telemetry = startTelemetry({ exporter: new InMemorySpanExporter(), metricReaders: [reader] });
  support = await import('../support/service.js');
  service = await support.startTestService({ maxConcurrent: '1', maxQueued: '1' });
});
afterAll(async () => {
  await service?.stop();
  await telemetry?.shutdown();
});

const request = (requestId: string) => ({
  requestId,
  modelUri: 'examples/fashion-cnn',
  datasetUri: 'examples/fashion-mnist-2k.npz',
  copyDepths: [1],
  epochs: 2,
  inputScaling: { scale: 1 / 255, mean: [], std: [] },
});

const SERVICE = 'memometer.v1.MemorizationService';

describe('server metrics', () => {
  it('queue depth, running measurements, refusals, durations with outcome, training throughput, RPC durations', async () => {
    const client = service.client();
    const first = client.measure(request('metrics-first'));
    const second = client.measure(request('metrics-second'));
    // Wait until one runs and one waits: the gauges are read at collection time.
    let load = { running: 0, queued: 0 };
    for (let i = 0; i < 600 && !(load.running === 1 && load.queued === 1); i++) {
      const all = await reader.metrics();
      load = { running: value(all, 'memometer.measurements.running') ?? 0, queued: value(all, 'memometer.queue.depth') ?? 0 };
      if (!(load.running === 1 && load.queued === 1)) await new Promise((r) => setTimeout(r, 50));
    }
    expect(load).toEqual({ running: 1, queued: 1 });

    // A third while the slot and the queue are taken: refused at once.
    const refused = await client.measure(request('metrics-third')).catch((e: { code?: number }) => e);
    expect((refused as { code?: number }).code).toBe(status.RESOURCE_EXHAUSTED);

    await Promise.all([first, second]);
    // A measurement that fails in the run (the data set is missing).
    await client.measure({ ...request('metrics-failed'), datasetUri: 'examples/missing.npz' }).catch(() => undefined);

    const all = await reader.metrics();
    expect(value(all, 'memometer.queue.depth')).toBe(0);
    expect(value(all, 'memometer.measurements.running')).toBe(0);
    expect(value(all, 'memometer.admission.refusals', { 'memometer.reason': 'queue_full' })).toBe(1);

    expect(count(all, 'memometer.measurement.duration', { 'memometer.mode': 'frozen', 'memometer.outcome': 'succeeded' })).toBe(2);
    expect(count(all, 'memometer.measurement.duration', { 'memometer.mode': 'frozen', 'memometer.outcome': 'failed' })).toBe(1);
    const [succeeded] = points(all, 'memometer.measurement.duration', { 'memometer.outcome': 'succeeded' });
    expect((succeeded!.value as { sum: number }).sum).toBeGreaterThan(0);

    // Two measurements of one depth and two epochs each; one seed (the default).
    const throughput = points(all, 'memometer.training.throughput');
    expect(throughput.length).toBeGreaterThan(0);
    for (const p of throughput) {
      expect(p.attributes['memometer.mode']).toBe('frozen');
      expect(p.attributes['memometer.backend']).toMatch(/^[a-z-]+$/); // the 'planned' event's backend
    }
    expect(count(all, 'memometer.training.throughput')).toBeGreaterThanOrEqual(4);
    expect((throughput[0]!.value as { sum: number }).sum).toBeGreaterThan(0);

    const rpc = { 'rpc.system': 'grpc', 'rpc.service': SERVICE, 'rpc.method': 'MeasureMemorization' };
    expect(count(all, 'rpc.server.call.duration', { ...rpc, 'rpc.grpc.status_code': status.OK })).toBe(2);
    expect(count(all, 'rpc.server.call.duration', { ...rpc, 'rpc.grpc.status_code': status.RESOURCE_EXHAUSTED })).toBe(1);
    expect(count(all, 'rpc.server.call.duration', { ...rpc, 'rpc.grpc.status_code': status.NOT_FOUND })).toBe(1);
  });

  it('records unary calls and cancelled measurements', async () => {
    const client = service.client();
    const controller = new AbortController();
    let id = '';
    const cancelled = client
      .measure({ ...request('metrics-cancelled'), epochs: 50 }, (m) => {
        if (m.event?.$case === 'started') id = m.event.value.measurementId;
        if (m.event?.$case === 'epoch') controller.abort();
      }, controller.signal)
      .catch((e: unknown) => e);
    await cancelled;
    expect(id).not.toBe('');
    await client.getMeasurement(id);
    // The run records its outcome after the stream ended: give it a moment.
    let all = await reader.metrics();
    for (let i = 0; i < 100 && !count(all, 'memometer.measurement.duration', { 'memometer.outcome': 'cancelled' }); i++) {
      await new Promise((r) => setTimeout(r, 50));
      all = await reader.metrics();
    }
    expect(count(all, 'memometer.measurement.duration', { 'memometer.mode': 'frozen', 'memometer.outcome': 'cancelled' })).toBe(1);
    expect(count(all, 'rpc.server.call.duration', { 'rpc.method': 'MeasureMemorization', 'rpc.grpc.status_code': status.CANCELLED })).toBe(1);
    expect(count(all, 'rpc.server.call.duration', { 'rpc.service': SERVICE, 'rpc.method': 'GetMeasurement', 'rpc.grpc.status_code': status.OK })).toBe(1);
  });
});
