import * as tf from '@tensorflow/tfjs';

/**
 * One layer of G heads computed together. Inputs and outputs carry the head (group) axis first:
 * [G, k, ...sample shape], k samples per head.
 */
export interface StackedOp {
  /** Trained by L_rnd. */
  readonly trainable: tf.Variable[];
  apply(inputs: tf.Tensor[], training: boolean): tf.Tensor;
  dispose(): void;
}

type Config = Record<string, unknown>;

/**
 * A stacked implementation of one layer class: `supports` says whether it covers the layer's
 * config and head input shape (else heads fall back to per-head copies of the layer); `build`
 * takes the G heads' initial weights stacked on a leading head axis, in the layer's own order.
 */
export interface StackedLayer {
  supports(config: Config, inputShape: tf.Shape): boolean;
  build(config: Config, weights: tf.Tensor[], activation: unknown, inputShape: tf.Shape): StackedOp;
}

function disposer(...tensors: (tf.Tensor | undefined)[]): () => void {
  return () => tensors.forEach((t) => t?.dispose());
}

function activationOf(name: unknown): ((x: tf.Tensor) => tf.Tensor) | undefined {
  if (name === undefined || name === null || name === 'linear') return undefined;
  // The Activation layer resolves every Keras activation name the model may use.
  const layer = tf.layers.activation({ activation: name as never });
  return (x) => layer.apply(x) as tf.Tensor;
}

/** Broadcasts per-head channel parameters [G, C] against [G, k, ..., C] of rank `rank`. */
function perHeadChannels(v: tf.Tensor, rank: number): tf.Tensor {
  return v.reshape([v.shape[0], ...Array<number>(rank - 2).fill(1), v.shape[v.rank - 1]!]);
}

/** The tail of stacked Dense and convolutions: per-head bias on [G, ..., out], activation. */
function biasAndActivate(y: tf.Tensor, bias: tf.Variable | undefined, act: ((x: tf.Tensor) => tf.Tensor) | undefined): tf.Tensor {
  const out = bias ? y.add(perHeadChannels(bias, y.rank)) : y;
  return act ? act(out) : out;
}

const channelsLast = (config: Config) => config.dataFormat === undefined || config.dataFormat === 'channelsLast';
const pair = (v: unknown) => (typeof v === 'number' ? [v, v] : (v as [number, number]));
const lastAxis = (axis: unknown, rank: number) => axis === -1 || axis === rank - 1;

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
    apply(inputs, training) {
      const [g, k] = inputs[0]!.shape as [number, number];
      const merged = inputs.map((x) => x.reshape([g * k, ...x.shape.slice(2)]));
      const y = layer.apply(merged.length === 1 ? merged[0]! : merged, { training }) as tf.Tensor;
      return y.reshape([g, k, ...y.shape.slice(1)]);
    },
    dispose: () => undefined,
  };
}

/**
 * Layers no stacked implementation covers (recurrent, embeddings, PReLU, transposed and 3-D
 * convolutions, unusual configs): G copies of the layer, each applied to its own head's slice.
 */
export function perHeadOp(copies: tf.layers.Layer[]): StackedOp {
  return {
    trainable: copies.flatMap((copy) => copy.trainableWeights.map((w) => w.read() as tf.Variable)),
    apply(inputs, training) {
      // Slices rather than tf.unstack: TF.js's Unpack gradient fails on a head axis of size 1.
      const own = (g: number) => inputs.map((x) => x.slice([g], [1]).squeeze([0]));
      const outputs = copies.map((copy, g) => {
        const slices = own(g);
        return (copy.apply(slices.length === 1 ? slices[0]! : slices, { training }) as tf.Tensor).expandDims(0);
      });
      return tf.concat(outputs);
    },
    dispose: () => copies.forEach((copy) => copy.weights.forEach((w) => w.dispose())),
  };
}

/** Dense: kernel [G, in, out], bias [G, out]; a batched matmul serves all heads at once. */
const dense: StackedLayer = {
  supports: () => true,
  build(_config, weights, activation) {
    const [kernel, bias] = weights.map((w) => tf.variable(w)) as [tf.Variable, tf.Variable?];
    const act = activationOf(activation);
    return {
      trainable: bias ? [kernel, bias] : [kernel],
      apply([x]) {
        const [g, k] = x!.shape as [number, number];
        const inner = x!.shape.slice(2, -1);
        const y = tf.matMul(x!.reshape([g, -1, kernel.shape[1]!]), kernel);
        return biasAndActivate(y.reshape([g, k, ...inner, kernel.shape[2]!]), bias, act);
      },
      dispose: disposer(kernel, bias),
    };
  },
};

interface Window {
  kh: number;
  kw: number;
  cin: number;
  strides: number[];
  dilations: number[];
  pad: 'same' | 'valid';
}

/**
 * The columns of a convolution over [G, k, H, W, C]: one shared patch extraction (a convolution
 * with an identity filter, so it inherits strides, padding and dilation exactly), giving
 * [G, k, Ho, Wo, kh*kw*cin] for a batched matmul with G stacked kernels.
 */
function patchExtractor(window: Window): { columns(x: tf.Tensor): tf.Tensor; dispose(): void } {
  const { kh, kw, cin } = window;
  const patches = kh * kw * cin;
  const identity = tf.tidy(() => tf.eye(patches).reshape<tf.Tensor4D>([kh, kw, cin, patches]));
  return {
    columns: (x) =>
      perSample(x, (m) =>
        tf.conv2d(m as tf.Tensor4D, identity, window.strides as [number, number], window.pad, 'NHWC', window.dilations as [number, number]),
      ),
    dispose: () => identity.dispose(),
  };
}

/** A convolution of G heads as patches x stacked kernels [G, kh*kw*cin, cout]. */
function patchConvOp(
  window: Window,
  weights: tf.Tensor[],
  activation: unknown,
  image: (x: tf.Tensor) => tf.Tensor,
  unimage: (y: tf.Tensor) => tf.Tensor,
): StackedOp {
  const g0 = weights[0]!.shape[0];
  const cout = weights[0]!.shape[weights[0]!.rank - 1]!;
  const patches = window.kh * window.kw * window.cin;
  const kernel = tf.tidy(() => tf.variable(weights[0]!.reshape([g0, patches, cout])));
  const bias = weights[1] ? tf.variable(weights[1]) : undefined;
  const extractor = patchExtractor(window);
  const act = activationOf(activation);
  return {
    trainable: bias ? [kernel, bias] : [kernel],
    apply([x]) {
      const cols = extractor.columns(image(x!));
      const [g, k, ho, wo] = cols.shape as [number, number, number, number];
      const y = tf.matMul(cols.reshape([g, k * ho * wo, patches]), kernel).reshape([g, k, ho, wo, cout]);
      return biasAndActivate(unimage(y), bias, act);
    },
    dispose: () => {
      kernel.dispose();
      bias?.dispose();
      extractor.dispose();
    },
  };
}

const conv2d: StackedLayer = {
  supports: (config) => channelsLast(config),
  build(config, weights, activation) {
    const [kh, kw, cin] = weights[0]!.shape.slice(1) as [number, number, number];
    const window: Window = {
      kh, kw, cin,
      strides: pair(config.strides),
      dilations: pair(config.dilationRate),
      pad: config.padding as Window['pad'],
    };
    return patchConvOp(window, weights, activation, (x) => x, (y) => y);
  },
};

/** Conv1D as a convolution over [G, k, 1, L, C]. (TF.js cannot run causal padding at all.) */
const conv1d: StackedLayer = {
  supports: (config) => channelsLast(config) && config.padding !== 'causal',
  build(config, weights, activation) {
    const [kw, cin] = weights[0]!.shape.slice(1) as [number, number];
    const window: Window = {
      kh: 1, kw, cin,
      strides: [1, pair(config.strides)[0]!],
      dilations: [1, pair(config.dilationRate)[0]!],
      pad: config.padding as Window['pad'],
    };
    return patchConvOp(window, weights, activation, (x) => x.expandDims(2), (y) => y.squeeze([2]));
  },
};

/**
 * Depthwise convolution of G heads as one depthwise convolution over G*C channels: the head
 * axis moves next to the channels, so every head's filters see only its own samples' channels.
 * `kernel` is [G, kh, kw, C, m]; returns [G, k, Ho, Wo, C*m].
 */
function stackedDepthwise(x: tf.Tensor, kernel: tf.Tensor, config: Config): tf.Tensor {
  const [g, k, h, w, c] = x.shape as [number, number, number, number, number];
  const [kh, kw, , m] = kernel.shape.slice(1) as [number, number, number, number];
  const merged = x.transpose([1, 2, 3, 0, 4]).reshape<tf.Tensor4D>([k, h, w, g * c]);
  const filter = kernel.transpose([1, 2, 0, 3, 4]).reshape<tf.Tensor4D>([kh, kw, g * c, m]);
  const strides = pair(config.strides) as [number, number];
  const dilations = pair(config.dilationRate) as [number, number];
  const y = tf.depthwiseConv2d(merged, filter, strides, config.padding as 'same' | 'valid', 'NHWC', dilations);
  const [ho, wo] = y.shape.slice(1, 3) as [number, number];
  return y.reshape([k, ho, wo, g, c * m]).transpose([3, 0, 1, 2, 4]);
}

const depthwiseSupports = (config: Config, inputShape: tf.Shape) => channelsLast(config) && inputShape.length === 4;

const depthwiseConv2d: StackedLayer = {
  supports: depthwiseSupports,
  build(config, weights, activation) {
    const [kernel, bias] = weights.map((w) => tf.variable(w)) as [tf.Variable, tf.Variable?];
    const act = activationOf(activation);
    return {
      trainable: bias ? [kernel, bias] : [kernel],
      apply: ([x]) => biasAndActivate(stackedDepthwise(x!, kernel, config), bias, act),
      dispose: disposer(kernel, bias),
    };
  },
};

/** SeparableConv2D: the stacked depthwise stage, then the pointwise stage as a batched matmul. */
const separableConv2d: StackedLayer = {
  supports: depthwiseSupports,
  build(config, weights, activation) {
    const [depthwise, pointwise, bias] = weights.map((w, i) =>
      tf.tidy(() => tf.variable(i === 1 ? w.reshape([w.shape[0], w.shape[3]!, w.shape[4]!]) : w)),
    ) as [tf.Variable, tf.Variable, tf.Variable?];
    const act = activationOf(activation);
    return {
      trainable: bias ? [depthwise, pointwise, bias] : [depthwise, pointwise],
      apply([x]) {
        const d = stackedDepthwise(x!, depthwise, config);
        const [g, k, ho, wo, cm] = d.shape as [number, number, number, number, number];
        const y = tf.matMul(d.reshape([g, k * ho * wo, cm]), pointwise).reshape([g, k, ho, wo, pointwise.shape[2]!]);
        return biasAndActivate(y, bias, act);
      },
      dispose: disposer(depthwise, pointwise, bias),
    };
  },
};

/** (x - mean) / sqrt(variance + epsilon) * gamma + beta, with per-head gamma and beta. */
function normalize(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, epsilon: number, gamma?: tf.Tensor, beta?: tf.Tensor): tf.Tensor {
  let y = x.sub(mean).mul(tf.rsqrt(variance.add(epsilon)));
  if (gamma) y = y.mul(perHeadChannels(gamma, x.rank));
  return beta ? y.add(perHeadChannels(beta, x.rank)) : y;
}

/** The optional gamma and beta that lead a normalisation layer's weights, as variables. */
function scaleAndCenter(config: Config, weights: tf.Tensor[]): { gamma?: tf.Variable; beta?: tf.Variable; rest: tf.Tensor[] } {
  const rest = [...weights];
  const gamma = config.scale !== false ? tf.variable(rest.shift()!) : undefined;
  const beta = config.center !== false ? tf.variable(rest.shift()!) : undefined;
  return { gamma, beta, rest };
}

/**
 * BatchNormalization over the last axis, per head: batch statistics of each head's own k samples
 * in training (moving statistics updated), moving statistics in inference. Written with
 * elementwise ops, not tf.batchNorm, whose gradient handles at most rank-4 inputs.
 */
const batchNormalization: StackedLayer = {
  supports: (config, inputShape) => lastAxis(config.axis, inputShape.length),
  build(config, weights) {
    const { gamma, beta, rest } = scaleAndCenter(config, weights);
    const movingMean = tf.variable(rest[0]!, false);
    const movingVariance = tf.variable(rest[1]!, false);
    const momentum = (config.momentum as number | undefined) ?? 0.99;
    const epsilon = (config.epsilon as number | undefined) ?? 1e-3;
    return {
      trainable: [gamma, beta].filter((v): v is tf.Variable => v !== undefined),
      apply([x], training) {
        const rank = x!.rank;
        if (!training) {
          return normalize(x!, perHeadChannels(movingMean, rank), perHeadChannels(movingVariance, rank), epsilon, gamma, beta);
        }
        const axes = Array.from({ length: rank - 2 }, (_, i) => i + 1);
        const { mean, variance } = tf.moments(x!, axes, true);
        const update = (moving: tf.Variable, batch: tf.Tensor) =>
          moving.assign(tf.tidy(() => moving.mul(momentum).add(batch.reshape(moving.shape).mul(1 - momentum))));
        update(movingMean, mean);
        update(movingVariance, variance);
        return normalize(x!, mean, variance, epsilon, gamma, beta);
      },
      dispose: disposer(gamma, beta, movingMean, movingVariance),
    };
  },
};

/** LayerNormalization over the last axis: per-sample statistics, per-head gamma and beta. */
const layerNormalization: StackedLayer = {
  supports: (config, inputShape) => {
    const axis: unknown = Array.isArray(config.axis) && config.axis.length === 1 ? config.axis[0] : config.axis;
    return lastAxis(axis, inputShape.length);
  },
  build(config, weights) {
    const { gamma, beta } = scaleAndCenter(config, weights);
    const epsilon = (config.epsilon as number | undefined) ?? 1e-3;
    return {
      trainable: [gamma, beta].filter((v): v is tf.Variable => v !== undefined),
      apply([x]) {
        const { mean, variance } = tf.moments(x!, -1, true);
        return normalize(x!, mean, variance, epsilon, gamma, beta);
      },
      dispose: disposer(gamma, beta),
    };
  },
};

/** Layer classes with a stacked implementation; every other layer with weights runs per head. */
export const STACKED_LAYERS: Readonly<Record<string, StackedLayer>> = {
  Dense: dense,
  Conv1D: conv1d,
  Conv2D: conv2d,
  DepthwiseConv2D: depthwiseConv2d,
  SeparableConv2D: separableConv2d,
  BatchNormalization: batchNormalization,
  LayerNormalization: layerNormalization,
};
