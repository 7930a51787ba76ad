/**
 * memometer's optimizer must reproduce tf.train.adam, momentum (0.9) and sgd, with coupled L2
 * weight decay, over many steps, on wasm (one fused kernel per variable) and on cpu (tf ops),
 * and free its state.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/metric/backend/select.js';
import { createOptimizer, applyGradients, OPTIMIZERS, OptimizerName } from '../../src/metric/train/optimizer.js';

const STEPS = 20;
const LEARNING_RATE = 0.01;
const SHAPES = [[1], [7], [3, 17], [4, 33, 5]];

/** Deterministic values in [-1, 1) from a seed (an LCG: enough for test data). */
function values(size: number, seed: number): Float32Array {
  let state = seed >>> 0;
  return Float32Array.from({ length: size }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 31 - 1;
  });
}

const size = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** Gradients that depend on the weights, so that differences in the weights compound. */
const gradient = (w: tf.Tensor, shape: number[], step: number): tf.Tensor =>
  tf.tidy(() => tf.tensor(values(size(shape), 1000 + step), shape).add(w.mul(0.5)));

function tfOptimizer(name: OptimizerName): tf.Optimizer {
  if (name === 'adam') return tf.train.adam(LEARNING_RATE);
  return name === 'momentum' ? tf.train.momentum(LEARNING_RATE, 0.9) : tf.train.sgd(LEARNING_RATE);
}

/** Runs STEPS steps on fresh variables with ours (or TF.js's) optimizer; returns the weights. */
function run(name: OptimizerName, decay: number, ours: boolean): Float32Array[] {
  const vars = tf.tidy(() => SHAPES.map((shape, i) => tf.variable(tf.tensor(values(size(shape), i + 1), shape))));
  const optimizer = ours ? createOptimizer(name, LEARNING_RATE) : tfOptimizer(name);
  for (let step = 0; step < STEPS; step++) {
    const grads = Object.fromEntries(vars.map((v, i) => [v.name, gradient(v, SHAPES[i]!, step)]));
    tf.tidy(() => {
      if (optimizer instanceof tf.Optimizer) {
        // The coupled decay as the previous implementation applied it before tf.train.*.
        const decayed = Object.fromEntries(vars.map((v) => [v.name, decay > 0 ? grads[v.name]!.add(v.mul(decay)) : grads[v.name]!]));
        optimizer.applyGradients(decayed);
        tf.dispose(grads);
      } else {
        applyGradients(optimizer, grads, vars, decay);
      }
    });
  }
  const result = vars.map((v) => v.dataSync().slice() as Float32Array);
  optimizer.dispose();
  tf.dispose(vars);
  return result;
}

function maxRelativeError(actual: Float32Array[], expected: Float32Array[]): number {
  let worst = 0;
  expected.forEach((e, i) => {
    const a = actual[i]!;
    expect(a.length).toBe(e.length);
    e.forEach((x, j) => {
      const d = Math.abs(a[j]! - x) / Math.max(1e-3, Math.abs(x));
      worst = Number.isNaN(d) ? Infinity : Math.max(worst, d);
    });
  });
  return worst;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  await initBackend('wasm');
});

describe.each(['wasm', 'cpu'] as const)('Optimizer on %s', (backend) => {
  beforeAll(async () => {
    if (!(await tf.setBackend(backend)) || tf.getBackend() !== backend) throw new Error(`no ${backend} backend`);
  });

  describe.each(OPTIMIZERS)('%s', (name) => {
    it.each([0, 0.01])('matches tf.train with weight decay %s', (decay) => {
      expect(maxRelativeError(run(name, decay, true), run(name, decay, false))).toBeLessThan(1e-5);
    });
  });

  it('uses the fused kernel only on wasm', async () => {
    const w = tf.tidy(() => tf.variable(tf.zeros([3])));
    const optimizer = createOptimizer('adam', LEARNING_RATE);
    const info = await tf.profile(() => optimizer.applyGradients({ [w.name]: tf.ones([3]) }, [w], 0));
    expect(info.kernelNames.includes('MemometerAdamUpdate')).toBe(backend === 'wasm');
    optimizer.dispose();
    w.dispose();
  });

  it('leaks no tensors and frees its state on dispose', () => {
    const start = tf.memory().numTensors;
    for (const name of OPTIMIZERS) {
      const w = tf.tidy(() => tf.variable(tf.ones([5, 3])));
      const optimizer = createOptimizer(name, LEARNING_RATE);
      optimizer.applyGradients({ [w.name]: tf.ones([5, 3]) }, [w], 0.1);
      const steady = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) tf.tidy(() => optimizer.applyGradients({ [w.name]: tf.ones([5, 3]) }, [w], 0.1));
      expect(tf.memory().numTensors).toBe(steady);
      optimizer.dispose();
      w.dispose();
    }
    expect(tf.memory().numTensors).toBe(start);
  });
});
