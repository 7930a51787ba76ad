/**
 * A fine-tuned model (joint mode) written back as ONNX: the original graph, with every
 * initializer that a trained TF.js weight came from replaced by that weight in ONNX's layout.
 */
import type { io } from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../../errors.js';
import { ModelProto } from '../../../gen/onnx/onnx.js';
import type { WeightSource } from './convert.js';
import { withFloatData } from './tensors.js';

/** The float32 values of every weight of TF.js artifacts, by name. */
function weightsByName(artifacts: io.ModelArtifacts): Map<string, Float32Array> {
  const data = artifacts.weightData;
  const buffers = data === undefined ? [] : Array.isArray(data) ? data : [data];
  const all = new Uint8Array(buffers.reduce((s, b) => s + b.byteLength, 0));
  let at = 0;
  for (const b of buffers) {
    all.set(new Uint8Array(b), at);
    at += b.byteLength;
  }
  const out = new Map<string, Float32Array>();
  let offset = 0;
  for (const spec of artifacts.weightSpecs ?? []) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.dtype !== 'float32') throw new InvalidArgumentError(`weight ${spec.name} is ${spec.dtype}, expected float32`, 'model');
    out.set(spec.name, new Float32Array(all.buffer.slice(offset, offset + count * 4)));
    offset += count * 4;
  }
  return out;
}

export function writeBackOnnx(model: ModelProto, sources: WeightSource[], tuned: io.ModelArtifacts): Uint8Array {
  const weights = weightsByName(tuned);
  const updated = new Map<string, Float32Array>();
  for (const source of sources) {
    const values = weights.get(source.weight);
    if (!values) throw new InvalidArgumentError(`the fine-tuned model has no weight ${source.weight}`, 'model');
    updated.set(source.initializer, source.toOnnx(values));
  }
  const graph = model.graph!;
  const initializer = graph.initializer.map((t) => {
    const values = updated.get(t.name ?? '');
    return values ? withFloatData(t, values) : t;
  });
  return ModelProto.encode({ ...model, graph: { ...graph, initializer } }).finish();
}
