import * as tf from '@tensorflow/tfjs';
import { onBackend } from '../backend/failures.js';
import { Heads, type HeadsOptions } from '../heads/heads.js';
import type { Split } from '../prepare.js';
import { Tally } from '../score.js';
import type { EpochEvent } from '../types.js';
import { GroupedBatches, gatherRows, gatherValues } from './batches.js';
import { epochEvent, headsGradients, type HeadTraining } from './heads-step.js';
import { classLoss, correctCount, forgetLoss } from './losses.js';
import { applyGradients, createOptimizer } from './optimizer.js';
import { checkCancelled, DivergenceGuard, valuesTensor, yieldToEventLoop } from './step.js';
import type { Trunk } from './trunk.js';

export interface JointTraining extends HeadTraining {
  lambda: number;
  labelSmoothing: number;
}

/**
 * Joint mode for one seed: backbone + top fine-tune on L_class + lambda * L_reg while the heads
 * of every cut learn L_rnd. Gradient routing: the model's step differentiates only the model's
 * variables (so L_reg leaves the heads untouched), the heads' step differentiates only the heads'
 * variables on features kept from the model's forward pass (so L_rnd never reaches the backbone).
 */
export async function* trainJoint(
  trunk: Trunk,
  train: Split,
  groupOf: Int32Array,
  randomLabels: Int32Array,
  headsOptions: HeadsOptions,
  training: JointTraining,
): AsyncGenerator<EpochEvent, Heads[]> {
  const heads: Heads[] = [];
  const optimizer = createOptimizer(training.optimizer, training.learningRate);
  const { groups } = headsOptions;
  const k = training.perGroup;
  const batches = new GroupedBatches(groupOf, groups, k);
  const modelVars = trunk.trainable;
  const inputSize = train.sampleShape.reduce((a, b) => a * b, 1);
  const perDepthKeys = (d: number) => [`loss${d}`, `correct${d}`, `forget${d}`];
  const guard = new DivergenceGuard(training);
  let finished = false;
  try {
    for (const cut of trunk.cuts) heads.push(new Heads(cut, headsOptions));
    const headVars = heads.flatMap((h) => h.trainable);
    for (let epoch = 0; epoch < training.epochs; epoch++) {
      const tally = new Tally();
      const started = performance.now();
      for (const batch of batches.epoch({ seed: training.seed, round: epoch })) {
        checkCancelled(training.signal);
        const scalars = tf.tidy(() => {
          const n = batch.index.length;
          const x = valuesTensor(gatherRows(train.x, inputSize, batch.index), [n, ...train.sampleShape]);
          const y = tf.tensor(gatherValues(train.y, batch.index), [n], 'int32');
          const r = tf.tensor(gatherValues(randomLabels, batch.index), [groups, k], 'int32');
          const mask = tf.tensor(batch.mask, [groups, k]);
          const flatMask = mask.reshape([n]);
          const grouped = (f: tf.Tensor) => f.reshape([groups, k, ...f.shape.slice(1)]);
          const kept: { features?: tf.Tensor[]; correct?: tf.Scalar; classLoss?: tf.Scalar; forget: tf.Scalar[] } = { forget: [] };

          // The backward pass through the model's own layers: TF.js may lack a gradient there.
          const model = onBackend("the model's backward pass", () => tf.variableGrads(() => {
            const { features, output } = trunk.run(x, true);
            kept.features = features.map((f) => tf.keep(grouped(f)));
            kept.correct = tf.keep(correctCount(output, y, flatMask));
            const lClass = classLoss(output, y, flatMask, trunk.outputIsProbability, training.labelSmoothing);
            kept.classLoss = tf.keep(lClass);
            if (training.lambda === 0) return lClass;
            const forget = heads.map((h, d) => forgetLoss(h.apply(kept.features![d]!, true), r, mask));
            kept.forget = forget.map((f) => tf.keep(f));
            return lClass.add<tf.Scalar>(tf.addN(forget).mul(training.lambda));
          }, modelVars));

          const headResults = heads.map((h, d) => headsGradients(h, kept.features![d]!, r, mask));
          const grads: tf.NamedTensorMap = {};
          for (const g of [model.grads, ...headResults.map((h) => h.grads)]) Object.assign(grads, g);
          applyGradients(optimizer, grads, [...modelVars, ...headVars], training.weightDecay);
          tf.dispose(kept.features);
          return [kept.classLoss!, kept.correct!, ...headResults.flatMap((h, d) => [h.value, h.hits, kept.forget[d] ?? tf.scalar(0)])];
        });
        const values = await Promise.all(scalars.map(async (s) => (await s.data())[0]!));
        tf.dispose(scalars);
        guard.check(values[0]!, 'classification', trunk.cuts.map((c) => c.depth), epoch);
        trunk.cuts.forEach((cut, d) => {
          guard.check(values[2 + 3 * d]!, 'random-label', [cut.depth], epoch);
          guard.check(values[4 + 3 * d]!, 'forget', [cut.depth], epoch);
        });
        const entry: Record<string, number> = { classLoss: values[0]! * batch.real, classCorrect: values[1]! };
        heads.forEach((_, d) => {
          const [loss, correct, forget] = perDepthKeys(d);
          entry[loss!] = values[2 + 3 * d]! * batch.real;
          entry[correct!] = values[3 + 3 * d]!;
          entry[forget!] = values[4 + 3 * d]! * batch.real;
        });
        tally.add(batch.real, entry);
        await yieldToEventLoop();
      }
      const seconds = (performance.now() - started) / 1000;
      for (const [d, cut] of trunk.cuts.entries()) {
        const [loss, correct, forget] = perDepthKeys(d);
        yield epochEvent(training, cut.depth, epoch, tally.samples, seconds, {
          randomLabelAccuracy: tally.mean(correct!),
          classAccuracy: tally.mean('classCorrect'),
          losses: {
            randomLabel: tally.mean(loss!),
            classification: tally.mean('classLoss'),
            ...(training.lambda > 0 ? { forget: tally.mean(forget!) } : {}),
          },
        });
      }
    }
    finished = true;
    return heads;
  } finally {
    optimizer.dispose();
    if (!finished) heads.forEach((h) => h.dispose());
  }
}
