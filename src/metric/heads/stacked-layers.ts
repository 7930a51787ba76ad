import * as tf from '@tensorflow/tfjs';

/**
 * One layer of G heads computed together. Inputs and outputs carry the head (group) axis first:
 * [G, k, ...sample shape], k samples per head.
 */
export interface StackedOp {
  /** Trained by L_rnd. */
  readonly trainable: tf.Variable[];
  /** Updated by the forward pass in training mode (batch-norm moving statistics). */
  readonly state: tf.Variable[];
  apply(inputs: tf.Tensor[], training: boolean): tf.Tensor;
  dispose(): void;
}

function disposer(...tensors: (tf.Tensor | undefined)[]): () => void {
  return () => tensors.forEach((t) => t?.dispose());
}

type Config = Record<string, unknown>;

function activationOf(name: unknown): ((x: tf.Tensor) => tf.Tensor) | undefined {
  if (name === undefined || name === null || name === 'linear') return undefined;
  // The Activation layer resolves every Keras activation name the model may use.
  const layer = tf.layers.activation({ activation: name as never });
  return (x) => layer.apply(x) as tf.Tensor;
}

/** The tail of a stacked Dense/Conv2D: per-head bias on [G, rows, out], reshape, activation. */
function biasAndActivate(
  y: tf.Tensor,
  bias: tf.Variable | undefined,
  act: ((x: tf.Tensor) => tf.Tensor) | undefined,
  shape: number[],
): tf.Tensor {
  const out = (bias ? y.add(bias.expandDims(1)) : y).reshape(shape);
  return act ? act(out) : out;
}

/** Moves the head axis into the batch axis, runs `f`, and splits it out again. */
function perSample(x: tf.Tensor, f: (merged: tf.Tensor) => tf.Tensor): tf.Tensor {
  const [g, k] = x.shape as [number, number];
  const y = f(x.reshape([g * k, ...x.shape.slice(2)]));
  return y.reshape([g, k, ...y.shape.slice(1)]);
}

/** A parameter-free layer (pooling, flatten, dropout, activation, add, ...) acts per sample. */
export function parameterFreeOp(layer: tf.layers.Layer): StackedOp {
  return {
    trainable: [],
    state: [],
    apply(inputs, training) {
      const [g, k] = inputs[0]!.shape as [number, number];
      const merged = inputs.map((x) => x.reshape([g * k, ...x.shape.slice(2)]));
      const y = layer.apply(merged.length === 1 ? merged[0]! : merged, { training }) as tf.Tensor;
      return y.reshape([g, k, ...y.shape.slice(1)]);
    },
    dispose: () => undefined,
  };
}

/** Dense: kernel [G, in, out], bias [G, out]; a batched matmul serves all heads at once. */
export function denseOp(weights: tf.Tensor[], activation: unknown): StackedOp {
  const [kernel, bias] = weights.map((w) => tf.variable(w)) as [tf.Variable, tf.Variable?];
  const act = activationOf(activation);
  return {
    trainable: bias ? [kernel, bias] : [kernel],
    state: [],
    apply([x]) {
      const [g, k] = x!.shape as [number, number];
      const inner = x!.shape.slice(2, -1);
      const y = tf.matMul(x!.reshape([g, -1, kernel.shape[1]!]), kernel);
      return biasAndActivate(y, bias, act, [g, k, ...inner, kernel.shape[2]!]);
    },
    dispose: disposer(kernel, bias),
  };
}

/**
 * Conv2D for G heads: one shared patch extraction (a convolution with a one-hot filter, so it
 * inherits strides, padding and dilation exactly) followed by a batched matmul with the G
 * stacked kernels [G, kh*kw*cin, cout].
 */
export function conv2dOp(config: Config, weights: tf.Tensor[], activation: unknown): StackedOp {
  const [kh, kw, cin, cout] = weights[0]!.shape.slice(1) as [number, number, number, number];
  const g0 = weights[0]!.shape[0]!;
  const kernel = tf.tidy(() => tf.variable(weights[0]!.reshape([g0, kh * kw * cin, cout])));
  const bias = weights[1] ? tf.variable(weights[1]) : undefined;
  const patches = kh * kw * cin;
  const identity = tf.tidy(() =>
    tf.oneHot(tf.range(0, patches, 1, 'int32'), patches).toFloat().reshape([kh, kw, cin, patches]),
  );
  const strides = config.strides as [number, number];
  const dilations = config.dilationRate as [number, number] | number;
  const pad = config.padding as 'same' | 'valid';
  const act = activationOf(activation);
  return {
    trainable: bias ? [kernel, bias] : [kernel],
    state: [],
    apply([x]) {
      const [g, k] = x!.shape as [number, number];
      const cols = perSample(x!, (m) =>
        tf.conv2d(m as tf.Tensor4D, identity as tf.Tensor4D, strides, pad, 'NHWC', dilations),
      );
      const [ho, wo] = cols.shape.slice(2, 4) as [number, number];
      const y = tf.matMul(cols.reshape([g, k * ho * wo, patches]), kernel);
      return biasAndActivate(y, bias, act, [g, k, ho, wo, cout]);
    },
    dispose: disposer(kernel, bias, identity),
  };
}

/** BatchNormalization over the last axis, with per-head scale, offset and moving statistics. */
export function batchNormOp(config: Config, weights: tf.Tensor[]): StackedOp {
  const scale = config.scale !== false;
  const center = config.center !== false;
  const rest = [...weights];
  const gamma = scale ? tf.variable(rest.shift()!) : undefined;
  const beta = center ? tf.variable(rest.shift()!) : undefined;
  const movingMean = tf.variable(rest[0]!, false);
  const movingVariance = tf.variable(rest[1]!, false);
  const momentum = (config.momentum as number | undefined) ?? 0.99;
  const epsilon = (config.epsilon as number | undefined) ?? 1e-3;
  // Broadcast [G, C] against [G, k, ..., C].
  const expand = (v: tf.Tensor, rank: number) =>
    v.reshape([v.shape[0]!, ...Array<number>(rank - 2).fill(1), v.shape[1]!]);
  return {
    trainable: [gamma, beta].filter((v): v is tf.Variable => v !== undefined),
    state: [movingMean, movingVariance],
    apply([x], training) {
      const rank = x!.rank;
      let mean: tf.Tensor;
      let variance: tf.Tensor;
      if (training) {
        const axes = Array.from({ length: rank - 2 }, (_, i) => i + 1);
        ({ mean, variance } = tf.moments(x!, axes, true));
        const flatMean = mean.reshape(movingMean.shape);
        const flatVar = variance.reshape(movingVariance.shape);
        movingMean.assign(movingMean.mul(momentum).add(flatMean.mul(1 - momentum)));
        movingVariance.assign(movingVariance.mul(momentum).add(flatVar.mul(1 - momentum)));
      } else {
        mean = expand(movingMean, rank);
        variance = expand(movingVariance, rank);
      }
      return tf.batchNorm(
        x!,
        mean,
        variance,
        beta ? expand(beta, rank) : undefined,
        gamma ? expand(gamma, rank) : undefined,
        epsilon,
      );
    },
    dispose: disposer(gamma, beta, movingMean, movingVariance),
  };
}
