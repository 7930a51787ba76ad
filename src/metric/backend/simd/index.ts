/**
 * Registers the SIMD kernels on TF.js's wasm backend: BatchMatMul and _FusedMatMul wrap wasm's
 * own kernels (kept for what the SIMD path does not cover), and the fused optimizer updates
 * are new kernel names that src/metric/train/optimizer.ts runs.
 */
import { BatchMatMul, getKernel, KernelConfig, KernelFunc, registerKernel, unregisterKernel, _FusedMatMul } from '@tensorflow/tfjs-core';
import { simdBatchMatMul, simdFusedMatMul } from './matmul.js';
import { UPDATE_KERNELS } from './updates.js';

const WRAPPERS: Record<string, (original: KernelFunc) => KernelFunc> = {
  [BatchMatMul]: simdBatchMatMul,
  [_FusedMatMul]: simdFusedMatMul,
};

/** wasm's kernels that ours replaced, by name, so that they can be restored. */
const originals = new Map<string, KernelConfig>();

/** Registers the SIMD kernels for backend 'wasm'. Idempotent; call after wasm's are registered. */
export function registerSimdKernels(): void {
  for (const [name, wrap] of Object.entries(WRAPPERS)) {
    const current = getKernel(name, 'wasm') as KernelConfig | undefined;
    if (current === undefined || originals.has(name)) continue;
    originals.set(name, current);
    unregisterKernel(name, 'wasm');
    // wasm's setupFunc binds its C++ entry point when the backend initialises; ours must run it.
    registerKernel({ ...current, kernelFunc: wrap(current.kernelFunc) });
  }
  for (const config of UPDATE_KERNELS) {
    if (getKernel(config.kernelName, 'wasm') === undefined) registerKernel(config);
  }
}

/** Whether the SIMD kernels are registered now (benchmarks and the plan say which ran). */
export function simdKernelsRegistered(): boolean {
  return originals.size > 0;
}

/**
 * Restores wasm's own BatchMatMul and _FusedMatMul and removes the fused updates (optimizers
 * then use tf ops), for comparisons and benchmarks.
 */
export function unregisterSimdKernels(): void {
  for (const [name, original] of originals) {
    unregisterKernel(name, 'wasm');
    registerKernel(original);
  }
  originals.clear();
  for (const config of UPDATE_KERNELS) {
    if (getKernel(config.kernelName, 'wasm') !== undefined) unregisterKernel(config.kernelName, 'wasm');
  }
}
