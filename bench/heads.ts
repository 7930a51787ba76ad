/**
 * `heads`: the per-class heads' training step on wasm.
 * 1. Before / after the SIMD kernels: the same stacked heads (src Heads, same seed, same
 *    batches) stepped with TF.js 4.22's own wasm kernels and tf-op Adam, and with memometer's
 *    SIMD BatchMatMul and fused Adam, steps alternating; the losses of both runs are compared.
 * 2. Stacked C heads vs a loop over C separate head models (the issue-3 target), both with the
 *    SIMD kernels.
 * 3. The pieces of a stacked Dense layer's step, before / after, in GFLOP/s.
 */
import * as tf from '@tensorflow/tfjs';
import { registerSimdKernels, unregisterSimdKernels } from '../src/metric/backend/simd/index.js';
import { Heads } from '../src/metric/heads/heads.js';
import { copyLayer } from '../src/metric/model/copy.js';
import { cutModel, type Cut } from '../src/metric/model/cut.js';
import { randomLabels, Stream } from '../src/metric/random.js';
import { GroupedBatches, gatherRows, gatherValues, type GroupedBatch } from '../src/metric/train/batches.js';
import { headsStep } from '../src/metric/train/heads-step.js';
import { correctCount, randomLabelLoss } from '../src/metric/train/losses.js';
import { createOptimizer } from '../src/metric/train/optimizer.js';
import { groupedTensor } from '../src/metric/train/step.js';
import {
  cyclicLabels, median, num, printTable, ratio, seededFloats, settle, timeMs, useBackend, verdict, type Section,
} from './util.js';

const N = 10;
const WARMUP = 2;
const STEPS = 10;
const LEARNING_RATE = 1e-3;

export interface Shape {
  label: string;
  features: number;
  /** Widths of the top's hidden Dense layers (relu); the last layer is Dense(n). */
  hidden: number[];
  classes: number;
  /** Samples per head per step. */
  k: number;
}

export const SHAPES: Shape[] = [
  { label: 'fashion-cnn d = 2', features: 1568, hidden: [64], classes: 10, k: 26 },
  { label: 'conv-pool-conv-pool CNN d = 3', features: 1568, hidden: [64, 64], classes: 10, k: 13 },
  { label: 'C = 100, k = 16', features: 512, hidden: [256], classes: 100, k: 16 },
  { label: 'C = 100, k = 3 (measure() at batch 256)', features: 512, hidden: [256], classes: 100, k: 3 },
];

const describe = (s: Shape) => `${[s.features, ...s.hidden, N].join(' -> ')}, C = ${s.classes}, k = ${s.k}`;

/** Features -> Dense(h, relu)... -> Dense(C): cut below the first Dense, the top is all of them. */
function topModel(shape: Shape): { model: tf.LayersModel; cut: Cut } {
  const layers = shape.hidden.map((units, i) =>
    tf.layers.dense({ ...(i === 0 ? { inputShape: [shape.features] } : {}), units, activation: 'relu' }),
  );
  layers.push(tf.layers.dense({ units: shape.classes }));
  const model = tf.sequential({ layers });
  return { model, cut: cutModel(model, layers.length) };
}

interface Data {
  values: Float32Array;
  labels: Int32Array;
  batches: GroupedBatch[];
}

function seededData(shape: Shape): Data {
  const count = shape.classes * shape.k * (WARMUP + STEPS);
  const ids = Int32Array.from({ length: count }, (_, i) => i);
  return {
    values: seededFloats(count * shape.features, 21),
    labels: randomLabels(0, Stream.TrainLabels, ids, N),
    batches: [...new GroupedBatches(cyclicLabels(count, shape.classes), shape.classes, shape.k).epoch({ seed: 0, round: 0 })],
  };
}

/** A stacked heads trainer: returns a step function that resolves to the step's loss. */
function stackedTrainer(cut: Cut, shape: Shape, data: Data) {
  const heads = new Heads(cut, { groups: shape.classes, outputs: N, init: 'fresh', seed: 0 });
  const optimizer = createOptimizer('adam', LEARNING_RATE);
  const step = async (batch: GroupedBatch): Promise<number> => {
    const [loss, hits] = tf.tidy(() =>
      headsStep(
        heads,
        optimizer,
        groupedTensor(data.values, [shape.features], batch.index, shape.classes),
        tf.tensor(gatherValues(data.labels, batch.index), [shape.classes, shape.k], 'int32'),
        tf.tensor(batch.mask, [shape.classes, shape.k]),
        0,
      ),
    );
    const value = (await loss.data())[0]!;
    await settle([loss, hits]);
    return value;
  };
  return { step, dispose: () => (heads.dispose(), optimizer.dispose()) };
}

export interface BeforeAfter {
  /** Median ms per step on TF.js's own kernels and on memometer's SIMD kernels. */
  beforeMs: number;
  afterMs: number;
  /** Largest relative difference between the two runs' losses at the same step. */
  worstLossDifference: number;
}

/** Before / after the SIMD kernels, steps alternating; the runs start from the same weights. */
export async function beforeAfter(shape: Shape): Promise<BeforeAfter> {
  const { model, cut } = topModel(shape);
  const data = seededData(shape);
  const [before, after] = [stackedTrainer(cut, shape, data), stackedTrainer(cut, shape, data)];
  const times = { before: [] as number[], after: [] as number[] };
  let worst = 0;
  try {
    for (const [i, batch] of data.batches.entries()) {
      unregisterSimdKernels();
      let lossBefore = 0;
      const b = await timeMs(async () => (lossBefore = await before.step(batch)));
      registerSimdKernels();
      let lossAfter = 0;
      const a = await timeMs(async () => (lossAfter = await after.step(batch)));
      worst = Math.max(worst, Math.abs(lossAfter - lossBefore) / Math.abs(lossBefore));
      if (i >= WARMUP) {
        times.before.push(b);
        times.after.push(a);
      }
    }
  } finally {
    registerSimdKernels();
    before.dispose();
    after.dispose();
    model.dispose();
  }
  return { beforeMs: median(times.before), afterMs: median(times.after), worstLossDifference: worst };
}

function beforeAfterRow(shape: Shape, { beforeMs: b, afterMs: a, worstLossDifference }: BeforeAfter): string[] {
  const samples = shape.classes * shape.k;
  return [shape.label, describe(shape), num(b), num(a), ratio(b, a), num((samples * 1000) / b), num((samples * 1000) / a), worstLossDifference.toExponential(1)];
}

/** One head as its own LayersModel: copies of the top's layers, the last resized to n logits. */
function separateHead(cut: Cut, features: number, seed: number): tf.LayersModel {
  const input = tf.input({ shape: [features] });
  let t: tf.SymbolicTensor = input;
  cut.layers.forEach((layer, i) => {
    const overrides = layer === cut.outputLayer ? { units: N, activation: 'linear' } : {};
    t = copyLayer(layer, overrides, seed * 16 + i).apply(t) as tf.SymbolicTensor;
  });
  return tf.model({ inputs: input, outputs: t });
}

/**
 * Stacked heads (SIMD kernels) vs a loop of C head models, the loop both on TF.js's own kernels
 * (what a loop of tf models gets) and on the SIMD kernels; steps alternating.
 */
async function stackedVsLoop(shape: Shape): Promise<string[]> {
  const { model, cut } = topModel(shape);
  const data = seededData(shape);
  const { classes, k, features } = shape;
  const stacked = stackedTrainer(cut, shape, data);
  const separate = Array.from({ length: classes }, (_, c) => separateHead(cut, features, c));
  const separateVars = separate.map((m) => m.trainableWeights.map((w) => w.read() as tf.Variable));
  const separateOptimizers = separate.map(() => createOptimizer('adam', LEARNING_RATE));
  const loopStep = (batch: GroupedBatch) =>
    settle(
      tf.tidy(() => {
        const losses: tf.Scalar[] = [];
        const hits: tf.Scalar[] = [];
        separate.forEach((head, c) => {
          const index = batch.index.subarray(c * k, (c + 1) * k);
          const x = tf.tensor(gatherRows(data.values, features, index), [k, features]);
          const r = tf.tensor(gatherValues(data.labels, index), [k], 'int32');
          const mask = tf.tensor(batch.mask.subarray(c * k, (c + 1) * k), [k]);
          const { value, grads } = tf.variableGrads(() => {
            const logits = head.apply(x, { training: true }) as tf.Tensor;
            hits.push(tf.keep(correctCount(logits, r, mask)));
            return randomLabelLoss(logits, r, mask);
          }, separateVars[c]);
          separateOptimizers[c]!.applyGradients(grads, separateVars[c]!, 0);
          losses.push(value);
        });
        return [tf.addN(losses), tf.addN(hits)];
      }),
    );
  try {
    const times = { stacked: [] as number[], loopBefore: [] as number[], loopAfter: [] as number[] };
    for (const [i, batch] of data.batches.entries()) {
      const s = await timeMs(() => stacked.step(batch));
      unregisterSimdKernels();
      const before = await timeMs(() => loopStep(batch));
      registerSimdKernels();
      const after = await timeMs(() => loopStep(batch));
      if (i >= WARMUP) {
        times.stacked.push(s);
        times.loopBefore.push(before);
        times.loopAfter.push(after);
      }
    }
    const [s, before, after] = [median(times.stacked), median(times.loopBefore), median(times.loopAfter)];
    return [describe(shape), num(s), num(before), ratio(before, s), verdict(before / s, 5), num(after), ratio(after, s)];
  } finally {
    registerSimdKernels();
    stacked.dispose();
    separate.forEach((m) => m.dispose());
    separateOptimizers.forEach((o) => o.dispose());
    model.dispose();
  }
}

/** The pieces of a stacked Dense(in -> out) layer's step at C heads, before / after. */
async function pieces(classes: number, k: number, inputs: number, outputs: number): Promise<string[][]> {
  const x = tf.tensor(seededFloats(classes * k * inputs, 31), [classes, k, inputs]);
  const g = tf.tensor(seededFloats(classes * k * outputs, 32), [classes, k, outputs]);
  // A variable shares its initial tensor's data: tidy frees that tensor, the variable keeps it.
  const w = tf.tidy(() => tf.variable(tf.tensor(seededFloats(classes * inputs * outputs, 33), [classes, inputs, outputs])));
  const adam = createOptimizer('adam', LEARNING_RATE);
  const flops = 2 * classes * k * inputs * outputs;
  const cases: [string, number, () => tf.Tensor[]][] = [
    ['forward x.W', flops, () => [tf.matMul(x, w)]],
    ['kernel gradient x^T.g', flops, () => [tf.matMul(x, g, true)]],
    ['input gradient g.W^T', flops, () => [tf.matMul(g, w, false, true)]],
    ['adam update of the kernel', 0, () => (adam.applyGradients({ [w.name]: tf.onesLike(w) }, [w], 0), [])],
  ];
  const time = (f: () => tf.Tensor[]) => timeMs(() => settle(tf.tidy(f)));
  const rows: string[][] = [];
  try {
    for (const [name, work, run] of cases) {
      const times = { before: [] as number[], after: [] as number[] };
      for (let i = 0; i < WARMUP + 5; i++) {
        unregisterSimdKernels();
        const b = await time(run);
        registerSimdKernels();
        const a = await time(run);
        if (i >= WARMUP) {
          times.before.push(b);
          times.after.push(a);
        }
      }
      const [b, a] = [median(times.before), median(times.after)];
      const gflops = (ms: number) => (work ? num(work / ms / 1e6) : '-');
      rows.push([`[${classes}, ${k}, ${inputs}] x [${classes}, ${inputs}, ${outputs}]`, name, num(b), num(a), ratio(b, a), gflops(b), gflops(a)]);
    }
  } finally {
    registerSimdKernels();
    tf.dispose([x, g, w]);
    adam.dispose();
  }
  return rows;
}

export const headsSection: Section = {
  name: 'heads',
  async run() {
    await useBackend('wasm');
    const rows: string[][] = [];
    for (const shape of SHAPES) rows.push(beforeAfterRow(shape, await beforeAfter(shape)));
    printTable(
      'heads: ms per training step of the stacked heads (forward, backward, adam), before / after the SIMD kernels (wasm, one thread)',
      ['case', 'top (features -> ... -> n), heads, samples per head', 'before ms/step', 'after ms/step', 'speed-up', 'before samples/s', 'after samples/s', 'max relative loss difference'],
      rows,
      [
        `before = TF.js 4.22's wasm BatchMatMul/_FusedMatMul and Adam as tf ops; after = memometer's SIMD BatchMatMul/_FusedMatMul and fused Adam; the same heads (same seed) and batches, steps alternating, medians of ${STEPS} after ${WARMUP} warm-up`,
        'the last column compares the two runs\' losses step by step: they train the same weights from the same start',
      ],
    );
    const loopRows: string[][] = [];
    for (const shape of SHAPES.filter((s) => s.features === 512)) loopRows.push(await stackedVsLoop(shape));
    printTable(
      'heads: stacked C heads (SIMD kernels) vs a loop of C head models, ms per step (wasm)',
      ['top, heads, samples per head', 'stacked ms/step', 'loop, TF.js kernels ms/step', 'loop/stacked', 'target met (>= 5x)', 'loop, SIMD kernels ms/step', 'loop/stacked'],
      loopRows,
      [
        `stacked = src Heads (groups = C); loop = C tf.LayersModels built with copyLayer, one variableGrads + adam update each, run on TF.js's own kernels and on memometer's; medians of ${STEPS} alternating steps after ${WARMUP} warm-up`,
        'both sides update the same C x 512 x 256 Adam state every step: against a loop that also has the fused update, that memory-bound pass caps the ratio',
      ],
    );
    printTable(
      'heads: pieces of a stacked Dense layer\'s step, one [C, ...] op, before / after the SIMD kernels (wasm)',
      ['product', 'piece', 'before ms', 'after ms', 'speed-up', 'before GFLOP/s', 'after GFLOP/s'],
      [...(await pieces(10, 26, 1568, 64)), ...(await pieces(100, 16, 512, 256)), ...(await pieces(100, 3, 512, 256))],
      ['medians of 5 alternating runs after 2 warm-up; the adam rows update the whole [C, in, out] kernel (ones as gradients)'],
    );
  },
};
