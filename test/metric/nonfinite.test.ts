import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, TrainingDivergedError } from '../../src/errors.js';
import type { Dataset } from '../../src/metric/dataset.js';
import { measure, type MeasureInput } from '../../src/metric/measure.js';
import type { MeasureOptions, MeasurementEvent } from '../../src/metric/types.js';
import { example, flattened, SCALE_255, toArtifacts, useWasm } from '../support/engine.js';

let cnn: MeasureInput;
let mlp: MeasureInput;

beforeAll(async () => {
  await useWasm();
  cnn = await example();
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', inputShape: [784], units: 32, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ name: 'out', units: 10, activation: 'softmax', kernelInitializer: init(2) }),
    ],
  });
  mlp = { model: await toArtifacts(model), dataset: flattened(cnn.dataset) };
  model.dispose();
});

/** Runs a measurement and returns the events it yielded and the error it ended with. */
async function attempt(input: MeasureInput, options: Partial<MeasureOptions>): Promise<{ events: MeasurementEvent[]; error: Error }> {
  const events: MeasurementEvent[] = [];
  try {
    for await (const event of measure(input, options)) events.push(event);
  } catch (error) {
    return { events, error: error as Error };
  }
  throw new Error('the measurement succeeded');
}

/** The artifacts with one weight value replaced (every weight is float32, in spec order). */
function withWeight(artifacts: tf.io.ModelArtifacts, name: string, index: number, value: number): tf.io.ModelArtifacts {
  const values = new Float32Array((artifacts.weightData as ArrayBuffer).slice(0));
  let offset = 0;
  for (const spec of artifacts.weightSpecs!) {
    if (spec.name === name) {
      values[offset + index] = value;
      return { ...artifacts, weightData: values.buffer };
    }
    offset += spec.shape.reduce((a, b) => a * b, 1);
  }
  throw new Error(`no weight ${name}`);
}

describe('non-finite weights', () => {
  it.each([
    ['hidden/kernel', 5, NaN, 'weight hidden/kernel holds NaN at index 5'],
    ['out/bias', 2, -Infinity, 'weight out/bias holds -Infinity at index 2'],
  ])('%s[%i] = %d is refused when the model loads, naming the weight', async (name, index, value, message) => {
    const before = tf.memory().numTensors;
    const { events, error } = await attempt({ ...mlp, model: withWeight(mlp.model, name, index, value) }, SCALE_255);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe(`model: ${message}`);
    expect(events).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('features that overflow', () => {
  it('finite weights and inputs whose activations overflow float32 are refused before the heads train', async () => {
    // Two centre pixels of hidden unit 0 weighted 3e38: bright pixels push its sum past float32.
    const model = withWeight(withWeight(mlp.model, 'hidden/kernel', 406 * 32, 3e38), 'hidden/kernel', 407 * 32, 3e38);
    const { events, error } = await attempt({ ...mlp, model }, { copyDepths: [1], ...SCALE_255 });
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toMatch(/^model: its features at copy depth 1 are not finite \(Infinity for sample \d+\): its activations overflow float32/);
    expect(events.map((e) => e.type)).toEqual(['planned']);
  });
});

describe('non-finite input scaling', () => {
  it.each([
    [{ scale: NaN }, 'inputScaling.scale: must be a finite number, got NaN'],
    [{ offset: Infinity }, 'inputScaling.offset: must be a finite number, got Infinity'],
    [{ mean: [NaN] }, 'inputScaling.mean: must hold finite numbers, got NaN at index 0'],
    [{ std: [1, -Infinity] }, 'inputScaling.std: must hold finite numbers, got -Infinity at index 1'],
  ])('%j is refused naming the field', async (inputScaling, message) => {
    const { error } = await attempt(cnn, { inputScaling });
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe(message);
  });

  it('refuses a scale that overflows float32, naming the first sample it overflows', async () => {
    const x = mlp.dataset.x;
    const i = x.findIndex((v) => !Number.isFinite(Math.fround(v * 1e38)));
    expect(i).toBeGreaterThan(0);
    const { error } = await attempt(mlp, { inputScaling: { scale: 1e38 } });
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe(
      `inputScaling: turns value ${x[i]} of sample ${Math.floor(i / 784)} of dataset.x (index ${i % 784}) into Infinity: ` +
        'scaled inputs must be finite float32 values',
    );
  });
});

describe('non-finite inputs handed to the engine directly', () => {
  const poisoned = (ds: Dataset, field: 'x' | 'xTest', index: number, value: number): Dataset => {
    const values = Float32Array.from(ds[field]!);
    values[index] = value;
    return { ...ds, [field]: values };
  };

  it('names dataset.x and dataset.x_test, the value, the index and the sample', async () => {
    const x = await attempt({ ...mlp, dataset: poisoned(mlp.dataset, 'x', 3 * 784 + 10, NaN) }, SCALE_255);
    expect(x.error).toBeInstanceOf(InvalidArgumentError);
    expect(x.error.message).toBe('dataset.x: inputs must be finite: value NaN at flat index 2362 (sample 3) of shape [2000, 784]');
    const test = await attempt({ ...mlp, dataset: poisoned(mlp.dataset, 'xTest', 784 * 499, Infinity) }, SCALE_255);
    expect(test.error.message).toBe('dataset.x_test: inputs must be finite: value Infinity at flat index 391216 (sample 499) of shape [500, 784]');
  });
});

describe('a diverging loss stops the measurement', () => {
  const huge: Partial<MeasureOptions> = { learningRate: 1e9, optimizer: 'sgd', copyDepths: [2], epochs: 3, maxSamples: 500, ...SCALE_255 };

  it('in frozen mode: a typed error naming the depth, the epoch, the loss and the learning rate', async () => {
    const before = tf.memory().numTensors;
    const { events, error } = await attempt(cnn, huge);
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect((error as TrainingDivergedError).kind).toBe('FAILED_PRECONDITION');
    expect(error.message).toMatch(
      /^learningRate: training diverged at copy depth 2, epoch 1: the random-label loss (became NaN|rose from \S+ to \S+); the learning rate \(1000000000\) is likely too high: lower it$/,
    );
    expect(events.map((e) => e.type)).toEqual(['planned', 'features']);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('in joint mode, naming lambda when it is set', async () => {
    const before = tf.memory().numTensors;
    const { events, error } = await attempt(cnn, { ...huge, mode: 'joint', lambda: 1 });
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect(error.message).toMatch(/^learningRate: training diverged at copy depth 2, epoch 1: the (random-label|classification|forget) loss /);
    expect(error.message).toMatch(/the learning rate \(1000000000\) is likely too high: lower it, or lambda \(1\) that weights the forget loss$/);
    expect(events.map((e) => e.type)).toEqual(['planned']);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('does not stop a run at a sane learning rate', async () => {
    for (const mode of ['frozen', 'joint'] as const) {
      const events: MeasurementEvent[] = [];
      for await (const event of measure(cnn, { ...huge, mode, learningRate: 0.1 })) events.push(event);
      const done = events.at(-1)!;
      expect(done.type).toBe('done');
      const depth = done.type === 'done' ? done.result.depths[0]! : undefined;
      expect(depth!.randomLabelAccuracy).toBeGreaterThan(0.1);
      for (const e of events) if (e.type === 'epoch') expect(e.losses.randomLabel).toBeLessThan(10);
    }
  });
});
