import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Heads } from '../../src/metric/heads/heads.js';
import { cutModel } from '../../src/metric/model/cut.js';
import { loadModel } from '../../src/metric/model/load.js';
import { prepareData, type Split } from '../../src/metric/prepare.js';
import { randomLabels, Stream } from '../../src/metric/random.js';
import { gatherRows } from '../../src/metric/train/batches.js';
import { trainHeadsFrozen } from '../../src/metric/train/frozen.js';
import { trainJoint } from '../../src/metric/train/joint.js';
import { extractFeatures, Trunk } from '../../src/metric/train/trunk.js';
import { example, useWasm } from '../support/engine.js';

let artifacts: tf.io.ModelArtifacts;
let train: Split;

const snapshot = (model: tf.LayersModel) => model.getWeights().map((w) => w.dataSync().slice());
const headSnapshot = (heads: Heads[]) => heads.flatMap((h) => h.trainable.map((v) => v.dataSync().slice()));

beforeAll(async () => {
  await useWasm();
  const input = await example();
  artifacts = input.model;
  // 60 samples, 6 per class: with 6 samples per head and step, one epoch is one step.
  const data = prepareData(input.dataset, {
    inputShape: [28, 28, 1], numClasses: 10, heldOutFraction: 0.1, seed: 0, inputScaling: { scale: 1 / 255 },
  });
  const perClass = new Array<number>(10).fill(0);
  const rows = Int32Array.from(data.train.ids.keys()).filter((i) => perClass[data.train.y[i]!]!++ < 6);
  train = {
    x: gatherRows(data.train.x, 784, rows),
    y: Int32Array.from(rows, (r) => data.train.y[r]!),
    ids: Int32Array.from(rows, (r) => data.train.ids[r]!),
    count: rows.length,
    sampleShape: [28, 28, 1],
  };
});

/** One joint run on the 60 samples; returns model and head weights afterwards. */
async function joint(lambda: number, labelSeed: number, epochs: number) {
  const model = await loadModel(artifacts);
  const trunk = new Trunk(model, [cutModel(model, 2)]);
  const labels = randomLabels(labelSeed, Stream.TrainLabels, train.ids, 10);
  const run = trainJoint(trunk, train, train.y, labels, { groups: 10, outputs: 10, init: 'fresh', seed: 0 }, {
    epochs, perGroup: 6, learningRate: 1e-3, optimizer: 'adam', weightDecay: 0, seed: 0, lambda, labelSmoothing: 0,
  });
  let step = await run.next();
  while (!step.done) step = await run.next();
  const result = { model: snapshot(model), heads: headSnapshot(step.value) };
  step.value.forEach((h) => h.dispose());
  model.dispose();
  return result;
}

describe('gradient routing', () => {
  it('L_rnd changes no backbone weight: other random labels, identical backbone and top', async () => {
    const a = await joint(0, 1, 3);
    const b = await joint(0, 2, 3);
    expect(b.model).toEqual(a.model);
    // The labels did matter to the heads, so the equality above is not vacuous.
    expect(b.heads).not.toEqual(a.heads);
  });

  it('L_reg changes no head weight: after one step the heads are the same with and without lambda', async () => {
    const probe = await joint(0, 1, 1);
    const regularised = await joint(10, 1, 1);
    expect(regularised.heads).toEqual(probe.heads);
    // ...while L_reg did move the backbone.
    expect(regularised.model).not.toEqual(probe.model);
  });

  it('frozen mode changes no model weight, batch-norm statistics included', async () => {
    const input = tf.input({ shape: [784] });
    const hidden = tf.layers.dense({ units: 32, activation: 'relu' }).apply(input) as tf.SymbolicTensor;
    const normed = tf.layers.batchNormalization().apply(hidden) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 10, activation: 'softmax' }).apply(normed) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    const flat = { ...train, sampleShape: [784] };
    const before = snapshot(model);
    const cut = cutModel(model, 1);
    const trunk = new Trunk(model, [cut]);
    const features = await extractFeatures(trunk, flat, 16);
    const run = trainHeadsFrozen(cut, { groups: 10, outputs: 10, init: 'fresh', seed: 0 }, {
      values: features.values[0]!, sampleShape: features.shapes[0]!, groups: flat.y,
      labels: randomLabels(0, Stream.TrainLabels, flat.ids, 10),
    }, { epochs: 3, perGroup: 6, learningRate: 1e-2, optimizer: 'adam', weightDecay: 0, seed: 0 });
    let step = await run.next();
    while (!step.done) step = await run.next();
    step.value.dispose();
    expect(snapshot(model)).toEqual(before);
    model.dispose();
  });
});
