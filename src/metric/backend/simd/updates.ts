/**
 * Fused optimizer updates as wasm kernels: one pass reads weights, slots and the gradient and
 * writes new weights and slots, where TF.js's optimizers run about a dozen elementwise kernels
 * over the stacked head weights. Outputs are fresh tensors: a Variable may share its data with
 * other tensors, so its buffer is never written in place.
 */
import { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { simdContext, SimdContext } from './loader.js';

export const ADAM_UPDATE = 'MemometerAdamUpdate';
export const MOMENTUM_UPDATE = 'MemometerMomentumUpdate';
export const SGD_UPDATE = 'MemometerSgdUpdate';

/** Attributes of all three kernels; Adam's bias corrections are computed by the caller. */
export interface UpdateAttrs {
  learningRate: number;
  decay: number;
  /** Momentum's mu. */
  momentum?: number;
  beta1?: number;
  beta2?: number;
  oneMinusAccBeta1?: number;
  oneMinusAccBeta2?: number;
  epsilon?: number;
}

function bind(kernelName: string, body: (context: SimdContext, inputs: TensorInfo[], attrs: UpdateAttrs, n: number) => TensorInfo[], names: string[]): KernelConfig {
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
    const context = simdContext(backend);
    if (context === undefined) throw new Error(`${kernelName} needs the SIMD kernels on a wasm backend`);
    const tensors = names.map((name) => {
      const info = inputs[name];
      if (info === undefined || info.dtype !== 'float32') throw new Error(`${kernelName}: input '${name}' must be float32`);
      return info;
    });
    const n = tensors[0]!.shape.reduce((x, y) => x * y, 1);
    if (tensors.some((t) => t.shape.reduce((x, y) => x * y, 1) !== n)) {
      throw new Error(`${kernelName}: inputs ${names.join(', ')} must have one size`);
    }
    return body(context, tensors, attrs as unknown as UpdateAttrs, n);
  };
  return { kernelName, backendName: 'wasm', kernelFunc };
}

const outputs = (context: SimdContext, like: TensorInfo, count: number): TensorInfo[] =>
  Array.from({ length: count }, () => context.makeOutput([...like.shape], 'float32'));

export const UPDATE_KERNELS: readonly KernelConfig[] = [
  bind(ADAM_UPDATE, (context, [w, g, m, v], a, n) => {
    const [wOut, mOut, vOut] = outputs(context, w!, 3) as [TensorInfo, TensorInfo, TensorInfo];
    const at = (info: TensorInfo): number => context.offset(info);
    const [beta1, beta2] = [a.beta1!, a.beta2!];
    context.kernels.adam(
      n, at(w!), at(m!), at(v!), at(g!), at(wOut), at(mOut), at(vOut),
      a.learningRate, beta1, beta2, 1 - beta1, 1 - beta2,
      a.oneMinusAccBeta1!, a.oneMinusAccBeta2!, a.epsilon!, a.decay,
    );
    return [wOut, mOut, vOut];
  }, ['w', 'g', 'm', 'v']),
  bind(MOMENTUM_UPDATE, (context, [w, g, acc], a, n) => {
    const [wOut, accOut] = outputs(context, w!, 2) as [TensorInfo, TensorInfo];
    const at = (info: TensorInfo): number => context.offset(info);
    context.kernels.momentum(n, at(w!), at(acc!), at(g!), at(wOut), at(accOut), a.learningRate, a.momentum!, a.decay);
    return [wOut, accOut];
  }, ['w', 'g', 'acc']),
  bind(SGD_UPDATE, (context, [w, g], a, n) => {
    const [wOut] = outputs(context, w!, 1) as [TensorInfo];
    const at = (info: TensorInfo): number => context.offset(info);
    context.kernels.sgd(n, at(w!), at(g!), at(wOut), a.learningRate, a.decay);
    return [wOut];
  }, ['w', 'g']),
];
