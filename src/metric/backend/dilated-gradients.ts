/**
 * Gradients of dilated convolutions. TF.js 4.22's gradients of Conv2D and DepthwiseConv2dNative
 * refuse dilation rates > 1, so a model with a dilated conv could not be fine-tuned (joint
 * mode) and heads holding one could not learn. A dilated convolution equals an undilated one
 * whose filter has (d - 1) zeros between taps, so these gradients run TF.js's own undilated
 * gradient on that spread filter and read the filter gradient back at the tap positions.
 * Backend-independent: gradients are composed of ops.
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
  for (const kernelName of [Conv2D, DepthwiseConv2dNative]) {
    if (registered.has(kernelName) && getGradient(kernelName) === registered.get(kernelName)) continue;
    const config = withDilations(getGradient(kernelName));
    registerGradient(config);
    registered.set(kernelName, config);
  }
}
