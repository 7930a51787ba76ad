import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../backend/failures.js';
import type { InputValues } from '../dataset.js';
import { Heads, type HeadsOptions } from '../heads/heads.js';
import type { Cut } from '../model/cut.js';
import { Tally } from '../score.js';
import type { EpochEvent } from '../types.js';
import { GroupedBatches, gatherValues } from './batches.js';
import { correctCount, randomLabelLoss } from './losses.js';
import { applyGradients, createOptimizer, type OptimizerName } from './optimizer.js';
import { checkCancelled, DivergenceGuard, groupedTensor, yieldToEventLoop } from './step.js';

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

/**
 * L_rnd of the heads on `x` with gradients for the heads' variables only, and the number of
 * correct random labels; call inside tf.tidy.
 */
export function headsGradients(
  heads: Heads,
  x: tf.Tensor,
  labels: tf.Tensor,
  mask: tf.Tensor,
): { value: tf.Scalar; grads: tf.NamedTensorMap; hits: tf.Scalar } {
  let hits: tf.Scalar | undefined;
  const { value, grads } = onBackend(`the heads' backward pass at copy depth ${heads.depth}`, () =>
    tf.variableGrads(() => {
      const logits = heads.apply(x, true);
      hits = tf.keep(correctCount(logits, labels, mask));
      return randomLabelLoss(logits, labels, mask);
    }, heads.trainable),
  );
  return { value, grads, hits: hits! };
}

/** One optimisation step of the heads on L_rnd; returns the loss and the correct count. */
export function headsStep(
  heads: Heads,
  optimizer: tf.Optimizer,
  x: tf.Tensor,
  labels: tf.Tensor,
  mask: tf.Tensor,
  weightDecay: number,
): [tf.Scalar, tf.Scalar] {
  const { value, grads, hits } = headsGradients(heads, x, labels, mask);
  applyGradients(optimizer, grads, heads.trainable, weightDecay);
  return [value, hits];
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

/** Random-label accuracy of `heads` on `features`, inference mode. */
export async function evaluateHeads(heads: Heads, features: Features, groups: number, perGroup: number): Promise<number> {
  const tally = new Tally();
  for (const batch of new GroupedBatches(features.groups, groups, perGroup).epoch()) {
    const correct = tf.tidy(() => {
      const x = groupedTensor(features.values, features.sampleShape, batch.index, groups);
      const r = tf.tensor(gatherValues(features.labels, batch.index), [groups, perGroup], 'int32');
      return correctCount(heads.apply(x, false), r, tf.tensor(batch.mask, [groups, perGroup]));
    });
    tally.add(batch.real, { correct: (await correct.data())[0]! });
    correct.dispose();
  }
  return tally.mean('correct');
}

/**
 * Frozen mode for one cut and seed: only the heads train, on features computed once. Yields an
 * event per epoch and returns the trained heads (the caller scores and disposes them).
 */
export async function* trainHeadsFrozen(
  cut: Cut,
  headsOptions: HeadsOptions,
  features: Features,
  training: HeadTraining,
): AsyncGenerator<EpochEvent, Heads> {
  const heads = new Heads(cut, headsOptions);
  const optimizer = createOptimizer(training.optimizer, training.learningRate);
  const { groups } = headsOptions;
  const { perGroup: k } = training;
  const batches = new GroupedBatches(features.groups, groups, k);
  const guard = new DivergenceGuard(training);
  let finished = false;
  try {
    for (let epoch = 0; epoch < training.epochs; epoch++) {
      const tally = new Tally();
      const started = performance.now();
      for (const batch of batches.epoch({ seed: training.seed, round: epoch })) {
        checkCancelled(training.signal);
        const [loss, correct] = tf.tidy(() =>
          headsStep(
            heads,
            optimizer,
            groupedTensor(features.values, features.sampleShape, batch.index, groups),
            tf.tensor(gatherValues(features.labels, batch.index), [groups, k], 'int32'),
            tf.tensor(batch.mask, [groups, k]),
            training.weightDecay,
          ),
        );
        const [lossValue, hitValue] = [(await loss.data())[0]!, (await correct.data())[0]!];
        tf.dispose([loss, correct]);
        guard.check(lossValue, 'random-label', [cut.depth], epoch);
        tally.add(batch.real, { loss: lossValue * batch.real, correct: hitValue });
        await yieldToEventLoop();
      }
      yield epochEvent(training, cut.depth, epoch, tally.samples, (performance.now() - started) / 1000, {
        randomLabelAccuracy: tally.mean('correct'),
        losses: { randomLabel: tally.mean('loss') },
      });
    }
    finished = true;
    return heads;
  } finally {
    // Also runs when the consumer stops iterating early (cancellation, a broken stream).
    optimizer.dispose();
    if (!finished) heads.dispose();
  }
}
