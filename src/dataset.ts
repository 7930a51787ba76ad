/**
 * The engine's input contract: what a measurement consumes, independent of where the data came
 * from (files in an object store, inline arrays in a request, generated test data).
 *
 * Types and tiny structural helpers only. Value-level conversion of raw arrays (dtype casts,
 * label checks, one-hot decoding) lives with the readers; this module must stay free of storage
 * concerns so that `src/metric` never depends on `src/storage`, and free of the engine so that
 * `src/storage` (the readers) never depends on `src/metric` (which re-exports it).
 */
import { InvalidArgumentError } from './errors.js';
import { formatShape, shapeSize } from './arrays.js';

export * from './arrays.js';

/**
 * Input values: float32 for real-valued inputs, int32 where the source array holds integers
 * (pixels, token ids). The engine decides per model: token models keep int32, others get float32.
 */
export type InputValues = Float32Array | Int32Array;

/**
 * A labelled classification data set as the engine consumes it.
 *
 * Inputs are raw values (NOT scaled: scaling is a measurement option applied later by the
 * engine), labels are int32 class indices >= 0. Image sets keep their file shape, e.g.
 * `[m, 28, 28]`: the engine adds a channel axis if the model needs one.
 */
export interface Dataset {
  /** Training inputs, `m * prod(sampleShape)` values in C order. */
  x: InputValues;
  /** `[m, ...sampleShape]`, with at least one sample axis. */
  xShape: number[];
  /** `m` class indices. */
  y: Int32Array;
  /** Optional held-out inputs; present together with `xTestShape` and `yTest`. */
  xTest?: InputValues;
  /** `[mTest, ...sampleShape]`: the same sample shape as `xShape`. */
  xTestShape?: number[];
  yTest?: Int32Array;
}

/** Number of samples (the first axis). */
export function numSamples(xShape: readonly number[]): number {
  return xShape[0] ?? 0;
}

/** The shape of one sample: `xShape` without its first axis. */
export function sampleShape(xShape: readonly number[]): number[] {
  return xShape.slice(1);
}

/** Index of the first NaN or +-Infinity in `values`, or -1. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

/**
 * Throws InvalidArgumentError naming `field` at the first non-finite input value. `source`, the
 * array before a float32 cast, tells an overflow apart from a NaN or Infinity in the data.
 */
export function assertFiniteInputs(values: InputValues, shape: readonly number[], field: string, source?: ArrayLike<number | bigint>): void {
  if (values instanceof Int32Array) return;
  const i = firstNonFinite(values);
  if (i < 0) return;
  const original = source?.[i];
  const why = typeof original === 'number' && Number.isFinite(original) ? `${original} (overflows float32)` : String(values[i]);
  throw new InvalidArgumentError(
    `inputs must be finite: value ${why} at flat index ${i} (sample ${Math.floor(i / (shapeSize(shape.slice(1)) || 1))}) of shape ${formatShape(shape)}`,
    field,
  );
}

/** What errors call each array of a data set (e.g. `data.npz:x` or `dir/train-images-idx3-ubyte.gz`). */
export interface DatasetFieldNames {
  x: string;
  y: string;
  xTest: string;
  yTest: string;
}

export const DEFAULT_FIELD_NAMES: Readonly<DatasetFieldNames> = {
  x: 'x',
  y: 'y',
  xTest: 'x_test',
  yTest: 'y_test',
};

function checkShape(shape: readonly number[] | undefined, field: string): number[] {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new InvalidArgumentError(
      `shape must be a list of non-negative integers, got ${formatShape(shape)}`,
      field,
    );
  }
  return [...(shape as readonly number[])]; // Array.isArray widened it to any[]
}

/**
 * Checks that a {@link Dataset} is structurally consistent: array lengths match their shapes,
 * there is at least one sample with at least one sample axis, labels count samples, and a test
 * split, if any, is complete and has the training sample shape. Does not look at values.
 * Throws InvalidArgumentError naming the field and the offending shape/length.
 */
export function assertDatasetShapes(
  ds: Dataset,
  names: Readonly<DatasetFieldNames> = DEFAULT_FIELD_NAMES,
): void {
  const xShape = checkShape(ds.xShape, names.x);
  if (xShape.length < 2) {
    throw new InvalidArgumentError(
      `inputs must have shape [m, ...sampleShape] with at least one sample axis, got ${formatShape(xShape)}` +
        (xShape.length === 1 ? `; reshape to [${xShape[0]}, 1]` : ''),
      names.x,
    );
  }
  const m = xShape[0] ?? 0;
  if (m === 0) throw new InvalidArgumentError(`has no samples: shape ${formatShape(xShape)}`, names.x);
  if (xShape.slice(1).some((d) => d === 0)) {
    throw new InvalidArgumentError(`sample shape has a zero-sized axis: ${formatShape(xShape)}`, names.x);
  }
  if (ds.x.length !== shapeSize(xShape)) {
    throw new InvalidArgumentError(
      `holds ${ds.x.length} values but xShape ${formatShape(xShape)} needs ${shapeSize(xShape)}`,
      names.x,
    );
  }
  if (ds.y.length !== m) {
    throw new InvalidArgumentError(`${names.x} has ${m} samples but ${names.y} has ${ds.y.length} labels`, names.y);
  }
  const present = [ds.xTest !== undefined, ds.xTestShape !== undefined, ds.yTest !== undefined];
  if (present.some((p) => p) && !present.every((p) => p)) {
    throw new InvalidArgumentError(
      `${names.xTest} and ${names.yTest} must be given together ` +
        `(got xTest: ${present[0] ? 'yes' : 'no'}, xTestShape: ${present[1] ? 'yes' : 'no'}, yTest: ${present[2] ? 'yes' : 'no'})`,
      names.xTest,
    );
  }
  if (ds.xTest && ds.xTestShape && ds.yTest) {
    const tShape = checkShape(ds.xTestShape, names.xTest);
    const s = formatShape(xShape.slice(1));
    const ts = formatShape(tShape.slice(1));
    if (tShape.length < 1 || s !== ts) {
      throw new InvalidArgumentError(
        `sample shape ${ts} (shape ${formatShape(tShape)}) differs from ${names.x}'s sample shape ${s} (shape ${formatShape(xShape)})`,
        names.xTest,
      );
    }
    if ((tShape[0] ?? 0) === 0) {
      throw new InvalidArgumentError(`has no samples: shape ${formatShape(tShape)}`, names.xTest);
    }
    if (ds.xTest.length !== shapeSize(tShape)) {
      throw new InvalidArgumentError(
        `holds ${ds.xTest.length} values but xTestShape ${formatShape(tShape)} needs ${shapeSize(tShape)}`,
        names.xTest,
      );
    }
    if (ds.yTest.length !== (tShape[0] ?? 0)) {
      throw new InvalidArgumentError(
        `${names.xTest} has ${tShape[0] ?? 0} samples but ${names.yTest} has ${ds.yTest.length} labels`,
        names.yTest,
      );
    }
  }
}
