import * as tf from '@tensorflow/tfjs';
import { CancelledError, MemometerError } from '../../errors.js';
import { shapeSize } from '../dataset.js';
import { gatherRows } from './batches.js';

/** Throws CancelledError when the signal fired; called between steps so nothing is half-done. */
export function checkCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    // A typed reason (e.g. DeadlineExceededError from the server) is kept as it is.
    if (signal.reason instanceof MemometerError) throw signal.reason;
    const reason = signal.reason instanceof Error ? signal.reason.message : 'the measurement was cancelled';
    throw new CancelledError(reason);
  }
}

/** Lets I/O (gRPC streams, cancellation) run between synchronous training steps. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A [G, k, ...shape] float tensor from the rows `index` of a row-major feature array. */
export function groupedTensor(
  values: Float32Array,
  sampleShape: number[],
  index: Int32Array,
  groups: number,
): tf.Tensor {
  const rows = gatherRows(values, shapeSize(sampleShape), index);
  return tf.tensor(rows, [groups, index.length / groups, ...sampleShape]);
}
