/**
 * The conversion of each supported ONNX op into TF.js layers (pooling in pooling.ts). Weights
 * are transposed from ONNX's layout once, and each remembers how to go back (write-back.ts).
 */
import type { AttributeProto, NodeProto } from '../../../gen/onnx/onnx.js';
import {
  attributes, base, BATCH, type Computed, type Constant, type Converter, fail, floatAttr, intAttr, intsAttr, type Op, out0,
  stringAttr, type WeightSource,
} from './graph.js';
import { globalAveragePool, pool, sameAsTf, windowOf, zeroPad } from './pooling.js';
import { tensorValues, transpose, type OnnxTensor } from './tensors.js';


/**
 * An elementwise op of one tensor: it commutes with a pending Transpose, which stays pending
 * on its output (so a Transpose, ReLU, inverse Transpose sandwich is a layout no-op).
 */
function unary(make: (c: Converter, node: NodeProto, x: Computed) => { layer: string; nonNegative: boolean }): Op {
  return (c, node) => {
    const v = c.value(node.input[0]!, node);
    if (v.kind !== 'tensor') return fail(node, 'an elementwise op on a constant is not supported');
    const { layer, nonNegative } = make(c, node, { ...v, perm: undefined });
    c.setValue(out0(node), { kind: 'tensor', layer, shape: v.shape, nonNegative, ...(v.perm ? { perm: v.perm } : {}) });
  };
}

const activation = (name: string, nonNegative: boolean): Op =>
  unary((c, node, x) => ({ layer: c.layer('Activation', base(node), { activation: name }, [x.layer]), nonNegative }));

const conv: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  const w = c.constant(node.input[1]!, node);
  const bias = node.input[2] ? c.floats(c.constant(node.input[2], node), node) : undefined;
  const [o, ig, kh, kw] = w.dims as [number, number, number, number];
  const group = intAttr(a, 'group', 1);
  const cin = x.shape[1]!;
  if (w.dims.length !== 4) fail(node, `only 2-D convolutions are supported (kernel of rank ${w.dims.length})`);
  const win = windowOf(node, a, x, [kh, kw]);
  if (win.strides.some((s) => s > 1) && win.dilations.some((d) => d > 1)) fail(node, 'strides and dilations both above 1 cannot be converted (TF.js needs one of them to be 1)');
  const same = sameAsTf(x, win);
  const padded = same ? { layer: x.layer, shape: x.shape } : zeroPad(c, x, win, base(node));
  const values = c.floats(w, node);
  const common = {
    kernel_size: [kh, kw], strides: win.strides, dilation_rate: win.dilations, padding: same ? 'same' : 'valid',
    data_format: 'channels_last', activation: 'linear', use_bias: bias !== undefined,
  };
  const biasWeight = bias ? [{ role: 'bias', shape: [o], values: bias, source: { initializer: node.input[2]!, toOnnx: (v: Float32Array) => v } }] : [];
  let layer: string;
  if (group === 1) {
    layer = c.layer('Conv2D', base(node), { ...common, filters: o }, [padded.layer], [
      { role: 'kernel', shape: [kh, kw, ig, o], values: transpose(values, [o, ig, kh, kw], [2, 3, 1, 0]),
        source: { initializer: node.input[1]!, toOnnx: (v) => transpose(v, [kh, kw, ig, o], [3, 2, 0, 1]) } },
      ...biasWeight,
    ]);
  } else if (group === cin && ig === 1) {
    const m = o / cin;
    layer = c.layer('DepthwiseConv2D', base(node), { ...common, depth_multiplier: m }, [padded.layer], [
      { role: 'depthwise_kernel', shape: [kh, kw, cin, m], values: transpose(values, [cin, m, kh, kw], [2, 3, 0, 1]),
        source: { initializer: node.input[1]!, toOnnx: (v) => transpose(v, [kh, kw, cin, m], [2, 3, 0, 1]) } },
      ...biasWeight,
    ]);
  } else {
    // Grouped convolution as one Conv2D with a block-diagonal kernel: exact forward; written
    // back, only the blocks are kept.
    const og = o / group;
    const dense = transpose(values, [o, ig, kh, kw], [2, 3, 1, 0]);
    const full = new Float32Array(kh * kw * cin * o);
    const blockOf = (i: number, out: number) => Math.floor(out / og) === Math.floor(i / ig);
    for (let p = 0; p < kh * kw; p++) {
      for (let i = 0; i < cin; i++) {
        for (let out = 0; out < o; out++) if (blockOf(i, out)) full[(p * cin + i) * o + out] = dense[(p * ig + (i % ig)) * o + out]!;
      }
    }
    const toOnnx = (v: Float32Array) => {
      const blocks = new Float32Array(kh * kw * ig * o);
      for (let p = 0; p < kh * kw; p++) {
        for (let i = 0; i < cin; i++) {
          for (let out = 0; out < o; out++) if (blockOf(i, out)) blocks[(p * ig + (i % ig)) * o + out] = v[(p * cin + i) * o + out]!;
        }
      }
      return transpose(blocks, [kh, kw, ig, o], [3, 2, 0, 1]);
    };
    c.notes.push(`${base(node)}: a convolution with ${group} groups runs as one Conv2D with a block-diagonal kernel`);
    layer = c.layer('Conv2D', base(node), { ...common, filters: o }, [padded.layer], [
      { role: 'kernel', shape: [kh, kw, cin, o], values: full, source: { initializer: node.input[1]!, toOnnx } },
      ...biasWeight,
    ]);
  }
  c.set(out0(node), layer, [null, o, win.out[0], win.out[1]]);
};

const convTranspose: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  const w = c.constant(node.input[1]!, node);
  const [cin, o, kh, kw] = w.dims as [number, number, number, number];
  if (intAttr(a, 'group', 1) !== 1) fail(node, 'grouped transposed convolutions are not supported');
  if ((intsAttr(a, 'dilations') ?? [1, 1]).some((d) => d !== 1)) fail(node, 'dilated transposed convolutions are not supported');
  if (a.has('output_shape') || !['NOTSET', 'VALID'].includes(stringAttr(a, 'auto_pad', 'NOTSET'))) fail(node, 'output_shape and auto_pad are not supported; export with explicit pads');
  const strides = (intsAttr(a, 'strides') ?? [1, 1]) as [number, number];
  const pads = intsAttr(a, 'pads') ?? [0, 0, 0, 0];
  const outputPadding = intsAttr(a, 'output_padding') ?? [0, 0];
  const kernel = [kh, kw];
  if (kernel.some((k, i) => k < strides[i]!)) fail(node, 'a kernel smaller than its stride is not supported');
  // TF's 'valid' transposed convolution gives the full output; ONNX crops pads from it.
  const crop = [0, 1].map((i) => [pads[i]!, pads[i + 2]! - outputPadding[i]!]);
  if (crop.flat().some((p) => p < 0)) fail(node, 'output_padding larger than the end padding is not supported');
  const bias = node.input[2] ? c.floats(c.constant(node.input[2], node), node) : undefined;
  let layer = c.layer('Conv2DTranspose', base(node), {
    filters: o, kernel_size: kernel, strides, padding: 'valid', data_format: 'channels_last', activation: 'linear', use_bias: bias !== undefined,
  }, [x.layer], [
    { role: 'kernel', shape: [kh, kw, o, cin], values: transpose(c.floats(w, node), [cin, o, kh, kw], [2, 3, 1, 0]),
      source: { initializer: node.input[1]!, toOnnx: (v) => transpose(v, [kh, kw, o, cin], [3, 2, 0, 1]) } },
    ...(bias ? [{ role: 'bias', shape: [o], values: bias, source: { initializer: node.input[2]!, toOnnx: (v: Float32Array) => v } }] : []),
  ]);
  const full = [0, 1].map((i) => (x.shape[i + 2]! - 1) * strides[i]! + kernel[i]!);
  if (crop.flat().some((p) => p > 0)) layer = c.layer('Cropping2D', `${base(node)}_crop`, { cropping: crop, data_format: 'channels_last' }, [layer]);
  c.set(out0(node), layer, [null, o, full[0]! - crop[0]![0]! - crop[0]![1]!, full[1]! - crop[1]![0]! - crop[1]![1]!]);
};

/** A Dense layer from a [in, out] kernel (already transposed and scaled) and an optional bias. */
function dense(c: Converter, node: NodeProto, x: Computed, kernel: Float32Array, dims: [number, number], kernelSource: WeightSource['toOnnx'], kernelName: string, bias?: { values: Float32Array; initializer: string; toOnnx: WeightSource['toOnnx'] }, output = out0(node)): void {
  if (x.shape.length === 4) fail(node, 'a matrix product over a 4-D NCHW tensor is not supported; flatten first');
  const layer = c.layer('Dense', base(node), { units: dims[1], activation: 'linear', use_bias: bias !== undefined }, [x.layer], [
    { role: 'kernel', shape: dims, values: kernel, source: { initializer: kernelName, toOnnx: kernelSource } },
    ...(bias ? [{ role: 'bias', shape: [dims[1]], values: bias.values, source: { initializer: bias.initializer, toOnnx: bias.toOnnx } }] : []),
  ]);
  c.set(output, layer, [...x.shape.slice(0, -1), dims[1]]);
}

const gemm: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  if (intAttr(a, 'transA', 0) !== 0) fail(node, 'transA = 1 is not supported');
  const b = c.constant(node.input[1]!, node);
  const transB = intAttr(a, 'transB', 0) === 1;
  const alpha = floatAttr(a, 'alpha', 1);
  const beta = floatAttr(a, 'beta', 1);
  const [k, n] = (transB ? [b.dims[1], b.dims[0]] : b.dims) as [number, number];
  const raw = c.floats(b, node);
  const oriented = transB ? transpose(raw, [n, k], [1, 0]) : raw;
  const kernel = oriented.map((v) => v * alpha);
  const toOnnx = (v: Float32Array) => {
    const unscaled = v.map((u) => u / alpha);
    return transB ? transpose(unscaled, [k, n], [1, 0]) : unscaled;
  };
  let bias: Parameters<typeof dense>[7];
  if (node.input[2] && beta !== 0) {
    const cst = c.constant(node.input[2], node);
    const values = c.floats(cst, node);
    if (values.length !== n && values.length !== 1) fail(node, `bias C of shape [${cst.dims}] is not supported (needs [${n}])`);
    bias = {
      values: values.length === n ? values.map((v) => v * beta) : new Float32Array(n).fill(values[0]! * beta),
      initializer: node.input[2],
      toOnnx: (v) => (values.length === n ? v.map((u) => u / beta) : Float32Array.of(v[0]! / beta)),
    };
  }
  dense(c, node, x, kernel, [k, n], toOnnx, node.input[1]!, bias);
};

const matMul: Op = (c, node) => {
  const x = c.tensor(node.input[0]!, node);
  const w = c.constant(node.input[1]!, node);
  if (w.dims.length !== 2) fail(node, 'only products with a constant 2-D matrix are supported');
  const dims = w.dims as [number, number];
  // MatMul followed by Add of a constant vector is a Dense with bias.
  const next = c.consumersOf(out0(node));
  const add = next.length === 1 && next[0]!.opType === 'Add' ? next[0]! : undefined;
  const other = add?.input.find((i) => i !== out0(node));
  const otherValue = other ? c.value(other, add!) : undefined;
  const constant = otherValue?.kind === 'constant' ? otherValue : undefined;
  if (add && constant && c.floats(constant, add).length === dims[1]) {
    c.skip(add);
    dense(c, node, x, c.floats(w, node), dims, (v) => v, node.input[1]!, { values: c.floats(constant, add), initializer: other!, toOnnx: (v) => v }, out0(add));
    return;
  }
  dense(c, node, x, c.floats(w, node), dims, (v) => v, node.input[1]!);
};

/** Elementwise op with a constant operand, as exact layers: Rescaling or a 1x1 depthwise conv. */
function withConstant(c: Converter, node: NodeProto, x: Computed, k: Constant, kind: 'Add' | 'Sub' | 'Mul' | 'Div', constantFirst: boolean): void {
  const values = c.floats(k, node);
  if ((kind === 'Sub' || kind === 'Div') && constantFirst) fail(node, `a constant ${kind === 'Sub' ? 'minus' : 'divided by'} a tensor is not supported`);
  if (values.length === 1) {
    const v = values[0]!;
    const config = { Add: { scale: 1, offset: v }, Sub: { scale: 1, offset: -v }, Mul: { scale: v, offset: 0 }, Div: { scale: 1 / v, offset: 0 } }[kind];
    const layer = c.layer('Rescaling', base(node), config, [x.layer]);
    c.set(out0(node), layer, x.shape, x.nonNegative && config.offset >= 0 && config.scale >= 0);
    return;
  }
  const channels = x.shape[1];
  const perChannel = x.shape.length === 4 && values.length === channels && k.dims.slice(-2).every((d) => d === 1);
  if (!perChannel) fail(node, `${kind} with a constant of shape [${k.dims}] is not supported (a scalar, or one value per channel of a 4-D tensor, is)`);
  const scale = kind === 'Mul' ? values : kind === 'Div' ? values.map((v) => 1 / v) : new Float32Array(values.length).fill(1);
  const shift = kind === 'Add' ? values : kind === 'Sub' ? values.map((v) => -v) : undefined;
  const layer = c.layer('DepthwiseConv2D', base(node), {
    kernel_size: [1, 1], strides: [1, 1], padding: 'valid', data_format: 'channels_last', depth_multiplier: 1, activation: 'linear', use_bias: shift !== undefined,
  }, [x.layer], [
    { role: 'depthwise_kernel', shape: [1, 1, values.length, 1], values: scale },
    ...(shift ? [{ role: 'bias', shape: [values.length], values: shift }] : []),
  ]);
  c.set(out0(node), layer, x.shape);
}

function elementwise(kind: 'Add' | 'Sub' | 'Mul' | 'Div'): Op {
  return (c, node) => {
    const [a, b] = [c.value(node.input[0]!, node), c.value(node.input[1]!, node)];
    if (kind === 'Div' && a.kind === 'tensor' && isGelu(c, node)) return;
    if (a.kind === 'tensor' && b.kind === 'constant') return withConstant(c, node, c.tensor(node.input[0]!, node), b, kind, false);
    if (a.kind === 'constant' && b.kind === 'tensor') return withConstant(c, node, c.tensor(node.input[1]!, node), a, kind, true);
    if (kind === 'Sub' || kind === 'Div') return fail(node, `${kind} of two computed tensors is not supported`);
    const [x, y] = [c.tensor(node.input[0]!, node), c.tensor(node.input[1]!, node)];
    if (x.shape.join() !== y.shape.join()) fail(node, `operands of shapes [${x.shape}] and [${y.shape}] need broadcasting, which is not supported`);
    const layer = c.layer(kind === 'Add' ? 'Add' : 'Multiply', base(node), {}, [x.layer, y.layer]);
    c.set(out0(node), layer, x.shape, x.nonNegative && y.nonNegative);
  };
}

/** Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5, as exported for exact GELU: one gelu layer. */
function isGelu(c: Converter, div: NodeProto): boolean {
  const single = (name: string, op: string) => {
    const next = c.consumersOf(name);
    return next.length === 1 && next[0]!.opType === op ? next[0]! : undefined;
  };
  const constantIs = (name: string | undefined, node: NodeProto, expected: number) => {
    const v = name ? c.value(name, node) : undefined;
    return v?.kind === 'constant' && v.values.length === 1 && Math.abs(Number(v.values[0]) - expected) < 1e-4;
  };
  const x = div.input[0]!;
  if (!constantIs(div.input[1], div, Math.SQRT2)) return false;
  const erf = single(out0(div), 'Erf');
  const add = erf && single(out0(erf), 'Add');
  const mul = add && single(out0(add), 'Mul');
  const half = mul && single(out0(mul), 'Mul');
  if (!erf || !add || !mul || !half) return false;
  if (!constantIs(add.input.find((i) => i !== out0(erf)), add, 1) || !mul.input.includes(x) || !constantIs(half.input.find((i) => i !== out0(mul)), half, 0.5)) return false;
  [erf, add, mul, half].forEach((n) => c.skip(n));
  const input = c.tensor(x, div);
  c.set(out0(half), c.layer('Activation', base(div).replace(/Div.*$/, 'gelu') || 'gelu', { activation: 'gelu' }, [input.layer]), input.shape);
  return true;
}

const batchNormalization: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  if (x.shape.length !== 4 && x.shape.length !== 2) fail(node, `needs a 2-D or 4-D input, got rank ${x.shape.length}`);
  const [scale, bias, mean, variance] = node.input.slice(1, 5).map((i) => c.floats(c.constant(i, node), node));
  const channels = x.shape[1]!;
  const same = (v: Float32Array) => v;
  const layer = c.layer('BatchNormalization', base(node), {
    axis: -1, momentum: floatAttr(a, 'momentum', 0.9), epsilon: floatAttr(a, 'epsilon', 1e-5), center: true, scale: true,
  }, [x.layer], ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((role, i) => ({
    role, shape: [channels], values: [scale, bias, mean, variance][i]!, source: { initializer: node.input[i + 1]!, toOnnx: same },
  })));
  c.set(out0(node), layer, x.shape);
};

const layerNormalization: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  const axis = intAttr(a, 'axis', -1);
  if (x.shape.length === 4 || (axis !== -1 && axis !== x.shape.length - 1)) fail(node, 'only normalisation over the last axis of a non-image tensor is supported');
  const features = x.shape[x.shape.length - 1]!;
  const scale = c.floats(c.constant(node.input[1]!, node), node);
  const bias = node.input[2] ? c.floats(c.constant(node.input[2], node), node) : new Float32Array(features);
  const layer = c.layer('LayerNormalization', base(node), { axis: -1, epsilon: floatAttr(a, 'epsilon', 1e-5), center: true, scale: true }, [x.layer], [
    { role: 'gamma', shape: [features], values: scale, source: { initializer: node.input[1]!, toOnnx: (v) => v } },
    { role: 'beta', shape: [features], values: bias, ...(node.input[2] ? { source: { initializer: node.input[2], toOnnx: (v: Float32Array) => v } } : {}) },
  ]);
  c.set(out0(node), layer, x.shape);
};

/** [N, ...] -> [N, prod(...)] in ONNX's element order. */
function flattenTo2d(c: Converter, node: NodeProto, x: Computed): void {
  const size = x.shape.slice(1).reduce<number>((p, d) => p * d!, 1);
  if (x.shape.length === 2) return c.set(out0(node), x.layer, x.shape, x.nonNegative);
  const layer = c.layer('Flatten', base(node), {}, [c.channelsFirst(x, base(node))]);
  c.set(out0(node), layer, [null, size], x.nonNegative);
}

const flatten: Op = (c, node, a) => {
  if (intAttr(a, 'axis', 1) !== 1) fail(node, 'only axis 1 (keep the batch axis) is supported');
  flattenTo2d(c, node, c.tensor(node.input[0]!, node));
};

const reshape: Op = (c, node) => {
  const x = c.tensor(node.input[0]!, node);
  const target = c.ints(node.input[1]!, node);
  const known = x.shape.slice(1) as number[];
  const size = known.reduce((p, d) => p * d, 1);
  if (!(target[0] === BATCH || target[0] === 0 || target[0] === -1)) fail(node, `the target shape [${target}] must keep the batch axis`);
  const rest = target.slice(1).map((d, i) => (d === 0 ? known[i]! : (d as number)));
  const inferred = rest.indexOf(-1);
  if (inferred >= 0) rest[inferred] = size / rest.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  if (rest.reduce((p, d) => p * d, 1) !== size) fail(node, `cannot reshape [N, ${known}] to [N, ${rest}]`);
  if (rest.length === 1) return flattenTo2d(c, node, x);
  let layer = c.layer('Reshape', base(node), { target_shape: rest }, [c.channelsFirst(x, base(node))]);
  if (rest.length === 3) layer = c.layer('Permute', `${base(node)}_to_nhwc`, { dims: [2, 3, 1] }, [layer]);
  c.set(out0(node), layer, [null, ...rest], x.nonNegative);
};

const squeeze: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  const axes = (node.input[1] ? c.ints(node.input[1], node) : intsAttr(a, 'axes')) as number[] | undefined;
  const squeezed = x.shape.map((d, i) => (axes ? axes.map((ax) => (ax + x.shape.length) % x.shape.length).includes(i) : d === 1));
  const kept = x.shape.filter((_, i) => !squeezed[i]);
  if (x.shape.length === 4 && kept.length === 2 && squeezed[2] && squeezed[3]) return flattenTo2d(c, node, x);
  fail(node, `squeezing [${x.shape}] to [${kept}] is not supported`);
};

const concat: Op = (c, node, a) => {
  const xs = node.input.map((i) => c.tensor(i, node));
  const axis = (intAttr(a, 'axis', 1) + xs[0]!.shape.length) % xs[0]!.shape.length;
  const channelAxis = xs[0]!.shape.length === 4 ? 1 : xs[0]!.shape.length - 1;
  if (axis !== channelAxis) fail(node, `only concatenation over channels is supported (axis ${axis})`);
  const layer = c.layer('Concatenate', base(node), { axis: -1 }, xs.map((x) => x.layer));
  const shape = [...xs[0]!.shape];
  shape[axis] = xs.reduce((s, x) => s + x.shape[axis]!, 0);
  c.set(out0(node), layer, shape, xs.every((x) => x.nonNegative));
};

const softmax = (log: boolean): Op => (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  const rank = x.shape.length;
  const axis = (intAttr(a, 'axis', c.opsetVersion < 13 ? 1 : -1) + rank) % rank;
  // Before opset 13 the input is flattened to 2-D at `axis`: one softmax over all trailing axes.
  const trailing = c.opsetVersion < 13 && rank === 3 && axis === 1;
  const overChannels = rank === 4 ? axis === 1 && (c.opsetVersion >= 13 || (x.shape[2] === 1 && x.shape[3] === 1)) : axis === rank - 1;
  if (trailing && !log) {
    const flat = c.layer('Reshape', `${base(node)}_flat`, { target_shape: [x.shape[1]! * x.shape[2]!] }, [x.layer]);
    const soft = c.layer('Softmax', base(node), { axis: -1 }, [flat]);
    return c.set(out0(node), c.layer('Reshape', `${base(node)}_back`, { target_shape: x.shape.slice(1) }, [soft]), x.shape, true);
  }
  if (!overChannels) fail(node, `softmax over axis ${axis} of a rank-${rank} tensor is not supported`);
  if (log) {
    if (!isGraphOutput(c, out0(node))) fail(node, 'LogSoftmax is supported only as the model output');
    c.notes.push('the model ends in LogSoftmax: memometer reads its output as probabilities (softmax); argmax and losses are unchanged');
  }
  if (c.consumersOf(node.input[0]!).length === 1 && c.fuseActivation(x.layer, 'softmax')) return c.set(out0(node), x.layer, x.shape, true);
  c.set(out0(node), c.layer('Softmax', base(node), { axis: -1 }, [x.layer]), x.shape, true);
};

function isGraphOutput(c: Converter, name: string): boolean {
  return c.consumersOf(name).length === 0;
}

const clip: Op = unary((c, node, x) => ({ layer: clipLayer(c, node, x, attributes(node)), nonNegative: true }));

function clipLayer(c: Converter, node: NodeProto, x: Computed, a: Map<string, AttributeProto>): string {
  const bound = (attr: string, index: number, fallback: number) => {
    if (node.input[index]) return Number(c.ints(node.input[index], node)[0]);
    return floatAttr(a, attr, fallback);
  };
  const [lo, hi] = [bound('min', 1, -Infinity), bound('max', 2, Infinity)];
  if (lo !== 0 || (hi !== 6 && hi !== Infinity && hi < 3.4e38)) fail(node, `Clip to [${lo}, ${hi}] is not supported (ReLU and ReLU6 are)`);
  return c.layer('Activation', base(node), { activation: hi === 6 ? 'relu6' : 'relu' }, [x.layer]);
}

const leakyRelu: Op = unary((c, node, x) => ({
  layer: c.layer('LeakyReLU', base(node), { alpha: floatAttr(attributes(node), 'alpha', 0.01) }, [x.layer]),
  nonNegative: false,
}));

const dropout: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  const ratio = node.input[1] ? Number(c.ints(node.input[1], node)[0]) : floatAttr(a, 'ratio', 0.5);
  c.set(out0(node), c.layer('Dropout', base(node), { rate: ratio }, [x.layer]), x.shape, x.nonNegative);
};

const identity: Op = (c, node) => {
  const v = c.value(node.input[0]!, node);
  if (v.kind === 'constant') c.setConstant(out0(node), v.dims, v.values);
  else c.set(out0(node), v.layer, v.shape, v.nonNegative);
};

const constantNode: Op = async (c, node, a) => {
  const t = a.get('value')?.t;
  if (t) {
    const v: OnnxTensor = await tensorValues(t);
    return c.setConstant(out0(node), v.dims, v.values);
  }
  if (a.has('value_float')) return c.setConstant(out0(node), [], Float32Array.of(floatAttr(a, 'value_float', 0)));
  if (a.has('value_floats')) return c.setConstant(out0(node), [a.get('value_floats')!.floats.length], Float32Array.from(a.get('value_floats')!.floats));
  if (a.has('value_int')) return c.setConstant(out0(node), [], [intAttr(a, 'value_int', 0)]);
  if (a.has('value_ints')) return c.setConstant(out0(node), [a.get('value_ints')!.ints.length], a.get('value_ints')!.ints.map(Number));
  fail(node, 'a Constant without a numeric value');
};

const pad: Op = (c, node, a) => {
  const x = c.tensor(node.input[0]!, node);
  const mode = stringAttr(a, 'mode', 'constant');
  const pads = (node.input[1] ? c.ints(node.input[1], node) : intsAttr(a, 'pads') ?? []) as number[];
  const value = node.input[2] ? Number(c.ints(node.input[2], node)[0]) : floatAttr(a, 'value', 0);
  if (mode !== 'constant') fail(node, `only constant padding is supported (mode ${mode})`);
  if (x.shape.length !== 4 || pads[0] || pads[1] || pads[4] || pads[5]) fail(node, 'only padding of the spatial axes of a 4-D tensor is supported');
  const padding = [[pads[2]!, pads[6]!], [pads[3]!, pads[7]!]];
  // Padding with v: shift by -v, pad zeros, shift back.
  const shift = (layer: string, offset: number, suffix: string) =>
    value === 0 ? layer : c.layer('Rescaling', `${base(node)}_${suffix}`, { scale: 1, offset }, [layer]);
  const padded = c.layer('ZeroPadding2D', base(node), { padding, data_format: 'channels_last' }, [shift(x.layer, -value, 'shift')]);
  const shape = [null, x.shape[1]!, x.shape[2]! + pads[2]! + pads[6]!, x.shape[3]! + pads[3]! + pads[7]!];
  c.set(out0(node), shift(padded, value, 'unshift'), shape, x.nonNegative && value >= 0);
};

/** A Transpose is kept pending: it must cancel out (a layout no-op) before anything uses it. */
const transposeOp: Op = (c, node, a) => {
  const v = c.value(node.input[0]!, node);
  if (v.kind !== 'tensor') return fail(node, 'a Transpose of a constant is not supported');
  const rank = v.perm ? v.perm.length : v.shape.length;
  const perm = intsAttr(a, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const composed = v.perm ? perm.map((p) => v.perm![p]!) : perm;
  const next: Computed = { ...v, perm: composed };
  if (composed.every((p, i) => p === i)) delete next.perm;
  c.setValue(out0(node), next);
};

export const OPS: Record<string, Op> = {
  Conv: conv, ConvTranspose: convTranspose, Gemm: gemm, MatMul: matMul,
  Add: elementwise('Add'), Sub: elementwise('Sub'), Mul: elementwise('Mul'), Div: elementwise('Div'),
  Relu: activation('relu', true), Sigmoid: activation('sigmoid', true), Tanh: activation('tanh', false), LeakyRelu: leakyRelu, Clip: clip,
  Softmax: softmax(false), LogSoftmax: softmax(true),
  MaxPool: pool('Max'), AveragePool: pool('Average'), GlobalAveragePool: globalAveragePool,
  BatchNormalization: batchNormalization, LayerNormalization: layerNormalization,
  Flatten: flatten, Reshape: reshape, Squeeze: squeeze, Concat: concat, Dropout: dropout, Identity: identity,
  Constant: constantNode, Pad: pad, Transpose: transposeOp,
  Erf: (_c, node) => fail(node, 'Erf is supported only inside the exact GELU pattern x * 0.5 * (1 + erf(x / sqrt 2))'),
  Shape: (c, node) => {
    const x = c.tensor(node.input[0]!, node);
    c.setConstant(out0(node), [x.shape.length], x.shape.map((d) => (d === null ? BATCH : d)));
  },
  Gather: (_c, node) => fail(node, 'a Gather of a computed tensor is not supported'),
  Unsqueeze: (_c, node) => fail(node, 'an Unsqueeze of a computed tensor is not supported'),
  Cast: (_c, node) => fail(node, 'a Cast of a computed tensor is not supported'),
  Slice: (_c, node) => fail(node, 'a Slice of a computed tensor is not supported'),
  ConstantOfShape: (_c, node) => fail(node, 'ConstantOfShape needs a constant shape'),
};
