/**
 * Reads a model in any format users ship, detected from the file's bytes rather than its
 * name: a TF.js LayersModel (model.json, or a folder holding it), an ONNX file, or a Keras
 * `.keras` / `.h5` file. ONNX and Keras files are converted in-process to TF.js artifacts, so
 * every later stage runs one code path.
 */
import type { io } from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../errors.js';
import { isKerasFile, readKerasModel } from './formats/keras.js';
import { isOnnxFile, readOnnxModel } from './formats/onnx/index.js';
import { writeBackOnnx } from './formats/onnx/write-back.js';
import { readModelArtifacts } from './model-reader.js';
import { joinKey, keyBasename, keyDirname, type ObjectStore } from './store.js';

export type ModelFormat = 'tfjs' | 'onnx' | 'keras';

export interface ModelSource {
  artifacts: io.ModelArtifacts;
  /** What the plan event says about the model (the engine's ModelInfo). */
  info: { format: ModelFormat; notes: string[]; inputLayout: 'NHWC' | 'NCHW' };
  /** The file itself, for ONNX and Keras models (uploads keep the original). */
  file?: { name: string; bytes: Uint8Array };
  /** A fine-tuned model in the file's own format, where memometer can write it (ONNX). */
  fineTunedFile?(tuned: io.ModelArtifacts): { name: string; bytes: Uint8Array };
}

const startsLikeJson = (bytes: Uint8Array) => {
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  return first === 0x7b; // '{'
};

/** Reads the model at `key`: a file of any supported format, or a folder holding model.json. */
export async function readModel(store: ObjectStore, key: string): Promise<ModelSource> {
  const isFile = !key.toLowerCase().endsWith('.json') && (await store.exists(key));
  if (!isFile) return { artifacts: await readModelArtifacts(store, key), info: { format: 'tfjs', notes: [], inputLayout: 'NHWC' } };
  const bytes = await store.get(key);
  const name = keyBasename(key);
  if (startsLikeJson(bytes)) {
    throw new InvalidArgumentError(`${name} looks like a TF.js model.json: name it *.json or pass its folder`, 'model');
  }
  if (isOnnxFile(bytes)) {
    const read = async (location: string, offset: number, length: number | undefined) => {
      const all = await store.get(joinKey(keyDirname(key), location));
      return all.subarray(offset, length === undefined ? undefined : offset + length);
    };
    const onnx = await readOnnxModel(bytes, name, read);
    return {
      artifacts: onnx.artifacts,
      info: { format: 'onnx', notes: onnx.notes, inputLayout: onnx.inputLayout === 'NCHW' ? 'NCHW' : 'NHWC' },
      file: { name, bytes },
      fineTunedFile: (tuned) => ({ name: 'model.onnx', bytes: writeBackOnnx(onnx.model, onnx.weightSources, tuned) }),
    };
  }
  if (isKerasFile(bytes)) {
    return {
      artifacts: await readKerasModel(bytes, name),
      info: { format: 'keras', notes: [], inputLayout: 'NHWC' },
      file: { name, bytes },
    };
  }
  throw new InvalidArgumentError(
    `${name} is not a model memometer reads: expected an ONNX file, a Keras .keras or .h5 file, or a TF.js model.json (or its folder)`,
    'model',
  );
}
