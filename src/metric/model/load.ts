import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../errors.js';

/** Builds a LayersModel from in-memory artifacts (model.json + weights), with typed errors. */
export async function loadModel(artifacts: tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  const topology = artifacts.modelTopology as { node?: unknown } | ArrayBuffer | undefined;
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
  return model;
}
