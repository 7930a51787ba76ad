import * as path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../metric/dataset.js';
import { readDataset } from '../storage/dataset-reader.js';
import { FileStore } from '../storage/file-store.js';
import { readModelArtifacts } from '../storage/model-reader.js';

/** A local path as a store (its folder) and a key (its name): the CLI reads files freely. */
function locate(filePath: string): { store: FileStore; key: string } {
  const absolute = path.resolve(filePath);
  return { store: new FileStore(path.dirname(absolute)), key: path.basename(absolute) };
}

/** model.json (or a folder holding it) and its weight shards. */
export function readLocalModel(modelPath: string): Promise<tf.io.ModelArtifacts> {
  const { store, key } = locate(modelPath);
  return readModelArtifacts(store, key);
}

/** An .npz file or a folder of IDX files. */
export function readLocalDataset(datasetPath: string): Promise<Dataset> {
  const { store, key } = locate(datasetPath);
  return readDataset(store, key);
}
