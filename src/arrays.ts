/**
 * N-dimensional numeric arrays as files hold them (.npy, .npz, IDX): the types and tiny helpers
 * that the storage formats and the engine share. Depends on nothing else in memometer, so the
 * storage layer can use it without depending on the engine (`src/metric`).
 */

/** The typed arrays an n-dimensional numeric array can hold. 64-bit integers stay bigint. */
export type NumericTypedArray =
  | Float32Array
  | Float64Array
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigInt64Array
  | BigUint64Array;

/**
 * Element types of a {@link NumericArray}. `bool` is stored in a Uint8Array holding 0 or 1;
 * `float16` sources are widened to `float32` on read, so it does not appear here.
 */
export type NumericDType =
  | 'float32'
  | 'float64'
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'int64'
  | 'uint64'
  | 'bool';

/**
 * A dense n-dimensional array in C (row-major) order, as read from a file.
 * `data.length` equals the product of `shape` (1 for a scalar, shape `[]`).
 */
export interface NumericArray {
  data: NumericTypedArray;
  shape: number[];
  /** The element type; when absent it is the one implied by `data`'s class (never `bool`). */
  dtype?: NumericDType;
}

/** The dtype of an array: its declared one, else the one its typed array class implies. */
export function dtypeOf(array: NumericArray): NumericDType {
  if (array.dtype) return array.dtype;
  const d = array.data;
  if (d instanceof Float32Array) return 'float32';
  if (d instanceof Float64Array) return 'float64';
  if (d instanceof Uint8Array) return 'uint8';
  if (d instanceof Int8Array) return 'int8';
  if (d instanceof Uint16Array) return 'uint16';
  if (d instanceof Int16Array) return 'int16';
  if (d instanceof Uint32Array) return 'uint32';
  if (d instanceof Int32Array) return 'int32';
  if (d instanceof BigInt64Array) return 'int64';
  return 'uint64';
}

/** Number of elements of a shape (1 for the scalar shape `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** `[60000, 28, 28]`: how messages print shapes. */
export function formatShape(shape: readonly number[] | undefined): string {
  return shape ? `[${shape.join(', ')}]` : 'undefined';
}
