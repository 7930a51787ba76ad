import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { estimateHeadParameters, Heads } from '../../src/metric/heads/heads.js';
import { cutModel, validCutDepths } from '../../src/metric/model/cut.js';
import { loadModel } from '../../src/metric/model/load.js';
import { Trunk } from '../../src/metric/train/trunk.js';
import { example, useWasm } from '../support/engine.js';

/** input -> a -> b -> add(a, b) -> c -> out: depth 3 would cut through the residual branch. */
function residualModel(): tf.LayersModel {
  const input = tf.input({ shape: [6] });
  const a = tf.layers.dense({ units: 8, activation: 'relu', name: 'a' }).apply(input) as tf.SymbolicTensor;
  const b = tf.layers.dense({ units: 8, name: 'b' }).apply(a) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'add' }).apply([a, b]) as tf.SymbolicTensor;
  const c = tf.layers.batchNormalization({ name: 'c' }).apply(sum) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' }).apply(c) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/** Gives batch-norm layers non-trivial moving statistics, so inference mode is really tested. */
function perturbBatchNorm(model: tf.LayersModel): void {
  for (const layer of model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    layer.setWeights(layer.getWeights().map((w, i) => tf.randomUniform(w.shape, i === 3 ? 0.5 : -1, 2, 'float32', 3 + i)));
  }
}

beforeAll(useWasm);

describe('cuts', () => {
  it('accept every depth of a sequential CNN', async () => {
    const model = await loadModel((await example()).model);
    expect(validCutDepths(model)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(cutModel(model, 2).layers.map((l) => l.getClassName())).toEqual(['Dense', 'Dense']);
    model.dispose();
  });

  it('refuse a cut through a residual connection and list the valid depths', () => {
    const model = residualModel();
    expect(validCutDepths(model)).toEqual([1, 2, 4, 5]);
    const attempt = () => cutModel(model, 3);
    expect(attempt).toThrow(InvalidArgumentError);
    expect(attempt).toThrow(/copy depth 3 is not a valid cut: 2 tensors flow from the backbone into the top.*valid depths: 1-2, 4-5/);
    expect(() => cutModel(model, 9)).toThrow(/the model has 5 layers; valid depths: 1-2, 4-5/);
  });

  it('need a layer in the top whose outputs can be resized to n', () => {
    const model = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [4], units: 3 }), tf.layers.activation({ activation: 'softmax' })],
    });
    expect(() => cutModel(model, 1)).toThrow(/the top has no layer whose outputs can be resized to n random labels \(Dense, Conv1D, Conv2D/);
    expect(validCutDepths(model)).toEqual([2]);
  });
});

describe('stacked heads', () => {
  /** Heads initialised from the top with n = C compute exactly what the top computes. */
  async function expectExactCopies(model: tf.LayersModel, depth: number, x: tf.Tensor): Promise<void> {
    const cut = cutModel(model, depth);
    const trunk = new Trunk(model, [cut]);
    const groups = 3;
    const heads = new Heads(cut, { groups, outputs: model.outputs[0]!.shape[1] as number, init: 'top', seed: 1 });
    const [features, expected, actual] = tf.tidy((): [tf.Tensor, tf.Tensor, tf.Tensor] => {
      const { features: [f], output } = trunk.run(x, false);
      const k = x.shape[0] / groups;
      const logits = heads.apply(f!.reshape([groups, k, ...f!.shape.slice(1)]), false);
      return [f!, output, tf.softmax(logits).reshape(output.shape)];
    });
    const diff = tf.tidy(() => actual.sub(expected).abs().max().dataSync()[0]!);
    expect(diff).toBeLessThan(1e-5);
    tf.dispose([features, expected, actual]);
    heads.dispose();
  }

  it('equal the top when initialised from its weights: Dense + BatchNormalization + Add', async () => {
    const model = residualModel();
    perturbBatchNorm(model);
    await expectExactCopies(model, 4, tf.randomNormal([6, 6], 0, 1, 'float32', 5));
  });

  it('equal the top when initialised from its weights: Conv2D + pooling + Flatten + Dense', async () => {
    const model = await loadModel((await example()).model);
    await expectExactCopies(model, 5, tf.randomUniform([6, 28, 28, 1], 0, 1, 'float32', 6));
    await expectExactCopies(model, 7, tf.randomUniform([6, 28, 28, 1], 0, 1, 'float32', 7));
    model.dispose();
  });

  it('copy the layer types and shapes, with the final layer resized to n', async () => {
    const model = await loadModel((await example()).model);
    const cut = cutModel(model, 2);
    const heads = new Heads(cut, { groups: 10, outputs: 37, init: 'fresh', seed: 0 });
    expect(heads.trainable.map((v) => v.shape)).toEqual([[10, 800, 64], [10, 64], [10, 64, 37], [10, 37]]);
    expect(heads.parameterCount).toBe(estimateHeadParameters(cut, 10, 37));
    heads.dispose();
    model.dispose();
  });

  it('start from fresh seeded weights: different per head, the same for the same seed', async () => {
    const model = await loadModel((await example()).model);
    const cut = cutModel(model, 2);
    const weights = (seed: number) => {
      const heads = new Heads(cut, { groups: 2, outputs: 5, init: 'fresh', seed });
      const kernel = heads.trainable[0]!.arraySync() as number[][][];
      heads.dispose();
      return kernel;
    };
    const a = weights(1);
    expect(weights(1)).toEqual(a);
    expect(weights(2)).not.toEqual(a);
    expect(a[0]).not.toEqual(a[1]);
    model.dispose();
  });

  it('keep heads independent: changing one group\'s samples changes only that head\'s output', async () => {
    const model = await loadModel((await example()).model);
    const cut = cutModel(model, 5);
    const heads = new Heads(cut, { groups: 3, outputs: 4, init: 'fresh', seed: 0 });
    const x = tf.randomUniform([3, 2, 13, 13, 16], 0, 1, 'float32', 1);
    const changed = tf.tidy(() => x.add(tf.oneHot([1], 3).reshape([3, 1, 1, 1, 1]).mul(0.5)));
    const diff = tf.tidy(() => heads.apply(x, false).sub(heads.apply(changed, false)).abs().max([1, 2]).arraySync() as number[]);
    expect(diff[0]).toBe(0);
    expect(diff[2]).toBe(0);
    expect(diff[1]).toBeGreaterThan(1e-3);
    heads.dispose();
    model.dispose();
  });
});
