// Real OTLP exports, configured only through OTEL_* variables, to receivers run by the test:
// OTLP/HTTP (JSON and protobuf) on node:http and OTLP/gRPC on a grpc-js server.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { context, trace } from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MeasurementEvent } from '../../src/metric/types.js';
import { startTelemetry } from '../../src/telemetry/setup.js';
import { startOtlpReceivers, type OtlpReceivers, type Received } from '../support/otlp-receivers.js';
import { MeasurementTracing, tracer, withSpan } from '../../src/telemetry/spans.js';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

let receivers: OtlpReceivers;
let httpRequests: Received[];
let grpcRequests: Buffer[];
let httpBase: string;
let grpcBase: string;

beforeAll(async () => {
  receivers = await startOtlpReceivers(EXPORT_PATH);
  ({ http: httpRequests, grpc: grpcRequests, httpBase, grpcBase } = receivers);
});
afterAll(() => receivers.close());

const OTEL_VARS = [
  'OTEL_SDK_DISABLED', 'OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_METRICS_EXPORTER',
];
const saved = Object.fromEntries(OTEL_VARS.map((k) => [k, process.env[k]]));
/** Traces only (metrics have their own test, metrics-export.test.ts). */
function setEnv(vars: Record<string, string>) {
  for (const k of OTEL_VARS) delete process.env[k];
  Object.assign(process.env, { OTEL_METRICS_EXPORTER: 'none', ...vars });
}
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  httpRequests.length = 0;
  grpcRequests.length = 0;
});

const events: MeasurementEvent[] = [
  {
    type: 'planned', backend: 'wasm', mode: 'frozen', heads: 'shared', copyDepths: [1], headsPerDepth: 1, headParameters: [650],
    samples: { train: 100, heldOut: 20, heldOutSource: 'train-split' }, numClasses: 10, estimatedBytes: 1e6,
    model: { format: 'tfjs', notes: [], inputLayout: 'NHWC' }, datasetLayout: 'NHWC',
  },
  { type: 'features', seconds: 0.01, samples: 120 },
  { type: 'epoch', seed: 7, copyDepth: 1, epoch: 1, epochs: 1, randomLabelAccuracy: 0.2, losses: { randomLabel: 2.2 }, samplesPerSecond: 900 },
  {
    type: 'depthResult',
    result: {
      copyDepth: 1, randomLabelAccuracy: 0.2, randomLabelAccuracyStd: 0, chance: 0.1, memorizationScore: 0.11, memorizationScoreStd: 0,
      heldOutRandomLabelAccuracy: 0.1, classTrainAccuracy: 0.5, classTestAccuracy: 0.4, headParameters: 650, seeds: [], curve: [0.2],
    },
  },
];

/** A download span and the measurement spans under one 'rpc' root. */
async function makeSpans(): Promise<void> {
  const rpc = tracer.startSpan('rpc');
  const parent = trace.setSpan(context.active(), rpc);
  await withSpan('memometer.model.download', { model_uri: 's3://m/cnn' }, async () => {}, parent);
  const tracing = new MeasurementTracing(parent, { measurement_id: 'otlp-1' });
  for (const e of events) tracing.onEvent(e);
  tracing.end();
  rpc.end();
}

const SPAN_NAMES = ['rpc', 'memometer.model.download', 'memometer.plan', 'memometer.features', 'memometer.depth', 'memometer.epoch'];

interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}
interface JsonExport {
  resourceSpans: { resource: { attributes: JsonSpan['attributes'] }; scopeSpans: { spans: JsonSpan[] }[] }[];
}
const jsonSpans = (body: Buffer) => (JSON.parse(body.toString()) as JsonExport).resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
const serviceNames = (body: Buffer) =>
  (JSON.parse(body.toString()) as JsonExport).resourceSpans.map((r) => r.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue);

describe('OTLP export configured from OTEL_* variables', () => {
  it('http/json to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces', async () => {
    setEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_ENDPOINT: httpBase, OTEL_SERVICE_NAME: 'memometer-otlp-json' });
    const telemetry = startTelemetry({ serviceName: 'ignored: OTEL_SERVICE_NAME wins' });
    await makeSpans();
    await telemetry.shutdown();

    expect(httpRequests.length).toBeGreaterThan(0);
    expect(httpRequests.every((r) => r.path === '/v1/traces' && r.contentType.startsWith('application/json'))).toBe(true);
    const spans = httpRequests.flatMap((r) => jsonSpans(r.body));
    expect(new Set(httpRequests.flatMap((r) => serviceNames(r.body)))).toEqual(new Set(['memometer-otlp-json']));
    expect(spans.map((s) => s.name).sort()).toEqual([...SPAN_NAMES].sort());
    const one = (name: string) => spans.find((s) => s.name === name)!;
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([one('rpc').traceId]));
    expect(one('memometer.epoch').parentSpanId).toBe(one('memometer.depth').spanId);
    expect(one('memometer.depth').parentSpanId).toBe(one('rpc').spanId);
    expect(one('memometer.model.download').parentSpanId).toBe(one('rpc').spanId);
    expect(one('memometer.epoch').attributes).toContainEqual({ key: 'memometer.seed', value: { intValue: 7 } });
    expect(one('memometer.depth').attributes).toContainEqual({ key: 'memometer.memorization_score', value: { doubleValue: 0.11 } });
  });

  it('http/protobuf (the default protocol) to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', async () => {
    setEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${httpBase}/custom/traces` });
    const telemetry = startTelemetry({ serviceName: 'memometer-otlp-proto' });
    await makeSpans();
    await telemetry.shutdown();

    expect(httpRequests.length).toBeGreaterThan(0);
    expect(httpRequests.every((r) => r.path === '/custom/traces' && r.contentType === 'application/x-protobuf')).toBe(true);
    // Protobuf carries strings as raw UTF-8: the names are in the bytes, JSON is not.
    const body = Buffer.concat(httpRequests.map((r) => r.body));
    expect(() => JSON.parse(body.toString()) as unknown).toThrow();
    for (const name of [...SPAN_NAMES, 'memometer-otlp-proto', 'memometer.copy_depth', 'otlp-1']) expect(body.includes(name)).toBe(true);
  });

  it('grpc to OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    setEnv({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: grpcBase });
    const telemetry = startTelemetry({ serviceName: 'memometer-otlp-grpc' });
    await makeSpans();
    await telemetry.shutdown();

    expect(grpcRequests.length).toBeGreaterThan(0);
    const body = Buffer.concat(grpcRequests);
    for (const name of [...SPAN_NAMES, 'memometer-otlp-grpc']) expect(body.includes(name)).toBe(true);
    // The exporter's own Export call is not traced.
    expect(body.includes('TraceService/Export')).toBe(false);
  });

  it('OTEL_TRACES_EXPORTER=none records and sends nothing; OTEL_SDK_DISABLED=true starts nothing', async () => {
    setEnv({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: httpBase });
    const telemetry = startTelemetry({});
    expect(telemetry.enabled).toBe(true);
    expect(tracer.startSpan('x').isRecording()).toBe(false);
    await makeSpans();
    await telemetry.shutdown();
    expect(httpRequests).toEqual([]);

    setEnv({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: httpBase });
    const disabled = startTelemetry({});
    expect(disabled.enabled).toBe(false);
    expect(tracer.startSpan('x').isRecording()).toBe(false);
    await disabled.shutdown();
  });
});

describe('a real Node process importing telemetry/register.js first', () => {
  it('propagates the client span to the server span and exports both (OTLP/JSON)', async () => {
    const fixture = fileURLToPath(new URL('./fixtures/traced-call.ts', import.meta.url));
    const env: NodeJS.ProcessEnv = { ...process.env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_ENDPOINT: httpBase, OTEL_SERVICE_NAME: 'memometer-e2e', OTEL_METRICS_EXPORTER: 'none' };
    for (const k of ['OTEL_SDK_DISABLED', 'OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) delete env[k];
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', fixture], { env, timeout: 60_000 });
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ reply: 'hello node', enabled: true });

    const spans = httpRequests.flatMap((r) => jsonSpans(r.body));
    expect(new Set(httpRequests.flatMap((r) => serviceNames(r.body)))).toEqual(new Set(['memometer-e2e']));
    const [callSpan, serverSpan] = ['grpc.memometer.test.Echo/Say', 'grpc.memometer.test.Echo/Say'].map((name, i) =>
      spans.filter((s) => s.name === name).find((s) => (s as JsonSpan & { kind: number }).kind === (i === 0 ? 3 : 2)),
    );
    const caller = spans.find((s) => s.name === 'caller');
    const handler = spans.find((s) => s.name === 'memometer.handler');
    expect(caller && callSpan && serverSpan && handler).toBeTruthy();
    expect(callSpan!.parentSpanId).toBe(caller!.spanId);
    expect(serverSpan!.parentSpanId).toBe(callSpan!.spanId);
    expect(handler!.parentSpanId).toBe(serverSpan!.spanId);
    expect(new Set([caller, callSpan, serverSpan, handler].map((s) => s!.traceId)).size).toBe(1);
  });
});
