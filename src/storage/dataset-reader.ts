/**
 * Reads a {@link Dataset} from an {@link ObjectStore}: an .npz archive or a folder of IDX files
 * (MNIST / Fashion-MNIST layout), converting inputs to raw int32 or float32 and labels to int32 class
 * indices, and validating both.
 */
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { byteLimited } from './byte-limited.js';
import {
  assertDatasetShapes,
  assertFiniteInputs,
  dtypeOf,
  formatShape,
  type Dataset,
  type DatasetFieldNames,
  type InputValues,
  type NumericArray,
} from '../dataset.js';
import { parseIdx } from './formats/idx.js';
import type { ArrayLimits } from './formats/npy.js';
import { parseNpz } from './formats/npz.js';
import { keyBasename, type ObjectStore } from './store.js';

/** The raw arrays of a data set, before conversion. */
export interface DatasetArrays {
  x: NumericArray;
  y: NumericArray;
  xTest?: NumericArray;
  yTest?: NumericArray;
}

/** Bounds of {@link readDataset}; an absent bound is no bound (the default, for library and CLI use). */
export interface ReadDatasetOptions {
  /**
   * Bytes: of the objects read (each object's size is asked before it is read; they count
   * together), of the arrays they hold once decompressed (an .npz's declared uncompressed sizes
   * together, checked before inflating; a gzipped IDX file while it inflates), and of each array
   * as its header declares it (shape x dtype), before the array is allocated.
   */
  maxBytes?: number;
  /** Samples: the first axis of each array, checked on its header before it is allocated. */
  maxSamples?: number;
  /** What byte-limit errors name (e.g. the request field `dataset_uri`); the object's key by default. */
  subject?: string;
}


const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);

/**
 * Converts inputs to raw values (no scaling): integer and bool arrays to int32 (they may be token
 * ids; the engine makes floats of them for models that take floats), float arrays to float32,
 * checked finite. `name` names the array in errors (e.g. `data.npz:x`). An int32 or float32
 * source is returned as is (not copied).
 */
export function toInputValues(array: NumericArray, name: string): InputValues {
  const src = array.data;
  if (src instanceof Float32Array || src instanceof Float64Array) {
    const out = src instanceof Float32Array ? src : Float32Array.from(src);
    assertFiniteInputs(out, array.shape, name, src);
    return out;
  }
  if (src instanceof Int32Array) return src;
  const out = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (v > INT32_MAX || v < INT32_MIN) {
      throw new InvalidArgumentError(
        `integer inputs must fit int32: value ${v} at flat index ${i} (dtype ${dtypeOf(array)}); store them as float32 if they are not token ids`,
        name,
      );
    }
    out[i] = Number(v);
  }
  return out;
}

/**
 * Converts labels to int32 class indices. Accepts shape `[m]` or `[m, 1]` of integer values
 * (integer-valued floats included) >= 0, or one-hot rows `[m, C]` (C > 1, every row all 0 but
 * a single 1), which become the index of the 1. Rejects NaN, non-integers, negatives and values
 * above 2^31-1, naming the array (`name`), the index and the value.
 */
export function toInt32Labels(array: NumericArray, name: string): Int32Array {
  const { shape, data } = array;
  if (shape.length === 2 && (shape[1] ?? 0) > 1) return decodeOneHot(array, name);
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) {
    throw new InvalidArgumentError(
      `labels must have shape [m], [m, 1] or one-hot [m, classes], got ${formatShape(shape)}`,
      name,
    );
  }
  const out = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number | bigint;
    let bad: string | undefined;
    if (typeof v === 'number') {
      if (Number.isNaN(v)) bad = 'NaN';
      else if (!Number.isInteger(v)) bad = `non-integer label ${v}`;
    }
    if (bad === undefined && v < 0) bad = `negative label ${v}`;
    if (bad === undefined && v > INT32_MAX) bad = `label ${v} exceeds 2^31-1`;
    if (bad !== undefined) {
      throw new InvalidArgumentError(
        `labels must be integer class indices >= 0: ${bad} at index ${i} (dtype ${dtypeOf(array)})`,
        name,
      );
    }
    out[i] = Number(v);
  }
  return out;
}

function decodeOneHot(array: NumericArray, name: string): Int32Array {
  const m = array.shape[0] ?? 0;
  const c = array.shape[1] ?? 0;
  const out = new Int32Array(m);
  const d = array.data;
  for (let r = 0; r < m; r++) {
    let hot = -1;
    for (let k = 0; k < c; k++) {
      const v = Number(d[r * c + k]);
      if (v === 1 && hot < 0) hot = k;
      else if (v !== 0) {
        const row = Array.from(d.subarray(r * c, Math.min((r + 1) * c, r * c + 12)) as ArrayLike<number | bigint>, (x) => String(x));
        throw new InvalidArgumentError(
          `labels of shape ${formatShape(array.shape)} must be class indices or one-hot rows (a single 1, else 0), ` +
            `but row ${r} is [${row.join(', ')}${c > 12 ? ', ...' : ''}]`,
          name,
        );
      }
    }
    if (hot < 0) {
      throw new InvalidArgumentError(
        `labels of shape ${formatShape(array.shape)} look one-hot but row ${r} has no 1`,
        name,
      );
    }
    out[r] = hot;
  }
  return out;
}

/**
 * Converts and validates raw arrays into a {@link Dataset}: int32 or finite float32 inputs, int32 labels,
 * matching lengths, a complete test split with x's sample shape. `names` name the arrays in
 * errors (e.g. `data.npz:x`).
 */
export function datasetFromArrays(arrays: DatasetArrays, names: DatasetFieldNames): Dataset {
  const { x, y, xTest, yTest } = arrays;
  if ((xTest === undefined) !== (yTest === undefined)) {
    const [have, missing] = xTest ? [names.xTest, names.yTest] : [names.yTest, names.xTest];
    throw new InvalidArgumentError(`${have} is present but ${missing} is missing; give both or neither`, missing);
  }
  // Shape checks first (cheap, and they give the clearest messages), then values.
  const yLen = y.shape[0] ?? 0;
  if ((x.shape[0] ?? 0) !== yLen || y.shape.length === 0) {
    throw new InvalidArgumentError(
      `${names.x} has ${x.shape[0] ?? 0} samples (shape ${formatShape(x.shape)}) but ${names.y} has ${y.shape.length === 0 ? 'a scalar' : `${yLen} labels`} (shape ${formatShape(y.shape)})`,
      names.y,
    );
  }
  if (xTest && yTest && (xTest.shape[0] ?? 0) !== (yTest.shape[0] ?? 0)) {
    throw new InvalidArgumentError(
      `${names.xTest} has ${xTest.shape[0] ?? 0} samples (shape ${formatShape(xTest.shape)}) but ${names.yTest} has ${yTest.shape[0] ?? 0} labels (shape ${formatShape(yTest.shape)})`,
      names.yTest,
    );
  }
  const ds: Dataset = {
    x: toInputValues(x, names.x),
    xShape: [...x.shape],
    y: toInt32Labels(y, names.y),
  };
  if (xTest && yTest) {
    ds.xTest = toInputValues(xTest, names.xTest);
    ds.xTestShape = [...xTest.shape];
    ds.yTest = toInt32Labels(yTest, names.yTest);
  }
  assertDatasetShapes(ds, names);
  return ds;
}

const IDX_FILES = {
  x: /^train-images[-.]idx\d-ubyte(\.gz)?$/,
  y: /^train-labels[-.]idx1-ubyte(\.gz)?$/,
  xTest: /^t10k-images[-.]idx\d-ubyte(\.gz)?$/,
  yTest: /^t10k-labels[-.]idx1-ubyte(\.gz)?$/,
} as const;

const IDX_EXPECTED: Record<keyof typeof IDX_FILES, string> = {
  x: 'train-images-idx3-ubyte[.gz]',
  y: 'train-labels-idx1-ubyte[.gz]',
  xTest: 't10k-images-idx3-ubyte[.gz]',
  yTest: 't10k-labels-idx1-ubyte[.gz]',
};

function describeFound(keys: string[]): string {
  if (keys.length === 0) return 'nothing';
  const shown = keys.slice(0, 12).join(', ');
  return keys.length > 12 ? `${shown}, ... (${keys.length} objects)` : shown;
}

/**
 * Reads a data set from `store`.
 *
 * - `key` ending in `.npz`: arrays `x`, `y` and optionally `x_test`, `y_test` (Keras-style
 *   `x_train`/`y_train` are accepted for `x`/`y`). Missing `x` or `y` -> InvalidArgumentError
 *   listing the arrays found.
 * - otherwise `key` is a folder prefix holding IDX files: `train-images-idx3-ubyte(.gz)`,
 *   `train-labels-idx1-ubyte(.gz)` and optionally `t10k-images-idx3-ubyte(.gz)` with
 *   `t10k-labels-idx1-ubyte(.gz)` (found with `store.list`; an uncompressed file wins over its
 *   .gz twin). None there -> NotFoundError listing what the prefix holds.
 *
 * Inputs stay raw (no scaling; int32 from integer arrays, else float32; image arrays keep their
 * `[m, h, w]` shape), labels int32
 * class indices (one-hot rows are decoded). Every validation error is an InvalidArgumentError
 * naming the file/array and the offending value or shape; a missing object is a NotFoundError.
 * Beyond `options` (see {@link ReadDatasetOptions}) it is a ResourceExhaustedError naming the
 * object or array and the numbers, raised before the data is read, inflated or allocated.
 */
export async function readDataset(store: ObjectStore, key: string, options: ReadDatasetOptions = {}): Promise<Dataset> {
  const limits: ArrayLimits = {};
  if (options.maxBytes !== undefined) limits.maxBytes = options.maxBytes;
  if (options.maxSamples !== undefined) limits.maxSamples = options.maxSamples;
  const bounded = options.maxBytes === undefined ? store : byteLimited(store, options.maxBytes, options.subject);
  const read = (k: string) => bounded.get(k);
  if (key.toLowerCase().endsWith('.npz')) return readNpzDataset(read, key, limits);
  return readIdxDataset(store, read, key, limits);
}

async function readNpzDataset(read: (key: string) => Promise<Uint8Array>, key: string, limits: ArrayLimits): Promise<Dataset> {
  const arrays = parseNpz(await read(key), key, limits);
  const found = [...arrays.keys()];
  const pick = (primary: string, alias?: string): [string, NumericArray] | undefined => {
    const a = arrays.get(primary);
    const b = alias === undefined ? undefined : arrays.get(alias);
    if (a && b) {
      throw new InvalidArgumentError(`holds both '${primary}' and '${alias}'; keep only one of them`, key);
    }
    if (a) return [primary, a];
    if (b && alias) return [alias, b];
    return undefined;
  };
  const x = pick('x', 'x_train');
  const y = pick('y', 'y_train');
  if (!x || !y) {
    const missing = [!x ? 'x' : undefined, !y ? 'y' : undefined].filter(Boolean).join(' and ');
    throw new InvalidArgumentError(
      `is missing array ${missing}: a data set .npz needs arrays x and y (optionally x_test and y_test); ` +
        `it holds ${found.length ? found.map((n) => `${n} ${formatShape(arrays.get(n)?.shape)}`).join(', ') : 'no arrays'}`,
      key,
    );
  }
  const xTest = arrays.get('x_test');
  const yTest = arrays.get('y_test');
  const names: DatasetFieldNames = {
    x: `${key}:${x[0]}`,
    y: `${key}:${y[0]}`,
    xTest: `${key}:x_test`,
    yTest: `${key}:y_test`,
  };
  const input: DatasetArrays = { x: x[1], y: y[1] };
  if (xTest) input.xTest = xTest;
  if (yTest) input.yTest = yTest;
  return datasetFromArrays(input, names);
}

async function readIdxDataset(
  store: ObjectStore,
  readObject: (key: string) => Promise<Uint8Array>,
  key: string,
  limits: ArrayLimits,
): Promise<Dataset> {
  const prefix = key === '' || key.endsWith('/') ? key : `${key}/`;
  const listed = (await store.list(prefix)).filter((k) => !k.slice(prefix.length).includes('/'));
  const locate = (role: keyof typeof IDX_FILES): string | undefined => {
    const matches = listed.filter((k) => IDX_FILES[role].test(keyBasename(k)));
    // Prefer an uncompressed file over its .gz twin (`gunzip -k` leaves both).
    return matches.find((k) => !k.endsWith('.gz')) ?? matches[0];
  };
  const files = { x: locate('x'), y: locate('y'), xTest: locate('xTest'), yTest: locate('yTest') };
  if (!files.x && !files.y) {
    if (key !== '' && !key.endsWith('/') && (await store.exists(key))) {
      throw new InvalidArgumentError(
        'unsupported data set format: expected an .npz file (arrays x, y[, x_test, y_test]) or a folder of IDX files ' +
          '(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz])',
        key,
      );
    }
    throw new NotFoundError(
      `no data set here: expected an .npz file or a folder holding ${IDX_EXPECTED.x} and ${IDX_EXPECTED.y}; ` +
        `the prefix '${prefix}' holds ${describeFound(listed)}`,
      key || prefix || '(store root)',
    );
  }
  for (const [role, partner] of [
    ['x', 'y'],
    ['y', 'x'],
    ['xTest', 'yTest'],
    ['yTest', 'xTest'],
  ] as const) {
    if (files[role] && !files[partner]) {
      throw new NotFoundError(
        `${files[role]} is present but its partner ${IDX_EXPECTED[partner]} is missing; the folder holds ${describeFound(listed)}`,
        `${prefix}${IDX_EXPECTED[partner]}`,
      );
    }
  }
  const read = async (k: string | undefined): Promise<NumericArray | undefined> =>
    k === undefined ? undefined : parseIdx(await readObject(k), k, limits);
  const [x, y, xTest, yTest] = await Promise.all([read(files.x), read(files.y), read(files.xTest), read(files.yTest)]);
  const names: DatasetFieldNames = {
    x: files.x ?? 'x',
    y: files.y ?? 'y',
    xTest: files.xTest ?? 'x_test',
    yTest: files.yTest ?? 'y_test',
  };
  const input: DatasetArrays = { x: x as NumericArray, y: y as NumericArray };
  if (xTest) input.xTest = xTest;
  if (yTest) input.yTest = yTest;
  return datasetFromArrays(input, names);
}
