/**
 * Makes TF.js's wasm backend able to train conv nets and embeddings. TF.js 4.22's wasm backend
 * lacks Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter/Input and UnsortedSegmentSum
 * (the gather gradient), and its Conv2DBackpropInput is a slow direct loop; the cpu backend has
 * them all but is far too slow (see shared/notes/compute-backend.md). These replacements are
 * built from kernels wasm has (XNNPACK convolutions, Transpose, PadV2, Reverse, Sum, ScatterNd)
 * and are tested against the cpu kernels in test/backend/wasm-gradients.test.ts.
 */
// wasm registers its own kernels (Conv2DBackpropInput among them) when this import is
// evaluated; that must happen before ours replace them.
import '@tensorflow/tfjs-backend-wasm';
import { getKernel, KernelConfig, registerKernel, unregisterKernel } from '@tensorflow/tfjs-core';
import { conv2DBackpropFilterConfig, conv2DBackpropInputConfig } from './conv-gradients.js';
import { depthwiseBackpropFilterConfig, depthwiseBackpropInputConfig } from './depthwise-gradients.js';
import { unsortedSegmentSumConfig } from './segment-sum.js';

const WASM_GRADIENT_KERNELS: readonly KernelConfig[] = [
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  depthwiseBackpropFilterConfig,
  depthwiseBackpropInputConfig,
  unsortedSegmentSumConfig,
];

/**
 * Registers the gradient kernels for backend 'wasm', replacing any other kernel of the same
 * name. Idempotent. Kernels are looked up per call, so this works before or after
 * tf.setBackend('wasm').
 */
export function registerWasmGradientKernels(): void {
  for (const config of WASM_GRADIENT_KERNELS) {
    const current = getKernel(config.kernelName, config.backendName) as KernelConfig | undefined;
    if (current?.kernelFunc === config.kernelFunc) continue;
    if (current !== undefined) unregisterKernel(config.kernelName, config.backendName);
    registerKernel(config);
  }
}
