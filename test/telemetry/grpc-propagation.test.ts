// A plain ESM import, evaluated before startTelemetry(): what the server does.
import * as grpc from '@grpc/grpc-js';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGrpc, startTelemetry, type Telemetry } from '../../src/telemetry/setup.js';
import { tracer, withSpan } from '../../src/telemetry/spans.js';
import { EchoService } from './fixtures/echo-service.js';

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let server: grpc.Server;
let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
/** The traceparent metadata each call arrived with. */
const traceparents: string[] = [];


beforeAll(async () => {
  telemetry = startTelemetry({ exporter, serviceName: 'memometer-test' });
  server = new grpc.Server();
  server.addService(EchoService, {
    say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      traceparents.push(String(call.metadata.get('traceparent')[0] ?? ''));
      // A span made inside the handler is a child of the server span (the active context).
      void withSpan('memometer.handler', {}, async () => Buffer.from(`hello ${call.request.toString()}`)).then((reply) => callback(null, reply));
    },
    count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const parent = context.active();
      void (async () => {
        for (let i = 0; i < 3; i++) {
          await new Promise((r) => setTimeout(r, 5));
          await withSpan('memometer.step', { i }, async () => void call.write(Buffer.from(String(i))), parent);
        }
        call.end();
      })();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const Client = grpc.makeGenericClientConstructor(EchoService, 'Echo');
  client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof client;
});

afterAll(async () => {
  client?.close();
  await new Promise<void>((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
  await telemetry?.shutdown();
});

const finished = async () => {
  await telemetry.forceFlush();
  return exporter.getFinishedSpans();
};
const byName = (spans: ReadableSpan[], name: string, kind?: SpanKind) =>
  spans.filter((s) => s.name === name && (kind === undefined || s.kind === kind));

describe('grpc-js instrumentation under ESM', () => {
  it('startTelemetry() patched the module the ESM import got, which loadGrpc() returns', () => {
    expect(grpc.Server.prototype).toHaveProperty(['register', '__wrapped'], true);
    expect(grpc.Client.prototype).toHaveProperty(['makeUnaryRequest', '__wrapped'], true);
    expect(loadGrpc().Server).toBe(grpc.Server);
  });

  it('a unary call gives a client span and a server span whose parent it is (W3C traceparent)', async () => {
    exporter.reset();
    const caller = tracer.startSpan('caller');
    const reply = await context.with(trace.setSpan(context.active(), caller), () =>
      new Promise<Buffer>((resolve, reject) =>
        client.say!(Buffer.from('memometer'), (err: Error | null, value: Buffer) => (err ? reject(err) : resolve(value))),
      ),
    );
    caller.end();
    expect(reply.toString()).toBe('hello memometer');

    const spans = await finished();
    const [clientSpan] = byName(spans, 'grpc.memometer.test.Echo/Say', SpanKind.CLIENT);
    const [serverSpan] = byName(spans, 'grpc.memometer.test.Echo/Say', SpanKind.SERVER);
    const [handler] = byName(spans, 'memometer.handler');
    expect(clientSpan && serverSpan && handler).toBeTruthy();
    const traceId = caller.spanContext().traceId;
    expect([clientSpan!, serverSpan!, handler!].map((s) => s.spanContext().traceId)).toEqual([traceId, traceId, traceId]);
    expect(clientSpan!.parentSpanContext?.spanId).toBe(caller.spanContext().spanId);
    expect(serverSpan!.parentSpanContext?.spanId).toBe(clientSpan!.spanContext().spanId);
    expect(serverSpan!.parentSpanContext?.isRemote).toBe(true);
    expect(handler!.parentSpanContext?.spanId).toBe(serverSpan!.spanContext().spanId);
    expect(traceparents.at(-1)).toBe(`00-${traceId}-${clientSpan!.spanContext().spanId}-01`);
    expect(serverSpan!.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.method': 'Say', 'rpc.service': 'memometer.test.Echo', 'rpc.grpc.status_code': 0 });
  });

  it('a server-streaming call: spans made while streaming are children of the server span', async () => {
    exporter.reset();
    const received: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = client.count!(Buffer.alloc(0)) as grpc.ClientReadableStream<Buffer>;
      stream.on('data', (b: Buffer) => received.push(b.toString()));
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
    expect(received).toEqual(['0', '1', '2']);
    const spans = await finished();
    const [clientSpan] = byName(spans, 'grpc.memometer.test.Echo/Count', SpanKind.CLIENT);
    const [serverSpan] = byName(spans, 'grpc.memometer.test.Echo/Count', SpanKind.SERVER);
    expect(serverSpan!.parentSpanContext?.spanId).toBe(clientSpan!.spanContext().spanId);
    const steps = byName(spans, 'memometer.step');
    expect(steps).toHaveLength(3);
    for (const step of steps) expect(step.parentSpanContext?.spanId).toBe(serverSpan!.spanContext().spanId);
  });
});
