import { readdirSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, InvalidArgumentError } from '../../src/errors.js';
import { measure, type MeasureInput } from '../../src/metric/measure.js';
import { cutModel } from '../../src/metric/model/cut.js';
import { loadModel } from '../../src/metric/model/load.js';
import { HEAD_WORKERS_ENV, resolveOptions } from '../../src/metric/options.js';
import { HEAD_WORKER_MIN_WORK, headWorkerCount, HeadWorkers } from '../../src/metric/train/head-workers.js';
import type { EpochEvent, MeasurementEvent, PlanEvent } from '../../src/metric/types.js';
import { example, run, SCALE_255, useWasm } from '../support/engine.js';

let cnn: MeasureInput;

/** OS threads of this process: a head worker is one until it has ended. */
const threads = () => readdirSync('/proc/self/task').length;

const epochs = (events: MeasurementEvent[]) => events.filter((e): e is EpochEvent => e.type === 'epoch');
const plan = (events: MeasurementEvent[]) => events.find((e): e is PlanEvent => e.type === 'planned')!;

beforeAll(async () => {
  await useWasm();
  cnn = await example();
});

describe('per-class heads in worker threads (frozen mode)', () => {
  it('score exactly as on the main thread, with a Dense top (depth 2) and a conv top (depth 5)', async () => {
    // Depth 5: Conv2D, MaxPooling2D, Flatten, Dense, Dense.
    const options = { copyDepths: [2, 5], epochs: 2, maxSamples: 600, seeds: [0, 1], ...SCALE_255 };
    const one = await run(cnn, { ...options, headWorkers: 1 });
    const two = await run(cnn, { ...options, headWorkers: 2 });
    expect(plan(one.events).headWorkers).toEqual([1, 1]);
    expect(plan(two.events).headWorkers).toEqual([2, 2]);
    expect(two.events.map((e) => e.type)).toEqual(one.events.map((e) => e.type));
    // Random-label accuracies, scores and curves are counts of the same predictions: equal.
    const { seconds: _a, ...resultOne } = one.result;
    const { seconds: _b, ...resultTwo } = two.result;
    expect(resultTwo).toEqual(resultOne);
    const [e1, e2] = [epochs(one.events), epochs(two.events)];
    e1.forEach((e, i) => {
      const { samplesPerSecond: _c, losses: l1, ...rest1 } = e;
      const { samplesPerSecond: _d, losses: l2, ...rest2 } = e2[i]!;
      expect(rest2).toEqual(rest1);
      // The workers' loss shares add up in another order.
      expect(Math.abs(l2.randomLabel - l1.randomLabel)).toBeLessThan(1e-6);
    });
  });

  it('stop on cancellation with the cancellation error and leave no thread running', async () => {
    const before = threads();
    const controller = new AbortController();
    const events: MeasurementEvent[] = [];
    const attempt = async () => {
      for await (const event of measure(cnn, { copyDepths: [2], epochs: 50, headWorkers: 2, signal: controller.signal, ...SCALE_255 })) {
        events.push(event);
        // While the workers train the second epoch.
        if (event.type === 'epoch') setTimeout(() => controller.abort(), 20);
      }
    };
    await expect(attempt()).rejects.toThrow(CancelledError);
    expect(epochs(events).length).toBeLessThanOrEqual(2);
    expect(threads()).toBe(before);
  });

  it("return a worker's error as the same typed error, fail on a crashed worker, and end the workers", async () => {
    const before = threads();
    const model = await loadModel(cnn.model);
    const expected = (() => {
      try {
        cutModel(model, 99);
      } catch (error) {
        return error as InvalidArgumentError;
      }
    })()!;
    model.dispose();
    const pool = await HeadWorkers.start(1, cnn.model);
    const labels = new Int32Array(new SharedArrayBuffer(8));
    const features = { values: new Float32Array(new SharedArrayBuffer(8)), sampleShape: [1], groups: labels, labels };
    const training = { epochs: 1, perGroup: 1, learningRate: 1e-3, optimizer: 'adam' as const, weightDecay: 0, seed: 0 };
    const attempt = pool.trainFrozen(1, 99, { groups: 2, outputs: 10, init: 'fresh', seed: 0 }, { train: features, heldOut: features }, training);
    await expect(attempt.next()).rejects.toSatisfy((e) => e instanceof InvalidArgumentError && e.message === expected.message);
    expect(threads()).toBe(before);

    // A worker that dies (here ended from outside, as a crash would) fails the command instead of hanging.
    const crashed = await HeadWorkers.start(1, cnn.model);
    await (crashed as unknown as { channels: { worker: Worker }[] }).channels[0]!.worker.terminate();
    const afterCrash = crashed.trainFrozen(1, 2, { groups: 2, outputs: 10, init: 'fresh', seed: 0 }, { train: features, heldOut: features }, training);
    await expect(afterCrash.next()).rejects.toThrow('a head worker exited');
    expect(threads()).toBe(before);

    // An error while a worker starts (loading the model) too.
    const graph = { ...cnn.model, format: 'graph-model' };
    await expect(HeadWorkers.start(2, graph)).rejects.toThrow(InvalidArgumentError);
    await expect(HeadWorkers.start(2, graph)).rejects.toThrow('model: graph models cannot be cut or trained');
    expect(threads()).toBe(before);
  });

  it("'auto' keeps small work on the main thread and uses two threads for large work", async () => {
    const { events } = await run(cnn, { copyDepths: [2], epochs: 1, ...SCALE_255 });
    expect(plan(events).headWorkers).toEqual([1]);
    const work = { backend: 'wasm', mode: 'frozen', groups: 10, samples: 2000, epochs: 10, seeds: 1 };
    const paying = (10 * HEAD_WORKER_MIN_WORK) / (2000 * 10);
    expect(headWorkerCount('auto', { ...work, headParameters: paying })).toBe(2);
    expect(headWorkerCount('auto', { ...work, headParameters: paying / 2 })).toBe(1);
    expect(headWorkerCount('auto', { ...work, headParameters: paying, backend: 'cpu' })).toBe(1);
    expect(headWorkerCount('auto', { ...work, headParameters: paying, groups: 1 })).toBe(1);
    expect(headWorkerCount(4, { ...work, headParameters: 1, groups: 3 })).toBe(3);
  });

  it('take the setting from MEMOMETER_HEAD_WORKERS unless the option is given', () => {
    try {
      process.env[HEAD_WORKERS_ENV] = '3';
      expect(resolveOptions({}).headWorkers).toBe(3);
      expect(resolveOptions({ headWorkers: 'auto' }).headWorkers).toBe('auto');
      process.env[HEAD_WORKERS_ENV] = 'many';
      expect(() => resolveOptions({})).toThrow("MEMOMETER_HEAD_WORKERS: must be 'auto' or an integer in [1, 64], got 'many'");
    } finally {
      delete process.env[HEAD_WORKERS_ENV];
    }
    expect(resolveOptions({}).headWorkers).toBe('auto');
    expect(() => resolveOptions({ headWorkers: 0 })).toThrow(InvalidArgumentError);
  });
});
