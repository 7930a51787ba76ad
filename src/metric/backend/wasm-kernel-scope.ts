/**
 * Shared plumbing for the gradient kernels that memometer registers on TF.js's wasm backend.
 * They compose kernels wasm already has by calling their kernel functions directly on
 * TensorInfos (as wasm's own composite kernels do), so nothing passes through the engine:
 * no tensors are tracked and no tape is recorded. Every TensorInfo a kernel returns owns one
 * reference on the backend; the scope releases each intermediate once when the kernel is done.
 */
import {
  backend_util,
  getKernel,
  KernelBackend,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from '../../errors.js';

export class WasmKernelScope {
  private readonly owned: TensorInfo[] = [];

  constructor(
    readonly backend: KernelBackend,
    /** The kernel being implemented, named in error messages. */
    readonly kernelName: string,
  ) {}

  /** Runs wasm's kernel `name`; its output is released when the scope ends unless returned. */
  run(name: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    const kernel = getKernel(name, 'wasm');
    if (kernel === undefined) {
      throw new Error(`${this.kernelName} on wasm needs wasm's '${name}' kernel, which is not registered`);
    }
    const out = kernel.kernelFunc({ inputs, backend: this.backend, attrs });
    if (Array.isArray(out)) {
      throw new Error(`${this.kernelName} on wasm: kernel '${name}' returned several outputs`);
    }
    this.owned.push(out);
    return out;
  }

  /** Takes ownership of data written directly to the backend. */
  own(info: TensorInfo): TensorInfo {
    this.owned.push(info);
    return info;
  }

  owns(info: TensorInfo): boolean {
    return this.owned.includes(info);
  }

  /** Releases everything the scope owns except `keep`. */
  release(keep?: TensorInfo): void {
    for (const info of this.owned) {
      if (info !== keep) this.backend.disposeData(info.dataId);
    }
    this.owned.length = 0;
  }
}

/**
 * Runs `body` in a fresh scope and returns its result, releasing every intermediate, also when
 * `body` throws. The result must be a kernel output of the scope: the engine adopts its
 * reference, so returning an input as is would free the input's data twice.
 */
export function withWasmScope(
  backend: unknown,
  kernelName: string,
  body: (scope: WasmKernelScope) => TensorInfo,
): TensorInfo {
  const scope = new WasmKernelScope(backend as KernelBackend, kernelName);
  try {
    const result = body(scope);
    if (!scope.owns(result)) throw new Error(`${kernelName} on wasm: result is not a kernel output`);
    scope.release(result);
    return result;
  } catch (error) {
    scope.release();
    throw error;
  }
}

export function unsupported(kernelName: string, attr: string, message: string): InvalidArgumentError {
  return new InvalidArgumentError(message, `${kernelName} attribute '${attr}'`);
}

/** Only NHWC exists here: wasm's Conv2D and DepthwiseConv2dNative are channels-last only. */
export function requireChannelsLast(kernelName: string, dataFormat: string | undefined): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw unsupported(kernelName, 'dataFormat', `got '${dataFormat}'; the wasm kernel supports only 'NHWC'`);
  }
}

/** Fails early when dy does not have the shape the forward convolution would have produced. */
export function requireOutputShape(
  kernelName: string,
  info: backend_util.Conv2DInfo,
  dyShape: readonly number[],
): void {
  if (dyShape.join(',') !== info.outShape.join(',')) {
    throw new InvalidArgumentError(
      `dy has shape [${dyShape.join(', ')}] but the convolution produces [${info.outShape.join(', ')}]`,
      kernelName,
    );
  }
}

/** Spatial padding [top, bottom, left, right] of an NHWC tensor; negative values crop. */
export type SpatialPads = readonly [number, number, number, number];

/**
 * Padding that makes a stride-`info.dilation` correlation of x with the output gradient as
 * filter (its taps `info.stride` apart) yield exactly one value per filter tap: the filter
 * gradient of the forward convolution described by `info`.
 */
export function filterGradientPads(info: backend_util.Conv2DInfo): SpatialPads {
  const extent = (out: number, stride: number, filter: number, dilation: number): number =>
    (out - 1) * stride + (filter - 1) * dilation + 1;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  return [
    top,
    extent(info.outHeight, info.strideHeight, info.filterHeight, info.dilationHeight) - info.inHeight - top,
    left,
    extent(info.outWidth, info.strideWidth, info.filterWidth, info.dilationWidth) - info.inWidth - left,
  ];
}

/**
 * Padding that makes a stride-1 correlation of the zero-dilated output gradient (spatial size
 * `dilatedShape`) with the flipped filter yield exactly the forward input's spatial size: the
 * input gradient of the forward convolution described by `info`.
 */
export function inputGradientPads(info: backend_util.Conv2DInfo, dilatedShape: readonly number[]): SpatialPads {
  const top = info.effectiveFilterHeight - 1 - info.padInfo.top;
  const left = info.effectiveFilterWidth - 1 - info.padInfo.left;
  return [
    top,
    info.inHeight + info.effectiveFilterHeight - 1 - top - dim(dilatedShape, 1),
    left,
    info.inWidth + info.effectiveFilterWidth - 1 - left - dim(dilatedShape, 2),
  ];
}

/**
 * Runs wasm's `Conv2D` or `DepthwiseConv2dNative` (NHWC) with explicit padding. XNNPACK pads
 * implicitly, so only negative pads cost work: they crop `x` with a Slice first.
 */
export function convolve(
  scope: WasmKernelScope,
  kernel: 'Conv2D' | 'DepthwiseConv2dNative',
  x: TensorInfo,
  filter: TensorInfo,
  pads: SpatialPads,
  strides: [number, number],
  dilations: [number, number],
): TensorInfo {
  const [top, bottom, left, right] = pads;
  let input = x;
  if (Math.min(top, bottom, left, right) < 0) {
    const cropTop = Math.max(0, -top);
    const cropLeft = Math.max(0, -left);
    input = scope.run(
      'Slice',
      { x },
      {
        begin: [0, cropTop, cropLeft, 0],
        size: [
          dim(x.shape, 0),
          dim(x.shape, 1) - cropTop - Math.max(0, -bottom),
          dim(x.shape, 2) - cropLeft - Math.max(0, -right),
          dim(x.shape, 3),
        ],
      },
    );
  }
  const pad: backend_util.ExplicitPadding = [
    [0, 0],
    [Math.max(0, top), Math.max(0, bottom)],
    [Math.max(0, left), Math.max(0, right)],
    [0, 0],
  ];
  return scope.run(kernel, { x: input, filter }, { strides, dilations, pad, dataFormat: 'NHWC' });
}

/**
 * Inserts (stride - 1) zeros after every row and column of an NHWC tensor, trailing ones
 * included: [N, H, W, C] becomes [N, H * sh, W * sw, C]. One rank-5 PadV2 does it.
 */
export function zeroDilate(
  scope: WasmKernelScope,
  x: TensorInfo,
  strideHeight: number,
  strideWidth: number,
): TensorInfo {
  if (strideHeight === 1 && strideWidth === 1) return x;
  const [n, h, w, c] = [dim(x.shape, 0), dim(x.shape, 1), dim(x.shape, 2), dim(x.shape, 3)];
  const rows = scope.run('Reshape', { x }, { shape: [n * h, 1, w, 1, c] });
  const padded = scope.run(
    'PadV2',
    { x: rows },
    { paddings: [[0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]], constantValue: 0 },
  );
  return scope.run('Reshape', { x: padded }, { shape: [n, h * strideHeight, w * strideWidth, c] });
}

/** A shape as the 4-tuple that backend_util.computeConv2DInfo wants; `what` names it in errors. */
export function rank4(kernelName: string, what: string, shape: readonly number[]): [number, number, number, number] {
  if (shape.length !== 4) {
    throw new InvalidArgumentError(`must be rank 4 (NHWC), got shape [${shape.join(', ')}]`, `${kernelName} ${what}`);
  }
  return [dim(shape, 0), dim(shape, 1), dim(shape, 2), dim(shape, 3)];
}

/** `shape[axis]`, for shapes whose rank has been checked. */
export function dim(shape: readonly number[], axis: number): number {
  const size = shape[axis];
  if (size === undefined) throw new Error(`shape [${shape.join(', ')}] has no axis ${axis}`);
  return size;
}
