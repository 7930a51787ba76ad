/**
 * Values of ONNX TensorProtos (initializers, Constant nodes): float tensors for weights, integer
 * tensors for shapes and axes. Data may sit in `raw_data` (little-endian bytes, at any offset of
 * the decoded buffer: copied before viewing), in the typed repeated fields, or in an external
 * file next to the model (models > 2 GB).
 */
import { InvalidArgumentError } from '../../../errors.js';
import { TensorProto, TensorProto_DataLocation, TensorProto_DataType } from '../../../gen/onnx/onnx.js';

/** Reads `length` bytes at `offset` of a file next to the model (all of it when length is undefined). */
export type ExternalReader = (location: string, offset: number, length: number | undefined) => Promise<Uint8Array>;

export interface OnnxTensor {
  dims: number[];
  /** float32 for floating types; exact numbers for integer types. */
  values: Float32Array | number[];
}

const FLOAT_TYPES = new Set([TensorProto_DataType.FLOAT, TensorProto_DataType.DOUBLE, TensorProto_DataType.FLOAT16]);

function aligned(bytes: Uint8Array): DataView {
  // A copy at offset 0 of its own buffer (Buffer#slice would only make a view).
  const copy = new Uint8Array(bytes);
  return new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function fromRaw(type: TensorProto_DataType, bytes: Uint8Array, count: number, name: string): Float32Array | number[] {
  const view = aligned(bytes);
  const width: Partial<Record<number, number>> = {
    [TensorProto_DataType.FLOAT]: 4, [TensorProto_DataType.DOUBLE]: 8, [TensorProto_DataType.FLOAT16]: 2,
    [TensorProto_DataType.INT64]: 8, [TensorProto_DataType.INT32]: 4, [TensorProto_DataType.INT8]: 1,
    [TensorProto_DataType.UINT8]: 1, [TensorProto_DataType.BOOL]: 1, [TensorProto_DataType.INT16]: 2,
  };
  const size = width[type];
  if (size === undefined) throw new InvalidArgumentError(`tensor ${name} has data type ${TensorProto_DataType[type] ?? type}, which memometer cannot read`, 'model');
  if (view.byteLength !== count * size) {
    throw new InvalidArgumentError(`tensor ${name} holds ${view.byteLength} bytes; its shape needs ${count * size}`, 'model');
  }
  const read = (i: number): number => {
    switch (type) {
      case TensorProto_DataType.FLOAT: return view.getFloat32(i * 4, true);
      case TensorProto_DataType.DOUBLE: return view.getFloat64(i * 8, true);
      case TensorProto_DataType.FLOAT16: return halfToFloat(view.getUint16(i * 2, true));
      case TensorProto_DataType.INT64: return Number(view.getBigInt64(i * 8, true));
      case TensorProto_DataType.INT32: return view.getInt32(i * 4, true);
      case TensorProto_DataType.INT16: return view.getInt16(i * 2, true);
      case TensorProto_DataType.INT8: return view.getInt8(i);
      default: return view.getUint8(i);
    }
  };
  if (type === TensorProto_DataType.FLOAT) return new Float32Array(view.buffer, view.byteOffset, count);
  const out = Array.from({ length: count }, (_, i) => read(i));
  return FLOAT_TYPES.has(type) ? Float32Array.from(out) : out;
}

async function externalBytes(t: TensorProto, read: ExternalReader | undefined, name: string): Promise<Uint8Array> {
  const entry = (key: string) => t.externalData.find((e) => e.key === key)?.value;
  const location = entry('location');
  if (!location) throw new InvalidArgumentError(`tensor ${name} is stored externally but names no location`, 'model');
  if (!read) throw new InvalidArgumentError(`tensor ${name} is stored in external file ${location}, which cannot be read here`, 'model');
  const offset = Number(entry('offset') ?? 0);
  const length = entry('length');
  return read(location, offset, length === undefined ? undefined : Number(length));
}

/** The values of `t`, whatever field holds them. */
export async function tensorValues(t: TensorProto, read?: ExternalReader): Promise<OnnxTensor> {
  const name = t.name ?? '(unnamed)';
  const dims = t.dims.map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const type: TensorProto_DataType = t.dataType ?? TensorProto_DataType.UNDEFINED;
  if (t.dataLocation === TensorProto_DataLocation.EXTERNAL) {
    return { dims, values: fromRaw(type, await externalBytes(t, read, name), count, name) };
  }
  if (t.rawData && t.rawData.length > 0) return { dims, values: fromRaw(type, t.rawData, count, name) };
  const typed: number[] =
    t.floatData.length ? t.floatData : t.doubleData.length ? t.doubleData : t.int64Data.length ? t.int64Data.map(Number) : t.int32Data;
  if (typed.length !== count) {
    throw new InvalidArgumentError(`tensor ${name} holds ${typed.length} values; its shape ${JSON.stringify(dims)} needs ${count}`, 'model');
  }
  if (type === TensorProto_DataType.FLOAT16) return { dims, values: Float32Array.from(typed, halfToFloat) };
  return { dims, values: FLOAT_TYPES.has(type) ? Float32Array.from(typed) : [...typed] };
}

/** A float32 initializer as written back: raw little-endian bytes, the other data fields cleared. */
export function withFloatData(t: TensorProto, values: Float32Array): TensorProto {
  return {
    ...t,
    dataType: TensorProto_DataType.FLOAT,
    rawData: Buffer.from(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
    floatData: [],
    doubleData: [],
    dataLocation: TensorProto_DataLocation.DEFAULT,
    externalData: [],
  };
}

/** Transposes a row-major array of shape `dims` by `perm` (numpy's transpose). */
export function transpose(values: Float32Array, dims: number[], perm: number[]): Float32Array {
  const outDims = perm.map((p) => dims[p]!);
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const out = new Float32Array(values.length);
  const index = new Array<number>(dims.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let source = 0;
    for (let a = 0; a < perm.length; a++) source += index[a]! * strides[perm[a]!]!;
    out[o] = values[source]!;
    for (let a = perm.length - 1; a >= 0; a--) {
      if (++index[a]! < outDims[a]!) break;
      index[a] = 0;
    }
  }
  return out;
}
