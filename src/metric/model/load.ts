import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../errors.js';
import { firstNonFinite } from '../dataset.js';

/** Builds a LayersModel from in-memory artifacts (model.json + weights), with typed errors. */
export async function loadModel(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  const topology = artifacts.modelTopology;
  if (artifacts.format === 'graph-model' || (topology && 'node' in topology)) {
    throw new InvalidArgumentError(
      'graph models cannot be cut or trained; export the network as a Keras/TF.js LayersModel',
      'model',
    );
  }
  if (!topology) throw new InvalidArgumentError('model.json has no modelTopology', 'model');
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new InvalidArgumentError(`model.json could not be loaded: ${reason}`, 'model', {
      cause: error,
    });
  }
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    model.dispose();
    throw new InvalidArgumentError(
      `the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; ` +
        'memometer measures single-input, single-output classifiers',
      'model',
    );
  }
  try {
    checkWeightsFinite(model);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/** A NaN or Infinity in a weight would poison every score; refuse the model before any work. */
function checkWeightsFinite(model: tf.LayersModel): void {
  for (const weight of model.weights) {
    const values = weight.read().dataSync();
    const i = firstNonFinite(values);
    if (i >= 0) throw new InvalidArgumentError(`weight ${weight.originalName} holds ${values[i]} at index ${i}`, 'model');
  }
}

/** How a model that takes integer token ids reads them. */
export interface TokenInput {
  /** Why the model counts as a token model, for messages. */
  reason: string;
  /** The Embedding layers that read the model input directly: ids must lie in [0, inputDim). */
  embeddings: { layer: string; inputDim: number }[];
}

/**
 * Whether the model takes integer token ids: its input is int32, or an Embedding reads the input
 * directly (TF.js models built with tf.layers.embedding keep a float32 input dtype).
 */
export function tokenInput(model: tf.LayersModel): TokenInput | undefined {
  const input = model.inputs[0]!;
  const embeddings = model.layers
    .filter((l) => l.getClassName() === 'Embedding' && l.inboundNodes.some((n) => n.inputTensors.some((t) => t.id === input.id)))
    .map((l) => ({ layer: l.name, inputDim: (l.getConfig() as { inputDim: number }).inputDim }));
  if (embeddings.length > 0) {
    return { reason: `its input feeds the Embedding layer ${embeddings.map((e) => e.layer).join(', ')}`, embeddings };
  }
  return input.dtype === 'int32' ? { reason: 'its input dtype is int32', embeddings } : undefined;
}
