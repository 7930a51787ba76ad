import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../errors.js';
import type { Cut } from '../model/cut.js';
import { copyLayer } from '../model/copy.js';
import { hash32, Stream } from '../random.js';
import { batchNormOp, conv2dOp, denseOp, parameterFreeOp, type StackedOp } from './stacked-layers.js';

export type HeadInit = 'fresh' | 'top';

export interface HeadsOptions {
  /** Number of heads: C for per-class heads, 1 for the shared head. */
  groups: number;
  /** Number of random labels n: the output size of every head. */
  outputs: number;
  /** Fresh weights from the layers' own initializers, or the top's weights where shapes allow. */
  init: HeadInit;
  seed: number;
}

type Config = Record<string, unknown>;

const OUTPUT_ACTIVATIONS = new Set(['Activation', 'Softmax']);

function outputOverride(layer: tf.layers.Layer, n: number): Config {
  return layer.getClassName() === 'Dense'
    ? { units: n, activation: 'linear' }
    : { filters: n, activation: 'linear' };
}

function inputShapeOf(layer: tf.layers.Layer): tf.Shape {
  return layer.inboundNodes[0]!.inputTensors[0]!.shape;
}

/**
 * The weights head `g` starts from for one layer of the top, read from a copy of the layer
 * built from its config (the copy is disposed; the returned tensors belong to the caller).
 */
function initialWeights(
  layer: tf.layers.Layer,
  isOutput: boolean,
  options: HeadsOptions,
  group: number,
  depth: number,
): tf.Tensor[] {
  const overrides = isOutput ? outputOverride(layer, options.outputs) : {};
  const copy = copyLayer(layer, overrides, hash32(options.seed, Stream.HeadInit, depth, group));
  copy.build(inputShapeOf(layer));
  const fresh = copy.getWeights().map((w) => w.clone());
  // Layer.dispose() refuses layers never called; the copy's variables are all it holds.
  copy.weights.forEach((w) => w.dispose());
  const original = layer.getWeights();
  const fits = original.length === fresh.length && original.every((w, i) => w.size === fresh[i]!.size);
  if (options.init === 'top' && fits) {
    fresh.forEach((w) => w.dispose());
    return original.map((w) => w.clone());
  }
  return fresh;
}

/**
 * G heads, each a copy of the top of a cut (same layer types and hyper-parameters, the last
 * Dense/Conv2D resized to n outputs with linear activation so the heads emit logits), computed
 * together: weights are stacked along a leading head axis and every layer runs once per step
 * for all heads. Sample groups are laid out [G, k, ...]: head g sees only its k samples.
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
    cut.layers.forEach((layer, index) => {
      if (index > outputIndex && OUTPUT_ACTIVATIONS.has(layer.getClassName())) return;
      this.ops.set(layer, this.buildOp(layer, index === outputIndex, options));
    });
    this.trainable = [...this.ops.values()].flatMap((op) => op.trainable);
  }

  private buildOp(layer: tf.layers.Layer, isOutput: boolean, options: HeadsOptions): StackedOp {
    const className = layer.getClassName();
    if (layer.countParams() === 0) return parameterFreeOp(layer);
    const config = layer.getConfig() as Config;
    const stacked = tf.tidy(() => {
      const perHead = Array.from({ length: options.groups }, (_, g) =>
        initialWeights(layer, isOutput, options, g, this.cut.depth),
      );
      return perHead[0]!.map((_, i) => tf.stack(perHead.map((weights) => weights[i]!)));
    });
    try {
      const activation = isOutput ? 'linear' : config.activation;
      if (className === 'Dense') return denseOp(stacked, activation);
      if (className === 'Conv2D') {
        if (config.dataFormat === 'channelsFirst') {
          throw new InvalidArgumentError(`${layer.name}: channelsFirst Conv2D is not supported`, 'model');
        }
        return conv2dOp(config, stacked, activation);
      }
      const axis = config.axis as number;
      if (axis !== -1 && axis !== inputShapeOf(layer).length - 1) {
        throw new InvalidArgumentError(`${layer.name}: batch normalization must be over the last axis`, 'model');
      }
      return batchNormOp(config, stacked);
    } finally {
      stacked.forEach((w) => w.dispose());
    }
  }

  /** Logits [G, k, n] for features [G, k, ...feature shape]. */
  apply(features: tf.Tensor, training: boolean): tf.Tensor {
    return tf.tidy(() => {
      const values = new Map<number, tf.Tensor>([[this.cut.tensor.id, features]]);
      let last = features;
      for (const layer of this.cut.layers) {
        const node = layer.inboundNodes[0]!;
        const inputs = node.inputTensors.map((t) => values.get(t.id)!);
        const op = this.ops.get(layer);
        last = op ? op.apply(inputs, training) : inputs[0]!;
        values.set((layer.output as tf.SymbolicTensor).id, last);
      }
      return last;
    });
  }

  get parameterCount(): number {
    return this.trainable.reduce((sum, v) => sum + v.size, 0);
  }

  dispose(): void {
    this.ops.forEach((op) => op.dispose());
  }
}

/** Trainable parameters G heads will have, known before any is built (for memory budgets). */
export function estimateHeadParameters(cut: Cut, groups: number, outputs: number): number {
  let perHead = 0;
  for (const layer of cut.layers) {
    const params = layer.countParams();
    if (layer !== cut.outputLayer) {
      perHead += params;
      continue;
    }
    const config = layer.getConfig() as Config;
    const width = (config.units ?? config.filters) as number;
    const bias = config.useBias === false ? 0 : width;
    perHead += ((params - bias) / width) * outputs + (bias ? outputs : 0);
  }
  return perHead * groups;
}
