import { context, SpanKind, SpanStatusCode, trace, type HrTime } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DepthResult, EpochEvent, MeasurementEvent, PlanEvent } from '../../src/metric/types.js';
import { startTelemetry, telemetryEnabledByDefault, type Telemetry } from '../../src/telemetry/setup.js';
import { MeasurementTracing, memometerAttributes, tracer, withSpan } from '../../src/telemetry/spans.js';

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;

beforeAll(() => {
  telemetry = startTelemetry({ exporter, serviceName: 'memometer-test' });
});
afterAll(async () => {
  await telemetry.shutdown();
});
beforeEach(() => exporter.reset());
// Exports wait for the resource's async attributes (host.id): flush before reading the exporter.

const ms = (t: HrTime) => t[0] * 1e3 + t[1] / 1e6;
const named = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);
const id = (s: ReadableSpan) => s.spanContext().spanId;
const parentId = (s: ReadableSpan) => s.parentSpanContext?.spanId;

/** A clock that advances 1 s per reading, from a fixed wall-clock time. */
function steppingClock(start = Date.UTC(2025, 0, 1)) {
  let t = start - 1000;
  return () => (t += 1000);
}

const plan: PlanEvent = {
  type: 'planned', backend: 'wasm', mode: 'frozen', heads: 'per-class', copyDepths: [1, 2], headsPerDepth: 10,
  headParameters: [6_500, 120_000], samples: { train: 2000, heldOut: 500, heldOutSource: 'test' }, numClasses: 10,
  estimatedBytes: 50_000_000, model: { format: 'onnx', notes: [], inputLayout: 'NCHW' }, datasetLayout: 'NCHW',
};

const epoch = (copyDepth: number, n: number, extra: Partial<EpochEvent> = {}): EpochEvent => ({
  type: 'epoch', seed: 0, copyDepth, epoch: n, epochs: 2, randomLabelAccuracy: 0.1 + 0.1 * n,
  losses: { randomLabel: 2.3 - 0.2 * n }, samplesPerSecond: 4000 + n, ...extra,
});

const result = (copyDepth: number, accuracy: number): DepthResult => ({
  copyDepth, randomLabelAccuracy: accuracy, randomLabelAccuracyStd: 0, chance: 0.1,
  memorizationScore: (accuracy - 0.1) / 0.9, memorizationScoreStd: 0, heldOutRandomLabelAccuracy: 0.1,
  classTrainAccuracy: 0.9, classTestAccuracy: 0.85, headParameters: copyDepth === 1 ? 6_500 : 120_000,
  seeds: [{ seed: 0, randomLabelAccuracy: accuracy, memorizationScore: (accuracy - 0.1) / 0.9, heldOutRandomLabelAccuracy: 0.1, classTrainAccuracy: 0.9, classTestAccuracy: 0.85 }],
  curve: [0.2, accuracy],
});

/** What the frozen engine yields for copy depths 1 and 2, two epochs, one seed. */
const frozenRun: MeasurementEvent[] = [
  plan,
  { type: 'features', seconds: 0.5, samples: 2500 },
  epoch(1, 1), epoch(1, 2), { type: 'depthResult', result: result(1, 0.3) },
  epoch(2, 1), epoch(2, 2), { type: 'depthResult', result: result(2, 0.6) },
  {
    type: 'done',
    result: { mode: 'frozen', heads: 'per-class', numRandomLabels: 10, chance: 0.1, samples: plan.samples, depths: [result(1, 0.3), result(2, 0.6)], warnings: [], seconds: 8 },
  },
];

const common = { measurement_id: 'm-1', model_uri: 's3://models/cnn', dataset_uri: 's3://data/fmnist.npz', mode: 'frozen', n: 10 };

/** Feeds the events under a parent span and returns the parent span. */
async function traceRun(events: MeasurementEvent[], clock = steppingClock()): Promise<ReadableSpan> {
  const parent = tracer.startSpan('rpc', { kind: SpanKind.SERVER });
  const tracing = new MeasurementTracing(trace.setSpan(context.active(), parent), common, clock);
  for (const event of events) tracing.onEvent(event);
  tracing.end();
  parent.end();
  await telemetry.forceFlush();
  return named('rpc')[0]!;
}

describe('MeasurementTracing', () => {
  it('turns a frozen run into plan, features, depth and epoch spans under the parent', async () => {
    const t0 = Date.UTC(2025, 0, 1);
    const rpc = await traceRun(frozenRun, steppingClock(t0));
    // Clock readings: construction t0, then one per event (planned t0+1s, features t0+2s, ...).
    const [planSpan] = named('memometer.plan');
    const [features] = named('memometer.features');
    const depths = named('memometer.depth');
    const epochs = named('memometer.epoch');
    expect(exporter.getFinishedSpans().map((s) => s.name).sort()).toEqual(
      ['memometer.depth', 'memometer.depth', 'memometer.epoch', 'memometer.epoch', 'memometer.epoch', 'memometer.epoch',
        'memometer.features', 'memometer.plan', 'rpc'],
    );
    for (const s of [planSpan!, features!, ...depths]) {
      expect(parentId(s)).toBe(id(rpc));
      expect(s.spanContext().traceId).toBe(rpc.spanContext().traceId);
    }

    expect(ms(planSpan!.startTime)).toBe(t0);
    expect(ms(planSpan!.endTime)).toBe(t0 + 1000);
    expect(planSpan!.attributes).toMatchObject({
      'memometer.measurement_id': 'm-1', 'memometer.backend': 'wasm', 'memometer.copy_depths': [1, 2],
      'memometer.heads': 10, 'memometer.samples.train': 2000, 'memometer.estimated_bytes': 50_000_000,
    });

    // The feature pass: ends at its event (t0+2s) and lasted `seconds`.
    expect(ms(features!.endTime)).toBe(t0 + 2000);
    expect(ms(features!.endTime) - ms(features!.startTime)).toBeCloseTo(500, 3);
    expect(features!.attributes).toMatchObject({ 'memometer.samples': 2500, 'memometer.seconds': 0.5, 'memometer.backend': 'wasm' });

    const [d1, d2] = [...depths].sort((a, b) => Number(a.attributes['memometer.copy_depth']) - Number(b.attributes['memometer.copy_depth']));
    expect(d1!.attributes).toMatchObject({
      'memometer.copy_depth': 1, 'memometer.heads': 10, 'memometer.head_parameters': 6_500,
      'memometer.random_label_accuracy': 0.3, 'memometer.memorization_score': expect.closeTo(2 / 9, 10),
      'memometer.held_out_random_label_accuracy': 0.1, 'memometer.class_test_accuracy': 0.85,
      'memometer.measurement_id': 'm-1', 'memometer.model_uri': 's3://models/cnn', 'memometer.mode': 'frozen', 'memometer.n': 10,
    });
    expect(d2!.attributes).toMatchObject({ 'memometer.copy_depth': 2, 'memometer.head_parameters': 120_000, 'memometer.random_label_accuracy': 0.6 });
    // Depth 1 starts after the features event (t0+2s) and ends at its result (t0+5s).
    expect([ms(d1!.startTime), ms(d1!.endTime)]).toEqual([t0 + 2000, t0 + 5000]);
    expect([ms(d2!.startTime), ms(d2!.endTime)]).toEqual([t0 + 5000, t0 + 8000]);

    // Epoch spans are children of their depth's span and start at that depth's previous event.
    const epochsOf = (depth: ReadableSpan) =>
      epochs.filter((e) => parentId(e) === id(depth)).sort((a, b) => ms(a.startTime) - ms(b.startTime));
    const [e11, e12] = epochsOf(d1!);
    const [e21, e22] = epochsOf(d2!);
    expect([e11, e12, e21, e22].every(Boolean)).toBe(true);
    expect([ms(e11!.startTime), ms(e11!.endTime), ms(e12!.startTime), ms(e12!.endTime)]).toEqual([t0 + 2000, t0 + 3000, t0 + 3000, t0 + 4000]);
    expect([ms(e21!.startTime), ms(e21!.endTime)]).toEqual([t0 + 5000, t0 + 6000]);
    expect(e12!.attributes).toEqual(memometerAttributes({
      ...common, backend: 'wasm', head_sharing: 'per-class', copy_depth: 1, seed: 0, epoch: 2, epochs: 2,
      random_label_accuracy: 0.30000000000000004, 'loss.random_label': 1.9, samples_per_second: 4002,
    }));
    expect(e22!.attributes['memometer.copy_depth']).toBe(2);
    expect(exporter.getFinishedSpans().every((s) => s.status.code !== SpanStatusCode.ERROR)).toBe(true);
  });

  it('gives each depth its own timeline when joint training interleaves them', async () => {
    const t0 = Date.UTC(2025, 0, 1);
    await traceRun([
      { ...plan, mode: 'joint' },
      epoch(1, 1, { classAccuracy: 0.8, losses: { randomLabel: 2, classification: 0.5 } }), epoch(2, 1), epoch(1, 2), epoch(2, 2),
      { type: 'depthResult', result: result(1, 0.3) }, { type: 'depthResult', result: result(2, 0.6) },
    ], steppingClock(t0));
    const depths = named('memometer.depth');
    expect(depths).toHaveLength(2);
    const [d1, d2] = [...depths].sort((a, b) => ms(a.startTime) - ms(b.startTime));
    // Depth 2 starts at the event before its first epoch (depth 1's epoch 1, t0+2s).
    expect([ms(d1!.startTime), ms(d2!.startTime)]).toEqual([t0 + 1000, t0 + 2000]);
    const second = named('memometer.epoch').filter((e) => e.attributes['memometer.epoch'] === 2);
    const start = (d: ReadableSpan) => ms(second.find((e) => parentId(e) === id(d))!.startTime);
    // Epoch 2 of each depth starts at that depth's epoch 1, not at the other depth's event.
    expect([start(d1!), start(d2!)]).toEqual([t0 + 2000, t0 + 3000]);
    const first = named('memometer.epoch').find((e) => e.attributes['memometer.epoch'] === 1 && parentId(e) === id(d1!));
    expect(first!.attributes).toMatchObject({ 'memometer.class_accuracy': 0.8, 'memometer.loss.classification': 0.5, 'memometer.mode': 'joint' });
  });

  it('fail() records the error on the open spans and ends them', async () => {
    const parent = tracer.startSpan('rpc');
    const tracing = new MeasurementTracing(trace.setSpan(context.active(), parent), common);
    tracing.onEvent(plan);
    tracing.onEvent(epoch(1, 1));
    tracing.onEvent({ type: 'depthResult', result: result(1, 0.3) });
    tracing.onEvent(epoch(2, 1));
    tracing.fail(new Error('cancelled by the client'));
    tracing.fail(new Error('again')); // nothing left open
    parent.end();
    await telemetry.forceFlush();
    const depths = named('memometer.depth');
    const failed = depths.find((d) => d.attributes['memometer.copy_depth'] === 2)!;
    const done = depths.find((d) => d.attributes['memometer.copy_depth'] === 1)!;
    expect(failed.status).toEqual({ code: SpanStatusCode.ERROR, message: 'cancelled by the client' });
    expect(failed.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([['exception', 'cancelled by the client']]);
    expect(done.status.code).toBe(SpanStatusCode.UNSET);
    expect(named('memometer.epoch').every((e) => e.status.code === SpanStatusCode.UNSET)).toBe(true);
    expect(named('memometer.plan')).toHaveLength(1);
  });

  it('fails the plan span when the engine throws before planning', async () => {
    const tracing = new MeasurementTracing(context.active(), common);
    tracing.fail(new Error('the measurement needs about 900 MiB'));
    await telemetry.forceFlush();
    const [planSpan] = named('memometer.plan');
    expect(planSpan!.status.code).toBe(SpanStatusCode.ERROR);
    expect(planSpan!.events[0]!.attributes?.['exception.message']).toBe('the measurement needs about 900 MiB');
  });
});

describe('withSpan', () => {
  it('returns the result and makes its span the active parent', async () => {
    const value = await withSpan('memometer.model.download', { model_uri: 's3://models/cnn', 'memometer.bytes': 12 }, async () =>
      withSpan('inner', {}, async (span) => span.spanContext().spanId),
    );
    await telemetry.forceFlush();
    const [outer] = named('memometer.model.download');
    const [inner] = named('inner');
    expect(value).toBe(id(inner!));
    expect(parentId(inner!)).toBe(id(outer!));
    expect(outer!.attributes).toEqual({ 'memometer.model_uri': 's3://models/cnn', 'memometer.bytes': 12 });
    expect(outer!.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('records the exception, sets ERROR and ends the span when fn throws', async () => {
    const error = new Error('no such key: cnn/model.json');
    await expect(
      withSpan('memometer.dataset.download', { dataset_uri: 's3://data/x.npz' }, async () => {
        throw error;
      }),
    ).rejects.toBe(error);
    await telemetry.forceFlush();
    const [span] = named('memometer.dataset.download');
    expect(span!.ended).toBe(true);
    expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no such key: cnn/model.json' });
    const [event] = span!.events;
    expect(event!.name).toBe('exception');
    expect(event!.attributes).toMatchObject({ 'exception.type': 'Error', 'exception.message': 'no such key: cnn/model.json' });
    expect(String(event!.attributes?.['exception.stacktrace'])).toContain('spans.test.ts');
  });

  it('runs under an explicit parent context', async () => {
    const parent = tracer.startSpan('rpc');
    await withSpan('child', {}, async () => {}, trace.setSpan(context.active(), parent));
    parent.end();
    await telemetry.forceFlush();
    expect(parentId(named('child')[0]!)).toBe(parent.spanContext().spanId);
  });
});

describe('setup', () => {
  it('names the service and refuses a second start', async () => {
    tracer.startSpan('x').end();
    await telemetry.forceFlush();
    expect(named('x')[0]!.resource.attributes['service.name']).toBe('memometer-test');
    expect(() => startTelemetry({ exporter })).toThrow(/already started/);
    expect(startTelemetry({ enabled: false }).enabled).toBe(false);
  });

  it('is on by default for the server, and for the CLI only when an exporter is configured', () => {
    expect(telemetryEnabledByDefault('server', {})).toBe(true);
    expect(telemetryEnabledByDefault('server', { OTEL_SDK_DISABLED: 'true' })).toBe(false);
    expect(telemetryEnabledByDefault('cli', {})).toBe(false);
    expect(telemetryEnabledByDefault('cli', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(telemetryEnabledByDefault('cli', { OTEL_TRACES_EXPORTER: 'console' })).toBe(true);
    expect(telemetryEnabledByDefault('cli', { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(false);
  });
});
