/**
 * Metrics of the server, on the OpenTelemetry metrics API (meter 'memometer'). Readers and
 * exporters are set up by ./setup.ts from OTEL_METRICS_EXPORTER and friends (OTLP push or a
 * Prometheus scrape endpoint); without a started SDK every function here is a no-op.
 *
 *   memometer.queue.depth              gauge (observable)   {measurement}  measurements waiting in the admission queue
 *   memometer.measurements.running     gauge (observable)   {measurement}  measurements holding an admission slot
 *   memometer.measurement.duration     histogram            s              one per run; memometer.mode, memometer.outcome
 *                                                                          (succeeded | failed | cancelled)
 *   memometer.training.throughput      histogram            {sample}/s     one per epoch event; memometer.mode, memometer.backend
 *   memometer.admission.refusals       counter              {request}      memometer.reason (queue_full | draining)
 *   memometer.storage.errors           counter              {error}        memometer.storage.operation, memometer.storage.kind,
 *                                                                          error.type
 *   memometer.lease.takeovers          counter              {takeover}     memometer.outcome (rerun | failed)
 *   rpc.server.call.duration           histogram            s              rpc.system, rpc.service, rpc.method,
 *                                                                          rpc.grpc.status_code (semantic conventions)
 *
 * In Prometheus text (OTEL_METRICS_EXPORTER=prometheus) names have '_' for '.' and counters a
 * `_total` suffix: memometer_queue_depth, memometer_measurements_running,
 * memometer_admission_refusals_total, rpc_server_call_duration_bucket, ...
 *
 * @opentelemetry/instrumentation-grpc (0.300.0) records spans only, no metrics; the RPC duration
 * is recorded here, by instrumentService() wrapping the service's handlers.
 *
 * The metrics API has no proxy provider: an instrument taken from a meter stays bound to the
 * provider of that moment. Instruments are therefore created on first use after each change of
 * the global MeterProvider (a restart of telemetry in tests).
 */
import { metrics, ValueType, type Attributes, type Histogram, type Counter, type MeterProvider } from '@opentelemetry/api';
import type { MeasurementEvent } from '../metric/types.js';
import { memometerAttributes } from './spans.js';

const METER_NAME = 'memometer';

/** Seconds: a measurement takes from seconds to hours. */
const MEASUREMENT_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400];
/** The semantic conventions' advice for rpc.server.call.duration, plus the long MeasureMemorization streams. */
const RPC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 300, 900, 1800, 3600];
const THROUGHPUT_BUCKETS = [10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000];

/** What the admission gauges read: anything with Admission's `load`. */
export interface LoadSource {
  readonly load: { running: number; queued: number };
}

/** Every admission of this process (one per server; tests start several). Weak: a stopped server's goes away. */
const sources = new Set<WeakRef<LoadSource>>();

interface Instruments {
  provider: MeterProvider;
  measurementDuration: Histogram;
  throughput: Histogram;
  refusals: Counter;
  storageErrors: Counter;
  takeovers: Counter;
  rpcDuration: Histogram;
}

let current: Instruments | undefined;

function instruments(): Instruments {
  const provider = metrics.getMeterProvider();
  if (current?.provider === provider) return current;
  const meter = provider.getMeter(METER_NAME);
  const load = () => {
    let running = 0;
    let queued = 0;
    for (const ref of sources) {
      const source = ref.deref();
      if (!source) {
        sources.delete(ref);
        continue;
      }
      running += source.load.running;
      queued += source.load.queued;
    }
    return { running, queued };
  };
  meter
    .createObservableGauge('memometer.queue.depth', {
      description: 'Measurements waiting in the admission queue for a free slot',
      unit: '{measurement}',
      valueType: ValueType.INT,
    })
    .addCallback((result) => result.observe(load().queued));
  meter
    .createObservableGauge('memometer.measurements.running', {
      description: 'Measurements holding an admission slot (running)',
      unit: '{measurement}',
      valueType: ValueType.INT,
    })
    .addCallback((result) => result.observe(load().running));
  current = {
    provider,
    measurementDuration: meter.createHistogram('memometer.measurement.duration', {
      description: 'Duration of a measurement run, from its start (after the queue) to its outcome',
      unit: 's',
      advice: { explicitBucketBoundaries: MEASUREMENT_BUCKETS },
    }),
    throughput: meter.createHistogram('memometer.training.throughput', {
      description: 'Training samples per second of an epoch (epoch events)',
      unit: '{sample}/s',
      advice: { explicitBucketBoundaries: THROUGHPUT_BUCKETS },
    }),
    refusals: meter.createCounter('memometer.admission.refusals', {
      description: 'Measurement requests refused at admission (queue full, server draining)',
      unit: '{request}',
      valueType: ValueType.INT,
    }),
    storageErrors: meter.createCounter('memometer.storage.errors', {
      description: 'Storage calls that failed or timed out (missing objects are not errors)',
      unit: '{error}',
      valueType: ValueType.INT,
    }),
    takeovers: meter.createCounter('memometer.lease.takeovers', {
      description: 'Abandoned measurements (expired lease) this replica claimed',
      unit: '{takeover}',
      valueType: ValueType.INT,
    }),
    rpcDuration: meter.createHistogram('rpc.server.call.duration', {
      description: 'Measures the duration of inbound remote procedure calls',
      unit: 's',
      advice: { explicitBucketBoundaries: RPC_BUCKETS },
    }),
  };
  return current;
}

/** Reports `source.load` as memometer.queue.depth and memometer.measurements.running (Admission calls it). */
export function observeLoad(source: LoadSource): void {
  sources.add(new WeakRef(source));
}

export type RefusalReason = 'queue_full' | 'draining';

export function recordRefusal(reason: RefusalReason): void {
  instruments().refusals.add(1, memometerAttributes({ reason }));
}

export type TakeoverOutcome = 'rerun' | 'failed';

export function recordTakeover(outcome: TakeoverOutcome): void {
  instruments().takeovers.add(1, memometerAttributes({ outcome }));
}

/** A failed or timed-out storage call. `kind`: s3 | file; errorType: the error's class (or 'timeout'). */
export function recordStorageError(operation: string, kind: string, errorType: string): void {
  instruments().storageErrors.add(1, { ...memometerAttributes({ 'storage.operation': operation, 'storage.kind': kind }), 'error.type': errorType });
}

export type MeasurementOutcome = 'succeeded' | 'failed' | 'cancelled';

const seconds = (startMs: number) => (performance.now() - startMs) / 1000;

/**
 * The metrics of one measurement run: construct it when the run starts, feed it every engine
 * event (epochs give the throughput; 'planned' the mode and backend), then end(outcome) once.
 */
export class MeasurementMetrics {
  private readonly start = performance.now();
  private mode: string;
  private backend: string | undefined;
  private ended = false;

  constructor(mode: string) {
    this.mode = mode;
  }

  onEvent(event: MeasurementEvent): void {
    if (event.type === 'planned') {
      this.mode = event.mode;
      this.backend = event.backend;
    } else if (event.type === 'epoch' && Number.isFinite(event.samplesPerSecond)) {
      instruments().throughput.record(event.samplesPerSecond, memometerAttributes({ mode: this.mode, backend: this.backend }));
    }
  }

  end(outcome: MeasurementOutcome): void {
    if (this.ended) return;
    this.ended = true;
    instruments().measurementDuration.record(seconds(this.start), memometerAttributes({ mode: this.mode, outcome }));
  }
}

// ---- rpc.server.call.duration ---------------------------------------------------------------------

/** grpc-js status codes (OK 0, CANCELLED 1, UNKNOWN 2); only these are needed here. */
const OK = 0;
const CANCELLED = 1;
const UNKNOWN = 2;

/** A method of a grpc-js service definition. */
interface MethodDefinition {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
}

type AnyHandler = (call: unknown, callback?: unknown) => unknown;

interface StreamCall {
  emit(event: string | symbol, ...args: unknown[]): boolean;
  end(...args: unknown[]): unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

const codeOf = (error: unknown): number => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : UNKNOWN;
};

/**
 * `handlers` with rpc.server.call.duration recorded for every call: from the handler's start to
 * the status it sends (unary: the callback; server streaming: end() or emit('error'); a client
 * cancel counts as CANCELLED). Client-streaming and bidi methods pass through unmeasured.
 */
export function instrumentService<H extends object>(definition: Record<string, MethodDefinition>, handlers: H): H {
  const out = { ...handlers } as Record<string, unknown>;
  for (const [name, method] of Object.entries(definition)) {
    const handler = (handlers as Record<string, unknown>)[name];
    if (typeof handler !== 'function' || method.requestStream) continue;
    const [, service = '', rpcMethod = ''] = /^\/([^/]+)\/([^/]+)$/.exec(method.path) ?? [];
    const attributes: Attributes = { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': rpcMethod };
    const fn = handler as AnyHandler;
    out[name] = method.responseStream
      ? (call: StreamCall) => {
          const done = recorder(attributes);
          const emit = call.emit.bind(call);
          const end = call.end.bind(call);
          call.emit = (event, ...args) => {
            if (event === 'error') done(codeOf(args[0]));
            return emit(event, ...args);
          };
          call.end = (...args) => {
            done(OK);
            return end(...args);
          };
          call.on('cancelled', () => done(CANCELLED));
          return fn(call);
        }
      : (call: unknown, callback: (error: unknown, ...rest: unknown[]) => void) => {
          const done = recorder(attributes);
          return fn(call, (error: unknown, ...rest: unknown[]) => {
            done(error ? codeOf(error) : OK);
            return callback(error, ...rest);
          });
        };
  }
  return out as H;
}

/** Records one call's duration with its status code, once. */
function recorder(attributes: Attributes): (code: number) => void {
  const start = performance.now();
  let recorded = false;
  return (code) => {
    if (recorded) return;
    recorded = true;
    instruments().rpcDuration.record(seconds(start), { ...attributes, 'rpc.grpc.status_code': code });
  };
}
