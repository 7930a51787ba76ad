import * as tf from '@tensorflow/tfjs';
import { CancelledError, MemometerError, TrainingDivergedError } from '../../errors.js';
import { shapeSize, type InputValues } from '../dataset.js';
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

/** A tensor of `values`: int32 for token ids, else float32. */
export function valuesTensor(values: InputValues, shape: number[]): tf.Tensor {
  return tf.tensor(values, shape, values instanceof Int32Array ? 'int32' : 'float32');
}

/** A [G, k, ...shape] tensor from the rows `index` of a row-major feature array. */
export function groupedTensor(
  values: InputValues,
  sampleShape: number[],
  index: Int32Array,
  groups: number,
): tf.Tensor {
  const rows = gatherRows(values, shapeSize(sampleShape), index);
  return valuesTensor(rows, [groups, index.length / groups, ...sampleShape]);
}

export type LossName = 'random-label' | 'classification' | 'forget';

/**
 * -ln of the smallest normal float32: a mean cross-entropy above it means the label
 * probabilities underflow float32 (a saturated softmax). Healthy training starts near ln(n) and
 * falls; the clipped losses (softmax class loss, forget loss) never exceed 16.
 */
const SATURATED_LOSS = 87.3;
/** How far above its first value a saturated loss must rise to count as diverged. */
const DIVERGED_GROWTH = 10;

/**
 * Stops training when a loss diverges: NaN or infinite, or saturated and far above where it
 * started. Diverged heads or backbones still give a plausible-looking accuracy (diverged ReLU
 * heads die and sit at chance with a finite loss). The comparison with the first value spares
 * models whose large features start the heads at a high loss.
 */
export class DivergenceGuard {
  private readonly first = new Map<string, number>();

  constructor(private readonly training: { learningRate: number; lambda?: number }) {}

  /** `epoch` counts from 0; `depths` are the copy depths the loss belongs to. */
  check(value: number, loss: LossName, depths: number[], epoch: number): void {
    const key = `${loss} ${depths}`;
    if (!this.first.has(key)) this.first.set(key, value);
    const first = this.first.get(key)!;
    if (Number.isFinite(value) && value <= Math.max(SATURATED_LOSS, DIVERGED_GROWTH * first)) return;
    const where = depths.length === 1 ? `copy depth ${depths[0]}` : `copy depths ${depths.join(', ')}`;
    const what = Number.isFinite(value) ? `rose from ${first.toPrecision(3)} to ${value.toPrecision(3)}` : `became ${value}`;
    const { learningRate, lambda } = this.training;
    throw new TrainingDivergedError(
      `training diverged at ${where}, epoch ${epoch + 1}: the ${loss} loss ${what}; ` +
        `the learning rate (${learningRate}) is likely too high: lower it` +
        (lambda ? `, or lambda (${lambda}) that weights the forget loss` : ''),
      'learningRate',
    );
  }
}
