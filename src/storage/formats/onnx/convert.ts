/**
 * ONNX -> TF.js LayersModel artifacts (a Keras functional topology + weights), so an exported
 * PyTorch/TF/JAX model is cut, copied into heads and fine-tuned like any TF.js model.
 *
 * Layout: ONNX is NCHW, TF.js NHWC. Every rank-4 ONNX value lives in TF.js as NHWC (weights are
 * transposed once); a Flatten/Reshape of such a value first permutes back to C,H,W so the
 * features a Dense sees keep PyTorch's order. Constant subgraphs (shape arithmetic such as the
 * Shape -> Gather -> Unsqueeze -> Concat chain of `x.view(x.size(0), -1)`) are folded.
 * Every weight remembers the initializer it came from, so a fine-tuned model can be written
 * back into the original graph (see write-back.ts).
 */
import type { io } from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../../errors.js';
import { type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type ValueInfoProto } from '../../../gen/onnx/onnx.js';
import { tensorValues, transpose, type ExternalReader, type OnnxTensor } from './tensors.js';

/** A dimension or a whole shape entry that stands for the (dynamic) batch size. */
const BATCH = 'batch' as const;
type Dim = number | typeof BATCH;

/** A value computed at conversion time: an initializer, a Constant, folded shape arithmetic. */
interface Constant {
  kind: 'constant';
  dims: number[];
  values: Float32Array | Dim[];
}

/** A tensor the converted model computes: the output of a TF.js layer. */
interface Computed {
  kind: 'tensor';
  layer: string;
  /** ONNX shape (NCHW order for rank 4); null for the batch axis. */
  shape: (number | null)[];
  /** Known to hold no negative value (after ReLU, sigmoid, ...): zero padding acts as -inf for max pooling. */
  nonNegative: boolean;
  /** A Transpose not yet applied: this value is `perm` of `layer`'s tensor. */
  perm?: number[];
}

type Value = Constant | Computed;

/** How a TF.js weight is made from an initializer, and back. */
export interface WeightSource {
  weight: string;
  initializer: string;
  toOnnx(values: Float32Array): Float32Array;
}

export interface OnnxConversion {
  artifacts: io.ModelArtifacts;
  weightSources: WeightSource[];
  /** What a user should know about the conversion (folded BatchNorm, LogSoftmax output, ...). */
  notes: string[];
  /** 'NCHW' for image models: the data may come as NCHW or NHWC. */
  inputLayout: 'NCHW' | 'plain';
}

interface LayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

/** Op types the converter handles; constant-only ops must fold. */
export const SUPPORTED_OPS = [
  'Conv', 'ConvTranspose', 'Gemm', 'MatMul', 'Add', 'Sub', 'Mul', 'Div', 'Relu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'Erf', 'Clip',
  'Softmax', 'LogSoftmax', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'BatchNormalization', 'LayerNormalization',
  'Flatten', 'Reshape', 'Concat', 'Dropout', 'Identity', 'Constant', 'Pad', 'Transpose', 'Squeeze', 'Unsqueeze',
  'Shape', 'Gather', 'Cast', 'Slice', 'ConstantOfShape',
] as const;

const fail = (node: NodeProto, why: string): never => {
  throw new InvalidArgumentError(`ONNX node ${node.name || node.output[0]} (${node.opType}): ${why}`, 'model');
};

function attributes(node: NodeProto): Map<string, AttributeProto> {
  return new Map(node.attribute.map((a) => [a.name ?? '', a]));
}

const snake = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_').replace(/^_+/, '') || 'node';

class Converter {
  private readonly values = new Map<string, Value>();
  private readonly layers: LayerJson[] = [];
  private readonly names = new Set<string>();
  private readonly weightSpecs: io.WeightsManifestEntry[] = [];
  private readonly weightData: Float32Array[] = [];
  readonly weightSources: WeightSource[] = [];
  readonly notes: string[] = [];
  private readonly consumers = new Map<string, NodeProto[]>();
  private readonly skipped = new Set<NodeProto>();

  constructor(
    private readonly graph: GraphProto,
    private readonly opset: number,
  ) {
    for (const node of graph.node) for (const input of node.input) this.consumers.set(input, [...(this.consumers.get(input) ?? []), node]);
  }

  // ---- values ----

  value(name: string, node: NodeProto): Value {
    const v = this.values.get(name);
    if (!v) return fail(node, `input ${name} is not produced by any earlier node`);
    return v;
  }

  tensor(name: string, node: NodeProto): Computed {
    const v = this.value(name, node);
    if (v.kind !== 'tensor') return fail(node, `input ${name} is a constant where a computed tensor is expected`);
    if (v.perm) return fail(node, `its input ${name} comes from a Transpose (perm ${v.perm}) that is not a layout no-op`);
    return v;
  }

  constant(name: string, node: NodeProto): Constant {
    const v = this.value(name, node);
    if (v.kind !== 'constant') return fail(node, `input ${name} must be a constant (an initializer or folded shape arithmetic)`);
    return v;
  }

  floats(c: Constant, node: NodeProto): Float32Array {
    if (c.values instanceof Float32Array) return c.values;
    if (c.values.some((v) => v === BATCH)) return fail(node, 'a constant depends on the batch size');
    return Float32Array.from(c.values as number[]);
  }

  ints(name: string, node: NodeProto): Dim[] {
    const c = this.constant(name, node);
    return c.values instanceof Float32Array ? Array.from(c.values) : c.values;
  }

  setConstant(name: string, dims: number[], values: Float32Array | Dim[]): void {
    this.values.set(name, { kind: 'constant', dims, values });
  }

  setValue(name: string, value: Value): void {
    this.values.set(name, value);
  }

  // ---- layers ----

  private unique(base: string): string {
    let name = snake(base);
    for (let i = 1; this.names.has(name); i++) name = `${snake(base)}_${i}`;
    this.names.add(name);
    return name;
  }

  /** Adds a layer fed by `inputs` (layer names); returns the new layer's name. */
  layer(className: string, base: string, config: Record<string, unknown>, inputs: string[], weights: { role: string; shape: number[]; values: Float32Array; source?: Omit<WeightSource, 'weight'> }[] = []): string {
    const name = this.unique(base);
    this.layers.push({
      name,
      class_name: className,
      config: { name, trainable: true, ...config },
      inbound_nodes: inputs.length ? [inputs.map((i) => [i, 0, 0, {}])] : [],
    });
    for (const w of weights) {
      const weight = `${name}/${w.role}`;
      this.weightSpecs.push({ name: weight, shape: w.shape, dtype: 'float32' });
      this.weightData.push(w.values);
      if (w.source) this.weightSources.push({ weight, ...w.source });
    }
    return name;
  }

  /**
   * Gives a linear Dense/Conv2D layer the activation that follows it, so a model ending in
   * Gemm -> Softmax keeps its classifier as the last layer (copy depth 1), as in Keras.
   */
  fuseActivation(layer: string, activation: string): boolean {
    const json = this.layers.find((l) => l.name === layer);
    if (!json || !['Dense', 'Conv2D'].includes(json.class_name) || json.config.activation !== 'linear') return false;
    json.config.activation = activation;
    return true;
  }

  set(name: string, layer: string, shape: (number | null)[], nonNegative = false): void {
    this.values.set(name, { kind: 'tensor', layer, shape, nonNegative });
  }

  /** The NHWC tensor `v` permuted to NCHW order (for flattening in PyTorch's order). */
  channelsFirst(v: Computed, base: string): string {
    if (v.shape.length !== 4 || (v.shape[2] === 1 && v.shape[3] === 1)) return v.layer;
    return this.layer('Permute', `${base}_to_nchw`, { dims: [3, 1, 2] }, [v.layer]);
  }

  // ---- the graph ----

  async run(read: ExternalReader | undefined): Promise<void> {
    for (const init of this.graph.initializer) {
      const t = await tensorValues(init, read);
      this.setConstant(init.name ?? '', t.dims, t.values instanceof Float32Array ? t.values : t.values);
    }
    const initializers = new Set(this.graph.initializer.map((i) => i.name));
    const inputs = this.graph.input.filter((i) => !initializers.has(i.name));
    if (inputs.length !== 1 || this.graph.output.length !== 1) {
      throw new InvalidArgumentError(
        `the ONNX graph has ${inputs.length} inputs and ${this.graph.output.length} outputs; memometer measures single-input, single-output classifiers`,
        'model',
      );
    }
    this.input(inputs[0]!);
    // Constant nodes first: patterns (GELU) look at constants that exporters emit late.
    const constantsFirst = [...this.graph.node].sort((a, b) => Number(b.opType === 'Constant') - Number(a.opType === 'Constant'));
    for (const node of constantsFirst) {
      if (this.skipped.has(node)) continue;
      await this.convert(node);
    }
    const output = this.values.get(this.graph.output[0]!.name ?? '');
    if (!output || output.kind !== 'tensor' || output.perm) {
      throw new InvalidArgumentError('the ONNX graph output is not a computed tensor', 'model');
    }
    this.outputLayer = output.layer;
  }

  private inputLayerName = '';
  private outputLayer = '';
  inputLayout: OnnxConversion['inputLayout'] = 'plain';

  private input(info: ValueInfoProto): void {
    const type = info.type?.value;
    const dims = type?.$case === 'tensorType' ? (type.value.shape?.dim ?? []) : [];
    const shape = dims.map((d, i) => (i === 0 ? null : d.value?.$case === 'dimValue' ? d.value.value : NaN));
    if (shape.length < 2 || shape.slice(1).some((d) => !Number.isInteger(d) || (d as number) <= 0)) {
      throw new InvalidArgumentError(
        `the ONNX input ${info.name} needs a fixed shape apart from the batch axis, got [${dims.map((d) => d.value?.value ?? '?')}]`,
        'model',
      );
    }
    const tfShape = shape.length === 4 ? [null, shape[2], shape[3], shape[1]] : shape;
    if (shape.length === 4) this.inputLayout = 'NCHW';
    this.inputLayerName = this.unique(info.name ?? 'input');
    this.layers.push({
      name: this.inputLayerName,
      class_name: 'InputLayer',
      config: { batch_input_shape: tfShape, dtype: 'float32', sparse: false, name: this.inputLayerName },
      inbound_nodes: [],
    });
    this.set(info.name ?? '', this.inputLayerName, shape);
  }

  private async convert(node: NodeProto): Promise<void> {
    const op = OPS[node.opType ?? ''];
    if (!op) fail(node, 'unsupported op');
    const inputs = node.input.filter((i) => i !== '').map((i) => this.value(i, node));
    // Any op on constants only is folded where it is shape arithmetic.
    if (inputs.length > 0 && inputs.every((v) => v.kind === 'constant') && FOLD[node.opType ?? '']) {
      FOLD[node.opType!]!(this, node);
      return;
    }
    await op!(this, node, attributes(node));
  }

  consumersOf(name: string): NodeProto[] {
    return this.consumers.get(name) ?? [];
  }

  skip(node: NodeProto): void {
    this.skipped.add(node);
  }

  get opsetVersion(): number {
    return this.opset;
  }

  artifacts(): io.ModelArtifacts {
    const total = this.weightData.reduce((s, w) => s + w.length, 0);
    const data = new Float32Array(total);
    let offset = 0;
    for (const w of this.weightData) {
      data.set(w, offset);
      offset += w.length;
    }
    return {
      format: 'layers-model',
      generatedBy: 'memometer onnx converter',
      modelTopology: {
        class_name: 'Model',
        config: {
          name: snake(this.graph.name || 'onnx_model'),
          layers: this.layers,
          input_layers: [[this.inputLayerName, 0, 0]],
          output_layers: [[this.outputLayer, 0, 0]],
        },
        keras_version: 'tfjs-layers 4.22.0',
        backend: 'tensor_flow.js',
      },
      weightSpecs: this.weightSpecs,
      weightData: data.buffer,
    };
  }
}

// ---- attribute helpers ----

const intAttr = (a: Map<string, AttributeProto>, name: string, fallback: number) => (a.has(name) ? Number(a.get(name)!.i ?? 0) : fallback);
const floatAttr = (a: Map<string, AttributeProto>, name: string, fallback: number) => (a.has(name) ? (a.get(name)!.f ?? 0) : fallback);
const intsAttr = (a: Map<string, AttributeProto>, name: string): number[] | undefined => (a.has(name) ? a.get(name)!.ints.map(Number) : undefined);
const stringAttr = (a: Map<string, AttributeProto>, name: string, fallback: string) =>
  a.has(name) ? (a.get(name)!.s?.toString() ?? fallback) : fallback;

/** Output size of a windowed op along one axis (conv or pooling), ONNX's formula. */
function windowOut(size: number, kernel: number, stride: number, dilation: number, padBegin: number, padEnd: number, ceil: boolean): number {
  const span = (kernel - 1) * dilation + 1;
  const steps = (size + padBegin + padEnd - span) / stride;
  if (!ceil) return Math.floor(steps) + 1;
  // Ceil mode drops a last window that would start past the input and the begin padding.
  const out = Math.ceil(steps) + 1;
  return (out - 1) * stride >= size + padBegin ? out - 1 : out;
}

interface Window {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  /** [top, left, bottom, right] as ONNX pads them. */
  pads: [number, number, number, number];
  out: [number, number];
}

/** The window geometry of Conv / pooling nodes on an NCHW input, auto_pad resolved. */
function windowOf(node: NodeProto, a: Map<string, AttributeProto>, input: Computed, kernel: [number, number], ceil = false): Window {
  if (input.shape.length !== 4) fail(node, `needs a 4-D NCHW input, got rank ${input.shape.length}`);
  const [h, w] = [input.shape[2]!, input.shape[3]!];
  const strides = (intsAttr(a, 'strides') ?? [1, 1]) as [number, number];
  const dilations = (intsAttr(a, 'dilations') ?? [1, 1]) as [number, number];
  let pads = (intsAttr(a, 'pads') ?? [0, 0, 0, 0]) as number[];
  const autoPad = stringAttr(a, 'auto_pad', 'NOTSET');
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = [0, 0, 0, 0];
    [h, w].forEach((size, i) => {
      const out = Math.ceil(size / strides[i]!);
      const total = Math.max((out - 1) * strides[i]! + (kernel[i]! - 1) * dilations[i]! + 1 - size, 0);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + 2] = total - pads[i]!;
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
function sameAsTf(input: Computed, win: Window): boolean {
  return [0, 1].every((i) => {
    const same = tfSame(input.shape[i + 2]!, (win.kernel[i]! - 1) * win.dilations[i]! + 1, win.strides[i]!);
    return same.out === win.out[i] && same.before === win.pads[i];
  });
}

/** Pads an NHWC tensor with zeros so that a 'valid' window op sees the ONNX windows. */
function zeroPad(c: Converter, v: Computed, win: Window, base: string): { layer: string; shape: (number | null)[] } {
  // Rows past the input that a ceil-mode window reaches count as padding too.
  const extra = [0, 1].map((i) => Math.max((win.out[i]! - 1) * win.strides[i]! + (win.kernel[i]! - 1) * win.dilations[i]! + 1 - (v.shape[i + 2]! + win.pads[i]! + win.pads[i + 2]!), 0));
  const padding = [[win.pads[0], win.pads[2] + extra[0]!], [win.pads[1], win.pads[3] + extra[1]!]];
  if (padding.flat().every((p) => p === 0)) return { layer: v.layer, shape: v.shape };
  const layer = c.layer('ZeroPadding2D', `${base}_pad`, { padding, data_format: 'channels_last' }, [v.layer]);
  return { layer, shape: [null, v.shape[1]!, v.shape[2]! + padding[0]![0]! + padding[0]![1]!, v.shape[3]! + padding[1]![0]! + padding[1]![1]!] };
}

type Op = (c: Converter, node: NodeProto, a: Map<string, AttributeProto>) => void | Promise<void>;

const out0 = (node: NodeProto) => node.output[0]!;
const base = (node: NodeProto) => node.name || node.output[0] || node.opType || 'node';

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

function pool(kind: 'Max' | 'Average'): Op {
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

const globalAveragePool: Op = (c, node) => {
  const x = c.tensor(node.input[0]!, node);
  if (x.shape.length !== 4) fail(node, 'needs a 4-D NCHW input');
  const pooled = c.layer('GlobalAveragePooling2D', base(node), { data_format: 'channels_last' }, [x.layer]);
  // ONNX keeps [N, C, 1, 1]; so does the converted model, as NHWC [N, 1, 1, C].
  const layer = c.layer('Reshape', `${base(node)}_keepdims`, { target_shape: [1, 1, x.shape[1]] }, [pooled]);
  c.set(out0(node), layer, [null, x.shape[1]!, 1, 1], x.nonNegative);
};

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

const clip: Op = (c, node) => unary((c2, n, x) => ({ layer: clipLayer(c2, n, x, attributes(n)), nonNegative: true }))(c, node, attributes(node));

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

const OPS: Record<string, Op> = {
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

// ---- constant folding: shape arithmetic ----

type Fold = (c: Converter, node: NodeProto) => void;

const scalarOp = (f: (x: number, y: number) => number): Fold => (c, node) => {
  const [a, b] = [c.constant(node.input[0]!, node), c.constant(node.input[1]!, node)];
  if (a.values.some((v) => v === BATCH) || b.values.some((v) => v === BATCH)) fail(node, 'arithmetic on the batch size is not supported');
  const [x, y] = [Array.from(a.values as ArrayLike<number>), Array.from(b.values as ArrayLike<number>)];
  const n = Math.max(x.length, y.length);
  const values = Array.from({ length: n }, (_, i) => f(x[x.length === 1 ? 0 : i]!, y[y.length === 1 ? 0 : i]!));
  const floats = a.values instanceof Float32Array || b.values instanceof Float32Array;
  c.setConstant(out0(node), x.length >= y.length ? a.dims : b.dims, floats ? Float32Array.from(values) : values);
};

const FOLD: Record<string, Fold> = {
  Gather: (c, node) => {
    const data = c.ints(node.input[0]!, node);
    const index = c.ints(node.input[1]!, node) as number[];
    const indices = c.constant(node.input[1]!, node);
    const picked = index.map((i) => data[(i + data.length) % data.length]!);
    c.setConstant(out0(node), indices.dims, picked);
  },
  Unsqueeze: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims.length === 0 ? [1] : [...v.dims, 1], v.values);
  },
  Squeeze: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims.filter((d) => d !== 1), v.values);
  },
  Concat: (c, node) => {
    const parts = node.input.map((i) => c.ints(i, node));
    const values = parts.flat();
    c.setConstant(out0(node), [values.length], values);
  },
  Cast: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims, v.values);
  },
  Identity: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims, v.values);
  },
  Slice: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    const data = c.ints(node.input[0]!, node);
    const list = (i: number) => (node.input[i] ? (c.ints(node.input[i]!, node) as number[]) : undefined);
    const starts = list(1)!;
    const axes = (list(3) ?? starts.map((_, i) => i)).map((ax) => (ax + v.dims.length) % v.dims.length);
    const steps = list(4) ?? starts.map(() => 1);
    // Per axis, the source indices kept (numpy slicing with clamping).
    const kept = v.dims.map((n, axis) => {
      const k = axes.indexOf(axis);
      if (k < 0) return Array.from({ length: n }, (_, i) => i);
      const step = steps[k]!;
      const norm = (i: number) => (i < 0 ? i + n : i);
      const start = step > 0 ? Math.min(Math.max(norm(starts[k]!), 0), n) : Math.min(Math.max(norm(starts[k]!), -1), n - 1);
      const end = step > 0 ? Math.min(Math.max(norm(list(2)![k]!), 0), n) : Math.min(Math.max(norm(list(2)![k]!), -1), n - 1);
      const out: number[] = [];
      for (let i = start; step > 0 ? i < end : i > end; i += step) out.push(i);
      return out;
    });
    const strides = v.dims.map((_, i) => v.dims.slice(i + 1).reduce((a, b) => a * b, 1));
    let flat = [0];
    kept.forEach((indices, axis) => {
      flat = flat.flatMap((offset) => indices.map((i) => offset + i * strides[axis]!));
    });
    const values = flat.map((i) => data[i]!);
    c.setConstant(out0(node), kept.map((k) => k.length), v.values instanceof Float32Array ? Float32Array.from(values as number[]) : values);
  },
  ConstantOfShape: (c, node) => {
    const dims = c.ints(node.input[0]!, node) as number[];
    const fill = attributes(node).get('value')?.t;
    const value = fill ? Number(fill.floatData[0] ?? fill.int64Data[0] ?? (fill.rawData?.length ? new DataView(fill.rawData.buffer, fill.rawData.byteOffset).getInt32(0, true) : 0)) : 0;
    c.setConstant(out0(node), dims, new Array<number>(dims.reduce((a, b) => a * b, 1)).fill(value));
  },
  Reshape: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    const target = c.ints(node.input[1]!, node) as number[];
    const size = v.values.length;
    const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    c.setConstant(out0(node), target.map((d) => (d === -1 ? size / known : d)), v.values);
  },
  Transpose: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    const perm = intsAttr(attributes(node), 'perm') ?? v.dims.map((_, i) => v.dims.length - 1 - i);
    const moved = transpose(Float32Array.from(v.values as ArrayLike<number>), v.dims, perm);
    const values = v.values instanceof Float32Array ? moved : Array.from(moved);
    c.setConstant(out0(node), perm.map((p) => v.dims[p]!), values);
  },
  Add: scalarOp((x, y) => x + y),
  Sub: scalarOp((x, y) => x - y),
  Mul: scalarOp((x, y) => x * y),
  Div: scalarOp((x, y) => x / y),
};

/** Op types of the graph that the converter cannot handle, with a node name each. */
export function unsupportedOps(graph: GraphProto): string[] {
  const supported = new Set<string>(SUPPORTED_OPS);
  const found = new Map<string, string>();
  for (const node of graph.node) {
    const op = node.opType ?? '';
    const known = supported.has(op) && (node.domain ?? '') === '';
    if (!known && !found.has(op)) found.set(op, node.name || node.output[0] || '(unnamed)');
  }
  return [...found].map(([op, name]) => `${op} (node ${name})`);
}

/** Converts a decoded ONNX model; `read` reads external data files next to it. */
export async function convertOnnx(model: ModelProto, read?: ExternalReader): Promise<OnnxConversion> {
  const graph = model.graph;
  if (!graph) throw new InvalidArgumentError('the ONNX file holds no graph', 'model');
  const unsupported = unsupportedOps(graph);
  if (unsupported.length > 0) {
    throw new InvalidArgumentError(`the ONNX graph uses ops memometer cannot convert: ${unsupported.join(', ')}`, 'model');
  }
  const opset = model.opsetImport.find((o) => (o.domain ?? '') === '')?.version ?? 13;
  const converter = new Converter(graph, Number(opset));
  await converter.run(read);
  const hasBn = graph.node.some((n) => n.opType === 'BatchNormalization');
  // PyTorch names the weights it creates by folding batch norm into a Conv 'onnx::Conv_<n>'.
  const namesBn = graph.initializer.some((i) => /(^|[./_])(bn|batchnorm)\d*[./_]|running_(mean|var)|^onnx::Conv_\d+$/i.test(i.name ?? ''));
  if (!hasBn && namesBn) {
    converter.notes.push('the file has no BatchNormalization nodes, though weight names suggest batch norm: the exporter folded it into the convolutions, so heads copy the folded layers');
  }
  return { artifacts: converter.artifacts(), weightSources: converter.weightSources, notes: converter.notes, inputLayout: converter.inputLayout };
}
