/**
 * The state of one ONNX -> TF.js conversion: the values of the ONNX graph (constants folded at
 * conversion time, or tensors computed by TF.js layers) and the Keras functional topology and
 * weights being built. Each op's conversion lives in ops.ts / pooling.ts, constant folding in
 * fold.ts; convert.ts drives them.
 */
import type { io } from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../../errors.js';
import type { AttributeProto, GraphProto, NodeProto, ValueInfoProto } from '../../../gen/onnx/onnx.js';
import { tensorValues, type ExternalReader } from './tensors.js';

/** A dimension or a whole shape entry that stands for the (dynamic) batch size. */
export const BATCH = 'batch' as const;
export type Dim = number | typeof BATCH;

/** A value computed at conversion time: an initializer, a Constant, folded shape arithmetic. */
export interface Constant {
  kind: 'constant';
  dims: number[];
  values: Float32Array | Dim[];
}

/** A tensor the converted model computes: the output of a TF.js layer. */
export interface Computed {
  kind: 'tensor';
  layer: string;
  /** ONNX shape (NCHW order for rank 4); null for the batch axis. */
  shape: (number | null)[];
  /** Known to hold no negative value (after ReLU, sigmoid, ...): zero padding acts as -inf for max pooling. */
  nonNegative: boolean;
  /** A Transpose not yet applied: this value is `perm` of `layer`'s tensor. */
  perm?: number[];
}

export type Value = Constant | Computed;

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
export const fail = (node: NodeProto, why: string): never => {
  throw new InvalidArgumentError(`ONNX node ${node.name || node.output[0]} (${node.opType}): ${why}`, 'model');
};

export function attributes(node: NodeProto): Map<string, AttributeProto> {
  return new Map(node.attribute.map((a) => [a.name ?? '', a]));
}

const snake = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_').replace(/^_+/, '') || 'node';

export class Converter {
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
    /** How each op type converts, and how ops on constants fold (ops.ts, fold.ts). */
    private readonly handlers: { ops: Record<string, Op>; fold: Record<string, Fold> },
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
    const op = this.handlers.ops[node.opType ?? ''];
    if (!op) fail(node, 'unsupported op');
    const inputs = node.input.filter((i) => i !== '').map((i) => this.value(i, node));
    // Any op on constants only is folded where it is shape arithmetic.
    const fold = this.handlers.fold[node.opType ?? ''];
    if (inputs.length > 0 && inputs.every((v) => v.kind === 'constant') && fold) {
      fold(this, node);
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


export const intAttr = (a: Map<string, AttributeProto>, name: string, fallback: number) => (a.has(name) ? Number(a.get(name)!.i ?? 0) : fallback);
export const floatAttr = (a: Map<string, AttributeProto>, name: string, fallback: number) => (a.has(name) ? (a.get(name)!.f ?? 0) : fallback);
export const intsAttr = (a: Map<string, AttributeProto>, name: string): number[] | undefined => (a.has(name) ? a.get(name)!.ints.map(Number) : undefined);
export const stringAttr = (a: Map<string, AttributeProto>, name: string, fallback: string) =>
  a.has(name) ? (a.get(name)!.s?.toString() ?? fallback) : fallback;

/** Output size of a windowed op along one axis (conv or pooling), ONNX's formula. */
export type Op = (c: Converter, node: NodeProto, a: Map<string, AttributeProto>) => void | Promise<void>;
export type Fold = (c: Converter, node: NodeProto) => void;

export const out0 = (node: NodeProto) => node.output[0]!;
export const base = (node: NodeProto) => node.name || node.output[0] || node.opType || 'node';
