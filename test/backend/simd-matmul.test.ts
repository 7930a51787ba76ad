/**
 * The SIMD BatchMatMul and _FusedMatMul on wasm must agree with the cpu backend over a table
 * of shapes (1, odd, > 1024, batch 1 and broadcast, all transposes), as kernels, as gradients
 * and in a whole training run, and must not leak.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerSimdKernels, unregisterSimdKernels } from '../../src/metric/backend/simd/index.js';
import { simdContext } from '../../src/metric/backend/simd/loader.js';
import { registerWasmGradientKernels } from '../../src/metric/backend/wasm-gradients.js';
import { seededFloats } from '../support/seeded.js';

const TOLERANCE = 1e-5;

interface Host {
  values: Float32Array;
  shape: number[];
}

/** Deterministic uniform values in [-1, 1). */
function random(shape: number[], seed: number): Host {
  return { values: seededFloats(shape.reduce((a, b) => a * b, 1), seed), shape };
}

/** max |actual - expected| relative to the largest |expected|; NaN anywhere fails. */
function relativeError(actual: Host, expected: Host): number {
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.values.length).toBe(expected.values.length);
  let diff = 0;
  let scale = 1e-6;
  expected.values.forEach((e, i) => {
    const d = Math.abs((actual.values[i] ?? Number.NaN) - e);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
    scale = Math.max(scale, Math.abs(e));
  });
  return diff / scale;
}

async function use(backend: 'cpu' | 'wasm'): Promise<void> {
  if (!(await tf.setBackend(backend)) || tf.getBackend() !== backend) throw new Error(`no ${backend} backend`);
}

async function host(t: tf.Tensor): Promise<Host> {
  const out = { values: Float32Array.from(await t.data()), shape: t.shape.slice() };
  t.dispose();
  return out;
}

/** Runs `f` on `backend` with tensors made from `inputs`, disposing them. */
async function on(backend: 'cpu' | 'wasm', inputs: Host[], f: (...xs: tf.Tensor[]) => tf.Tensor): Promise<Host> {
  await use(backend);
  const xs = inputs.map((h) => tf.tensor(h.values, h.shape));
  try {
    return await host(tf.tidy(() => f(...xs)));
  } finally {
    tf.dispose(xs);
  }
}

/** [a shape, b shape] without transposes; cases transpose them as asked. */
const SHAPES: [string, number[], number[]][] = [
  ['1 x 1 x 1', [1, 1], [1, 1]],
  ['rank 2, odd', [5, 7], [7, 3]],
  ['3 x 17 x 9', [3, 17], [17, 9]],
  ['a single row, n > 1024', [1, 17], [17, 1030]],
  ['k > 1024 (several inner blocks)', [6, 1100], [1100, 13]],
  ['equal batches', [4, 9, 21], [4, 21, 11]],
  ['stacked heads', [10, 12, 300], [10, 300, 64]],
  ['b broadcast over a batch', [3, 9, 21], [1, 21, 11]],
  ['b rank 2 under a batch', [2, 3, 9, 21], [21, 11]],
  ['a broadcast over b batch', [1, 9, 21], [3, 21, 11]],
  ['a rank 2 under b batch', [9, 21], [2, 21, 11]],
  ['m = 3, wide', [20, 3, 64], [20, 64, 130]],
];

const transposed = (shape: number[], t: boolean): number[] =>
  t ? [...shape.slice(0, -2), shape[shape.length - 1]!, shape[shape.length - 2]!] : shape;

/** Moves the last two axes of h's values (as laid out by `transposed`). */
function transposeHost(h: Host, t: boolean): Host {
  if (!t) return h;
  const [r, c] = h.shape.slice(-2) as [number, number];
  const values = new Float32Array(h.values.length);
  for (let b = 0; b < h.values.length / (r * c); b++) {
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) values[b * r * c + j * r + i] = h.values[b * r * c + i * c + j]!;
  }
  return { values, shape: transposed(h.shape, true) };
}

beforeAll(async () => {
  await use('cpu');
  await use('wasm');
  registerWasmGradientKernels();
  registerSimdKernels();
});

afterAll(() => {
  registerSimdKernels();
});

describe('SIMD BatchMatMul on wasm matches cpu', () => {
  it('binds to the wasm backend', async () => {
    await use('wasm');
    expect(simdContext(tf.backend())).toBeDefined();
    expect(simdContext(tf.findBackend('cpu'))).toBeUndefined();
  });

  SHAPES.forEach(([name, aShape, bShape], index) =>
    it.each([
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ])(`${name}, transposeA %s, transposeB %s`, async (ta, tb) => {
      const a = transposeHost(random(aShape, 100 + index), ta);
      const b = transposeHost(random(bShape, 200 + index), tb);
      const product = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => tf.matMul(x, y, ta, tb);
      const expected = await on('cpu', [a, b], product);
      expect(relativeError(await on('wasm', [a, b], product), expected)).toBeLessThan(TOLERANCE);
    }),
  );

  it('broadcasts batch dimensions like numpy', async () => {
    // TF.js's own kernels only pair flattened batches; compare with explicitly tiled inputs.
    const [a, b] = [random([3, 1, 7, 5], 1), random([2, 5, 9], 2)];
    const tiled = (x: tf.Tensor, y: tf.Tensor): tf.Tensor =>
      tf.matMul(x.broadcastTo([3, 2, 7, 5]), y.broadcastTo([3, 2, 5, 9]));
    const expected = await on('cpu', [a, b], tiled);
    const actual = await on('wasm', [a, b], (x, y) => tf.matMul(x, y));
    expect(relativeError(actual, expected)).toBeLessThan(TOLERANCE);
  });

  it('leaves int32 products to the original kernel', async () => {
    await use('wasm');
    // wasm has no int32 BatchMatMul: the original kernel's error shows the fallback ran.
    expect(() => tf.tidy(() => tf.matMul(tf.ones([2, 2], 'int32'), tf.ones([2, 2], 'int32')))).toThrow(/non-float32/);
  });

  it('gives tf.matMul the gradients cpu gives', async () => {
    const [a, b, dy] = [random([4, 6, 33], 7), random([4, 33, 10], 8), random([4, 6, 10], 9)];
    for (const [ta, tb] of [[false, false], [true, true]] as const) {
      const grads = (x: tf.Tensor, y: tf.Tensor, d: tf.Tensor): tf.Tensor => {
        const [ga, gb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q).mul(d).sum())([x, y]);
        return tf.concat([ga!.flatten(), gb!.flatten()]);
      };
      const inputs = [transposeHost(a, ta), transposeHost(b, tb), dy];
      const withTransposes = (x: tf.Tensor, y: tf.Tensor, d: tf.Tensor): tf.Tensor =>
        grads(ta ? x.transpose([0, 2, 1]) : x, tb ? y.transpose([0, 2, 1]) : y, d);
      const expected = await on('cpu', inputs, withTransposes);
      expect(relativeError(await on('wasm', inputs, withTransposes), expected)).toBeLessThan(TOLERANCE);
    }
  });
});

describe('SIMD _FusedMatMul on wasm matches cpu', () => {
  it.each(['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const)('%s', async (activation) => {
    const [a, b, bias, alpha] = [random([3, 11, 5], 3), random([3, 7, 11], 4), random([7], 5), random([7], 6)];
    const fused = (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor, w: tf.Tensor): tf.Tensor =>
      tf.fused.matMul({
        a: x, b: y, transposeA: true, transposeB: true, bias: z, activation,
        ...(activation === 'prelu' ? { preluActivationWeights: w } : {}),
        ...(activation === 'leakyrelu' ? { leakyreluAlpha: 0.3 } : {}),
      });
    const expected = await on('cpu', [a, b, bias, alpha], fused);
    expect(relativeError(await on('wasm', [a, b, bias, alpha], fused), expected)).toBeLessThan(TOLERANCE);
  });
});

describe('SIMD matmul kernels in training', () => {
  /** A small stacked-head style model: [G, k, in] x [G, in, h] -> relu -> x [G, h, out]. */
  async function train(): Promise<Host> {
    await use('wasm');
    const x = tf.tensor(random([5, 8, 37], 11).values, [5, 8, 37]);
    const target = tf.tensor(random([5, 8, 3], 12).values, [5, 8, 3]);
    const w1 = tf.variable(tf.tensor(random([5, 37, 19], 13).values, [5, 37, 19]).mul(0.2));
    const w2 = tf.variable(tf.tensor(random([5, 19, 3], 14).values, [5, 19, 3]).mul(0.2));
    const optimizer = tf.train.sgd(0.05);
    const loss = (): tf.Scalar => tf.losses.meanSquaredError(target, tf.matMul(tf.relu(tf.matMul(x, w1)), w2));
    optimizer.minimize(loss, false, [w1, w2]);
    const [tensors, dataIds] = [tf.memory().numTensors, tf.engine().backend.numDataIds()];
    for (let step = 0; step < 10; step++) optimizer.minimize(loss, false, [w1, w2]);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(dataIds);
    const result = await host(tf.concat([w1.flatten(), w2.flatten()]));
    tf.dispose([x, target, w1, w2]);
    optimizer.dispose();
    return result;
  }

  it('ends where the original kernels end', async () => {
    const ours = await train();
    unregisterSimdKernels();
    const theirs = await train();
    registerSimdKernels();
    expect(relativeError(ours, theirs)).toBeLessThan(TOLERANCE);
  });
});
