import * as tf from '@tensorflow/tfjs';
import { FailedPreconditionError, MemometerError } from '../../errors.js';

/**
 * Runs TF.js work for `what` (a layer, the model's forward or backward pass). An error TF.js
 * throws there (a kernel or gradient the backend lacks, a layer feature TF.js has not
 * implemented) becomes a FailedPreconditionError that names `what` and the backend, so no layer
 * type ends as INTERNAL; memometer's own typed errors pass through.
 */
export function onBackend<T>(what: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof MemometerError) throw error;
    const reason = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    throw new FailedPreconditionError(`${what} failed on the ${tf.getBackend()} backend: ${reason}`, 'model', { cause: error });
  }
}
