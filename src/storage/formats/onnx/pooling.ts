/**
 * Window geometry of ONNX convolutions and pooling (pads, auto_pad, ceil_mode) and the pooling
 * ops, converted exactly: TF.js pools know only 'valid' and 'same', so ONNX windows are met by
 * zero or edge padding and, for averages, a per-row/column rescale to the count ONNX divides by.
 */
import type { AttributeProto, NodeProto } from '../../../gen/onnx/onnx.js';
import { base, type Computed, type Converter, fail, intAttr, intsAttr, type Op, out0, stringAttr } from './graph.js';

function windowOut(size: number, kernel: number, stride: number, dilation: number, padBegin: number, padEnd: number, ceil: boolean): number {
  const span = (kernel - 1) * dilation + 1;
  const steps = (size + padBegin + padEnd - span) / stride;
  if (!ceil) return Math.floor(steps) + 1;
  // Ceil mode drops a last window that would start past the input and the begin padding.
  const out = Math.ceil(steps) + 1;
  return (out - 1) * stride >= size + padBegin ? out - 1 : out;
}

export interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right] as ONNX pads them. */
  pads: [number, number, number, number];
  out: [number, number];
}

/** The window geometry of Conv / pooling nodes on an NCHW input, auto_pad resolved. */
export function windowOf(node: NodeProto, a: Map<string, AttributeProto>, input: Computed, kernel: [number, number], ceil = false): Window {
  if (input.shape.length !== 4) fail(node, `needs a 4-D NCHW input, got rank ${input.shape.length}`);
  const [h, w] = [input.shape[2]!, input.shape[3]!];
  const strides = (intsAttr(a, 'strides') ?? [1, 1]) as [number, number];
  const dilations = (intsAttr(a, 'dilations') ?? [1, 1]) as [number, number];
  let pads = (intsAttr(a, 'pads') ?? [0, 0, 0, 0]);
  const autoPad = stringAttr(a, 'auto_pad', 'NOTSET');
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = [0, 0, 0, 0];
    [h, w].forEach((size, i) => {
      const out = Math.ceil(size / strides[i]!);
      const total = Math.max((out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - size, 0);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + 2] = total - pads[i];
    });
  }
  const p = [pads[0]!, pads[1]!, pads[2]!, pads[3]!] as Window['pads'];
  return {
    kernel, strides, dilations, pads: p,
    out: [windowOut(h, kernel[0], strides[0], dilations[0], p[0], p[2], ceil), windowOut(w, kernel[1], strides[1], dilations[1], p[1], p[3], ceil)],
  };
}

/** TF's 'same' top/left padding and output size for one axis. */
function tfSame(size: number, kernel: number, stride: number): { out: number; before: number } {
  const out = Math.ceil(size / stride);
  return { out, before: Math.floor(Math.max((out - 1) * stride + kernel - size, 0) / 2) };
}

/** Whether TF's 'same' padding gives exactly the ONNX windows. */
export function sameAsTf(input: Computed, win: Window): boolean {
  return [0, 1].every((i) => {
    const same = tfSame(input.shape[i + 2]!, (win.kernel[i]! - 1) * win.dilations[i]! + 1, win.strides[i]!);
    return same.out === win.out[i] && same.before === win.pads[i];
  });
}

/** Pads an NHWC tensor with zeros so that a 'valid' window op sees the ONNX windows. */
export function zeroPad(c: Converter, v: Computed, win: Window, base: string): { layer: string; shape: (number | null)[] } {
  // Rows past the input that a ceil-mode window reaches count as padding too.
  const extra = [0, 1].map((i) => Math.max((win.out[i]! - 1) * win.strides[i]! + (win.kernel[i]! - 1) * win.dilations[i]! + 1 - (v.shape[i + 2]! + win.pads[i]! + win.pads[i + 2]!), 0));
  const padding = [[win.pads[0], win.pads[2] + extra[0]!], [win.pads[1], win.pads[3] + extra[1]!]];
  if (padding.flat().every((p) => p === 0)) return { layer: v.layer, shape: v.shape };
  const layer = c.layer('ZeroPadding2D', `${base}_pad`, { padding, data_format: 'channels_last' }, [v.layer]);
  return { layer, shape: [null, v.shape[1]!, v.shape[2]! + padding[0]![0]! + padding[0]![1]!, v.shape[3]! + padding[1]![0]! + padding[1]![1]!] };
}

/** Rows (axis 0) or columns (axis 1) a window reaches past the input and both pads. */
function overhangOf(x: Computed, win: Window, axis: 0 | 1): number {
  return Math.max((win.out[axis] - 1) * win.strides[axis] + win.kernel[axis] - (x.shape[axis + 2]! + win.pads[axis] + win.pads[axis + 2]!), 0);
}

/**
 * Pads an NHWC tensor by repeating its edge rows and columns. Max pooling over it equals max
 * pooling that ignores the padding (every window holds the edge cell it repeats), whatever the
 * signs of the values.
 */
function edgePad(c: Converter, v: Computed, padding: number[][], name: string): string {
  let layer = v.layer;
  const size = [v.shape[2]!, v.shape[3]!];
  for (const axis of [0, 1] as const) {
    const [before, after] = padding[axis]!;
    if (!before && !after) continue;
    const edge = (first: boolean) => {
      const cropping = [[0, 0], [0, 0]];
      cropping[axis] = first ? [0, size[axis]! - 1] : [size[axis]! - 1, 0];
      return c.layer('Cropping2D', `${name}_edge`, { cropping, data_format: 'channels_last' }, [layer]);
    };
    const parts = [...Array<string>(before!).fill(before ? edge(true) : ''), layer, ...Array<string>(after!).fill(after ? edge(false) : '')];
    layer = c.layer('Concatenate', `${name}_edges`, { axis: axis + 1 }, parts);
    size[axis] = size[axis]! + before! + after!;
  }
  return layer;
}

/** Multiplies row i (axis 0) or column i (axis 1) of an NHWC tensor by factors[i]: exact, fixed. */
function scaleAlong(c: Converter, layer: string, axis: 0 | 1, factors: number[], name: string): string {
  if (factors.every((f) => f === 1)) return layer;
  // Move the axis into the channel position, where a 1x1 depthwise kernel scales each slice.
  const perm = axis === 0 ? [3, 2, 1] : [1, 3, 2];
  const moved = c.layer('Permute', `${name}_scale_in`, { dims: perm }, [layer]);
  const scaled = c.layer('DepthwiseConv2D', `${name}_scale`, {
    kernel_size: [1, 1], strides: [1, 1], padding: 'valid', data_format: 'channels_last', depth_multiplier: 1,
    activation: 'linear', use_bias: false, trainable: false,
  }, [moved], [{ role: 'depthwise_kernel', shape: [1, 1, factors.length, 1], values: Float32Array.from(factors) }]);
  return c.layer('Permute', `${name}_scale_out`, { dims: perm }, [scaled]);
}

export function pool(kind: 'Max' | 'Average'): Op {
  return (c, node, a) => {
    const x = c.tensor(node.input[0]!, node);
    const kernel = intsAttr(a, 'kernel_shape') as [number, number];
    if ((intsAttr(a, 'dilations') ?? [1, 1]).some((d) => d !== 1)) fail(node, 'dilated pooling is not supported');
    const win = windowOf(node, a, x, kernel, intAttr(a, 'ceil_mode', 0) === 1);
    const includePad = kind === 'Average' && intAttr(a, 'count_include_pad', 0) === 1;
    const overhang = [overhangOf(x, win, 0), overhangOf(x, win, 1)];
    const padding = [[win.pads[0], win.pads[2] + overhang[0]!], [win.pads[1], win.pads[3] + overhang[1]!]];
    const className = kind === 'Max' ? 'MaxPooling2D' : 'AveragePooling2D';
    const config = (pad: string) => ({ pool_size: kernel, strides: win.strides, padding: pad, data_format: 'channels_last' });
    const shape = [null, x.shape[1]!, win.out[0], win.out[1]];
    const name = base(node);
    if (padding.flat().every((p) => p === 0)) return c.set(out0(node), c.layer(className, name, config('valid'), [x.layer]), shape, x.nonNegative);
    if (!includePad && sameAsTf(x, win)) return c.set(out0(node), c.layer(className, name, config('same'), [x.layer]), shape, x.nonNegative);
    if (kind === 'Max') {
      const padded = x.nonNegative ? zeroPad(c, x, win, name).layer : edgePad(c, x, padding, name);
      return c.set(out0(node), c.layer(className, name, config('valid'), [padded]), shape, x.nonNegative);
    }
    // Average: the window sums over zero padding, then each row and column is rescaled from
    // k to the number of cells ONNX counts (the pads too with count_include_pad, never the overhang).
    const pooled = c.layer(className, name, config('valid'), [zeroPad(c, x, win, name).layer]);
    const factors = (axis: 0 | 1) => Array.from({ length: win.out[axis] }, (_, i) => {
      const start = i * win.strides[axis] - win.pads[axis];
      const lo = includePad ? -win.pads[axis] : 0;
      const hi = x.shape[axis + 2]! + (includePad ? win.pads[axis + 2]! : 0);
      const counted = Math.min(start + win.kernel[axis], hi) - Math.max(start, lo);
      return win.kernel[axis] / counted;
    });
    const layer = scaleAlong(c, scaleAlong(c, pooled, 0, factors(0), name), 1, factors(1), name);
    c.set(out0(node), layer, shape, x.nonNegative);
  };
}

export const globalAveragePool: Op = (c, node) => {
  const x = c.tensor(node.input[0]!, node);
  if (x.shape.length !== 4) fail(node, 'needs a 4-D NCHW input');
  const pooled = c.layer('GlobalAveragePooling2D', base(node), { data_format: 'channels_last' }, [x.layer]);
  // ONNX keeps [N, C, 1, 1]; so does the converted model, as NHWC [N, 1, 1, C].
  const layer = c.layer('Reshape', `${base(node)}_keepdims`, { target_shape: [1, 1, x.shape[1]] }, [pooled]);
  c.set(out0(node), layer, [null, x.shape[1]!, 1, 1], x.nonNegative);
};
