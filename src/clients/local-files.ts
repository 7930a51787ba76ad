import * as path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../metric/dataset.js';
import { readDataset } from '../storage/dataset-reader.js';
import { FileStore } from '../storage/file-store.js';
import { readModel, type ModelSource } from '../storage/model-source.js';

/** A local path as a store (its folder) and a key (its name): the CLI reads files freely. */
function locate(filePath: string): { store: FileStore; key: string } {
  const absolute = path.resolve(filePath);
  return { store: new FileStore(path.dirname(absolute)), key: path.basename(absolute) };
}

/** A model file of any supported format (ONNX, .keras, .h5, model.json) or a folder holding model.json. */
export function readLocalModelSource(modelPath: string): Promise<ModelSource> {
  const { store, key } = locate(modelPath);
  return readModel(store, key);
}

/** The model at `modelPath` as TF.js artifacts. */
export async function readLocalModel(modelPath: string): Promise<tf.io.ModelArtifacts> {
  return (await readLocalModelSource(modelPath)).artifacts;
}

/** An .npz file or a folder of IDX files. */
export function readLocalDataset(datasetPath: string): Promise<Dataset> {
  const { store, key } = locate(datasetPath);
  return readDataset(store, key);
}
