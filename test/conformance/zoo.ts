/**
 * A zoo of small TF.js LayersModels covering the layer types users train: Fashion-MNIST-shaped
 * inputs (28x28x1 images, 28 rows of 28 values, or 49 tokens) and 10 classes. Every builder is
 * deterministic: weights are set from seeded initializers after the model is built, so a run is
 * reproducible whatever order the models are built in. The models are untrained.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../../src/metric/dataset.js';
import { hash32 } from '../../src/metric/random.js';

type Symbolic = tf.SymbolicTensor;
type Layer = tf.layers.Layer;

/** What a model reads: images [28, 28, 1], rows [28, 28] (a sequence of 28 rows) or tokens [49]. */
export type ZooInput = 'image' | 'rows' | 'tokens';

export interface ZooEntry {
  name: string;
  input: ZooInput;
  build: () => tf.LayersModel;
}

const NUM_CLASSES = 10;
const TOKEN_GRID = 7;
const TOKEN_LEVELS = 8;
const INPUT_SHAPES: Record<ZooInput, number[]> = {
  image: [28, 28, 1],
  rows: [28, 28],
  tokens: [TOKEN_GRID * TOKEN_GRID],
};

/** Applies layers one after another (the functional API, for models with a straight stretch). */
function chain(x: Symbolic, ...layers: Layer[]): Symbolic {
  return layers.reduce((t, layer) => layer.apply(t) as Symbolic, x);
}

const uniform = (minval: number, maxval: number) => (seed: number) => tf.initializers.randomUniform({ minval, maxval, seed });

/**
 * Seeded initializer per weight role (the last part of the weight's name). Biases, batch- and
 * layer-norm parameters and statistics and PReLU slopes get non-trivial values too, so that a
 * head that drops or mis-copies one of them computes something else than the top.
 */
type Initializer = ReturnType<typeof tf.initializers.glorotUniform>;

const INITIALIZERS: Record<string, (seed: number) => Initializer> = {
  kernel: (seed) => tf.initializers.glorotUniform({ seed }),
  depthwise_kernel: (seed) => tf.initializers.glorotUniform({ seed }),
  pointwise_kernel: (seed) => tf.initializers.glorotUniform({ seed }),
  recurrent_kernel: (seed) => tf.initializers.orthogonal({ seed }),
  embeddings: uniform(-0.5, 0.5),
  bias: uniform(-0.1, 0.1),
  beta: uniform(-0.1, 0.1),
  moving_mean: uniform(-0.1, 0.1),
  gamma: uniform(0.5, 1.5),
  moving_variance: uniform(0.5, 1.5),
  alpha: uniform(0, 0.3),
};

/** Sets every weight of `model` from seeded initializers; unknown roles are an error, not skipped. */
export function seedWeights(model: tf.LayersModel, seed: number): tf.LayersModel {
  const values = model.weights.map((w, i) => {
    const role = w.originalName.split('/').pop()!;
    const init = INITIALIZERS[role];
    if (!init) throw new Error(`zoo: no seeded initializer for weight ${w.originalName}`);
    return tf.tidy(() => init(hash32(seed, i)).apply(w.shape, 'float32'));
  });
  model.setWeights(values);
  tf.dispose(values);
  return model;
}

/** A model from `input` to a softmax over the classes, with seeded weights. */
function classifier(name: string, seed: number, input: Symbolic, features: Symbolic): tf.LayersModel {
  const output = chain(features, tf.layers.dense({ units: NUM_CLASSES, activation: 'softmax', name: `${name}_out` }));
  return seedWeights(tf.model({ inputs: input, outputs: output, name }), seed);
}

const conv = (filters: number, extra: Partial<Parameters<typeof tf.layers.conv2d>[0]> = {}) =>
  tf.layers.conv2d({ filters, kernelSize: 3, padding: 'same', ...extra });
const relu = () => tf.layers.activation({ activation: 'relu' });
const relu6 = () => tf.layers.activation({ activation: 'relu6' });
const bn = (name?: string) => tf.layers.batchNormalization(name ? { name } : {});

/** VGG-style: two conv -> BatchNormalization -> ReLU stacks with pooling, then Dense. */
export function vggBn(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const x = chain(input,
    conv(8, { useBias: false }), bn(), relu(), conv(8, { useBias: false }), bn(), relu(), tf.layers.maxPooling2d({ poolSize: 2 }),
    conv(16), bn(), relu(), tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten());
  return classifier('vgg_bn', 1, input, x);
}

/** conv-BN-relu-conv-BN, added to the block's input, then relu. Layers are named `${name}_...`. */
function residualBlock(x: Symbolic, filters: number, name: string): Symbolic {
  const branch = chain(x,
    conv(filters, { name: `${name}_conv1` }), bn(`${name}_bn1`), tf.layers.activation({ activation: 'relu', name: `${name}_relu1` }),
    conv(filters, { name: `${name}_conv2` }), bn(`${name}_bn2`));
  const sum = tf.layers.add({ name: `${name}_add` }).apply([x, branch]) as Symbolic;
  return chain(sum, tf.layers.activation({ activation: 'relu', name: `${name}_out` }));
}

/** The first layer of the second residual block: a cut there puts one block, pooling and Dense in the top. */
export const RESNET_BLOCK2_FIRST_LAYER = 'block2_conv1';

/** ResNet with BatchNormalization: a strided stem, two residual blocks at 7x7, global average pooling, Dense. */
export function resnetBn(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const stem = chain(input, conv(16, { strides: 2, name: 'stem_conv' }), bn('stem_bn'), relu(), tf.layers.maxPooling2d({ poolSize: 2 }));
  const blocks = residualBlock(residualBlock(stem, 16, 'block1'), 16, 'block2');
  return classifier('resnet_bn', 2, input, chain(blocks, tf.layers.globalAveragePooling2d({})));
}

/** MobileNet-style: DepthwiseConv2D and 1x1 Conv2D with BN + ReLU6, then a SeparableConv2D. */
export function mobileNet(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const x = chain(input,
    conv(8, { strides: 2 }), bn(), relu6(),
    tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 2 }), bn(), relu6(),
    tf.layers.conv2d({ filters: 16, kernelSize: 1 }), bn(), relu6(),
    tf.layers.separableConv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
    tf.layers.globalAveragePooling2d({}));
  return classifier('mobilenet', 3, input, x);
}

/** Inception-style: 1x1 (on the single input channel), 3x3 and pooled branches joined by Concatenate. */
export function inception(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const branches = [
    chain(input, tf.layers.conv2d({ filters: 4, kernelSize: 1, activation: 'relu' })),
    chain(input, conv(4, { activation: 'relu' })),
    chain(input, tf.layers.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same' }), tf.layers.conv2d({ filters: 4, kernelSize: 1 })),
  ];
  const joined = tf.layers.concatenate({ axis: -1 }).apply(branches) as Symbolic;
  const x = chain(joined,
    tf.layers.maxPooling2d({ poolSize: 2 }), tf.layers.conv2d({ filters: 8, kernelSize: 1, activation: 'relu' }),
    conv(16, { strides: 2, activation: 'relu' }), tf.layers.flatten());
  return classifier('inception', 4, input, x);
}

/** Strided, dilated (rate 2), 'same' and 'valid' padded convs, with explicit zero padding. */
export function stridedDilated(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const x = chain(input,
    tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', activation: 'relu' }), // 13x13
    tf.layers.conv2d({ filters: 8, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'relu' }), // 13x13
    tf.layers.conv2d({ filters: 8, kernelSize: 3, dilationRate: 2, padding: 'valid', activation: 'relu' }), // 9x9
    tf.layers.zeroPadding2d({ padding: 1 }), // 11x11
    tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }), // 6x6
    tf.layers.flatten());
  return classifier('strided_dilated', 5, input, x);
}

/** Conv2DTranspose: an encoder-decoder that upsamples back to 28x28 before classifying. */
export function encoderDecoder(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const x = chain(input,
    conv(8, { strides: 2, activation: 'relu' }), // 14x14
    tf.layers.conv2dTranspose({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }), // 28x28
    tf.layers.averagePooling2d({ poolSize: 4 }), // 7x7
    tf.layers.flatten());
  return classifier('encoder_decoder', 6, input, x);
}

/** Conv1D over the 28 rows of an image. */
export function conv1dRows(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.rows });
  const x = chain(input,
    tf.layers.conv1d({ filters: 16, kernelSize: 3, activation: 'relu' }),
    tf.layers.maxPooling1d({ poolSize: 2 }),
    tf.layers.conv1d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
    tf.layers.flatten());
  return classifier('conv1d_rows', 7, input, x);
}

/** LSTM over the 28 rows, its last state classified. */
export function lstmRows(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.rows });
  return classifier('lstm_rows', 8, input, chain(input, tf.layers.lstm({ units: 16 })));
}

/** GRU over the 28 rows, its states averaged over time. */
export function gruRows(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.rows });
  const x = chain(input, tf.layers.gru({ units: 16, returnSequences: true }), tf.layers.globalAveragePooling1d({}));
  return classifier('gru_rows', 9, input, x);
}

/** A text classifier: Embedding of integer tokens, GlobalAveragePooling1D, Dense. */
export function tokenEmbedding(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.tokens });
  const x = chain(input,
    tf.layers.embedding({ inputDim: TOKEN_LEVELS, outputDim: 16 }),
    tf.layers.globalAveragePooling1d({}),
    tf.layers.dense({ units: 32, activation: 'relu' }));
  return classifier('token_embedding', 10, input, x);
}

/** An MLP with LayerNormalization and GELU (an activation TF.js 4.22 names 'gelu'). */
export function layerNormGelu(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const block = (units: number) => [
    tf.layers.dense({ units }), tf.layers.layerNormalization(), tf.layers.activation({ activation: 'gelu' }),
  ];
  const x = chain(input, tf.layers.flatten(), ...block(64), ...block(32));
  return classifier('layernorm_gelu', 11, input, x);
}

/** Activations as layers: PReLU, LeakyReLU, ELU, ReLU, and a Softmax layer after a linear Dense. */
export function activationLayers(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const output = chain(input,
    conv(8), tf.layers.prelu({ sharedAxes: [1, 2] }), tf.layers.maxPooling2d({ poolSize: 2 }),
    conv(8), tf.layers.leakyReLU({ alpha: 0.2 }), tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 32 }), tf.layers.elu(),
    tf.layers.dense({ units: 16 }), tf.layers.reLU(),
    tf.layers.dense({ units: NUM_CLASSES }), tf.layers.softmax());
  return seedWeights(tf.model({ inputs: input, outputs: output, name: 'activation_layers' }), 12);
}

/** Regularisers that act only in training: GaussianNoise and Dropout. */
export function noiseDropout(): tf.LayersModel {
  const input = tf.input({ shape: INPUT_SHAPES.image });
  const x = chain(input,
    tf.layers.flatten(), tf.layers.gaussianNoise({ stddev: 0.1 }),
    tf.layers.dense({ units: 64, activation: 'relu' }), tf.layers.dropout({ rate: 0.3 }),
    tf.layers.dense({ units: 32, activation: 'relu' }), tf.layers.dropout({ rate: 0.3 }));
  return classifier('noise_dropout', 13, input, x);
}

export const ZOO: ZooEntry[] = [
  { name: 'vgg_bn', input: 'image', build: vggBn },
  { name: 'resnet_bn', input: 'image', build: resnetBn },
  { name: 'mobilenet', input: 'image', build: mobileNet },
  { name: 'inception', input: 'image', build: inception },
  { name: 'strided_dilated', input: 'image', build: stridedDilated },
  { name: 'encoder_decoder', input: 'image', build: encoderDecoder },
  { name: 'conv1d_rows', input: 'rows', build: conv1dRows },
  { name: 'lstm_rows', input: 'rows', build: lstmRows },
  { name: 'gru_rows', input: 'rows', build: gruRows },
  { name: 'token_embedding', input: 'tokens', build: tokenEmbedding },
  { name: 'layernorm_gelu', input: 'image', build: layerNormGelu },
  { name: 'activation_layers', input: 'image', build: activationLayers },
  { name: 'noise_dropout', input: 'image', build: noiseDropout },
];

/**
 * 28x28 images (values 0..255) as 49 tokens in [0, 8): 4x4 block means, quantised to 8 levels.
 */
function tokenize(x: ArrayLike<number>, count: number): Int32Array {
  const tokens = new Int32Array(count * TOKEN_GRID * TOKEN_GRID);
  const block = 28 / TOKEN_GRID;
  for (let s = 0; s < count; s++) {
    for (let by = 0; by < TOKEN_GRID; by++) {
      for (let bx = 0; bx < TOKEN_GRID; bx++) {
        let sum = 0;
        for (let y = 0; y < block; y++) {
          for (let x0 = 0; x0 < block; x0++) sum += x[s * 784 + (by * block + y) * 28 + bx * block + x0]!;
        }
        const level = Math.floor((sum / (block * block) / 256) * TOKEN_LEVELS);
        tokens[(s * TOKEN_GRID + by) * TOKEN_GRID + bx] = Math.min(TOKEN_LEVELS - 1, level);
      }
    }
  }
  return tokens;
}

/** The Fashion-MNIST images as token sequences [m, 49], labels unchanged. */
export function tokenDataset(images: Dataset): Dataset {
  const m = images.xShape[0]!;
  const test = images.xTest && images.xTestShape ? { count: images.xTestShape[0]!, x: images.xTest } : undefined;
  const length = TOKEN_GRID * TOKEN_GRID;
  return {
    x: tokenize(images.x, m),
    xShape: [m, length],
    y: images.y,
    ...(test ? { xTest: tokenize(test.x, test.count), xTestShape: [test.count, length], yTest: images.yTest! } : {}),
  };
}

/** The data set a zoo model reads, made from the Fashion-MNIST images. */
export function datasetFor(input: ZooInput, images: Dataset): Dataset {
  return input === 'tokens' ? tokenDataset(images) : images;
}

/** Input scaling for a zoo model: pixels to [0, 1]; token ids stay as they are. */
export function scalingFor(input: ZooInput): { scale: number } | undefined {
  return input === 'tokens' ? undefined : { scale: 1 / 255 };
}
