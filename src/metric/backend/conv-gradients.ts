/**
 * Conv2D gradient kernels for TF.js's wasm backend, each one XNNPACK convolution plus cheap
 * layout ops. wasm has no Conv2DBackpropFilter, and its own Conv2DBackpropInput is a slow
 * direct loop; see wasm-gradients.ts.
 */
import {
  backend_util,
  Conv2DBackpropFilter,
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInput,
  Conv2DBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import {
  convolve,
  filterGradientPads,
  inputGradientPads,
  rank4,
  requireChannelsLast,
  requireOutputShape,
  withWasmScope,
  zeroDilate,
} from './wasm-kernel-scope.js';

/**
 * dW[kh, kw, ci, co] = sum over n, oh, ow of x[n, oh*s + kh - pad, ..., ci] * dy[n, oh, ow, co]:
 * a correlation of x with dy as the filter once x's batch and channel axes swap roles
 * (x as [Ci, H, W, N], dy as [OH, OW, N, Co]); the forward stride becomes the dilation.
 */
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as Conv2DBackpropFilterAttrs;
  requireChannelsLast(Conv2DBackpropFilter, dataFormat);
  const info = backend_util.computeConv2DInfo(
    rank4(Conv2DBackpropFilter, 'x', x.shape),
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  requireOutputShape(Conv2DBackpropFilter, info, dy.shape);
  return withWasmScope(backend, Conv2DBackpropFilter, (scope) => {
    const xT = scope.run('Transpose', { x }, { perm: [3, 1, 2, 0] });
    const dyT = scope.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
    const dW = convolve(scope, 'Conv2D', xT, dyT, filterGradientPads(info), [1, 1], [
      info.strideHeight,
      info.strideWidth,
    ]);
    return scope.run('Transpose', { x: dW }, { perm: [1, 2, 0, 3] });
  });
};

/**
 * dx = dy with (stride - 1) zeros between its pixels, correlated (stride 1) with the filter
 * flipped in space and with its in/out channel axes swapped.
 */
const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as Conv2DBackpropInputAttrs;
  requireChannelsLast(Conv2DBackpropInput, dataFormat);
  const info = backend_util.computeConv2DInfo(
    rank4(Conv2DBackpropInput, 'inputShape', inputShape),
    rank4(Conv2DBackpropInput, 'filter', filter.shape),
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  requireOutputShape(Conv2DBackpropInput, info, dy.shape);
  return withWasmScope(backend, Conv2DBackpropInput, (scope) => {
    const dilated = zeroDilate(scope, dy, info.strideHeight, info.strideWidth);
    const flipped = scope.run('Reverse', { x: filter }, { dims: [0, 1] });
    const swapped = scope.run('Transpose', { x: flipped }, { perm: [0, 1, 3, 2] });
    return convolve(scope, 'Conv2D', dilated, swapped, inputGradientPads(info, dilated.shape), [1, 1], [1, 1]);
  });
};

export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilter,
};

export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInput,
};
