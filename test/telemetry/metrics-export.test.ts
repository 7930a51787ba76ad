// Metrics exported as configured by OTEL_* variables only: OTLP to a receiver run by the test
// (OTLP/HTTP JSON and protobuf on node:http), and the Prometheus scrape endpoint over HTTP.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Admission } from '../../src/server/admission.js';
import { timed } from '../../src/storage/timed-store.js';
import { MeasurementMetrics, recordRefusal, recordTakeover } from '../../src/telemetry/metrics.js';
import { startTelemetry } from '../../src/telemetry/setup.js';
import { startOtlpReceivers, type OtlpReceivers, type Received } from '../support/otlp-receivers.js';

const EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';

let receivers: OtlpReceivers;
let received: Received[];
let grpcReceived: Buffer[];
let httpBase: string;
let grpcBase: string;

beforeAll(async () => {
  receivers = await startOtlpReceivers(EXPORT_PATH);
  ({ http: received, grpc: grpcReceived, httpBase, grpcBase } = receivers);
});
afterAll(() => receivers.close());

const OTEL_VARS = [
  'OTEL_SDK_DISABLED', 'OTEL_TRACES_EXPORTER', 'OTEL_METRICS_EXPORTER', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL',
  'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'OTEL_METRIC_EXPORT_INTERVAL', 'OTEL_SERVICE_NAME',
  'OTEL_EXPORTER_PROMETHEUS_HOST', 'OTEL_EXPORTER_PROMETHEUS_PORT',
];
const saved = Object.fromEntries(OTEL_VARS.map((k) => [k, process.env[k]]));
/** Metrics only: no spans are sent anywhere. */
function setEnv(vars: Record<string, string>) {
  for (const k of OTEL_VARS) delete process.env[k];
  Object.assign(process.env, { OTEL_TRACES_EXPORTER: 'none', ...vars });
}
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  received.length = 0;
  grpcReceived.length = 0;
});

/**
 * Something on every instrument the SDK can see without a server; an admission with one
 * measurement running and one queued until the returned function empties it.
 */
async function record(): Promise<() => Promise<void>> {
  const admission = new Admission(1, 1);
  const slot = await admission.enter(new AbortController().signal); // running 1
  const queued = admission.enter(new AbortController().signal); // queued 1
  expect(() => admission.enter(new AbortController().signal)).toThrow(/busy/);
  recordRefusal('draining');
  recordTakeover('rerun');
  const run = new MeasurementMetrics('frozen');
  run.onEvent({ type: 'epoch', seed: 1, copyDepth: 1, epoch: 1, epochs: 1, randomLabelAccuracy: 0.2, losses: { randomLabel: 2 }, samplesPerSecond: 1234 });
  run.end('succeeded');
  // A store whose get fails, one whose put never answers (the deadline).
  class S3Store {
    get = (key: string) => Promise.reject(new Error(`connection reset: ${key}`));
    put = (key: string) => new Promise(() => void key);
  }
  const store = timed(new S3Store(), { timeoutMs: 20 });
  await expect(store.get('k')).rejects.toThrow('connection reset');
  await expect(store.put('k')).rejects.toThrow(/did not answer/);
  return async () => {
    slot();
    (await queued)();
  };
}

const NAMES = [
  'memometer.queue.depth', 'memometer.measurements.running', 'memometer.measurement.duration', 'memometer.training.throughput',
  'memometer.admission.refusals', 'memometer.storage.errors', 'memometer.lease.takeovers',
];

interface JsonMetric {
  name: string;
  unit?: string;
  gauge?: { dataPoints: { asInt?: number | string; attributes?: unknown[] }[] };
  sum?: { dataPoints: { asInt?: number | string; attributes: { key: string; value: Record<string, unknown> }[] }[] };
  histogram?: { dataPoints: { count: number | string; attributes: { key: string; value: Record<string, unknown> }[] }[] };
}
interface JsonExport {
  resourceMetrics: { resource: { attributes: { key: string; value: Record<string, unknown> }[] }; scopeMetrics: { scope: { name: string }; metrics: JsonMetric[] }[] }[];
}

describe('metrics export configured from OTEL_* variables', () => {
  it('OTLP http/json to OTEL_EXPORTER_OTLP_ENDPOINT/v1/metrics', async () => {
    setEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_ENDPOINT: httpBase, OTEL_SERVICE_NAME: 'memometer-metrics-json' });
    const telemetry = startTelemetry({});
    const empty = await record();
    await telemetry.shutdown(); // exports what was recorded
    await empty();

    expect(received.length).toBeGreaterThan(0);
    expect(received.every((r) => r.path === '/v1/metrics' && r.contentType.startsWith('application/json'))).toBe(true);
    const exports = received.map((r) => JSON.parse(r.body.toString()) as JsonExport);
    const metrics = exports.flatMap((e) => e.resourceMetrics.flatMap((rm) => rm.scopeMetrics.filter((s) => s.scope.name === 'memometer').flatMap((s) => s.metrics)));
    expect(new Set(metrics.map((m) => m.name))).toEqual(new Set(NAMES));
    const one = (name: string) => metrics.find((m) => m.name === name)!;
    expect(Number(one('memometer.queue.depth').gauge!.dataPoints[0]!.asInt)).toBe(1);
    expect(Number(one('memometer.measurements.running').gauge!.dataPoints[0]!.asInt)).toBe(1);
    expect(one('memometer.measurement.duration').unit).toBe('s');
    const refusals = one('memometer.admission.refusals').sum!.dataPoints;
    expect(refusals.map((p) => p.attributes[0]!.value.stringValue).sort()).toEqual(['draining', 'queue_full']);
    const storage = one('memometer.storage.errors').sum!.dataPoints.map((p) => Object.fromEntries(p.attributes.map((a) => [a.key, a.value.stringValue])));
    expect(storage).toEqual(
      expect.arrayContaining([
        { 'memometer.storage.operation': 'get', 'memometer.storage.kind': 's3', 'error.type': 'Error' },
        { 'memometer.storage.operation': 'put', 'memometer.storage.kind': 's3', 'error.type': 'timeout' },
      ]),
    );
    const service = exports[0]!.resourceMetrics[0]!.resource.attributes.find((a) => a.key === 'service.name');
    expect(service?.value.stringValue).toBe('memometer-metrics-json');
  });

  it('OTLP http/protobuf (the default) to OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, pushed every OTEL_METRIC_EXPORT_INTERVAL', async () => {
    setEnv({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${httpBase}/custom/metrics`, OTEL_METRIC_EXPORT_INTERVAL: '100' });
    const telemetry = startTelemetry({});
    const empty = await record();
    // Pushed by the interval, before any shutdown.
    for (let i = 0; i < 100 && !received.length; i++) await new Promise((r) => setTimeout(r, 20));
    await telemetry.shutdown();
    await empty();
    expect(received.length).toBeGreaterThan(0);
    expect(received.every((r) => r.path === '/custom/metrics' && r.contentType === 'application/x-protobuf')).toBe(true);
    const body = Buffer.concat(received.map((r) => r.body));
    for (const name of [...NAMES, 'memometer.reason', 'queue_full']) expect(body.includes(name), name).toBe(true);
  });

  it('OTLP grpc (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL) to OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    setEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: grpcBase });
    const telemetry = startTelemetry({ serviceName: 'memometer-metrics-grpc' });
    const empty = await record();
    await telemetry.shutdown();
    await empty();
    expect(received).toEqual([]);
    expect(grpcReceived.length).toBeGreaterThan(0);
    const body = Buffer.concat(grpcReceived);
    for (const name of [...NAMES, 'memometer-metrics-grpc', 'rerun']) expect(body.includes(name), name).toBe(true);
  });

  it('OTEL_METRICS_EXPORTER=none sends nothing', async () => {
    setEnv({ OTEL_METRICS_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: httpBase });
    const telemetry = startTelemetry({});
    await (await record())();
    await telemetry.shutdown();
    expect(received).toEqual([]);
  });

  it('OTEL_METRICS_EXPORTER=prometheus serves the metrics on OTEL_EXPORTER_PROMETHEUS_PORT/metrics', async () => {
    const port = await freePort();
    setEnv({ OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) });
    const telemetry = startTelemetry({});
    let empty: (() => Promise<void>) | undefined;
    try {
      empty = await record();
      const response = await retry(() => fetch(`http://127.0.0.1:${port}/metrics`));
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await response.text();
      expect(text).toMatch(/^# TYPE memometer_queue_depth gauge$/m);
      expect(sample(text, 'memometer_queue_depth')).toBe(1);
      expect(sample(text, 'memometer_measurements_running')).toBe(1);
      expect(sample(text, 'memometer_admission_refusals_total', { memometer_reason: 'queue_full' })).toBe(1);
      expect(sample(text, 'memometer_lease_takeovers_total', { memometer_outcome: 'rerun' })).toBe(1);
      const run = { memometer_mode: 'frozen', memometer_outcome: 'succeeded' };
      expect(sample(text, 'memometer_measurement_duration_count', run)).toBe(1);
      expect(sample(text, 'memometer_measurement_duration_bucket', { ...run, le: '+Inf' })).toBe(1);
      expect(sample(text, 'memometer_training_throughput_sum', { memometer_mode: 'frozen' })).toBe(1234);
      expect(sample(text, 'memometer_storage_errors_total', { memometer_storage_kind: 's3', memometer_storage_operation: 'put', error_type: 'timeout' })).toBe(1);
      expect(text).toMatch(/^# TYPE memometer_measurement_duration histogram$/m);
      expect(text).toMatch(/^# UNIT memometer_measurement_duration s$/m);
    } finally {
      await telemetry.shutdown();
      await empty?.();
    }
    // The endpoint closes with the SDK.
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });
});

/**
 * The value of the one sample of `name` whose labels include `labels` (exposition text:
 * `name{a="x",b="y"} value`); undefined when none, an error when several match.
 */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = text.split('\n').flatMap((line) => {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) return [];
    const have: Record<string, string> = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    return Object.entries(labels).every(([k, v]) => have[k] === v) ? [Number(m[3])] : [];
  });
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0];
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The exporter starts listening asynchronously. */
async function retry<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (error) {
      if (i >= 50) throw error;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
