/**
 * DepthwiseConv2dNative gradient kernels for TF.js's wasm backend, which has neither. Each is
 * one XNNPACK depthwise convolution plus cheap layout ops and, for a channel multiplier > 1 or
 * a batch > 1, a small Sum; see wasm-gradients.ts.
 */
import {
  backend_util,
  DepthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeBackpropInput,
  DepthwiseConv2dNativeBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from '../../errors.js';
import {
  convolve,
  dim,
  filterGradientPads,
  inputGradientPads,
  rank4,
  requireOutputShape,
  unsupported,
  withWasmScope,
  zeroDilate,
} from './wasm-kernel-scope.js';

/** Conv info of the forward depthwise convolution; rejects what the forward op rejects. */
function depthwiseInfo(
  kernelName: string,
  inShape: readonly number[],
  filterShape: readonly number[],
  attrs: DepthwiseConv2dNativeBackpropFilterAttrs | DepthwiseConv2dNativeBackpropInputAttrs,
): backend_util.Conv2DInfo {
  const dilations = attrs.dilations ?? 1;
  if (!backend_util.eitherStridesOrDilationsAreOne(attrs.strides, dilations)) {
    throw unsupported(
      kernelName,
      'dilations',
      `strides ${String(attrs.strides)} and dilations ${String(dilations)} are both > 1; ` +
        'as in the forward op, one of them must be 1',
    );
  }
  const x = rank4(kernelName, 'input shape', inShape);
  const filter = rank4(kernelName, 'filter shape', filterShape);
  if (filter[2] !== x[3]) {
    throw new InvalidArgumentError(`filter has ${filter[2]} input channels, the input has ${x[3]}`, kernelName);
  }
  return backend_util.computeConv2DInfo(x, filter, attrs.strides, dilations, attrs.pad, attrs.dimRoundingMode, true);
}

/**
 * dW[kh, kw, c, m] = sum over n, oh, ow of x[n, oh*s + kh*d - pad, ..., c] * dy[n, oh, ow, c*M + m].
 * With x as [1, H, W, N*C] and dy as an [OH, OW, N*C, M] filter this is one depthwise
 * correlation (stride d, dilation s) per (n, c) channel; a Sum over n finishes it.
 */
const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = depthwiseInfo(DepthwiseConv2dNativeBackpropFilter, x.shape, a.filterShape, a);
  requireOutputShape(DepthwiseConv2dNativeBackpropFilter, info, dy.shape);
  const [n, h, w, c] = [info.batchSize, info.inHeight, info.inWidth, info.inChannels];
  const [kh, kw, m] = [info.filterHeight, info.filterWidth, dim(a.filterShape, 3)];
  return withWasmScope(backend, DepthwiseConv2dNativeBackpropFilter, (scope) => {
    const xT = scope.run('Transpose', { x }, { perm: [1, 2, 0, 3] });
    const xFlat = scope.run('Reshape', { x: xT }, { shape: [1, h, w, n * c] });
    const dyT = scope.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
    const dyFilter = scope.run('Reshape', { x: dyT }, { shape: [info.outHeight, info.outWidth, n * c, m] });
    const perSample = convolve(
      scope,
      'DepthwiseConv2dNative',
      xFlat,
      dyFilter,
      filterGradientPads(info),
      [info.dilationHeight, info.dilationWidth],
      [info.strideHeight, info.strideWidth],
    );
    const bySample = scope.run('Reshape', { x: perSample }, { shape: [kh, kw, n, c * m] });
    const summed = scope.run('Sum', { x: bySample }, { axis: [2], keepDims: false });
    return scope.run('Reshape', { x: summed }, { shape: [kh, kw, c, m] });
  });
};

/**
 * dx[n, h, w, c] = sum over m of the correlation of zero-dilated dy channel c*M + m with the
 * flipped filter tap (c, m): one depthwise correlation with multiplier 1 over the C*M channels
 * of dy, then (for M > 1) a Sum over m.
 */
const depthwiseBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const info = depthwiseInfo(DepthwiseConv2dNativeBackpropInput, a.inputShape, filter.shape, a);
  requireOutputShape(DepthwiseConv2dNativeBackpropInput, info, dy.shape);
  const [n, h, w, c] = [info.batchSize, info.inHeight, info.inWidth, info.inChannels];
  const [kh, kw, m] = [info.filterHeight, info.filterWidth, dim(filter.shape, 3)];
  return withWasmScope(backend, DepthwiseConv2dNativeBackpropInput, (scope) => {
    const dilated = zeroDilate(scope, dy, info.strideHeight, info.strideWidth);
    const flipped = scope.run('Reverse', { x: filter }, { dims: [0, 1] });
    const perTap = scope.run('Reshape', { x: flipped }, { shape: [kh, kw, c * m, 1] });
    const pads = inputGradientPads(info, dilated.shape);
    const dilations: [number, number] = [info.dilationHeight, info.dilationWidth];
    const dxByTap = convolve(scope, 'DepthwiseConv2dNative', dilated, perTap, pads, [1, 1], dilations);
    if (m === 1) return dxByTap;
    const split = scope.run('Reshape', { x: dxByTap }, { shape: [n, h, w, c, m] });
    return scope.run('Sum', { x: split }, { axis: [4], keepDims: false });
  });
};

export const depthwiseBackpropFilterConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropFilter,
};

export const depthwiseBackpropInputConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseBackpropInput,
};
