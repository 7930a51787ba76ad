import { context } from '@opentelemetry/api';
import { status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import { CancelledError, DeadlineExceededError, MemometerError, UnavailableError } from '../errors.js';
import type {
  CancelMeasurementRequest,
  MeasureMemorizationRequest,
  MeasureMemorizationResponse,
  Measurement,
  MemorizationServiceServer,
} from '../gen/memometer/v1/memometer.js';
import { MeasurementState } from '../gen/memometer/v1/memometer.js';
import type { Admission } from './admission.js';
import { authorize } from './auth.js';
import type { ServerConfig } from './config.js';
import type { Locations } from './locations.js';
import { isTerminal, type MeasurementRegistry } from './registry.js';
import { FIELD_OF_OPTION, optionsFromRequest } from '../api/request.js';
import { runMeasurement } from './runner.js';
import { reportError, toServiceError } from './status.js';

type Stream = ServerWritableStream<MeasureMemorizationRequest, MeasureMemorizationResponse>;

/** A measurement running in this process, with the streams attached to it. */
interface LiveRun {
  controller: AbortController;
  listeners: Set<(response: MeasureMemorizationResponse) => void>;
  done: Promise<Measurement>;
}

export interface ServiceDeps {
  config: ServerConfig;
  registry: MeasurementRegistry;
  locations: Locations;
  admission: Admission;
}

/** How often a stream attached to another replica's measurement looks at its record. */
const POLL_MS = 1000;

function started(m: Measurement, existing: boolean): MeasureMemorizationResponse {
  return { event: { $case: 'started', value: { measurementId: m.measurementId, existing, state: m.state } } };
}

/**
 * Ends a stream with a finished measurement: its result, or its error as the status. grpc-js
 * sends a server stream's error status only through emit('error'); destroy() sends none.
 */
function finish(call: Stream, m: Measurement): void {
  if (m.state === MeasurementState.MEASUREMENT_STATE_SUCCEEDED) {
    call.write({ event: { $case: 'result', value: m.result! } });
    call.end();
    return;
  }
  const code = status[(m.error?.code ?? 'UNKNOWN') as keyof typeof status] ?? status.UNKNOWN;
  call.emit('error', toServiceError({ code: code as status, codeName: m.error?.code ?? 'UNKNOWN', message: m.error?.message ?? '' }));
}

function abortReason(call: Stream): MemometerError {
  const deadline = call.getDeadline();
  const passed = deadline instanceof Date ? deadline.getTime() <= Date.now() : deadline <= Date.now();
  return passed ? new DeadlineExceededError('the call\'s deadline passed') : new CancelledError('the client cancelled the call');
}

export class MemorizationService {
  private readonly live = new Map<string, LiveRun>();
  private draining = false;

  constructor(private readonly deps: ServiceDeps) {}

  /** Measurements running or queued in this process. */
  get running(): number {
    return this.live.size;
  }

  readonly handlers: MemorizationServiceServer = {
    measureMemorization: (call) => void this.measure(call),
    getMeasurement: (call, callback) => void this.unary(call, callback, (r) => this.deps.registry.get(r.measurementId)),
    cancelMeasurement: (call, callback) => void this.unary(call, callback, (r) => this.cancel(r)),
  };

  private async unary<Req>(call: ServerUnaryCall<Req, Measurement>, callback: sendUnaryData<Measurement>, handle: (request: Req) => Promise<Measurement>): Promise<void> {
    try {
      authorize(call.metadata, this.deps.config.apiToken);
      callback(null, await handle(call.request));
    } catch (error) {
      callback(toServiceError(reportError(error)));
    }
  }

  private async measure(call: Stream): Promise<void> {
    const traceContext = context.active();
    try {
      authorize(call.metadata, this.deps.config.apiToken);
      if (this.draining) throw new UnavailableError('the server is shutting down; retry on another replica');
      const request = call.request;
      const options = optionsFromRequest(request);
      const existing = await this.deps.registry.findByRequestId(request.requestId);
      if (existing) return await this.attach(call, existing);

      const controller = new AbortController();
      const slot = this.deps.admission.enter(controller.signal);
      slot.catch(() => undefined); // awaited below; a refusal while queued is handled there
      let m: Measurement;
      try {
        m = await this.deps.registry.create(request);
      } catch (error) {
        // No record, no run: give the slot (or the place in the queue) back.
        controller.abort();
        void slot.then((release) => release(), () => undefined);
        throw error;
      }
      const live: LiveRun = { controller, listeners: new Set([(r) => call.write(r)]), done: Promise.resolve(m) };
      call.on('cancelled', () => controller.abort(abortReason(call)));
      call.write(started(m, false));
      live.done = (async () => {
        let release: (() => void) | undefined;
        try {
          release = await slot;
          return await runMeasurement({
            measurement: m, options, signal: controller.signal, traceContext, ...this.deps,
            emit: (r) => live.listeners.forEach((send) => send(r)),
          });
        } catch (error) {
          if (!release) {
            // Cancelled while queued: the runner never saw it, so record it here.
            m.state = MeasurementState.MEASUREMENT_STATE_CANCELLED;
            const report = reportError(error);
            m.error = { code: report.codeName, message: report.message };
            await this.deps.registry.save(m);
          }
          throw error;
        } finally {
          release?.();
          this.live.delete(m.measurementId);
        }
      })();
      this.live.set(m.measurementId, live);
      await live.done;
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(reportError(error, FIELD_OF_OPTION)));
    }
  }

  /** A retry with a known request_id: the existing measurement's stream, never a second run. */
  private async attach(call: Stream, m: Measurement): Promise<void> {
    call.write(started(m, true));
    const live = this.live.get(m.measurementId);
    if (live) {
      const send = (r: MeasureMemorizationResponse) => r.event?.$case !== 'result' && call.write(r);
      live.listeners.add(send);
      call.on('cancelled', () => live.listeners.delete(send));
      await live.done.catch(() => undefined);
      live.listeners.delete(send);
      return finish(call, await this.deps.registry.get(m.measurementId));
    }
    let current = m;
    while (!isTerminal(current) && !call.cancelled) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      current = await this.deps.registry.get(m.measurementId);
    }
    if (!call.cancelled) finish(call, current);
  }

  private async cancel(request: CancelMeasurementRequest): Promise<Measurement> {
    const m = await this.deps.registry.get(request.measurementId);
    if (isTerminal(m)) return m;
    const live = this.live.get(m.measurementId);
    if (live) {
      live.controller.abort(new CancelledError('cancelled by CancelMeasurement'));
      await live.done.catch(() => undefined);
      return this.deps.registry.get(m.measurementId);
    }
    // Running on another replica: it sees the mark at its next epoch and stops.
    m.state = MeasurementState.MEASUREMENT_STATE_CANCELLED;
    m.error = { code: 'CANCELLED', message: 'cancelled by CancelMeasurement' };
    await this.deps.registry.save(m);
    return m;
  }

  /**
   * Stops admitting work, lets running measurements finish for up to `graceMs`, then cancels
   * the rest and waits for them to record their state.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const all = () => Promise.allSettled([...this.live.values()].map((l) => l.done));
    const timer = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([all(), timer]);
    for (const live of this.live.values()) live.controller.abort(new CancelledError('the server is shutting down'));
    await all();
  }
}
