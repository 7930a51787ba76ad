import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, InvalidArgumentError, ResourceExhaustedError } from '../../src/errors.js';
import { measure, type MeasureInput } from '../../src/metric/measure.js';
import { example, flattened, run, SCALE_255, standardError, toArtifacts, useWasm } from '../support/engine.js';

let cnn: MeasureInput;
let mlp: MeasureInput;

/** A dense net on the example images, seeded so every run starts from the same weights. */
async function mlpArtifacts(): Promise<tf.io.ModelArtifacts> {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [784], units: 128, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ units: 64, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(3) }),
    ],
  });
  const artifacts = await toArtifacts(model);
  model.dispose();
  return artifacts;
}

beforeAll(async () => {
  await useWasm();
  cnn = await example();
  mlp = { model: await mlpArtifacts(), dataset: flattened(cnn.dataset) };
});

describe('the metric on real data (Fashion-MNIST subset, example CNN)', () => {
  it('learns random labels far above chance, more at a deeper cut, and stays at chance on held-out samples', async () => {
    const { events, result } = await run(cnn, { copyDepths: [1, 2], epochs: 10, ...SCALE_255 });
    const [d1, d2] = result.depths;
    const train = result.samples.train;
    expect(result.samples).toEqual({ train: 2000, heldOut: 500, heldOutSource: 'test' });
    expect(d2!.chance).toBeCloseTo(0.1);
    // Far above chance: more than 10 standard errors (SE ~0.7% at 2,000 samples).
    expect(d2!.randomLabelAccuracy).toBeGreaterThan(0.1 + 10 * standardError(0.1, train));
    // Deeper copy depth, higher accuracy, by more than 6 standard errors of the difference.
    expect(d2!.randomLabelAccuracy - d1!.randomLabelAccuracy).toBeGreaterThan(6 * Math.SQRT2 * standardError(0.3, train));
    for (const d of [d1!, d2!]) {
      // Held-out samples never trained on: within 4 standard errors of chance.
      expect(Math.abs(d.heldOutRandomLabelAccuracy - 0.1)).toBeLessThan(4 * standardError(0.1, 500));
      expect(d.memorizationScore).toBeCloseTo((d.randomLabelAccuracy - 0.1) / 0.9, 10);
      expect(d.classTrainAccuracy).toBeGreaterThan(0.85);
      expect(d.classTestAccuracy).toBeGreaterThan(0.8);
      expect(d.curve).toHaveLength(10);
    }
    expect(result.warnings).toEqual([]);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('planned');
    expect(types.filter((t) => t === 'features')).toHaveLength(1); // features computed once
    expect(types.filter((t) => t === 'epoch')).toHaveLength(20);
    expect(types.filter((t) => t === 'depthResult')).toHaveLength(2);
  });

  it('lambda > 0 lowers random-label accuracy in joint mode', async () => {
    const options = { mode: 'joint' as const, copyDepths: [2], epochs: 15, batchSize: 128, ...SCALE_255 };
    const probe = (await run(mlp, { ...options, lambda: 0 })).result.depths[0]!;
    const regularised = (await run(mlp, { ...options, lambda: 5 })).result.depths[0]!;
    const se = standardError(0.2, mlp.dataset.y.length);
    expect(probe.randomLabelAccuracy).toBeGreaterThan(0.1 + 10 * standardError(0.1, 2000));
    expect(probe.randomLabelAccuracy - regularised.randomLabelAccuracy).toBeGreaterThan(6 * Math.SQRT2 * se);
    // The class task is still learned while the features forget the random labels.
    expect(regularised.classTrainAccuracy).toBeGreaterThan(0.85);
  });

  it('joint mode fine-tunes the given weights, or starts from fresh ones, and returns the tuned model', async () => {
    const options = { mode: 'joint' as const, copyDepths: [1], epochs: 1, ...SCALE_255 };
    const tuned = await run(cnn, options);
    const fresh = await run(cnn, { ...options, reinitialize: true });
    // The example CNN is already trained (93% train accuracy); one epoch from scratch is far below.
    expect(tuned.result.depths[0]!.classTrainAccuracy).toBeGreaterThan(0.85);
    expect(fresh.result.depths[0]!.classTrainAccuracy).toBeLessThan(0.75);
    const done = tuned.events.at(-1)!;
    const model = done.type === 'done' ? done.fineTunedModel : undefined;
    expect(model?.weightSpecs?.map((w) => w.name)).toEqual(cnn.model.weightSpecs?.map((w) => w.name));
  });

  it('weight decay on the heads lowers random-label accuracy', async () => {
    const options = { copyDepths: [2], epochs: 8, ...SCALE_255 };
    const plain = (await run(cnn, options)).result.depths[0]!;
    const decayed = (await run(cnn, { ...options, weightDecay: 0.5 })).result.depths[0]!;
    expect(plain.randomLabelAccuracy - decayed.randomLabelAccuracy).toBeGreaterThan(6 * Math.SQRT2 * standardError(0.2, 2000));
  });
});

describe('reproducibility and seeds', () => {
  const options = { copyDepths: [2], epochs: 3, ...SCALE_255 };

  it('gives the same scores for the same seed and different ones for another seed', async () => {
    const a = (await run(mlp, { ...options, seeds: [4] })).result.depths[0]!;
    const b = (await run(mlp, { ...options, seeds: [4] })).result.depths[0]!;
    const c = (await run(mlp, { ...options, seeds: [5] })).result.depths[0]!;
    expect(b.seeds).toEqual(a.seeds);
    expect(b.curve).toEqual(a.curve);
    expect(c.randomLabelAccuracy).not.toBe(a.randomLabelAccuracy);
  });

  it('aggregates several seeds into a mean and a spread', async () => {
    const d = (await run(mlp, { ...options, seeds: [1, 2, 3] })).result.depths[0]!;
    const accs = d.seeds.map((s) => s.randomLabelAccuracy);
    expect(d.seeds.map((s) => s.seed)).toEqual([1, 2, 3]);
    expect(d.randomLabelAccuracy).toBeCloseTo(accs.reduce((x, y) => x + y) / 3, 12);
    expect(d.randomLabelAccuracyStd).toBeGreaterThan(0);
  });

  it('runs a single shared head', async () => {
    const { events, result } = await run(mlp, { ...options, heads: 'shared', epochs: 20 });
    const planned = events[0]!;
    expect(planned.type === 'planned' && planned.headsPerDepth).toBe(1);
    expect(result.depths[0]!.randomLabelAccuracy).toBeGreaterThan(0.1 + 6 * standardError(0.1, 2000));
  });
});

describe('cancellation', () => {
  it('stops between steps with CancelledError and frees every tensor', async () => {
    const before = tf.memory().numTensors;
    const controller = new AbortController();
    const epochs: number[] = [];
    const attempt = async () => {
      for await (const event of measure(mlp, { mode: 'joint', epochs: 50, signal: controller.signal, ...SCALE_255 })) {
        if (event.type === 'epoch') {
          epochs.push(event.epoch);
          controller.abort(new Error('client went away'));
        }
      }
    };
    await expect(attempt()).rejects.toThrow(CancelledError);
    expect(epochs).toEqual([1]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('frees every tensor when the consumer stops iterating', async () => {
    const before = tf.memory().numTensors;
    for await (const event of measure(cnn, { copyDepths: [2], epochs: 5, ...SCALE_255 })) {
      if (event.type === 'epoch') break;
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('bad input', () => {
  const attempt = async (input: MeasureInput, options: object) => {
    for await (const _ of measure(input, options)) void _;
  };

  it.each([
    [{ copyDepths: [] }, /copyDepths: must list at least one copy depth/],
    [{ copyDepths: [0] }, /copyDepths: must be an integer in \[1, 10000\], got 0/],
    [{ numRandomLabels: 1 }, /numRandomLabels: must be an integer in \[2, 1000000\], got 1/],
    [{ mode: 'sideways' }, /mode: must be one of frozen, joint, got 'sideways'/],
    [{ heads: 'some' }, /heads: must be one of per-class, shared/],
    [{ epochs: 0 }, /epochs: must be an integer/],
    [{ learningRate: -1 }, /learningRate: must be > 0, got -1/],
    [{ seeds: [-1] }, /seeds: must be an integer in \[0, 4294967295\]/],
    [{ lambda: 1 }, /lambda: applies only in joint mode/],
    [{ copyDepths: [9] }, /copyDepths: copy depth 9 is not a valid cut: the model has 7 layers; valid depths: 1-7/],
    [{ inputScaling: { std: [0] } }, /inputScaling.std: must not contain 0/],
  ])('%j is an InvalidArgumentError naming the option', async (options, message) => {
    const error = await attempt(cnn, options).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(message);
  });

  it('rejects a dataset whose samples do not fit the model input', async () => {
    const dataset = { ...cnn.dataset, x: cnn.dataset.x.slice(0, 2000 * 700), xShape: [2000, 700] };
    await expect(attempt({ ...cnn, dataset }, {})).rejects.toThrow(/dataset.x: sample shape \[700\] does not match the model input shape \[28, 28, 1\]/);
  });

  it('rejects labels outside [0, C)', async () => {
    const y = cnn.dataset.y.slice();
    y[17] = 10;
    await expect(attempt({ ...cnn, dataset: { ...cnn.dataset, y } }, {})).rejects.toThrow(/dataset.y: label 10 at index 17 is outside \[0, 10\)/);
  });

  it('refuses heads that exceed the memory budget, before building them', async () => {
    const error = await attempt(cnn, { copyDepths: [5], numRandomLabels: 100_000, memoryBudgetBytes: 64 * 2 ** 20 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as Error).message).toMatch(/memoryBudgetBytes: the measurement needs about \d+ MiB/);
  });

  it('rejects graph models', async () => {
    await expect(attempt({ ...cnn, model: { ...cnn.model, format: 'graph-model' } }, {})).rejects.toThrow(/graph models cannot be cut or trained/);
  });
});
