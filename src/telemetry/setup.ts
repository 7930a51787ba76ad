/**
 * OpenTelemetry setup: one call at process start, before the gRPC server or client is built.
 *
 * Configuration follows the standard OTEL_* variables (read by @opentelemetry/sdk-node):
 * - OTEL_SDK_DISABLED=true            no SDK at all (the API stays a no-op)
 * - OTEL_TRACES_EXPORTER              otlp (default) | console | none (comma list allowed)
 * - OTEL_EXPORTER_OTLP_PROTOCOL       http/protobuf (default) | http/json | grpc
 *   (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL overrides it for traces)
 * - OTEL_EXPORTER_OTLP_ENDPOINT       base URL (http: /v1/traces is appended) or
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  full URL; defaults localhost:4318 (http) / :4317 (grpc)
 * - OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_PROPAGATORS, OTEL_TRACES_SAMPLER,
 *   OTEL_BSP_*, OTEL_LOG_LEVEL
 * Only traces are set up: no metric reader and no log exporter are started.
 *
 * gRPC instrumentation and ESM: @opentelemetry/instrumentation-grpc patches @grpc/grpc-js only
 * when it is loaded through require(); an ESM `import` never triggers that. startTelemetry()
 * therefore require()s grpc-js once, right after the SDK started, which patches the one shared
 * CommonJS instance that every ESM import of grpc-js also gets. What that covers:
 * - Server spans (and the traceparent extracted from incoming metadata): Server.prototype.register
 *   is patched, so they work with a plain `import * as grpc from '@grpc/grpc-js'` evaluated
 *   before startTelemetry(), as long as startTelemetry() runs before server.addService().
 * - Client spans (and the traceparent sent): clients built by makeGenericClientConstructor /
 *   loadPackageDefinition (ts-proto's generated clients build theirs when src/gen is evaluated)
 *   are only traced when built with the patched function. In real Node, a named ESM import of
 *   grpc-js binds the function once, when grpc-js is first imported; so grpc-js must first be
 *   imported after startTelemetry(). Import ./register.js as the first import of the entry point
 *   (it calls startTelemetry() while being evaluated), or take the module from loadGrpc(), or
 *   import client code dynamically after startTelemetry(). (vitest reads a CommonJS module's
 *   exports live through its namespace, so tests there do not show this.)
 */
import { createRequire } from 'node:module';
import { context, propagation, trace } from '@opentelemetry/api';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';

const require = createRequire(import.meta.url);

export const DEFAULT_SERVICE_NAME = 'memometer';

export interface TelemetryOptions {
  /** service.name; OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins. Default 'memometer'. */
  serviceName?: string;
  /** Export to this exporter with a SimpleSpanProcessor instead of the OTEL_* configured ones (tests). */
  exporter?: SpanExporter;
  /** false: start nothing. Default true; OTEL_SDK_DISABLED=true disables regardless. */
  enabled?: boolean;
}

export interface Telemetry {
  /** Whether an SDK was started (false: disabled, every span is a no-op). */
  readonly enabled: boolean;
  /** Exports the spans ended so far. */
  forceFlush(): Promise<void>;
  /** Flushes, stops exporting and removes the instrumentation; a later startTelemetry() starts afresh. */
  shutdown(): Promise<void>;
}

const DISABLED: Telemetry = { enabled: false, forceFlush: async () => {}, shutdown: async () => {} };

let running: Telemetry | undefined;

const envFlag = (value: string | undefined) => value?.trim().toLowerCase() === 'true';

/**
 * Whether telemetry is on when the caller does not say: always for the server; for the CLI only
 * when the environment names a trace exporter or an OTLP endpoint (a one-off CLI run should not
 * try to reach a collector on localhost that nobody set up).
 */
export function telemetryEnabledByDefault(kind: 'server' | 'cli', env: NodeJS.ProcessEnv = process.env): boolean {
  if (envFlag(env.OTEL_SDK_DISABLED)) return false;
  if (kind === 'server') return true;
  const exporters = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporters) return !exporters.split(',').map((s) => s.trim()).includes('none');
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim());
}

/**
 * Starts the SDK (synchronous: spans are recorded as soon as it returns) and patches @grpc/grpc-js.
 * Only one telemetry runs per process: calling it again while one runs throws.
 */
export function startTelemetry(options: TelemetryOptions = {}): Telemetry {
  if (options.enabled === false || envFlag(process.env.OTEL_SDK_DISABLED)) return DISABLED;
  if (running) throw new Error('telemetry is already started; shut it down first');

  const instrumentation = new GrpcInstrumentation();
  const serviceNameFromEnv =
    Boolean(process.env.OTEL_SERVICE_NAME?.trim()) || /(^|,)\s*service\.name\s*=/.test(process.env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const sdk = new NodeSDK({
    ...(serviceNameFromEnv ? {} : { serviceName: options.serviceName ?? DEFAULT_SERVICE_NAME }),
    ...(options.exporter ? { spanProcessors: [new SimpleSpanProcessor(options.exporter)] } : {}),
    instrumentations: [instrumentation],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  // The require() that instrumentation-grpc hooks (see the module comment).
  require('@grpc/grpc-js');

  const provider = () => {
    const delegate = (trace.getTracerProvider() as { getDelegate?: () => unknown }).getDelegate?.();
    return delegate as { forceFlush?: () => Promise<void> } | undefined;
  };
  let stopped: Promise<void> | undefined;
  const telemetry: Telemetry = {
    enabled: true,
    forceFlush: async () => {
      await provider()?.forceFlush?.();
    },
    shutdown: () =>
      (stopped ??= (async () => {
        try {
          await sdk.shutdown();
        } finally {
          instrumentation.disable();
          // NodeSDK leaves its globals registered; clear them so that a new start can register.
          trace.disable();
          context.disable();
          propagation.disable();
          running = undefined;
        }
      })()),
  };
  running = telemetry;
  return telemetry;
}

/** @grpc/grpc-js as patched by startTelemetry() (the same instance an ESM import of it returns). */
export function loadGrpc(): typeof import('@grpc/grpc-js') {
  return require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
}
