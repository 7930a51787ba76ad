/**
 * UnsortedSegmentSum for TF.js's wasm backend, which lacks it. TF.js needs it for the gradient
 * of gather (embeddings). wasm's ScatterNd adds updates that share an index, so a segment sum
 * is one ScatterNd of the rows of x to their segment ids: linear in x, unlike cpu's kernel
 * (one masked pass over x per segment).
 */
import {
  KernelConfig,
  KernelFunc,
  TensorInfo,
  UnsortedSegmentSum,
  UnsortedSegmentSumAttrs,
} from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from '../../errors.js';
import { dim, withWasmScope } from './wasm-kernel-scope.js';

const unsortedSegmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  if (segmentIds.shape.length !== 1 || x.shape.length === 0 || dim(x.shape, 0) !== dim(segmentIds.shape, 0)) {
    const shapes = `got shape [${segmentIds.shape.join(', ')}] for x of shape [${x.shape.join(', ')}]`;
    throw new InvalidArgumentError(
      `must be rank 1 with one id per row of x: ${shapes}`,
      `${UnsortedSegmentSum} input 'segmentIds'`,
    );
  }
  const rows = dim(x.shape, 0);
  const rowShape = x.shape.slice(1);
  return withWasmScope(backend, UnsortedSegmentSum, (scope) => {
    const ids = segmentIds.dtype === 'int32' ? segmentIds : scope.run('Cast', { x: segmentIds }, { dtype: 'int32' });
    // ScatterNd needs in-range indices, while cpu's kernel drops rows whose id is out of range:
    // those rows go to one extra segment that is cut off afterwards.
    const values = scope.backend.readSync(ids.dataId) as Int32Array;
    const inRange = values.every((id) => id >= 0 && id < numSegments);
    const remapped = (): Int32Array => values.map((id) => (id >= 0 && id < numSegments ? id : numSegments));
    const indices = inRange
      ? scope.run('Reshape', { x: ids }, { shape: [rows, 1] })
      : scope.own({ dataId: scope.backend.write(remapped(), [rows, 1], 'int32'), shape: [rows, 1], dtype: 'int32' });
    const segments = inRange ? numSegments : numSegments + 1;
    const summed = scope.run('ScatterNd', { indices, updates: x }, { shape: [segments, ...rowShape] });
    if (inRange) return summed;
    return scope.run('Slice', { x: summed }, { begin: x.shape.map(() => 0), size: [numSegments, ...rowShape] });
  });
};

export const unsortedSegmentSumConfig: KernelConfig = {
  kernelName: UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum,
};
