/**
 * `heads`: C per-class heads computed together (src Heads: stacked weights, batched matmul) vs
 * a loop over C separate head models (copies of the top via copyLayer), each trained on its own
 * class's k samples per step. Same features, same k, same steps, steps interleaved.
 */
import * as tf from '@tensorflow/tfjs';
import { Heads } from '../src/metric/heads/heads.js';
import { copyLayer } from '../src/metric/model/copy.js';
import { cutModel, type Cut } from '../src/metric/model/cut.js';
import { randomLabels, Stream } from '../src/metric/random.js';
import { GroupedBatches, gatherRows, gatherValues, type GroupedBatch } from '../src/metric/train/batches.js';
import { headsStep } from '../src/metric/train/frozen.js';
import { correctCount, randomLabelLoss } from '../src/metric/train/losses.js';
import { createOptimizer } from '../src/metric/train/optimizer.js';
import { groupedTensor } from '../src/metric/train/step.js';
import {
  cyclicLabels, median, num, printTable, ratio, seededFloats, settle, timeMs, useBackend, verdict, type Section,
} from './util.js';

const FEATURES = 512;
const HIDDEN = 256;
const N = 10;
const K = 16;
/** The engine's per-class batch at C = 100 and its default batch size 256. */
const ENGINE_K_100 = Math.round(256 / 100);
const WARMUP = 2;
const STEPS = 10;
const LEARNING_RATE = 1e-3;

/** Features -> Dense(256, relu) -> Dense(C): cut at d = 2, the top is both Dense layers. */
function topModel(classes: number): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [FEATURES], units: HIDDEN, activation: 'relu' }),
      tf.layers.dense({ units: classes }),
    ],
  });
}

/** One head as its own LayersModel: copies of the top's layers, the last resized to n logits. */
function separateHead(cut: Cut, seed: number): tf.LayersModel {
  const input = tf.input({ shape: [FEATURES] });
  let t: tf.SymbolicTensor = input;
  cut.layers.forEach((layer, i) => {
    const overrides = layer === cut.outputLayer ? { units: N, activation: 'linear' } : {};
    t = copyLayer(layer, overrides, seed * 16 + i).apply(t) as tf.SymbolicTensor;
  });
  return tf.model({ inputs: input, outputs: t });
}

interface Data {
  values: Float32Array;
  labels: Int32Array;
  batches: GroupedBatch[];
}

async function compare(classes: number, k: number): Promise<string[]> {
  const model = topModel(classes);
  const cut = cutModel(model, 2);
  const count = classes * k * (WARMUP + STEPS);
  const ids = Int32Array.from({ length: count }, (_, i) => i);
  const data: Data = {
    values: seededFloats(count * FEATURES, 21),
    labels: randomLabels(0, Stream.TrainLabels, ids, N),
    batches: [...new GroupedBatches(cyclicLabels(count, classes), classes, k).epoch({ seed: 0, round: 0 })],
  };
  const stacked = new Heads(cut, { groups: classes, outputs: N, init: 'fresh', seed: 0 });
  const stackedOptimizer = createOptimizer('adam', LEARNING_RATE);
  const separate = Array.from({ length: classes }, (_, c) => separateHead(cut, c));
  const separateVars = separate.map((m) => m.trainableWeights.map((w) => w.read() as tf.Variable));
  const separateOptimizers = separate.map(() => createOptimizer('adam', LEARNING_RATE));

  const stackedStep = (batch: GroupedBatch) =>
    settle(
      tf.tidy(() =>
        headsStep(
          stacked,
          stackedOptimizer,
          groupedTensor(data.values, [FEATURES], batch.index, classes),
          tf.tensor(gatherValues(data.labels, batch.index), [classes, k], 'int32'),
          tf.tensor(batch.mask, [classes, k]),
          0,
        ),
      ),
    );
  const loopStep = (batch: GroupedBatch) =>
    settle(
      tf.tidy(() => {
        const losses: tf.Scalar[] = [];
        const hits: tf.Scalar[] = [];
        separate.forEach((head, c) => {
          const index = batch.index.subarray(c * k, (c + 1) * k);
          const x = tf.tensor(gatherRows(data.values, FEATURES, index), [k, FEATURES]);
          const r = tf.tensor(gatherValues(data.labels, index), [k], 'int32');
          const mask = tf.tensor(batch.mask.subarray(c * k, (c + 1) * k), [k]);
          const { value, grads } = tf.variableGrads(() => {
            const logits = head.apply(x, { training: true }) as tf.Tensor;
            hits.push(tf.keep(correctCount(logits, r, mask)));
            return randomLabelLoss(logits, r, mask);
          }, separateVars[c]);
          separateOptimizers[c]!.applyGradients(grads);
          losses.push(value);
        });
        return [tf.addN(losses), tf.addN(hits)];
      }),
    );

  try {
    const times = { stacked: [] as number[], loop: [] as number[] };
    for (const [i, batch] of data.batches.entries()) {
      const s = await timeMs(() => stackedStep(batch));
      const l = await timeMs(() => loopStep(batch));
      if (i >= WARMUP) {
        times.stacked.push(s);
        times.loop.push(l);
      }
    }
    const [s, l] = [median(times.stacked), median(times.loop)];
    return [String(classes), String(k), num(s), num(l), ratio(l, s), classes === 100 ? verdict(l / s, 5) : '(no target)'];
  } finally {
    stacked.dispose();
    stackedOptimizer.dispose();
    separate.forEach((m) => m.dispose());
    separateOptimizers.forEach((o) => o.dispose());
    model.dispose();
  }
}

/**
 * The stacked step's pieces at C heads, each as one stacked op vs C per-head ops: TF.js 4.22's
 * wasm BatchMatMul uses XNNPACK only for batch 1 without transposes, else a scalar loop.
 */
async function pieces(classes: number, k: number): Promise<string[][]> {
  const x = tf.tensor(seededFloats(classes * k * FEATURES, 31), [classes, k, FEATURES]);
  const g = tf.tensor(seededFloats(classes * k * HIDDEN, 32), [classes, k, HIDDEN]);
  // A variable shares its initial tensor's data: tidy frees those tensors, the variables keep it.
  const w = tf.tidy(() => tf.variable(tf.tensor(seededFloats(classes * FEATURES * HIDDEN, 33), [classes, FEATURES, HIDDEN])));
  const ws = tf.tidy(() => tf.unstack(w).map((t) => tf.variable(t)));
  const [xs, gs] = [tf.unstack(x), tf.unstack(g)];
  const [adam, adams] = [createOptimizer('adam', LEARNING_RATE), ws.map(() => createOptimizer('adam', LEARNING_RATE))];
  const cases: [string, () => tf.Tensor | tf.Tensor[], () => tf.Tensor | tf.Tensor[]][] = [
    ['forward x.W', () => tf.matMul(x, w), () => xs.map((xi, i) => tf.matMul(xi, ws[i]!))],
    ['kernel gradient x^T.g', () => tf.matMul(x, g, true), () => xs.map((xi, i) => tf.matMul(xi, gs[i]!, true))],
    ['input gradient g.W^T', () => tf.matMul(g, w, false, true), () => gs.map((gi, i) => tf.matMul(gi, ws[i]!, false, true))],
    ['adam update of the kernel', () => (adam.applyGradients({ [w.name]: tf.onesLike(w) }), []),
      () => (ws.forEach((wi, i) => adams[i]!.applyGradients({ [wi.name]: tf.onesLike(wi) })), [])],
  ];
  const time = (f: () => tf.Tensor | tf.Tensor[]) => timeMs(() => settle(tf.tidy(() => [f()].flat())));
  const rows: string[][] = [];
  try {
    for (const [name, together, apart] of cases) {
      const times = { together: [] as number[], apart: [] as number[] };
      for (let i = 0; i < WARMUP + 5; i++) {
        const [t, a] = [await time(together), await time(apart)];
        if (i >= WARMUP) (times.together.push(t), times.apart.push(a));
      }
      const [t, a] = [median(times.together), median(times.apart)];
      rows.push([`${classes}`, `${k}`, name, num(t), num(a), ratio(a, t)]);
    }
  } finally {
    tf.dispose([x, g, w, ...xs, ...gs, ...ws]);
    [adam, ...adams].forEach((o) => o.dispose());
  }
  return rows;
}

export const headsSection: Section = {
  name: 'heads',
  async run() {
    await useBackend('wasm');
    const rows = [await compare(10, K), await compare(100, K), await compare(100, ENGINE_K_100)];
    printTable(
      `heads: ms per training step, ${FEATURES}-d features, top Dense(${HIDDEN}, relu) -> Dense(n = ${N}) (d = 2), adam (wasm)`,
      ['C', 'k per class', 'stacked ms/step', 'loop of C models ms/step', 'loop/stacked', 'target met (C = 100: >= 5x)'],
      rows,
      [
        `stacked = src Heads (groups = C); loop = C tf.LayersModels built with copyLayer, one variableGrads + adam update each; medians of ${STEPS} alternating steps after ${WARMUP} warm-up`,
        `k = ${ENGINE_K_100} is what measure() uses at C = 100 with its default batch size 256`,
      ],
    );
    printTable(
      `heads: pieces of a stacked Dense(512 -> 256) layer's step, one stacked [C, ...] op vs C per-head ops (wasm)`,
      ['C', 'k', 'piece', 'stacked ms', 'C separate ms', 'separate/stacked'],
      [...(await pieces(100, K)), ...(await pieces(100, ENGINE_K_100))],
      [
        'TF.js 4.22 wasm BatchMatMul runs XNNPACK only for batch 1 with no transpose; stacked [C, ...] matmuls and all transposed (gradient) matmuls take its scalar fallback loop',
        'medians of 5 after 2 warm-up; the adam rows update C x 512 x 256 parameters either way; the separate forward reuses unchanged weights, so XNNPACK reuses its packed operator (in training every update makes a new one)',
      ],
    );
  },
};
