import * as tf from '@tensorflow/tfjs';

export const OPTIMIZERS = ['adam', 'sgd', 'momentum'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

/** Optimizer state tensors per trained parameter, for memory estimates. */
export const OPTIMIZER_SLOTS: Record<OptimizerName, number> = { adam: 2, sgd: 0, momentum: 1 };

export function createOptimizer(name: OptimizerName, learningRate: number): tf.Optimizer {
  if (name === 'sgd') return tf.train.sgd(learningRate);
  if (name === 'momentum') return tf.train.momentum(learningRate, 0.9);
  return tf.train.adam(learningRate);
}

/**
 * Applies gradients with L2 weight decay (g + wd * w), the classic coupled form that the
 * papers' SGD runs use, then disposes them.
 */
export function applyGradients(
  optimizer: tf.Optimizer,
  grads: tf.NamedTensorMap,
  variables: tf.Variable[],
  weightDecay: number,
): void {
  if (weightDecay > 0) {
    for (const v of variables) {
      const g = grads[v.name];
      if (g) {
        grads[v.name] = tf.tidy(() => g.add(v.mul(weightDecay)));
        g.dispose();
      }
    }
  }
  optimizer.applyGradients(grads);
  tf.dispose(grads);
}
