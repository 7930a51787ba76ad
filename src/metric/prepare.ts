import { InvalidArgumentError } from '../errors.js';
import { assertFiniteInputs, firstNonFinite, formatShape, shapeSize, type Dataset, type InputValues } from './dataset.js';
import type { TokenInput } from './model/load.js';
import { shuffleInPlace, Stream } from './random.js';
import { gatherRows } from './train/batches.js';
import type { ImageLayout } from './types.js';

/** Affine input scaling applied once before training: ((x * scale + offset) - mean[c]) / std[c]. */
export interface InputScaling {
  scale?: number;
  offset?: number;
  /** Per channel (last axis), or one value for all. */
  mean?: number[];
  std?: number[];
}

/** Samples of one split, laid out for the model's input shape. */
export interface Split {
  /** Scaled float32 inputs, or int32 token ids for a model that takes them. */
  x: InputValues;
  y: Int32Array;
  /** Each sample's index in its source array: the counter of its random label. */
  ids: Int32Array;
  count: number;
  sampleShape: number[];
}

export interface PreparedData {
  train: Split;
  heldOut: Split;
  /** Where the held-out split came from: the dataset's test arrays, or carved from training. */
  heldOutSource: 'test' | 'train-split';
  /** How the data set's images were laid out (NCHW ones were transposed to NHWC). */
  layout: ImageLayout;
}

export interface PrepareOptions {
  /** The model's input shape without the batch axis. */
  inputShape: number[];
  numClasses: number;
  maxSamples?: number;
  inputScaling?: InputScaling;
  /** Set when the model takes integer token ids: inputs stay int32 and are not scaled. */
  tokens?: TokenInput;
  /** Fraction of training samples held out when the dataset has no test arrays. */
  heldOutFraction: number;
  seed: number;
}

const squeeze = (shape: number[]) => shape.filter((d) => d !== 1).join(',');

/**
 * The dataset's sample shape must match the model input up to axes of size 1, or be its
 * channels-first permutation ([C, H, W] for an [H, W, C] input: NCHW images, as PyTorch keeps
 * them), which is then transposed.
 */
function sampleLayout(sample: number[], input: number[], field: string): ImageLayout {
  if (sample.join(',') === input.join(',') || squeeze(sample) === squeeze(input)) return 'NHWC';
  const [h, w, c] = input;
  if (input.length === 3 && sample.join(',') === [c, h, w].join(',')) return 'NCHW';
  throw new InvalidArgumentError(
    `sample shape ${formatShape(sample)} does not match the model input shape ${formatShape(input)}` +
      (input.length === 3 ? ` (NHWC) or its NCHW form ${formatShape([c!, h!, w!])}` : ''),
    field,
  );
}

/** [rows, C, H, W] -> [rows, H, W, C], row by row. */
function channelsLast<T extends InputValues>(values: T, [h, w, c]: number[]): T {
  const out = new (values.constructor as new (n: number) => T)(values.length);
  const plane = h! * w!;
  const size = plane * c!;
  for (let base = 0; base < values.length; base += size) {
    for (let ch = 0; ch < c!; ch++) {
      for (let p = 0; p < plane; p++) out[base + p * c! + ch] = values[base + ch * plane + p]!;
    }
  }
  return out;
}

function checkLabels(y: Int32Array, numClasses: number, field: string): void {
  for (let i = 0; i < y.length; i++) {
    if (y[i]! < 0 || y[i]! >= numClasses) {
      throw new InvalidArgumentError(
        `label ${y[i]} at index ${i} is outside [0, ${numClasses}) (the model has ${numClasses} outputs)`,
        field,
      );
    }
  }
}

const isSet = (s: InputScaling | undefined) =>
  s !== undefined && (s.scale !== undefined || s.offset !== undefined || !!s.mean?.length || !!s.std?.length);

/** Float32 inputs, scaled; `rows` (the samples' source indices) name a sample that overflows. */
function scale(x: InputValues, channels: number, s: InputScaling | undefined, rows: Int32Array, field: string): Float32Array {
  if (!s) return x instanceof Float32Array ? x : Float32Array.from(x);
  const mul = s.scale ?? 1;
  const add = s.offset ?? 0;
  const per = (values: number[] | undefined, fill: number, name: string) => {
    if (!values || values.length === 0) return new Float32Array(channels).fill(fill);
    if (values.length !== 1 && values.length !== channels) {
      throw new InvalidArgumentError(`has ${values.length} values; the input has ${channels} channels`, `inputScaling.${name}`);
    }
    return Float32Array.from({ length: channels }, (_, c) => values[values.length === 1 ? 0 : c]!);
  };
  const mean = per(s.mean, 0, 'mean');
  const std = per(s.std, 1, 'std');
  if (std.some((v) => v === 0)) throw new InvalidArgumentError('must not contain 0', 'inputScaling.std');
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = i % channels;
    out[i] = (x[i]! * mul + add - mean[c]!) / std[c]!;
  }
  const bad = firstNonFinite(out);
  if (bad >= 0) {
    const size = x.length / rows.length;
    throw new InvalidArgumentError(
      `turns value ${x[bad]} of sample ${rows[Math.floor(bad / size)]} of ${field} (index ${bad % size}) into ${out[bad]}: ` +
        'scaled inputs must be finite float32 values',
      'inputScaling',
    );
  }
  return out;
}

/**
 * Token ids as int32, refused unless each is an integer inside every input Embedding's
 * [0, inputDim) (an id out of range would read past the embedding table).
 */
function tokenIds(x: InputValues, shape: number[], field: string, tokens: TokenInput): Int32Array {
  const limit = [...tokens.embeddings].sort((a, b) => a.inputDim - b.inputDim)[0];
  const size = shapeSize(shape.slice(1));
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    const where = `at flat index ${i} (sample ${Math.floor(i / size)})`;
    if (v !== (v | 0)) {
      throw new InvalidArgumentError(`the model takes integer token ids (${tokens.reason}), but value ${v} ${where} is not an int32 integer`, field);
    }
    if (limit && (v < 0 || v >= limit.inputDim)) {
      throw new InvalidArgumentError(`token id ${v} ${where} is outside [0, ${limit.inputDim}), the input range of Embedding layer ${limit.layer}`, field);
    }
  }
  return x instanceof Int32Array ? x : Int32Array.from(x);
}

/** The model's view of one source array: a function that gathers rows of it as a split. */
function source(x: InputValues, y: Int32Array, shape: number[], fields: [string, string], options: PrepareOptions) {
  const { inputShape, numClasses, tokens } = options;
  const [xField, yField] = fields;
  const layout = sampleLayout(shape.slice(1), inputShape, xField);
  checkLabels(y, numClasses, yField);
  assertFiniteInputs(x, shape, xField);
  const values = tokens ? tokenIds(x, shape, xField, tokens) : x;
  const rowSize = shapeSize(inputShape);
  const channels = inputShape[inputShape.length - 1] ?? 1;
  const split = (rows: Int32Array): Split => {
    const picked = gatherRows(values, rowSize, rows);
    const gathered = layout === 'NCHW' ? channelsLast(picked, inputShape) : picked;
    return {
      x: tokens ? gathered : scale(gathered, channels, options.inputScaling, rows, xField),
      y: Int32Array.from(rows, (r) => y[r]!),
      ids: rows,
      count: rows.length,
      sampleShape: inputShape,
    };
  };
  return Object.assign(split, { layout });
}

/** A seeded random subset of [0, m) of at most `max` rows, in ascending order. */
function pick(m: number, max: number | undefined, seed: number): Int32Array {
  const all = Int32Array.from({ length: m }, (_, i) => i);
  if (max === undefined || max >= m) return all;
  return shuffleInPlace(all, seed, Stream.Subsample, 0).slice(0, max).sort();
}

/**
 * Validates a dataset against the model, subsamples, scales (or keeps token ids as int32), and
 * separates the held-out split (the dataset's test arrays, or a seeded fraction of the training
 * samples).
 */
export function prepareData(ds: Dataset, options: PrepareOptions): PreparedData {
  const { seed, tokens } = options;
  if (tokens && isSet(options.inputScaling)) {
    throw new InvalidArgumentError(`must not be set: the model takes integer token ids (${tokens.reason}), which scaling would corrupt`, 'inputScaling');
  }
  const train = source(ds.x, ds.y, ds.xShape, ['dataset.x', 'dataset.y'], options);
  const m = ds.xShape[0]!;
  if (ds.xTest && ds.yTest && ds.xTestShape) {
    const test = source(ds.xTest, ds.yTest, ds.xTestShape, ['dataset.x_test', 'dataset.y_test'], options);
    return {
      train: train(pick(m, options.maxSamples, seed)),
      heldOut: test(pick(ds.yTest.length, options.maxSamples, seed)),
      heldOutSource: 'test',
      layout: train.layout,
    };
  }
  const f = options.heldOutFraction;
  if (!(f > 0 && f < 1)) {
    throw new InvalidArgumentError(`must be in (0, 1) when the dataset has no test arrays, got ${f}`, 'heldOutFraction');
  }
  const rows = shuffleInPlace(Int32Array.from({ length: m }, (_, i) => i), seed, Stream.Subsample, 1);
  const heldCount = Math.max(1, Math.round(m * f));
  if (m - heldCount < 1) throw new InvalidArgumentError(`has only ${m} samples`, 'dataset.x');
  const trainRows = rows.slice(heldCount);
  const limit = options.maxSamples ?? trainRows.length;
  return {
    train: train(trainRows.slice(0, limit).sort()),
    heldOut: train(rows.slice(0, Math.min(heldCount, limit)).sort()),
    heldOutSource: 'train-split',
    layout: train.layout,
  };
}
