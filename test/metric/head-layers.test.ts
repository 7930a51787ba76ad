import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FailedPreconditionError } from '../../src/errors.js';
import { Heads } from '../../src/metric/heads/heads.js';
import { cutModel, validCutDepths } from '../../src/metric/model/cut.js';
import { loadModel } from '../../src/metric/model/load.js';
import { headsStep } from '../../src/metric/train/heads-step.js';
import { createOptimizer } from '../../src/metric/train/optimizer.js';
import { Trunk } from '../../src/metric/train/trunk.js';
import { run, toArtifacts, useWasm } from '../support/engine.js';

beforeAll(useWasm);

const CLASSES = 3;
const GROUPS = 3;
const K = 2;

type Build = () => tf.LayersModel;

const seeded = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }) });
const classifier = () => tf.layers.dense({ units: CLASSES, activation: 'softmax', ...seeded(99) });

/** Each model puts one layer type (or config) into the top; the first layer is the backbone. */
const MODELS: Record<string, { build: Build; input: number[]; tokens?: number }> = {
  'BatchNormalization over conv features': {
    input: [8, 8, 2],
    build: () => tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 4, kernelSize: 3, ...seeded(1) }),
      tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', ...seeded(2) }),
      tf.layers.batchNormalization({ movingMeanInitializer: 'randomNormal', movingVarianceInitializer: 'ones' }),
      tf.layers.reLU(), tf.layers.flatten(), classifier(),
    ] }),
  },
  'dilated Conv2D': {
    input: [9, 9, 2],
    build: () => tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [9, 9, 2], filters: 3, kernelSize: 1, ...seeded(1) }),
      tf.layers.conv2d({ filters: 4, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'relu', ...seeded(2) }),
      tf.layers.globalAveragePooling2d({}), classifier(),
    ] }),
  },
  'Conv2D 1x1 on one channel': {
    input: [6, 6, 1],
    build: () => tf.sequential({ layers: [
      tf.layers.activation({ inputShape: [6, 6, 1], activation: 'relu' }),
      tf.layers.conv2d({ filters: 3, kernelSize: 1, strides: 2, ...seeded(2) }),
      tf.layers.flatten(), classifier(),
    ] }),
  },
  'DepthwiseConv2D + SeparableConv2D': {
    input: [8, 8, 3],
    build: () => tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 3, kernelSize: 1, ...seeded(1) }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'relu', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 2 }), biasInitializer: 'randomNormal' }),
      tf.layers.separableConv2d({ filters: 5, kernelSize: 3, strides: 2, depthwiseInitializer: tf.initializers.glorotUniform({ seed: 3 }), pointwiseInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
      tf.layers.flatten(), classifier(),
    ] }),
  },
  'Conv1D same, strided and dilated': {
    input: [12, 3],
    build: () => tf.sequential({ layers: [
      tf.layers.conv1d({ inputShape: [12, 3], filters: 4, kernelSize: 3, padding: 'same', ...seeded(1) }),
      tf.layers.conv1d({ filters: 4, kernelSize: 3, strides: 2, activation: 'relu', ...seeded(2) }),
      tf.layers.conv1d({ filters: 4, kernelSize: 2, dilationRate: 2, padding: 'same', ...seeded(3) }),
      tf.layers.flatten(), classifier(),
    ] }),
  },
  'LayerNormalization + Dense': {
    input: [6],
    build: () => tf.sequential({ layers: [
      tf.layers.dense({ inputShape: [6], units: 8, ...seeded(1) }),
      tf.layers.layerNormalization({ gammaInitializer: 'randomNormal', betaInitializer: 'randomNormal' }),
      tf.layers.dense({ units: 8, activation: 'relu', ...seeded(2) }), classifier(),
    ] }),
  },
  'LSTM and GRU over rows': {
    input: [5, 4],
    build: () => tf.sequential({ layers: [
      tf.layers.dense({ inputShape: [5, 4], units: 4, ...seeded(1) }),
      tf.layers.lstm({ units: 6, returnSequences: true, ...seeded(2), recurrentInitializer: tf.initializers.glorotUniform({ seed: 3 }) }),
      tf.layers.gru({ units: 5, ...seeded(4), recurrentInitializer: tf.initializers.glorotUniform({ seed: 5 }) }),
      classifier(),
    ] }),
  },
  'Embedding (the cut at the model input)': {
    input: [7],
    tokens: 11,
    build: () => tf.sequential({ layers: [
      tf.layers.embedding({ inputDim: 11, outputDim: 4, inputLength: 7, embeddingsInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed: 1 }) }),
      tf.layers.globalAveragePooling1d({}), classifier(),
    ] }),
  },
  'PReLU and Conv2DTranspose': {
    input: [4, 4, 2],
    build: () => tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [4, 4, 2], filters: 2, kernelSize: 1, ...seeded(1) }),
      tf.layers.conv2dTranspose({ filters: 3, kernelSize: 3, strides: 2, padding: 'same', ...seeded(2) }),
      tf.layers.prelu({ alphaInitializer: tf.initializers.randomUniform({ minval: 0.1, maxval: 0.5, seed: 3 }) }),
      tf.layers.flatten(), classifier(),
    ] }),
  },
  'a layer with weights after the resized one': {
    input: [5],
    build: () => tf.sequential({ layers: [
      tf.layers.dense({ inputShape: [5], units: 6, ...seeded(1) }),
      tf.layers.dense({ units: CLASSES, ...seeded(2) }),
      tf.layers.prelu({ alphaInitializer: tf.initializers.constant({ value: 0.3 }) }),
      tf.layers.softmax(),
    ] }),
  },
};

/** A model as users' files give it: saved and loaded through artifacts. */
async function load(build: Build): Promise<tf.LayersModel> {
  const built = build();
  const model = await loadModel(await toArtifacts(built));
  built.dispose();
  return model;
}

function inputs(shape: number[], tokens: number | undefined, seed: number): tf.Tensor {
  const full = [GROUPS * K, ...shape];
  return tokens ? tf.randomUniformInt(full, 0, tokens, seed) : tf.randomNormal(full, 0, 1, 'float32', seed);
}

describe.each(Object.entries(MODELS))('heads with %s in the top', (_, spec) => {
  it('are exact copies of the top at every valid depth with head init top', async () => {
    const model = await load(spec.build);
    const depths = validCutDepths(model);
    expect(depths.length).toBeGreaterThan(0);
    const x = inputs(spec.input, spec.tokens, 7);
    for (const depth of depths) {
      const cut = cutModel(model, depth);
      const trunk = new Trunk(model, [cut]);
      const heads = new Heads(cut, { groups: GROUPS, outputs: CLASSES, init: 'top', seed: 1 });
      const diff = tf.tidy(() => {
        const { features: [f], output } = trunk.run(x, false);
        const logits = heads.apply(f!.reshape([GROUPS, K, ...f!.shape.slice(1)]), false);
        return tf.softmax(logits).reshape(output.shape).sub(output).abs().max().dataSync()[0]!;
      });
      expect(diff, `depth ${depth}`).toBeLessThan(1e-5);
      heads.dispose();
    }
    x.dispose();
    model.dispose();
  });

  it.each([GROUPS, 1])('learn at every valid depth with %i heads: one step moves every head weight, losses stay finite', async (groups) => {
    const model = await load(spec.build);
    const x = inputs(spec.input, spec.tokens, 8);
    const k = (GROUPS * K) / groups;
    const labels = tf.tensor([0, 1, 2, 3, 4, 0], [groups, k], 'int32');
    const mask = tf.ones([groups, k]);
    for (const depth of validCutDepths(model)) {
      const cut = cutModel(model, depth);
      const trunk = new Trunk(model, [cut]);
      const heads = new Heads(cut, { groups, outputs: 5, init: 'fresh', seed: 2 });
      const before = heads.trainable.map((v) => v.dataSync().slice());
      const optimizer = createOptimizer('sgd', 0.5);
      const loss = tf.tidy(() => {
        const { features: [f] } = trunk.run(x, false);
        const grouped = f!.reshape([groups, k, ...f!.shape.slice(1)]);
        const [value, hits] = headsStep(heads, optimizer, grouped, labels, mask, 0);
        hits.dispose();
        return value.dataSync()[0]!;
      });
      expect(Number.isFinite(loss), `depth ${depth}`).toBe(true);
      heads.trainable.forEach((v, i) => {
        const moved = v.dataSync().some((value, j) => value !== before[i]![j]);
        expect(moved, `depth ${depth}: ${v.name} ${v.shape}`).toBe(true);
      });
      optimizer.dispose();
      heads.dispose();
    }
    tf.dispose([x, labels, mask]);
    model.dispose();
  });
});

/** Dilated convolution written as a sum over taps of shifted slices: no conv gradient involved. */
function tapSum(x: tf.Tensor4D, filter: tf.Tensor4D, d: number, depthwise: boolean): tf.Tensor {
  const [kh, kw, cin] = filter.shape;
  const ho = x.shape[1] - (kh - 1) * d;
  const wo = x.shape[2] - (kw - 1) * d;
  const terms: tf.Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const patch = x.slice([0, i * d, j * d, 0], [-1, ho, wo, -1]);
      const tap = filter.slice([i, j, 0, 0], [1, 1, -1, -1]).reshape([cin, -1]);
      terms.push(depthwise ? patch.mul(tap.reshape([cin])) : tf.matMul(patch.reshape([-1, cin]), tap).reshape([x.shape[0], ho, wo, -1]));
    }
  }
  return tf.addN(terms);
}

describe('dilated convolution gradients', () => {
  it.each([
    ['conv2d', 2, false],
    ['conv2d', 3, false],
    ['depthwiseConv2d', 2, true],
  ] as const)('%s with dilation %i equals the sum over shifted taps, forward and both gradients', (_, d, depthwise) => {
    const x = tf.randomNormal<tf.Rank.R4>([2, 9, 10, 3], 0, 1, 'float32', 1);
    const filter = tf.randomNormal<tf.Rank.R4>([3, 2, 3, depthwise ? 1 : 4], 0, 1, 'float32', 2);
    const conv = (a: tf.Tensor4D, f: tf.Tensor4D) =>
      depthwise ? tf.depthwiseConv2d(a, f, 1, 'valid', 'NHWC', d) : tf.conv2d(a, f, 1, 'valid', 'NHWC', d);
    const weight = tf.randomNormal(conv(x, filter).shape, 0, 1, 'float32', 3);
    const loss = (f: (a: tf.Tensor4D, b: tf.Tensor4D) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) =>
      f(a as tf.Tensor4D, b as tf.Tensor4D).mul(weight).sum();
    const [dx, dw] = tf.grads(loss(conv))([x, filter]);
    const [rx, rw] = tf.grads(loss((a, b) => tapSum(a, b, d, depthwise)))([x, filter]);
    const maxDiff = (a: tf.Tensor, b: tf.Tensor) => a.sub(b).abs().max().dataSync()[0]!;
    expect(maxDiff(conv(x, filter), tapSum(x, filter, d, depthwise))).toBeLessThan(1e-4);
    expect(maxDiff(dx!, rx!)).toBeLessThan(1e-4);
    expect(maxDiff(dw!, rw!)).toBeLessThan(1e-4);
    tf.dispose([x, filter, weight, dx!, dw!, rx!, rw!]);
  });
});

describe('layers TF.js cannot run', () => {
  it('end as FAILED_PRECONDITION naming the pass and the backend, never as an internal error', async () => {
    // TF.js builds a causal Conv1D but has no implementation of it: the forward pass throws.
    const model = tf.sequential({ layers: [
      tf.layers.conv1d({ inputShape: [8, 2], filters: 3, kernelSize: 2, padding: 'causal' }),
      tf.layers.flatten(), tf.layers.dense({ units: 2, activation: 'softmax' }),
    ] });
    const dataset = { x: new Float32Array(20 * 16).map((_, i) => Math.sin(i)), xShape: [20, 8, 2], y: Int32Array.from({ length: 20 }, (_, i) => i % 2) };
    const attempt = run({ model: await toArtifacts(model), dataset }, { copyDepths: [1], epochs: 1 });
    await expect(attempt).rejects.toThrow(FailedPreconditionError);
    await expect(attempt).rejects.toThrow(/model: the model's inference pass failed on the wasm backend: .*CAUSAL padding/);
    model.dispose();
  });
});

describe('linear dilated convolutions (the fused path TF.js layers take while training)', () => {
  it('fine-tune in joint mode and train in heads', async () => {
    const model = tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [10, 10, 2], filters: 3, kernelSize: 3, dilationRate: 2, ...seeded(1) }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, dilationRate: 2, padding: 'same', depthwiseInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      tf.layers.flatten(), tf.layers.dense({ units: 2, activation: 'softmax', ...seeded(3) }),
    ] });
    const dataset = { x: new Float32Array(24 * 200).map((_, i) => Math.sin(i * 0.7)), xShape: [24, 10, 10, 2], y: Int32Array.from({ length: 24 }, (_, i) => i % 2) };
    const { result } = await run({ model: await toArtifacts(model), dataset }, { copyDepths: [1, 2, 3, 4], epochs: 1, mode: 'joint', batchSize: 8 });
    expect(result.depths.map((d) => d.copyDepth)).toEqual([1, 2, 3, 4]);
    model.dispose();
  });
});
