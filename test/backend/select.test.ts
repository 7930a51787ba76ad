import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { FailedPreconditionError, InvalidArgumentError } from '../../src/errors.js';
import { BACKEND_ENV, initBackend } from '../../src/metric/backend/index.js';
import { restoreUtilIsNullOrUndefined, SIMD_KERNELS_ENV } from '../../src/metric/backend/select.js';
import { simdKernelsRegistered, unregisterSimdKernels } from '../../src/metric/backend/simd/index.js';

afterEach(() => {
  delete process.env[BACKEND_ENV];
  delete process.env[SIMD_KERNELS_ENV];
});

describe('backend selection', () => {
  it('picks the best installed backend and says which it skipped and why', async () => {
    const choice = await initBackend();
    // No libtensorflow binding can install on these machines: the embedded default is wasm.
    expect(choice.name).toBe('wasm');
    expect(choice.skipped).toEqual([
      { name: 'node-gpu', reason: 'not installed' },
      { name: 'node', reason: 'not installed' },
    ]);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('can train a convolution on the chosen wasm backend (gradient kernels registered)', async () => {
    await initBackend('wasm');
    const x = tf.randomNormal([2, 8, 8, 3]);
    const w = tf.variable(tf.randomNormal([3, 3, 3, 4]));
    const { grads } = tf.variableGrads(() => tf.conv2d(x as tf.Tensor4D, w as tf.Variable<tf.Rank.R4>, 2, 'same').square().sum<tf.Scalar>(), [w]);
    expect(grads[w.name]!.shape).toEqual([3, 3, 3, 4]);
  });

  it('honours MEMOMETER_BACKEND, and an explicit request wins over it', async () => {
    process.env[BACKEND_ENV] = 'cpu';
    expect((await initBackend()).name).toBe('cpu');
    expect((await initBackend('wasm')).name).toBe('wasm');
  });

  it('refuses a forced backend that is not installed instead of falling back', async () => {
    const error = await initBackend('node-gpu').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FailedPreconditionError);
    expect((error as Error).message).toBe("backend: backend 'node-gpu' is unavailable (not installed)");
  });

  it('rejects an unknown backend name, naming the variable', async () => {
    process.env[BACKEND_ENV] = 'tpu';
    const error = await initBackend().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/^MEMOMETER_BACKEND: unknown backend 'tpu'/);
  });

  it('uses the SIMD kernels on wasm unless MEMOMETER_SIMD_KERNELS=off', async () => {
    unregisterSimdKernels();
    process.env[SIMD_KERNELS_ENV] = 'off';
    await initBackend('wasm');
    expect(simdKernelsRegistered()).toBe(false);
    expect(tf.getKernel('MemometerAdamUpdate', 'wasm')).toBeUndefined();
    delete process.env[SIMD_KERNELS_ENV];
    await initBackend('wasm');
    expect(simdKernelsRegistered()).toBe(true);
    expect(tf.getKernel('MemometerAdamUpdate', 'wasm')).toBeDefined();
  });

  it('rejects a MEMOMETER_SIMD_KERNELS value other than on/off, naming the variable', async () => {
    process.env[SIMD_KERNELS_ENV] = 'yes';
    const error = await initBackend().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toBe("MEMOMETER_SIMD_KERNELS: must be 'on' or 'off', got 'yes'");
  });

  it('puts back util.isNullOrUndefined (removed in Node 23) that the libtensorflow bindings call', () => {
    restoreUtilIsNullOrUndefined();
    const util = createRequire(import.meta.url)('util') as { isNullOrUndefined: (value: unknown) => boolean };
    expect([null, undefined, 0, ''].map((v) => util.isNullOrUndefined(v))).toEqual([true, true, false, false]);
  });
});
