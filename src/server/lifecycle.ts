/**
 * Every state change of a measurement record, as one table: which event may move a record from
 * which states, and to what. Replicas apply events against the STORED record (read again just
 * before writing), so a terminal state is final and the first of two racing events wins, within
 * the window of one read and one write: S3 conditional writes on the record's version (If-Match)
 * would close that window, but OpenStack Swift's s3api refuses conditional PUTs, so memometer
 * does not depend on them (the request index and takeover claims, where two winners would run
 * a measurement twice, are created exactly once: StateStore.putIfAbsent).
 */
import { FailedPreconditionError } from '../errors.js';
import { type Measurement, MeasurementState } from '../gen/memometer/v1/memometer.js';

const { MEASUREMENT_STATE_QUEUED: QUEUED, MEASUREMENT_STATE_RUNNING: RUNNING } = MeasurementState;
const { MEASUREMENT_STATE_SUCCEEDED: SUCCEEDED, MEASUREMENT_STATE_FAILED: FAILED, MEASUREMENT_STATE_CANCELLED: CANCELLED } = MeasurementState;

export type LifecycleEvent = 'start' | 'succeed' | 'fail' | 'cancel' | 'takeOver' | 'supersede';

export const TRANSITIONS: Readonly<Record<LifecycleEvent, { from: readonly MeasurementState[]; to: MeasurementState }>> = {
  /** The runner begins (first run or a takeover's rerun). */
  start: { from: [QUEUED], to: RUNNING },
  succeed: { from: [RUNNING], to: SUCCEEDED },
  /** An error, or a measurement abandoned more often than MEMOMETER_MAX_ATTEMPTS. */
  fail: { from: [QUEUED, RUNNING], to: FAILED },
  /** CancelMeasurement on any replica, the client's deadline, a cancel while queued, shutdown. */
  cancel: { from: [QUEUED, RUNNING], to: CANCELLED },
  /** Another replica claimed the next attempt of a measurement whose lease expired. */
  takeOver: { from: [QUEUED, RUNNING], to: QUEUED },
  /** The losing twin of a request_id sent twice at once. */
  supersede: { from: [QUEUED], to: CANCELLED },
};

const ACTIVE: readonly MeasurementState[] = [QUEUED, RUNNING];

/** The error a superseded twin is closed with (event 'supersede'). */
export const SUPERSEDED = {
  code: 'ALREADY_EXISTS',
  message: 'superseded: another request with the same request_id created the measurement first',
} as const;

/** Whether `m` is the losing twin of its request_id: never listed, never run. */
export const isSuperseded = (m: Pick<Measurement, 'state' | 'error'>) => m.state === CANCELLED && m.error?.code === SUPERSEDED.code;

/** SUCCEEDED, FAILED and CANCELLED are final: no event leaves them. */
export const isTerminal = (m: Pick<Measurement, 'state'>) => !ACTIVE.includes(m.state);

/** Whether `event` may apply to a record in `state`. */
export function allowed(state: MeasurementState, event: LifecycleEvent): boolean {
  return TRANSITIONS[event].from.includes(state);
}

/** The record after `event`, or a FailedPreconditionError naming the state that refuses it. */
export function applyEvent(m: Measurement, event: LifecycleEvent, error?: Measurement['error']): Measurement {
  if (!allowed(m.state, event)) {
    throw new FailedPreconditionError(`measurement ${m.measurementId} is ${MeasurementState[m.state]}: '${event}' does not apply`, 'measurement_id');
  }
  return { ...m, state: TRANSITIONS[event].to, error: event === 'takeOver' || event === 'start' ? undefined : (error ?? m.error) };
}
