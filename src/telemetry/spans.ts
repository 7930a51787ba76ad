/**
 * Spans of a measurement. The engine yields events and knows nothing of OpenTelemetry; the
 * server feeds each event to a MeasurementTracing, which turns them into child spans of the RPC
 * span:
 *
 *   <rpc span>                       (instrumentation-grpc, parent context)
 *   ├── memometer.plan               construction .. 'planned' (cut, layout, memory estimate)
 *   ├── memometer.features           the frozen-mode feature pass (ends at 'features')
 *   └── memometer.depth              one per copy depth: first work on it .. its 'depthResult'
 *       └── memometer.epoch          one per (seed, epoch): previous event of that depth .. 'epoch'
 *
 * Every attribute is named memometer.<key>; memometerAttributes() is the one place that builds them.
 * Without a started SDK all of this is a no-op.
 */
import {
  context,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { DepthResult, EpochEvent, MeasurementEvent, PlanEvent } from '../metric/types.js';

const TRACER_NAME = 'memometer';

/**
 * The memometer tracer (trace.getTracer('memometer')), looked up on every call: a tracer taken
 * once would stay bound to the first provider and record nothing after a shutdown and restart.
 */
export const tracer: Tracer = {
  startSpan: (name, options, parent) => trace.getTracer(TRACER_NAME).startSpan(name, options, parent),
  startActiveSpan: ((...args: unknown[]) => {
    const delegate = trace.getTracer(TRACER_NAME);
    return (delegate.startActiveSpan as (...a: unknown[]) => unknown).apply(delegate, args);
  }),
};

/**
 * An attribute value as exported (OTel's primitive attribute types). @opentelemetry/api 1.10
 * made its AttributeValue an alias of AnyValue (unknown); this keeps the check.
 */
export type SpanValue = string | number | boolean | string[] | number[] | boolean[];

/** Attribute values keyed without the `memometer.` prefix; undefined values are left out. */
export type SpanValues = Record<string, SpanValue | undefined>;

/** What the server knows of a measurement before it starts (all optional, extra keys allowed). */
export interface MeasurementAttributes extends SpanValues {
  measurement_id?: string;
  model_uri?: string;
  dataset_uri?: string;
  mode?: string;
  /** Number of random labels. */
  n?: number;
  backend?: string;
}

const PREFIX = 'memometer.';

/**
 * The one attribute builder: prefixes every key with `memometer.` (keys that already carry it
 * are kept) and drops undefined values.
 */
export function memometerAttributes(values: SpanValues): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined) out[key.startsWith(PREFIX) ? key : PREFIX + key] = value;
  }
  return out;
}

/** Marks the span failed with the error recorded on it. */
export function recordError(span: Span, error: unknown): void {
  const exception = error instanceof Error ? error : new Error(String(error));
  span.recordException(exception);
  span.setStatus({ code: SpanStatusCode.ERROR, message: exception.message });
}

/**
 * Runs fn inside a new active span, a child of `parent` (default: the active context): on
 * failure the error is recorded and the status set to ERROR; the span ends either way and fn's
 * result or error passes through.
 */
export function withSpan<T>(
  name: string,
  attributes: SpanValues,
  fn: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes: memometerAttributes(attributes) }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      recordError(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

interface DepthSpan {
  span: Span;
  context: Context;
  /** Time of the last event of this depth: where its next epoch span starts. */
  last: number;
}

/** Milliseconds since the epoch, sub-millisecond. */
const wallClock = () => performance.timeOrigin + performance.now();

/**
 * Turns one measurement's engine events into spans under `parent`. Construct it right before the
 * engine starts (the plan span starts then); call onEvent for every event, then end() after the
 * last one or fail(error) when the measurement throws or is cancelled.
 */
export class MeasurementTracing {
  private readonly common: SpanValues;
  private readonly depths = new Map<number, DepthSpan>();
  private plan: PlanEvent | undefined;
  private planSpan: Span | undefined;
  /** Time of the previous event: where work that no event announced yet began. */
  private last: number;

  constructor(
    /** The RPC span's context: capture it in the handler (context.active()), not in a queue worker. */
    readonly parent: Context,
    attributes: MeasurementAttributes = {},
    private readonly now: () => number = wallClock,
  ) {
    this.common = { ...attributes };
    this.last = now();
    this.planSpan = this.start('memometer.plan', this.last, parent);
  }

  onEvent(event: MeasurementEvent): void {
    const now = this.now();
    switch (event.type) {
      case 'planned':
        this.plan = event;
        Object.assign(this.common, { backend: event.backend, mode: event.mode, head_sharing: event.heads });
        this.planSpan?.setAttributes(
          memometerAttributes({
            ...this.common,
            copy_depths: event.copyDepths,
            heads: event.headsPerDepth,
            head_parameters: event.headParameters,
            num_classes: event.numClasses,
            'samples.train': event.samples.train,
            'samples.held_out': event.samples.heldOut,
            'samples.held_out_source': event.samples.heldOutSource,
            estimated_bytes: event.estimatedBytes,
          }),
        );
        this.planSpan?.end(now);
        this.planSpan = undefined;
        break;
      case 'features':
        this.start('memometer.features', now - event.seconds * 1000, this.parent, { samples: event.samples, seconds: event.seconds }).end(now);
        break;
      case 'epoch': {
        const depth = this.depth(event.copyDepth);
        this.start('memometer.epoch', depth.last, depth.context, epochValues(event)).end(now);
        depth.last = now;
        break;
      }
      case 'depthResult': {
        const depth = this.depth(event.result.copyDepth);
        depth.span.setAttributes(memometerAttributes(resultValues(event.result)));
        depth.span.end(now);
        this.depths.delete(event.result.copyDepth);
        break;
      }
      case 'done':
        this.end();
        break;
    }
    this.last = now;
  }

  /** Records the error on every open span, marks them failed and ends them. */
  fail(error: unknown): void {
    for (const span of this.open()) recordError(span, error);
    this.end();
  }

  /** Ends the spans still open (a no-op after 'done'). */
  end(): void {
    const now = this.now();
    for (const span of this.open()) span.end(now);
    this.planSpan = undefined;
    this.depths.clear();
  }

  private open(): Span[] {
    return [...(this.planSpan ? [this.planSpan] : []), ...[...this.depths.values()].map((d) => d.span)];
  }

  private depth(copyDepth: number): DepthSpan {
    let depth = this.depths.get(copyDepth);
    if (!depth) {
      const index = this.plan?.copyDepths.indexOf(copyDepth) ?? -1;
      const span = this.start('memometer.depth', this.last, this.parent, {
        copy_depth: copyDepth,
        heads: this.plan?.headsPerDepth,
        head_parameters: index >= 0 ? this.plan?.headParameters[index] : undefined,
      });
      depth = { span, context: trace.setSpan(this.parent, span), last: this.last };
      this.depths.set(copyDepth, depth);
    }
    return depth;
  }

  private start(name: string, startTime: number, parent: Context, values: SpanValues = {}): Span {
    return tracer.startSpan(name, { startTime, attributes: memometerAttributes({ ...this.common, ...values }) }, parent);
  }
}

function epochValues(e: EpochEvent): SpanValues {
  return {
    copy_depth: e.copyDepth,
    seed: e.seed,
    epoch: e.epoch,
    epochs: e.epochs,
    random_label_accuracy: e.randomLabelAccuracy,
    class_accuracy: e.classAccuracy,
    'loss.random_label': e.losses.randomLabel,
    'loss.classification': e.losses.classification,
    'loss.forget': e.losses.forget,
    samples_per_second: e.samplesPerSecond,
  };
}

function resultValues(r: DepthResult): SpanValues {
  return {
    random_label_accuracy: r.randomLabelAccuracy,
    random_label_accuracy_std: r.randomLabelAccuracyStd,
    chance: r.chance,
    memorization_score: r.memorizationScore,
    memorization_score_std: r.memorizationScoreStd,
    held_out_random_label_accuracy: r.heldOutRandomLabelAccuracy,
    class_train_accuracy: r.classTrainAccuracy,
    class_test_accuracy: r.classTestAccuracy,
    seeds: r.seeds.length,
  };
}
