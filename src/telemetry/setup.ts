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
 * Metrics (the instruments are in ./metrics.ts), from the same variables:
 * - OTEL_METRICS_EXPORTER             otlp (default) | prometheus | console | none (comma list allowed)
 * - OTEL_EXPORTER_OTLP_METRICS_PROTOCOL overrides OTEL_EXPORTER_OTLP_PROTOCOL for metrics
 * - OTEL_EXPORTER_OTLP_METRICS_ENDPOINT full URL; else OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/metrics)
 * - OTEL_METRIC_EXPORT_INTERVAL / OTEL_METRIC_EXPORT_TIMEOUT  OTLP push period and timeout (ms;
 *   default 60000 / 30000)
 * - OTEL_EXPORTER_PROMETHEUS_HOST / OTEL_EXPORTER_PROMETHEUS_PORT  where the Prometheus scrape
 *   endpoint listens (default all interfaces, port 9464; path /metrics), with OTEL_METRICS_EXPORTER=prometheus
 * No log exporter is started.
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
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import type { IMetricReader } from '@opentelemetry/sdk-metrics';
import type { SpanExporter } from '@opentelemetry/sdk-trace';

const require = createRequire(import.meta.url);

/**
 * The SDK packages, loaded through require() (their CommonJS builds) when telemetry starts, not
 * imported: the ESM builds of the OTLP/gRPC exporters `import * as grpc from '@grpc/grpc-js'`,
 * and the first ESM import of a CommonJS module fixes the named exports every later ESM import
 * sees. Imported here, they would fix the unpatched makeGenericClientConstructor before
 * startTelemetry() could patch it (no client spans). Types only are imported.
 */
const sdkModules = () => ({
  ...(require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node')),
  ...(require('@opentelemetry/instrumentation-grpc') as typeof import('@opentelemetry/instrumentation-grpc')),
  ...(require('@opentelemetry/sdk-trace') as Pick<typeof import('@opentelemetry/sdk-trace'), 'SimpleSpanProcessor'>),
});

export const DEFAULT_SERVICE_NAME = 'memometer';

export interface TelemetryOptions {
  /** service.name; OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins. Default 'memometer'. */
  serviceName?: string;
  /** Export to this exporter with a SimpleSpanProcessor instead of the OTEL_* configured ones (tests). */
  exporter?: SpanExporter;
  /** Read metrics with these readers instead of the OTEL_METRICS_EXPORTER configured ones (tests); [] for none. */
  metricReaders?: IMetricReader[];
  /** false: start nothing. Default true; OTEL_SDK_DISABLED=true disables regardless. */
  enabled?: boolean;
}

export interface Telemetry {
  /** Whether an SDK was started (false: disabled, every span is a no-op). */
  readonly enabled: boolean;
  /** Exports the spans ended so far and the metrics recorded so far (push readers). */
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

  const { GrpcInstrumentation, NodeSDK, SimpleSpanProcessor } = sdkModules();
  const instrumentation = new GrpcInstrumentation();
  const serviceNameFromEnv =
    Boolean(process.env.OTEL_SERVICE_NAME?.trim()) || /(^|,)\s*service\.name\s*=/.test(process.env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  const sdk = new NodeSDK({
    ...(serviceNameFromEnv ? {} : { serviceName: options.serviceName ?? DEFAULT_SERVICE_NAME }),
    ...(options.exporter ? { spanProcessors: [new SimpleSpanProcessor({ exporter: options.exporter })] } : {}),
    // Without metricReaders NodeSDK reads OTEL_METRICS_EXPORTER (see the module comment).
    ...(options.metricReaders ? { metricReaders: options.metricReaders } : {}),
    instrumentations: [instrumentation],
    logRecordProcessors: [],
  });
  sdk.start();
  // The require() that instrumentation-grpc hooks (see the module comment).
  require('@grpc/grpc-js');

  const provider = () => {
    const delegate = (trace.getTracerProvider() as { getDelegate?: () => unknown }).getDelegate?.();
    return delegate as { forceFlush?: () => Promise<void> } | undefined;
  };
  // Only set when a metric reader was configured (else the API's no-op provider, without forceFlush).
  const meterProvider = metrics.getMeterProvider() as { forceFlush?: () => Promise<void> };
  let stopped: Promise<void> | undefined;
  const telemetry: Telemetry = {
    enabled: true,
    forceFlush: async () => {
      await Promise.all([provider()?.forceFlush?.(), meterProvider.forceFlush?.()]);
    },
    shutdown: () =>
      (stopped ??= (async () => {
        try {
          await sdk.shutdown();
        } finally {
          instrumentation.disable();
          // NodeSDK leaves its globals registered; clear them so that a new start can register.
          trace.disable();
          metrics.disable();
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
