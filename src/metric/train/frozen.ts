import { Heads, type HeadsOptions } from '../heads/heads.js';
import type { Cut } from '../model/cut.js';
import { Tally } from '../score.js';
import type { EpochEvent } from '../types.js';
import { GroupedBatches } from './batches.js';
import { epochEvent, headsEpoch, type Features, type HeadTraining, type StepResult } from './heads-step.js';
import { createOptimizer } from './optimizer.js';
import { checkCancelled, DivergenceGuard } from './step.js';

/**
 * Frozen mode's epochs from the per-step results of the heads, wherever they train (here, or in
 * head workers): guards every step's loss and yields an event per epoch.
 */
export async function* frozenEpochs(
  depth: number,
  training: HeadTraining,
  epochSteps: (epoch: number) => AsyncIterable<StepResult>,
): AsyncGenerator<EpochEvent, void> {
  const guard = new DivergenceGuard(training);
  for (let epoch = 0; epoch < training.epochs; epoch++) {
    const tally = new Tally();
    const started = performance.now();
    for await (const step of epochSteps(epoch)) {
      guard.check(step.loss, 'random-label', [depth], epoch);
      tally.add(step.real, { loss: step.loss * step.real, correct: step.hits });
    }
    yield epochEvent(training, depth, epoch, tally.samples, (performance.now() - started) / 1000, {
      randomLabelAccuracy: tally.mean('correct'),
      losses: { randomLabel: tally.mean('loss') },
    });
  }
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
  const batches = new GroupedBatches(features.groups, groups, training.perGroup);
  const all = { first: 0, end: groups };
  let finished = false;
  try {
    yield* frozenEpochs(cut.depth, training, (epoch) =>
      headsEpoch(heads, optimizer, features, batches, all, training, epoch, () => checkCancelled(training.signal)),
    );
    finished = true;
    return heads;
  } finally {
    // Also runs when the consumer stops iterating early (cancellation, a broken stream).
    optimizer.dispose();
    if (!finished) heads.dispose();
  }
}
