/**
 * The measurement lifecycle as one table: every event from every state, and a registry on a real
 * store applying events against the stored record (a cancel that landed first wins).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailedPreconditionError } from '../../src/errors.js';
import { MeasurementState, type Measurement } from '../../src/gen/memometer/v1/memometer.js';
import { applyEvent, isTerminal, type LifecycleEvent } from '../../src/server/lifecycle.js';
import { MeasurementRegistry } from '../../src/server/registry.js';
import { FileStore } from '../../src/storage/file-store.js';

const { MEASUREMENT_STATE_QUEUED: Q, MEASUREMENT_STATE_RUNNING: R, MEASUREMENT_STATE_SUCCEEDED: S } = MeasurementState;
const { MEASUREMENT_STATE_FAILED: F, MEASUREMENT_STATE_CANCELLED: C } = MeasurementState;
const STATES = [Q, R, S, F, C];

/** Expected next state per event and state; null: the event does not apply. */
const TABLE: Record<LifecycleEvent, (MeasurementState | null)[]> = {
  //          QUEUED RUNNING SUCCEEDED FAILED CANCELLED
  start:     [R,     null,   null,     null,  null],
  succeed:   [null,  S,      null,     null,  null],
  fail:      [F,     F,      null,     null,  null],
  cancel:    [C,     C,      null,     null,  null],
  takeOver:  [Q,     Q,      null,     null,  null],
  supersede: [C,     null,   null,     null,  null],
};

const record = (state: MeasurementState): Measurement => ({
  measurementId: 'm-1', requestId: 'r', state, request: undefined, result: undefined,
  error: state === C ? { code: 'CANCELLED', message: 'x' } : undefined, createTime: new Date(0), updateTime: new Date(0),
});

describe('every lifecycle transition', () => {
  const rows = Object.entries(TABLE).flatMap(([event, next]) => STATES.map((state, i) => [event, MeasurementState[state], state, next[i]] as const));
  it.each(rows)('%s from %s', (event, _, state, next) => {
    const apply = () => applyEvent(record(state), event as LifecycleEvent, { code: 'X', message: 'y' });
    if (next === null) {
      expect(apply).toThrow(FailedPreconditionError);
    } else {
      expect(apply().state).toBe(next);
    }
  });

  it('terminal states are exactly those no event leaves', () => {
    for (const state of STATES) {
      const leaves = Object.keys(TABLE).some((event) => TABLE[event as LifecycleEvent][STATES.indexOf(state)] !== null);
      expect(isTerminal(record(state))).toBe(!leaves);
    }
  });
});

describe('events against the stored record', () => {
  let dir: string;
  let registry: MeasurementRegistry;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'memometer-lifecycle-'));
    registry = new MeasurementRegistry(new FileStore(dir));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('a cancel recorded by another replica wins over the runner finishing: the record stays CANCELLED', async () => {
    const { measurement } = await registry.create({ requestId: '' } as never);
    const running = await registry.transition(measurement, 'start');
    expect(running.state).toBe(R);
    // Another replica's CancelMeasurement, on its own copy of the record.
    await registry.transition(await registry.get(measurement.measurementId), 'cancel', { code: 'CANCELLED', message: 'cancelled by CancelMeasurement' });
    const finished = await registry.transition(running, 'succeed');
    expect(finished.state).toBe(C);
    expect((await registry.get(measurement.measurementId)).state).toBe(C);
  });
});
