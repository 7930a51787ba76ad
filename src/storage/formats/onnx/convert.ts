/**
 * ONNX -> TF.js LayersModel artifacts (a Keras functional topology + weights), so an exported
 * PyTorch/TF/JAX model is cut, copied into heads and fine-tuned like any TF.js model.
 *
 * Layout: ONNX is NCHW, TF.js NHWC. Every rank-4 ONNX value lives in TF.js as NHWC (weights are
 * transposed once); a Flatten/Reshape of such a value first permutes back to C,H,W so the
 * features a Dense sees keep PyTorch's order. Constant subgraphs (shape arithmetic such as the
 * Shape -> Gather -> Unsqueeze -> Concat chain of `x.view(x.size(0), -1)`) are folded.
 * Every weight remembers the initializer it came from, so a fine-tuned model can be written
 * back into the original graph (see write-back.ts).
 */
import { InvalidArgumentError } from '../../../errors.js';
import type { GraphProto, ModelProto } from '../../../gen/onnx/onnx.js';
import { FOLD } from './fold.js';
import { Converter, type OnnxConversion } from './graph.js';
import { OPS } from './ops.js';
import type { ExternalReader } from './tensors.js';

export type { OnnxConversion, WeightSource } from './graph.js';

/** Op types of the graph that the converter cannot handle, with a node name each. */
export function unsupportedOps(graph: GraphProto): string[] {
  const supported = new Set(Object.keys(OPS));
  const found = new Map<string, string>();
  for (const node of graph.node) {
    const op = node.opType ?? '';
    const known = supported.has(op) && (node.domain ?? '') === '';
    if (!known && !found.has(op)) found.set(op, node.name || node.output[0] || '(unnamed)');
  }
  return [...found].map(([op, name]) => `${op} (node ${name})`);
}

/** Converts a decoded ONNX model; `read` reads external data files next to it. */
export async function convertOnnx(model: ModelProto, read?: ExternalReader): Promise<OnnxConversion> {
  const graph = model.graph;
  if (!graph) throw new InvalidArgumentError('the ONNX file holds no graph', 'model');
  const unsupported = unsupportedOps(graph);
  if (unsupported.length > 0) {
    throw new InvalidArgumentError(`the ONNX graph uses ops memometer cannot convert: ${unsupported.join(', ')}`, 'model');
  }
  const opset = model.opsetImport.find((o) => (o.domain ?? '') === '')?.version ?? 13;
  const converter = new Converter(graph, Number(opset), { ops: OPS, fold: FOLD });
  await converter.run(read);
  const hasBn = graph.node.some((n) => n.opType === 'BatchNormalization');
  // PyTorch names the weights it creates by folding batch norm into a Conv 'onnx::Conv_<n>'.
  const namesBn = graph.initializer.some((i) => /(^|[./_])(bn|batchnorm)\d*[./_]|running_(mean|var)|^onnx::Conv_\d+$/i.test(i.name ?? ''));
  if (!hasBn && namesBn) {
    converter.notes.push('the file has no BatchNormalization nodes, though weight names suggest batch norm: the exporter folded it into the convolutions, so heads copy the folded layers');
  }
  return { artifacts: converter.artifacts(), weightSources: converter.weightSources, notes: converter.notes, inputLayout: converter.inputLayout };
}
