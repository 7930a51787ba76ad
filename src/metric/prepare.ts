import { InvalidArgumentError } from '../errors.js';
import { formatShape, shapeSize, type Dataset } from './dataset.js';
import { shuffleInPlace, Stream } from './random.js';
import { gatherRows } from './train/batches.js';

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
  x: Float32Array;
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
}

export interface PrepareOptions {
  /** The model's input shape without the batch axis. */
  inputShape: number[];
  numClasses: number;
  maxSamples?: number;
  inputScaling?: InputScaling;
  /** Fraction of training samples held out when the dataset has no test arrays. */
  heldOutFraction: number;
  seed: number;
}

const squeeze = (shape: number[]) => shape.filter((d) => d !== 1).join(',');

/** The dataset's sample shape must match the model input up to axes of size 1. */
function checkSampleShape(sample: number[], input: number[], field: string): void {
  if (sample.join(',') === input.join(',')) return;
  if (squeeze(sample) !== squeeze(input)) {
    throw new InvalidArgumentError(
      `sample shape ${formatShape(sample)} does not match the model input shape ${formatShape(input)}`,
      field,
    );
  }
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

function scale(x: Float32Array, channels: number, s: InputScaling | undefined): Float32Array {
  if (!s) return x;
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
  return out;
}

function split(x: Float32Array, y: Int32Array, rows: Int32Array, inputShape: number[], s?: InputScaling): Split {
  const rowSize = shapeSize(inputShape);
  return {
    x: scale(gatherRows(x, rowSize, rows), inputShape[inputShape.length - 1] ?? 1, s),
    y: Int32Array.from(rows, (r) => y[r]!),
    ids: rows,
    count: rows.length,
    sampleShape: inputShape,
  };
}

/** A seeded random subset of [0, m) of at most `max` rows, in ascending order. */
function pick(m: number, max: number | undefined, seed: number): Int32Array {
  const all = Int32Array.from({ length: m }, (_, i) => i);
  if (max === undefined || max >= m) return all;
  return shuffleInPlace(all, seed, Stream.Subsample, 0).slice(0, max).sort();
}

/**
 * Validates a dataset against the model, subsamples, scales, and separates the held-out split
 * (the dataset's test arrays, or a seeded fraction of the training samples).
 */
export function prepareData(ds: Dataset, options: PrepareOptions): PreparedData {
  const { inputShape, numClasses, seed } = options;
  checkSampleShape(ds.xShape.slice(1), inputShape, 'dataset.x');
  checkLabels(ds.y, numClasses, 'dataset.y');
  const m = ds.xShape[0]!;
  if (ds.xTest && ds.yTest && ds.xTestShape) {
    checkSampleShape(ds.xTestShape.slice(1), inputShape, 'dataset.x_test');
    checkLabels(ds.yTest, numClasses, 'dataset.y_test');
    return {
      train: split(ds.x, ds.y, pick(m, options.maxSamples, seed), inputShape, options.inputScaling),
      heldOut: split(ds.xTest, ds.yTest, pick(ds.yTest.length, options.maxSamples, seed), inputShape, options.inputScaling),
      heldOutSource: 'test',
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
    train: split(ds.x, ds.y, trainRows.slice(0, limit).sort(), inputShape, options.inputScaling),
    heldOut: split(ds.x, ds.y, rows.slice(0, Math.min(heldCount, limit)).sort(), inputShape, options.inputScaling),
    heldOutSource: 'train-split',
  };
}
