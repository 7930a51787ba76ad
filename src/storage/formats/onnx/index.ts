/** ONNX model files: detection, decoding with typed errors, conversion to TF.js artifacts. */
import { InvalidArgumentError } from '../../../errors.js';
import { ModelProto } from '../../../gen/onnx/onnx.js';
import { convertOnnx, type OnnxConversion } from './convert.js';
import type { ExternalReader } from './tensors.js';

export type { OnnxConversion } from './convert.js';
export type { ExternalReader } from './tensors.js';

/**
 * Whether `bytes` look like an ONNX ModelProto: protobuf field 1 (ir_version, a varint) comes
 * first in every exporter's output, and the message decodes to a model with a graph.
 */
export function isOnnxFile(bytes: Uint8Array): boolean {
  if (bytes.length < 2 || bytes[0] !== 0x08) return false;
  try {
    const model = ModelProto.decode(bytes);
    return model.graph !== undefined && model.opsetImport.length > 0;
  } catch {
    return false;
  }
}

export function decodeOnnx(bytes: Uint8Array, name: string): ModelProto {
  try {
    const model = ModelProto.decode(bytes);
    if (!model.graph) throw new Error('it holds no graph');
    return model;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new InvalidArgumentError(`${name} is not a readable ONNX model: ${reason}`, 'model', { cause: error });
  }
}

/** Reads an ONNX file into TF.js artifacts; `read` reads external data files next to it. */
export async function readOnnxModel(bytes: Uint8Array, name: string, read?: ExternalReader): Promise<OnnxConversion & { model: ModelProto }> {
  const model = decodeOnnx(bytes, name);
  return { ...(await convertOnnx(model, read)), model };
}
