/**
 * Gradients of dilated convolutions. TF.js 4.22's gradients of Conv2D and DepthwiseConv2dNative
 * refuse dilation rates > 1, so a model with a dilated conv could not be fine-tuned (joint
 * mode) and heads holding one could not learn. A dilated convolution equals an undilated one
 * whose filter has (d - 1) zeros between taps, so these gradients run TF.js's own undilated
 * gradient on that spread filter and read the filter gradient back at the tap positions.
 * Backend-independent: gradients are composed of ops.
 *
 * Layers run a linear conv through tf.fused.conv2d / depthwiseConv2d even while training, and
 * the fused ops' own gradients refuse dilation too: dilated ones are routed to the plain ops.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2D, DepthwiseConv2dNative, getGradient, registerGradient, type GradConfig, type NamedAttrMap } from '@tensorflow/tfjs-core';

function dilationPair(attrs: NamedAttrMap): [number, number] {
  const d = attrs.dilations as number | [number, number] | null | undefined;
  if (d === null || d === undefined) return [1, 1];
  return typeof d === 'number' ? [d, d] : d;
}

/** [kh, kw, a, b] -> [(kh-1)*dh+1, (kw-1)*dw+1, a, b] with the taps d apart, zeros between. */
export function spreadFilter(filter: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [kh, kw, a, b] = filter.shape;
  return tf.tidy(() =>
    filter
      .reshape([kh, 1, kw, 1, a, b])
      .pad([[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]])
      .reshape([kh * dh, kw * dw, a, b])
      .slice([0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b]) as tf.Tensor4D,
  );
}

/** `undilated`'s gradient, extended to dilation rates > 1 through the spread filter. */
function withDilations(undilated: GradConfig): GradConfig {
  return {
    ...undilated,
    gradFunc: (dy, saved, attrs) => {
      const dilations = dilationPair(attrs);
      if (dilations[0] === 1 && dilations[1] === 1) return undilated.gradFunc(dy, saved, attrs);
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const spread = spreadFilter(filter, dilations);
      const grads = undilated.gradFunc(dy, [x, spread], { ...attrs, dilations: [1, 1] });
      return {
        x: grads.x!,
        filter: () => tf.stridedSlice(grads.filter!(), [0, 0, 0, 0], spread.shape, [dilations[0], dilations[1], 1, 1]),
      };
    },
  };
}

const registered = new Map<string, GradConfig>();

/** Replaces the Conv2D and DepthwiseConv2dNative gradients once per process. */
export function registerDilatedConvGradients(): void {
  routeDilatedFusedConvs();
  for (const kernelName of [Conv2D, DepthwiseConv2dNative]) {
    if (registered.has(kernelName) && getGradient(kernelName) === registered.get(kernelName)) continue;
    const config = withDilations(getGradient(kernelName));
    registerGradient(config);
    registered.set(kernelName, config);
  }
}

type FusedConvArgs = Parameters<typeof tf.fused.conv2d>[0];
type FusedOps = { conv2d: (args: FusedConvArgs) => tf.Tensor4D; depthwiseConv2d: (args: FusedConvArgs) => tf.Tensor4D };

/** The activations the fused ops take, applied after a plain convolution. */
function activate(y: tf.Tensor, args: FusedConvArgs): tf.Tensor {
  switch (args.activation ?? 'linear') {
    case 'linear': return y;
    case 'relu': return tf.relu(y);
    case 'relu6': return tf.relu6(y);
    case 'elu': return tf.elu(y);
    case 'sigmoid': return tf.sigmoid(y);
    case 'leakyrelu': return tf.leakyRelu(y, args.leakyreluAlpha);
    case 'prelu': return tf.prelu(y, args.preluActivationWeights as tf.Tensor);
    default: throw new Error(`unknown fused activation ${args.activation}`);
  }
}

let fusedRouted = false;

/** Routes dilated fused convolutions to plain ops, whose gradients handle dilation. */
export function routeDilatedFusedConvs(): void {
  if (fusedRouted) return;
  fusedRouted = true;
  const fused = tf.fused as unknown as FusedOps;
  const route = (fusedOp: FusedOps['conv2d'], plain: (args: FusedConvArgs) => tf.Tensor): FusedOps['conv2d'] => (args) => {
    const d = args.dilations ?? 1;
    if ((typeof d === 'number' ? d : Math.max(...d)) <= 1) return fusedOp(args);
    return tf.tidy(() => {
      const y = plain(args);
      return activate(args.bias ? tf.add(y, args.bias) : y, args) as tf.Tensor4D;
    });
  };
  const conv2d = fused.conv2d;
  const depthwise = fused.depthwiseConv2d;
  fused.conv2d = route(conv2d, (a) => tf.conv2d(a.x as tf.Tensor4D, a.filter, a.strides, a.pad, a.dataFormat, a.dilations, a.dimRoundingMode));
  fused.depthwiseConv2d = route(depthwise, (a) =>
    tf.depthwiseConv2d(a.x as tf.Tensor4D, a.filter, a.strides, a.pad, a.dataFormat, a.dilations, a.dimRoundingMode),
  );
}
