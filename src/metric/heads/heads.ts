import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError, MemometerError } from '../../errors.js';
import { onBackend } from '../backend/failures.js';
import type { Cut } from '../model/cut.js';
import { copyLayer } from '../model/copy.js';
import { hash32, Stream } from '../random.js';
import { parameterFreeOp, perHeadOp, STACKED_LAYERS, type StackedOp } from './stacked-layers.js';

export type HeadInit = 'fresh' | 'top';

export interface HeadsOptions {
  /** Number of heads: C for per-class heads, 1 for the shared head. */
  groups: number;
  /** Number of random labels n: the output size of every head. */
  outputs: number;
  /** Fresh weights from the layers' own initializers, or the top's weights where shapes allow. */
  init: HeadInit;
  seed: number;
  /**
   * The global index of head 0, for a worker that builds heads [firstGroup, firstGroup + groups)
   * of a larger set: each head's seeded initializer is the one it has in the whole set.
   */
  firstGroup?: number;
}

type Config = Record<string, unknown>;
/** A tensor's shape with its batch axis, or a list of them for layers with several inputs. */
type InputShape = tf.Shape | tf.Shape[];

const OUTPUT_ACTIVATIONS = new Set(['Activation', 'Softmax']);

const message = (error: unknown) => (error instanceof Error ? error.message.split('\n')[0]! : String(error));

function outputOverride(layer: tf.layers.Layer, n: number): Config {
  return layer.getClassName() === 'Dense'
    ? { units: n, activation: 'linear' }
    : { filters: n, activation: 'linear' };
}

/**
 * Head `group`'s own copy of `layer` (same class and hyper-parameters; the output layer resized
 * to n), built by applying it to a symbolic input of the head's shape, exactly as a functional
 * model builds its layers. Starts from the top's weights with init 'top' where they fit, else
 * from its seeded initializers.
 */
function headCopy(layer: tf.layers.Layer, isOutput: boolean, inputShape: InputShape, options: HeadsOptions, group: number, depth: number) {
  const overrides = { ...(isOutput ? outputOverride(layer, options.outputs) : {}), trainable: true };
  const copy = copyLayer(layer, overrides, hash32(options.seed, Stream.HeadInit, depth, (options.firstGroup ?? 0) + group));
  const symbolic = Array.isArray(inputShape[0])
    ? (inputShape as tf.Shape[]).map((batchShape) => tf.input({ batchShape }))
    : tf.input({ batchShape: inputShape as tf.Shape });
  const output = copy.apply(symbolic) as tf.SymbolicTensor;
  if (options.init === 'top') {
    const original = layer.getWeights();
    const fresh = copy.weights;
    if (original.length === fresh.length && original.every((w, i) => w.shape.join() === fresh[i]!.shape.join())) {
      copy.setWeights(original);
    }
  }
  return { copy, outputShape: output.shape };
}

/**
 * G heads, each a copy of the top of a cut (same layer types and hyper-parameters, the last
 * resizable layer given n outputs and a linear activation so the heads emit logits), computed
 * together on sample groups laid out [G, k, ...]: head g sees only its k samples. Layers with
 * a stacked implementation (STACKED_LAYERS) keep the G heads' weights on a leading head axis and
 * run once per step for all heads; every other layer with weights runs as G per-head copies;
 * parameter-free layers run once on the merged batch.
 */
export class Heads {
  readonly trainable: tf.Variable[];
  private readonly ops = new Map<tf.layers.Layer, StackedOp>();

  constructor(
    private readonly cut: Cut,
    options: HeadsOptions,
  ) {
    if (!Number.isInteger(options.outputs) || options.outputs < 2) {
      throw new InvalidArgumentError(`must be an integer >= 2, got ${options.outputs}`, 'numRandomLabels');
    }
    const outputIndex = cut.layers.indexOf(cut.outputLayer);
    // Shapes of the heads' tensors: they differ from the top's after the resized layer.
    const shapes = new Map<number, tf.Shape>([[cut.tensor.id, cut.tensor.shape]]);
    try {
      cut.layers.forEach((layer, index) => {
        const inputs = layer.inboundNodes[0]!.inputTensors.map((t) => shapes.get(t.id)!);
        const inputShape = inputs.length === 1 ? inputs[0]! : inputs;
        const outputId = (layer.output as tf.SymbolicTensor).id;
        if (index > outputIndex && OUTPUT_ACTIVATIONS.has(layer.getClassName())) {
          shapes.set(outputId, inputs[0]!);
          return;
        }
        const { op, outputShape } = this.buildOp(layer, index === outputIndex, inputShape, options);
        this.ops.set(layer, op);
        shapes.set(outputId, outputShape);
      });
    } catch (error) {
      this.dispose();
      throw error;
    }
    this.trainable = [...this.ops.values()].flatMap((op) => op.trainable);
  }

  private buildOp(layer: tf.layers.Layer, isOutput: boolean, inputShape: InputShape, options: HeadsOptions): { op: StackedOp; outputShape: tf.Shape } {
    const described = `${layer.name} (${layer.getClassName()})`;
    try {
      if (layer.countParams() === 0) {
        return { op: parameterFreeOp(layer), outputShape: layer.computeOutputShape(inputShape) as tf.Shape };
      }
      const built = Array.from({ length: options.groups }, (_, g) => headCopy(layer, isOutput, inputShape, options, g, this.cut.depth));
      const copies = built.map((b) => b.copy);
      const outputShape = built[0]!.outputShape;
      const config = layer.getConfig() as Config;
      const stacked = STACKED_LAYERS[layer.getClassName()];
      if (!stacked || Array.isArray(inputShape[0]) || !stacked.supports(config, inputShape as tf.Shape)) {
        return { op: perHeadOp(copies), outputShape };
      }
      const weights = tf.tidy(() => copies[0]!.weights.map((_, i) => tf.stack(copies.map((c) => c.weights[i]!.read()))));
      copies.forEach((c) => c.weights.forEach((w) => w.dispose()));
      try {
        const activation = isOutput ? 'linear' : config.activation;
        return { op: stacked.build(config, weights, activation, inputShape as tf.Shape), outputShape };
      } finally {
        tf.dispose(weights);
      }
    } catch (error) {
      if (error instanceof MemometerError) throw error;
      throw new InvalidArgumentError(`layer ${described} of the top cannot be copied into a head: ${message(error)}`, 'model', { cause: error });
    }
  }

  /** Logits [G, k, n] for features [G, k, ...feature shape]. */
  apply(features: tf.Tensor, training: boolean): tf.Tensor {
    return tf.tidy(() => {
      const values = new Map<number, tf.Tensor>([[this.cut.tensor.id, features]]);
      let last = features;
      for (const layer of this.cut.layers) {
        const inputs = layer.inboundNodes[0]!.inputTensors.map((t) => values.get(t.id)!);
        const op = this.ops.get(layer);
        last = op
          ? onBackend(`heads at copy depth ${this.cut.depth}: layer ${layer.name} (${layer.getClassName()})`, () => op.apply(inputs, training))
          : inputs[0]!;
        values.set((layer.output as tf.SymbolicTensor).id, last);
      }
      return last;
    });
  }

  get depth(): number {
    return this.cut.depth;
  }

  get parameterCount(): number {
    return this.trainable.reduce((sum, v) => sum + v.size, 0);
  }

  dispose(): void {
    this.ops.forEach((op) => op.dispose());
  }
}

/** The number of outputs of a resizable layer (units or filters). */
function widthOf(layer: tf.layers.Layer): number {
  const config = layer.getConfig() as Config;
  return (config.units ?? config.filters) as number;
}

/** Trainable parameters G heads will have, known before any is built (for memory budgets). */
export function estimateHeadParameters(cut: Cut, groups: number, outputs: number): number {
  const outputIndex = cut.layers.indexOf(cut.outputLayer);
  const width = widthOf(cut.outputLayer);
  let perHead = 0;
  cut.layers.forEach((layer, index) => {
    const params = layer.countParams();
    if (index < outputIndex) perHead += params;
    else if (index > outputIndex) perHead += Math.ceil((params * outputs) / width);
    else {
      // A separable conv's depthwise kernel does not depend on the output width.
      const fixed = layer.getClassName() === 'SeparableConv2D' ? tf.util.sizeFromShape(layer.weights[0]!.shape as number[]) : 0;
      const bias = (layer.getConfig() as Config).useBias === false ? 0 : width;
      perHead += fixed + ((params - fixed - bias) / width) * outputs + (bias ? outputs : 0);
    }
  });
  return perHead * groups;
}
