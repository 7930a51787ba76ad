/**
 * Instantiates the SIMD kernels module (src/gen/wasm/simd-kernels.ts) against the memory of a
 * TF.js wasm backend, once per backend instance, so that the kernels read and write tensors in
 * place. Anything else (another backend, a shared-memory threaded build, a runtime without
 * SIMD) gets undefined and the callers fall back to TF.js's own kernels.
 */
import type { DataId, DataType, TensorInfo } from '@tensorflow/tfjs-core';
import { SIMD_KERNELS_BASE64 } from '../../../gen/wasm/simd-kernels.js';

/** The exports of src/metric/backend/simd/assembly/index.ts; pointers are heap byte offsets. */
export interface SimdKernels {
  scratchBytes(n: number): number;
  matmul(a: number, b: number, c: number, scratch: number, m: number, n: number, k: number, transA: number, transB: number): void;
  adam(
    n: number, w: number, m: number, v: number, g: number, wOut: number, mOut: number, vOut: number,
    lr: number, beta1: number, beta2: number, oneMinusBeta1: number, oneMinusBeta2: number,
    oneMinusAccBeta1: number, oneMinusAccBeta2: number, epsilon: number, decay: number,
  ): void;
  momentum(n: number, w: number, acc: number, g: number, wOut: number, accOut: number, lr: number, mu: number, decay: number): void;
  sgd(n: number, w: number, g: number, wOut: number, lr: number, decay: number): void;
}

/** The parts of @tensorflow/tfjs-backend-wasm's BackendWasm that the kernels use. */
interface WasmBackend {
  wasm: {
    /** The emscripten exports of a single-threaded build, its memory among them. */
    asm?: { memory?: unknown };
    _malloc(bytes: number): number;
    _free(pointer: number): void;
  };
  dataIdMap: { get(dataId: DataId): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
}

/** A wasm backend with the kernels bound to its memory. */
export interface SimdContext {
  kernels: SimdKernels;
  /** The heap byte offset of a tensor's data. */
  offset(info: TensorInfo): number;
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  /** Runs `body` with `bytes` of heap scratch space, freed afterwards. */
  withScratch<T>(bytes: number, body: (pointer: number) => T): T;
}

/** The WebAssembly JS API, which ES2022's lib does not declare. */
interface WebAssemblyApi {
  Memory: abstract new (...args: never[]) => { buffer: ArrayBufferLike };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: WebAssemblyApi };

let compiled: object | undefined;
const contexts = new WeakMap<object, SimdContext | null>();

function isWasmBackend(backend: unknown): backend is WasmBackend {
  const b = backend as Partial<WasmBackend> | null;
  return typeof b?.wasm?._malloc === 'function' && typeof b.makeOutput === 'function' && b.dataIdMap !== undefined;
}

function instantiate(backend: WasmBackend): SimdContext | null {
  const memory = backend.wasm.asm?.memory;
  // A shared (threaded) memory would need a module declaring a shared import.
  if (!(memory instanceof wasmApi.Memory) || !(memory.buffer instanceof ArrayBuffer)) return null;
  try {
    compiled ??= new wasmApi.Module(Buffer.from(SIMD_KERNELS_BASE64, 'base64'));
    const instance = new wasmApi.Instance(compiled, { env: { memory } });
    const kernels = instance.exports as SimdKernels;
    return {
      kernels,
      offset(info) {
        const data = backend.dataIdMap.get(info.dataId);
        if (data === undefined) throw new Error('tensor data is not on this wasm backend');
        return data.memoryOffset;
      },
      makeOutput: (shape, dtype) => backend.makeOutput(shape, dtype),
      withScratch(bytes, body) {
        const pointer = backend.wasm._malloc(bytes);
        try {
          return body(pointer);
        } finally {
          backend.wasm._free(pointer);
        }
      },
    };
  } catch {
    // No SIMD support in this runtime: the original kernels stay in charge.
    return null;
  }
}

/** The kernels bound to `backend`, or undefined when it is not a (usable) wasm backend. */
export function simdContext(backend: unknown): SimdContext | undefined {
  if (!isWasmBackend(backend)) return undefined;
  let context = contexts.get(backend);
  if (context === undefined) {
    context = instantiate(backend);
    contexts.set(backend, context);
  }
  return context ?? undefined;
}
