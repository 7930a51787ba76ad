/**
 * BatchMatMul and _FusedMatMul for TF.js's wasm backend on the SIMD kernels. wasm's own kernels
 * use XNNPACK only for a single product without transposes; every batched or transposed
 * product (each stacked head layer and every matmul gradient) runs in a scalar C++ loop. These
 * wrap wasm's kernels and hand them whatever they do not cover (other dtypes, empty or
 * mismatched shapes, a backend the SIMD module cannot bind to).
 */
import {
  backend_util,
  BatchMatMulAttrs,
  KernelFunc,
  NamedAttrMap,
  TensorInfo,
  _FusedMatMulAttrs,
} from '@tensorflow/tfjs-core';
import { withWasmScope } from '../wasm-kernel-scope.js';
import { simdContext, SimdContext } from './loader.js';

interface Plan {
  m: number;
  n: number;
  k: number;
  outShape: number[];
  /** Per output batch, the batch index into a and into b (numpy broadcasting). */
  aBatch: number[];
  bBatch: number[];
}

const product = (dims: readonly number[]): number => dims.reduce((x, y) => x * y, 1);

/** For each index of the broadcast batch shape `out`, the flat index into batch shape `dims`. */
function broadcastIndices(out: readonly number[], dims: readonly number[]): number[] {
  const indices: number[] = [];
  const offset = out.length - dims.length;
  for (let flat = 0; flat < product(out); flat++) {
    let rest = flat;
    let index = 0;
    let stride = 1;
    for (let axis = out.length - 1; axis >= 0; axis--) {
      const size = out[axis]!;
      const coordinate = rest % size;
      rest = Math.floor(rest / size);
      const own = dims[axis - offset];
      if (own !== undefined) {
        if (own !== 1) index += coordinate * stride;
        stride *= own;
      }
    }
    indices.push(index);
  }
  return indices;
}

/** The product's geometry, or undefined for shapes left to wasm's kernel (which reports errors). */
function plan(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Plan | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const [a0, a1] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const [m, k] = transposeA ? [a1, a0] : [a0, a1];
  const [kb, n] = transposeB ? [b1, b0] : [b0, b1];
  if (k !== kb || m === 0 || n === 0 || k === 0) return undefined;
  const aDims = a.shape.slice(0, -2);
  const bDims = b.shape.slice(0, -2);
  let batch: number[];
  try {
    batch = backend_util.assertAndGetBroadcastShape(aDims, bDims);
  } catch {
    return undefined;
  }
  if (product(batch) === 0) return undefined;
  return {
    m, n, k,
    outShape: [...batch, m, n],
    aBatch: broadcastIndices(batch, aDims),
    bBatch: broadcastIndices(batch, bDims),
  };
}

function multiply(context: SimdContext, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean, p: Plan): TensorInfo {
  const { kernels } = context;
  const { m, n, k } = p;
  const out = context.makeOutput(p.outShape, 'float32');
  const [aPtr, bPtr, cPtr] = [context.offset(a), context.offset(b), context.offset(out)];
  const [tA, tB] = [Number(transposeA), Number(transposeB)];
  const batches = p.aBatch.length;
  context.withScratch(kernels.scratchBytes(n), (scratch) => {
    // One shared b and consecutive row-major a's: the batches are one tall product.
    if (!transposeA && p.bBatch.every((i) => i === 0) && p.aBatch.every((i, j) => i === j)) {
      kernels.matmul(aPtr, bPtr, cPtr, scratch, batches * m, n, k, 0, tB);
      return;
    }
    for (let i = 0; i < batches; i++) {
      const aAt = aPtr + p.aBatch[i]! * m * k * 4;
      const bAt = bPtr + p.bBatch[i]! * k * n * 4;
      kernels.matmul(aAt, bAt, cPtr + i * m * n * 4, scratch, m, n, k, tA, tB);
    }
  });
  return out;
}

/** BatchMatMul on the SIMD kernels; `original` (wasm's kernel) takes what they do not cover. */
export function simdBatchMatMul(original: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
    const p = plan(a, b, transposeA, transposeB);
    const context = p && simdContext(args.backend);
    if (p === undefined || context === undefined) return original(args);
    return multiply(context, a, b, transposeA, transposeB, p);
  };
}

/** wasm kernels (and their attributes) for the activations _FusedMatMul accepts. */
function activate(
  activation: string,
  alpha: number | undefined,
  prelu: TensorInfo | undefined,
): { kernel: string; inputs: (x: TensorInfo) => Record<string, TensorInfo>; attrs?: NamedAttrMap } | undefined {
  switch (activation) {
    case 'relu':
      return { kernel: 'Relu', inputs: (x) => ({ x }) };
    case 'relu6':
      return { kernel: 'Relu6', inputs: (x) => ({ x }) };
    case 'elu':
      return { kernel: 'Elu', inputs: (x) => ({ x }) };
    case 'sigmoid':
      return { kernel: 'Sigmoid', inputs: (x) => ({ x }) };
    case 'leakyrelu':
      return { kernel: 'LeakyRelu', inputs: (x) => ({ x }), attrs: { alpha: alpha ?? 0 } };
    case 'prelu':
      return prelu && { kernel: 'Prelu', inputs: (x) => ({ x, alpha: prelu }) };
    default:
      return undefined;
  }
}

/**
 * _FusedMatMul: a single untransposed product stays with wasm's kernel (XNNPACK); others are a
 * SIMD product followed by wasm's Add and activation kernels.
 */
export function simdFusedMatMul(original: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, TensorInfo | undefined>;
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as _FusedMatMulAttrs;
    const p = a && b ? plan(a, b, transposeA, transposeB) : undefined;
    const fast = p !== undefined && p.aBatch.length === 1 && !transposeA && !transposeB;
    const act = activation === 'linear' ? null : activate(activation, leakyreluAlpha, preluActivationWeights);
    const context = p && !fast && act !== undefined ? simdContext(args.backend) : undefined;
    if (a === undefined || b === undefined || p === undefined || context === undefined || act === undefined) {
      return original(args);
    }
    return withWasmScope(args.backend, '_FusedMatMul', (scope) => {
      let y = scope.own(multiply(context, a, b, transposeA, transposeB, p));
      if (bias !== undefined) y = scope.run('Add', { a: y, b: bias });
      if (act !== null) y = scope.run(act.kernel, act.inputs(y), act.attrs);
      return y;
    });
  };
}
