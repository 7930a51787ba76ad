import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTelemetry, type Telemetry } from '../../src/telemetry/setup.js';

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let support: typeof import('../support/service.js');
let service: Awaited<ReturnType<typeof support.startTestService>>;

beforeAll(async () => {
  telemetry = startTelemetry({ exporter });
  // Loaded after telemetry started, so the generated gRPC client is instrumented too.
  support = await import('../support/service.js');
  service = await support.startTestService();
});
afterAll(async () => {
  await service?.stop();
  await telemetry?.shutdown();
});

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;
const named = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);

describe('OpenTelemetry traces of a measurement', () => {
  it('has the RPC span, propagated from the client, with children for downloads, features, depths and epochs', async () => {
    exporter.reset();
    const bucket = await support.exampleBucket('traced');
    await service.client().measure({
      modelUri: bucket.modelUri, datasetUri: bucket.datasetUri, outputUri: 's3://traced/out', copyDepths: [1, 2], epochs: 2, numRandomLabels: 7,
      inputScaling: { scale: 1 / 255, mean: [], std: [] },
    });
    await telemetry.forceFlush();
    const spans = exporter.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER && s.name.endsWith('MemorizationService/MeasureMemorization'))!;
    const client = spans.find((s) => s.kind === SpanKind.CLIENT && s.name.endsWith('MemorizationService/MeasureMemorization'))!;
    expect(server).toBeDefined();
    expect(client).toBeDefined();
    expect(parentOf(server)).toBe(client.spanContext().spanId);
    const trace = spans.filter((s) => s.spanContext().traceId === server.spanContext().traceId);
    for (const name of ['memometer.model.download', 'memometer.dataset.download', 'memometer.features', 'memometer.report.write']) {
      const [span] = named(trace, name);
      expect(span, name).toBeDefined();
      expect(parentOf(span!)).toBe(server.spanContext().spanId);
    }
    expect(named(trace, 'memometer.model.download')[0]!.attributes['memometer.model_uri']).toBe('s3://traced/model');
    const depths = named(trace, 'memometer.depth');
    expect(depths.map((d) => d.attributes['memometer.copy_depth']).sort()).toEqual([1, 2]);
    const epochs = named(trace, 'memometer.epoch');
    expect(epochs).toHaveLength(4);
    for (const epoch of epochs) {
      const depth = depths.find((d) => d.spanContext().spanId === parentOf(epoch))!;
      expect(depth.attributes['memometer.copy_depth']).toBe(epoch.attributes['memometer.copy_depth']);
      expect(epoch.attributes['memometer.n']).toBe(7);
      expect(epoch.attributes['memometer.mode']).toBe('frozen');
    }
  });

  it('records a failed measurement as an error on its spans', async () => {
    exporter.reset();
    const failed = await service.client()
      .measure({ modelUri: 'examples/fashion-cnn', datasetUri: 'examples/missing.npz' })
      .catch((e: Error) => e);
    expect(failed).toBeInstanceOf(Error);
    await telemetry.forceFlush();
    const download = named(exporter.getFinishedSpans(), 'memometer.dataset.download')[0]!;
    expect(download.status.code).toBe(SpanStatusCode.ERROR);
    expect(download.events.map((e) => e.name)).toContain('exception');
  });
});
