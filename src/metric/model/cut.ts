import type * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../errors.js';

type Layer = tf.layers.Layer;

/**
 * Layers whose output size (units or filters) can be set to n random labels; the last one in a
 * top is the one a head resizes. Any layer, with weights or without, can be part of a head.
 */
export const RESIZABLE_LAYERS = [
  'Dense',
  'Conv1D',
  'Conv2D',
  'Conv3D',
  'SeparableConv2D',
  'Conv2DTranspose',
  'Conv3DTranspose',
] as const;

/**
 * The cut of a network at copy depth d: the top is the last d layers (InputLayer not counted),
 * the backbone everything before. Rule for graphs with branches: a cut is valid only where
 * exactly ONE tensor flows from the backbone into the top (between residual blocks, never
 * through one).
 */
export interface Cut {
  depth: number;
  /** The backbone's output, the single tensor feeding the top. */
  tensor: tf.SymbolicTensor;
  /** The top's layers in topological order. */
  layers: Layer[];
  /** The last resizable layer of the top: a head's copy of it gets n outputs. */
  outputLayer: Layer;
}

export function computeLayers(model: tf.LayersModel): Layer[] {
  return model.layers.filter((layer) => layer.getClassName() !== 'InputLayer');
}

/** Tries the cut at `depth`; returns the reason when it is not a valid cut. */
function tryCut(layers: Layer[], depth: number): Cut | string {
  const top = layers.slice(layers.length - depth);
  const inTop = new Set(top);
  const crossing = new Map<number, tf.SymbolicTensor>();
  for (const layer of top) {
    if (layer.inboundNodes.length !== 1) return `layer ${layer.name} is shared by several calls`;
    if (layer.inboundNodes[0]!.outputTensors.length !== 1) return `layer ${layer.name} has several outputs`;
    for (const tensor of layer.inboundNodes[0]!.inputTensors) {
      if (!inTop.has(tensor.sourceLayer)) crossing.set(tensor.id, tensor);
    }
  }
  if (crossing.size !== 1) {
    return `${crossing.size} tensors flow from the backbone into the top (the cut crosses a branch)`;
  }
  const resizable = top.filter((layer) =>
    (RESIZABLE_LAYERS as readonly string[]).includes(layer.getClassName()),
  );
  const outputLayer = resizable[resizable.length - 1];
  if (!outputLayer) {
    return `the top has no layer whose outputs can be resized to n random labels (${RESIZABLE_LAYERS.join(', ')})`;
  }
  return { depth, tensor: [...crossing.values()][0]!, layers: top, outputLayer };
}

/** Every depth at which the model can be cut, ascending. */
export function validCutDepths(model: tf.LayersModel): number[] {
  const layers = computeLayers(model);
  const depths: number[] = [];
  for (let d = 1; d <= layers.length; d++) if (typeof tryCut(layers, d) !== 'string') depths.push(d);
  return depths;
}

/** "1-3, 5, 7-9" */
export function formatDepths(depths: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < depths.length; ) {
    let j = i;
    while (j + 1 < depths.length && depths[j + 1] === depths[j]! + 1) j++;
    parts.push(i === j ? `${depths[i]}` : `${depths[i]}-${depths[j]}`);
    i = j + 1;
  }
  return parts.join(', ') || 'none';
}

/** Cuts the model at copy depth `depth`, or explains why not and lists the valid depths. */
export function cutModel(model: tf.LayersModel, depth: number): Cut {
  const layers = computeLayers(model);
  const result =
    Number.isInteger(depth) && depth >= 1 && depth <= layers.length
      ? tryCut(layers, depth)
      : `the model has ${layers.length} layers`;
  if (typeof result === 'string') {
    throw new InvalidArgumentError(
      `copy depth ${depth} is not a valid cut: ${result}; valid depths: ${formatDepths(validCutDepths(model))}`,
      'copyDepths',
    );
  }
  return result;
}
