import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { context, type Context } from '@opentelemetry/api';
import { status, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import { CancelledError, DeadlineExceededError, MemometerError, UnavailableError } from '../errors.js';
import type {
  CancelMeasurementRequest,
  MeasureMemorizationRequest,
  MeasureMemorizationResponse,
  Measurement,
  MemorizationServiceServer,
} from '../gen/memometer/v1/memometer.js';
import { MeasurementState, MemorizationServiceService } from '../gen/memometer/v1/memometer.js';
import { instrumentService, recordRefusal, recordTakeover } from '../telemetry/metrics.js';
import type { Admission } from './admission.js';
import { authorize } from './auth.js';
import type { ServerConfig } from './config.js';
import type { Locations } from './locations.js';
import { isSuperseded } from './lifecycle.js';
import { isTerminal, type MeasurementRegistry } from './registry.js';
import { FIELD_OF_OPTION, optionsFromRequest } from '../api/request.js';
import { loadBaseline, runMeasurement } from './runner.js';
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
  call.emit('error', toServiceError({ code, codeName: m.error?.code ?? 'UNKNOWN', message: m.error?.message ?? '' }));
}

/**
 * A client's own deadline timer cancels the call at ITS deadline, which reaches the server a
 * little before the server's copy (the timeout counts from when the server got the call): a
 * cancel this close to the deadline is the deadline.
 */
const DEADLINE_SKEW_MS = 1000;

function abortReason(call: Stream): MemometerError {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return at - Date.now() <= DEADLINE_SKEW_MS
    ? new DeadlineExceededError('the call\'s deadline passed')
    : new CancelledError('the client cancelled the call');
}

export class MemorizationService {
  private readonly live = new Map<string, LiveRun>();
  private draining = false;
  /** This replica, as lease records name it. */
  private readonly owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;

  constructor(private readonly deps: ServiceDeps) {}

  /** Measurements running or queued in this process. */
  get running(): number {
    return this.live.size;
  }

  /** The handlers, with rpc.server.call.duration recorded for each call. */
  readonly handlers: MemorizationServiceServer = instrumentService(MemorizationServiceService, {
    measureMemorization: (call) => void this.measure(call),
    getMeasurement: (call, callback) => void this.unary(call, callback, (r) => this.get(r.measurementId)),
    cancelMeasurement: (call, callback) => void this.unary(call, callback, (r) => this.cancel(r)),
    // Read from the shared state: any replica lists every replica's measurements.
    listMeasurements: (call, callback) => void this.unary(call, callback, (r) => this.deps.registry.list(r)),
  } satisfies MemorizationServiceServer);

  private async unary<Req, Res>(call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>, handle: (request: Req) => Promise<Res>): Promise<void> {
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
      if (this.draining) {
        recordRefusal('draining');
        throw new UnavailableError('the server is shutting down; retry on another replica');
      }
      const request = call.request;
      optionsFromRequest(request, this.deps.config); // refuses a bad request before anything is recorded
      const existing = await this.deps.registry.findByRequestId(request.requestId);
      if (existing) return await this.attach(call, existing);
      await loadBaseline(this.deps.locations, request); // a wrong baseline fails now, not after training

      const controller = new AbortController();
      const slot = this.deps.admission.enter(controller.signal);
      slot.catch(() => undefined); // awaited by the run; a refusal while queued is handled there
      let created: Awaited<ReturnType<MeasurementRegistry['create']>>;
      try {
        created = await this.deps.registry.create(request);
      } catch (error) {
        // No record, no run: give the slot (or the place in the queue) back.
        controller.abort();
        void slot.then((release) => release(), () => undefined);
        throw error;
      }
      if (!created.created) {
        // The same request_id reached this or another replica at the same instant and won there.
        controller.abort();
        void slot.then((release) => release(), () => undefined);
        return await this.attach(call, created.measurement);
      }
      const m = created.measurement;
      call.on('cancelled', () => controller.abort(abortReason(call)));
      call.write(started(m, false));
      const live = this.startRun(m, { controller, slot, attempt: 1, traceContext }, (r) => call.write(r));
      await live.done;
      call.end();
    } catch (error) {
      call.emit('error', toServiceError(reportError(error, FIELD_OF_OPTION)));
    }
  }

  /**
   * Runs a recorded measurement in this process under a lease that it renews, and returns the
   * live run streams attach to. The run is registered before anything is awaited, so a
   * CancelMeasurement that arrives right after `started` stops it here (instead of marking the
   * record while the run goes on). A renewal that fails stops the run: another replica takes over.
   */
  private startRun(
    m: Measurement,
    run: { controller: AbortController; slot: Promise<() => void>; attempt: number; traceContext: Context },
    listener?: (r: MeasureMemorizationResponse) => void,
  ): LiveRun {
    const { controller, slot } = run;
    const live: LiveRun = { controller, listeners: new Set(listener ? [listener] : []), done: Promise.resolve(m) };
    this.live.set(m.measurementId, live);
    live.done = (async () => {
      let stopLease: (() => void) | undefined;
      let release: (() => void) | undefined;
      try {
        try {
          stopLease = await this.keepLease(m.measurementId, run.attempt, controller);
        } catch (error) {
          // No lease, no run (the state store failed or timed out): give the slot back.
          controller.abort(error);
          void slot.then((r) => r(), () => undefined);
          throw error;
        }
        release = await slot;
        return await runMeasurement({
          measurement: m, options: optionsFromRequest(m.request!, this.deps.config), signal: controller.signal, traceContext: run.traceContext, ...this.deps,
          emit: (r) => live.listeners.forEach((send) => send(r)),
        });
      } catch (error) {
        if (stopLease && !release) {
          // Cancelled while queued: the runner never saw it, so record it here.
          const report = reportError(error);
          // A state store that fails or times out here must not replace the error (the slot is released below).
          await this.deps.registry
            .transition(m, 'cancel', { code: report.codeName, message: report.message })
            .catch((e: unknown) => console.error('[memometer] could not record the cancellation:', e));
        }
        throw error;
      } finally {
        stopLease?.();
        release?.();
        this.live.delete(m.measurementId);
      }
    })();
    return live;
  }

  /** Writes this replica's lease now and every third of its length until stopped. */
  private async keepLease(measurementId: string, attempt: number, controller: AbortController): Promise<() => void> {
    const seconds = this.deps.config.leaseSeconds;
    const renew = () => this.deps.registry.renewLease(measurementId, { owner: this.owner, expiresAt: Date.now() + seconds * 1000, attempt });
    await renew();
    const timer = setInterval(() => {
      renew().catch((error: unknown) => {
        const reason = error instanceof Error ? error.message : String(error);
        controller.abort(new UnavailableError(`this replica lost its lease on the measurement (${reason}); another replica takes it over`));
      });
    }, (seconds * 1000) / 3);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * GetMeasurement. Asking about a measurement whose replica died is enough to have it taken
   * over: pipelines that poll instead of retrying the stream recover too.
   */
  private async get(measurementId: string): Promise<Measurement> {
    const m = await this.deps.registry.get(measurementId);
    if (isTerminal(m) || this.live.has(measurementId)) return m;
    await this.takeOverIfAbandoned(m);
    return m;
  }

  /** A retry with a known request_id: the existing measurement's stream, never a second run. */
  private async attach(call: Stream, m: Measurement): Promise<void> {
    call.write(started(m, true));
    const live = this.live.get(m.measurementId);
    if (live) return this.follow(call, m, live);
    let current = m;
    while (!isTerminal(current) && !call.cancelled) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      current = await this.deps.registry.get(m.measurementId);
      if (isTerminal(current)) break;
      const taken = await this.takeOverIfAbandoned(current);
      if (taken) return this.follow(call, current, taken);
    }
    if (call.cancelled) return;
    const winner = await this.supersededBy(current);
    if (winner) return this.attach(call, winner);
    finish(call, current);
  }

  /**
   * The measurement that won the request_id of a superseded one. A store without conditional
   * writes settles a request_id's claim only after a moment (S3Store.putIfAbsent): a call that
   * read the claim meanwhile may have attached to a twin that then lost. It follows the winner
   * (a new `started` names it) instead of ending with the twin's ALREADY_EXISTS.
   */
  private async supersededBy(m: Measurement): Promise<Measurement | undefined> {
    if (!isSuperseded(m) || !m.requestId) return undefined;
    const winner = await this.deps.registry.findByRequestId(m.requestId);
    return winner && winner.measurementId !== m.measurementId ? winner : undefined;
  }

  /** Streams a run of this process to `call` until it ends, then its stored outcome. */
  private async follow(call: Stream, m: Measurement, live: LiveRun): Promise<void> {
    const send = (r: MeasureMemorizationResponse) => r.event?.$case !== 'result' && call.write(r);
    live.listeners.add(send);
    call.on('cancelled', () => live.listeners.delete(send));
    await live.done.catch(() => undefined);
    live.listeners.delete(send);
    finish(call, await this.deps.registry.get(m.measurementId));
  }

  /**
   * A queued or running measurement whose lease expired (its replica died, was cut off, or lost
   * its storage): this replica claims the next attempt (exactly one replica wins the claim) and
   * runs it again from the start, measurements being deterministic per seed; past
   * MEMOMETER_MAX_ATTEMPTS it is recorded as FAILED with UNAVAILABLE.
   */
  private async takeOverIfAbandoned(m: Measurement): Promise<LiveRun | undefined> {
    const lease = await this.deps.registry.lease(m.measurementId);
    const expiresAt = lease?.expiresAt ?? (m.updateTime?.getTime() ?? 0) + this.deps.config.leaseSeconds * 1000;
    if (Date.now() <= expiresAt || this.draining) return undefined;
    const attempt = (lease?.attempt ?? 1) + 1;
    if (!(await this.deps.registry.claimAttempt(m.measurementId, attempt, this.owner))) return undefined;
    recordTakeover(attempt > this.deps.config.maxAttempts ? 'failed' : 'rerun');
    if (attempt > this.deps.config.maxAttempts) {
      await this.deps.registry.transition(m, 'fail', {
        code: 'UNAVAILABLE',
        message: `the measurement was abandoned ${attempt - 1} times (its replica stopped renewing its lease); send it again with a new request_id`,
      });
      return undefined;
    }
    await this.deps.registry.transition(m, 'takeOver');
    if (m.state !== MeasurementState.MEASUREMENT_STATE_QUEUED) return undefined;
    const controller = new AbortController();
    const slot = this.deps.admission.enter(controller.signal);
    slot.catch(() => undefined);
    const live = this.startRun(m, { controller, slot, attempt, traceContext: context.active() });
    live.done.catch(() => undefined);
    return live;
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
    return this.deps.registry.transition(m, 'cancel', { code: 'CANCELLED', message: 'cancelled by CancelMeasurement' });
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
