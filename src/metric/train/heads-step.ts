/** What frozen mode, joint mode and the head workers share: the heads' steps, epochs and scores. */
import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../backend/failures.js';
import type { InputValues } from '../dataset.js';
import type { Heads } from '../heads/heads.js';
import type { EpochEvent } from '../types.js';
import { GroupedBatches, gatherValues, groupRows, type GroupRange } from './batches.js';
import { correctCount, randomLabelLoss } from './losses.js';
import { applyGradients, type createOptimizer, type OptimizerName } from './optimizer.js';
import { groupedTensor, yieldToEventLoop } from './step.js';

type Optimizer = ReturnType<typeof createOptimizer>;

/** Backbone outputs of one split at one cut, computed once in inference mode. */
export interface Features {
  /** Row-major [count, ...sampleShape]; int32 where the cut is a token model's input. */
  values: InputValues;
  sampleShape: number[];
  /** The head each sample feeds: its class, or 0 for a shared head. */
  groups: Int32Array;
  /** Random label per sample. */
  labels: Int32Array;
}

export interface HeadTraining {
  epochs: number;
  perGroup: number;
  learningRate: number;
  optimizer: OptimizerName;
  weightDecay: number;
  seed: number;
  signal?: AbortSignal;
}

/** Random-label accuracy of trained heads, inference mode. */
export interface SeedAccuracy {
  train: number;
  heldOut: number;
}

/**
 * One step's L_rnd and correct count for a range of the heads: `loss` is their share of the
 * step's mean loss (their loss sum over the step's `real` samples), so the ranges' shares add up.
 */
export interface StepResult {
  loss: number;
  hits: number;
  real: number;
}

/**
 * L_rnd of the heads on `x` with gradients for the heads' variables only, and the number of
 * correct random labels; call inside tf.tidy. `denominator`: see randomLabelLoss.
 */
export function headsGradients(
  heads: Heads,
  x: tf.Tensor,
  labels: tf.Tensor,
  mask: tf.Tensor,
  denominator?: number,
): { value: tf.Scalar; grads: tf.NamedTensorMap; hits: tf.Scalar } {
  let hits: tf.Scalar | undefined;
  const { value, grads } = onBackend(`the heads' backward pass at copy depth ${heads.depth}`, () =>
    tf.variableGrads(() => {
      const logits = heads.apply(x, true);
      hits = tf.keep(correctCount(logits, labels, mask));
      return randomLabelLoss(logits, labels, mask, denominator);
    }, heads.trainable),
  );
  return { value, grads, hits: hits! };
}

/** One optimisation step of the heads on L_rnd; returns the loss and the correct count. */
export function headsStep(
  heads: Heads,
  optimizer: Optimizer,
  x: tf.Tensor,
  labels: tf.Tensor,
  mask: tf.Tensor,
  weightDecay: number,
  denominator?: number,
): [tf.Scalar, tf.Scalar] {
  const { value, grads, hits } = headsGradients(heads, x, labels, mask, denominator);
  applyGradients(optimizer, grads, heads.trainable, weightDecay);
  return [value, hits];
}

/**
 * One epoch of the heads `range` of the G heads the batches are grouped for: the very steps and
 * samples those heads get when all G train together, each head's loss normalised by the whole
 * step's sample count. `checkStop` runs before every step and throws to stop.
 */
export async function* headsEpoch(
  heads: Heads,
  optimizer: Optimizer,
  features: Features,
  batches: GroupedBatches,
  range: GroupRange,
  training: HeadTraining,
  epoch: number,
  checkStop: () => void,
): AsyncGenerator<StepResult> {
  const k = batches.perGroup;
  const groups = range.end - range.first;
  for (const batch of batches.epoch({ seed: training.seed, round: epoch })) {
    checkStop();
    const { index, mask } = groupRows(batch, range, k);
    const [loss, correct] = tf.tidy(() =>
      headsStep(
        heads,
        optimizer,
        groupedTensor(features.values, features.sampleShape, index, groups),
        tf.tensor(gatherValues(features.labels, index), [groups, k], 'int32'),
        tf.tensor(mask, [groups, k]),
        training.weightDecay,
        batch.real,
      ),
    );
    const [lossValue, hitValue] = [(await loss.data())[0]!, (await correct.data())[0]!];
    tf.dispose([loss, correct]);
    yield { loss: lossValue, hits: hitValue, real: batch.real };
    await yieldToEventLoop();
  }
}

/** The event that closes an epoch: what every training loop reports, plus its own scores. */
export function epochEvent(
  training: HeadTraining,
  copyDepth: number,
  epoch: number,
  samples: number,
  seconds: number,
  scores: Pick<EpochEvent, 'randomLabelAccuracy' | 'classAccuracy' | 'losses'>,
): EpochEvent {
  return {
    type: 'epoch',
    seed: training.seed,
    copyDepth,
    epoch: epoch + 1,
    epochs: training.epochs,
    ...scores,
    samplesPerSecond: samples / seconds,
  };
}

/** Correct random labels of the heads `range` (of `groups`) on `features`, inference mode. */
export async function countCorrect(heads: Heads, features: Features, groups: number, perGroup: number, range: GroupRange): Promise<number> {
  const size = range.end - range.first;
  let total = 0;
  for (const batch of new GroupedBatches(features.groups, groups, perGroup).epoch()) {
    const { index, mask } = groupRows(batch, range, perGroup);
    const correct = tf.tidy(() => {
      const x = groupedTensor(features.values, features.sampleShape, index, size);
      const r = tf.tensor(gatherValues(features.labels, index), [size, perGroup], 'int32');
      return correctCount(heads.apply(x, false), r, tf.tensor(mask, [size, perGroup]));
    });
    total += (await correct.data())[0]!;
    correct.dispose();
  }
  return total;
}

/** Accuracy from a correct count: every sample is scored once. */
export const accuracyOf = (correct: number, features: Features): number => correct / Math.max(1, features.groups.length);

/** Random-label accuracy of all `groups` heads on `features`, inference mode. */
export async function evaluateHeads(heads: Heads, features: Features, groups: number, perGroup: number): Promise<number> {
  return accuracyOf(await countCorrect(heads, features, groups, perGroup, { first: 0, end: groups }), features);
}
