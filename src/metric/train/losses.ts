import * as tf from '@tensorflow/tfjs';

/** Keeps log(1 - q) finite as q -> 1 and log p finite as p -> 0. */
const EPSILON = 1e-7;

/** The masked-in values' sum over `denominator`, by default their count. */
function maskedMean(values: tf.Tensor, mask: tf.Tensor, denominator?: number): tf.Scalar {
  return values.mul(mask).sum().div<tf.Scalar>(denominator ?? mask.sum().maximum(1));
}

/** log q[r] per sample, from logits [..., n] and integer labels [...]. */
function logProbOfLabel(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor {
  const n = logits.shape[logits.rank - 1]!;
  return tf.logSoftmax(logits).mul(tf.oneHot(labels.flatten(), n).reshape(logits.shape)).sum(-1);
}

/** Number of masked-in samples whose arg-max equals the label. */
export function correctCount(scores: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.equal(scores.argMax(-1), labels).toFloat().mul(mask).sum<tf.Scalar>();
}

/**
 * L_rnd = -log q[r]: how the heads learn the random labels. `denominator` replaces the
 * masked-in count: a slice of the heads passes its whole step's count, so each head's gradient
 * is the one it gets in the unsliced step.
 */
export function randomLabelLoss(logits: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor, denominator?: number): tf.Scalar {
  return maskedMean(logProbOfLabel(logits, labels).neg(), mask, denominator);
}

/**
 * L_reg = -log(1 - q[r]), minimised by the backbone: it pushes the heads' confidence in the
 * random label down, i.e. makes the features forget sample-specific information. (Minimising
 * the literal log(1 - q[r]) would push q[r] up and increase memorization.)
 */
export function forgetLoss(logits: tf.Tensor, labels: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  const q = logProbOfLabel(logits, labels).exp();
  return maskedMean(tf.log(tf.sub(1, q).maximum(EPSILON)).neg(), mask);
}

/**
 * L_class = -log p[y]. `outputIsProbability` when the model ends in softmax (then `output` is p;
 * the log is clipped), else `output` holds logits.
 */
export function classLoss(
  output: tf.Tensor,
  labels: tf.Tensor,
  mask: tf.Tensor,
  outputIsProbability: boolean,
  labelSmoothing = 0,
): tf.Scalar {
  const c = output.shape[output.rank - 1]!;
  const logP = outputIsProbability ? tf.log(output.maximum(EPSILON)) : tf.logSoftmax(output);
  let target = tf.oneHot(labels, c).toFloat();
  if (labelSmoothing > 0) target = target.mul(1 - labelSmoothing).add(labelSmoothing / c);
  return maskedMean(logP.mul(target).sum(-1).neg(), mask);
}
