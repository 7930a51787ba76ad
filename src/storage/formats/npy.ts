/**
 * NumPy `.npy` reading and writing.
 *
 * Reads format versions 1.0, 2.0 and 3.0; dtypes u1 i1 b1 (i|u)(2|4|8) f2 f4 f8 in either byte
 * order (big-endian data is converted to host order, float16 is widened to float32); C and
 * Fortran order (Fortran data is transposed to C order). Object arrays (pickles), strings,
 * structured, complex and datetime dtypes are rejected with InvalidArgumentError.
 * Writes C-order little-endian arrays of every {@link NumericDType}.
 */
import { InvalidArgumentError, ResourceExhaustedError } from '../../errors.js';
import { dtypeOf, formatShape, shapeSize, type NumericArray, type NumericDType, type NumericTypedArray } from '../../arrays.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface DTypeInfo {
  dtype: NumericDType | 'float16';
  size: number;
}

/** kind + itemsize -> element type, e.g. `f4` -> float32. */
const KINDS: Record<string, DTypeInfo> = {
  b1: { dtype: 'bool', size: 1 },
  u1: { dtype: 'uint8', size: 1 },
  i1: { dtype: 'int8', size: 1 },
  u2: { dtype: 'uint16', size: 2 },
  i2: { dtype: 'int16', size: 2 },
  u4: { dtype: 'uint32', size: 4 },
  i4: { dtype: 'int32', size: 4 },
  u8: { dtype: 'uint64', size: 8 },
  i8: { dtype: 'int64', size: 8 },
  f2: { dtype: 'float16', size: 2 },
  f4: { dtype: 'float32', size: 4 },
  f8: { dtype: 'float64', size: 8 },
};

const DESCR_OF: Record<NumericDType, string> = {
  bool: '|b1',
  uint8: '|u1',
  int8: '|i1',
  uint16: '<u2',
  int16: '<i2',
  uint32: '<u4',
  int32: '<i4',
  uint64: '<u8',
  int64: '<i8',
  float32: '<f4',
  float64: '<f8',
};

// ---------------------------------------------------------------------------------------------
// A parser for the Python literal the header holds: {'descr': '<f4', 'fortran_order': False,
// 'shape': (3, 4), }. Only dicts, tuples, lists, strings, integers, True/False/None.

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

class PyLiteralParser {
  private i = 0;
  constructor(
    private readonly s: string,
    private readonly name: string,
  ) {}

  private fail(what: string): never {
    throw new InvalidArgumentError(
      `malformed .npy header: ${what} at offset ${this.i} of ${JSON.stringify(this.s.trim())}`,
      this.name,
    );
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i] ?? '')) this.i++;
  }

  parseAll(): PyValue {
    const v = this.value();
    this.ws();
    if (this.i !== this.s.length) this.fail('unexpected trailing text');
    return v;
  }

  private value(): PyValue {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.dict();
    if (c === '(') return this.seq(')');
    if (c === '[') return this.seq(']');
    if (c === "'" || c === '"') return this.str();
    if (c !== undefined && /[-+0-9]/.test(c)) return this.num();
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i))?.[0];
    if (word === 'True' || word === 'False' || word === 'None') {
      this.i += word.length;
      return word === 'True' ? true : word === 'False' ? false : null;
    }
    return this.fail(word ? `unsupported expression '${word}'` : 'expected a value');
  }

  private dict(): { [k: string]: PyValue } {
    const out: { [k: string]: PyValue } = {};
    this.i++; // {
    for (;;) {
      this.ws();
      if (this.s[this.i] === '}') {
        this.i++;
        return out;
      }
      const k = this.value();
      if (typeof k !== 'string') this.fail('dict keys must be strings');
      this.ws();
      if (this.s[this.i] !== ':') this.fail("expected ':'");
      this.i++;
      out[k] = this.value();
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== '}') this.fail("expected ',' or '}'");
    }
  }

  private seq(close: string): PyValue[] {
    const out: PyValue[] = [];
    this.i++;
    for (;;) {
      this.ws();
      if (this.s[this.i] === close) {
        this.i++;
        return out;
      }
      out.push(this.value());
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== close) this.fail(`expected ',' or '${close}'`);
    }
  }

  private str(): string {
    const q = this.s[this.i];
    this.i++;
    let out = '';
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined) this.fail('unterminated string');
      this.i++;
      if (c === q) return out;
      if (c === '\\') {
        const e = this.s[this.i++];
        if (e === undefined) this.fail('unterminated string');
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
        if (e in simple) out += simple[e];
        else if (e === 'x') {
          out += String.fromCharCode(parseInt(this.s.slice(this.i, this.i + 2), 16));
          this.i += 2;
        } else out += '\\' + e;
      } else out += c;
    }
  }

  private num(): number {
    const m = /^[-+]?\d+L?/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected an integer');
    this.i += m[0].length;
    const n = Number(m[0].replace(/L$/, ''));
    if (!Number.isSafeInteger(n)) this.fail(`integer ${m[0]} is out of range`);
    return n;
  }
}

// ---------------------------------------------------------------------------------------------

/** The parsed header of a .npy file. */
export interface NpyHeader {
  version: [number, number];
  /** As written in the file, e.g. '<f4'. */
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Byte offset of the data in the file. */
  dataOffset: number;
}

/** Parses and checks the header of a .npy file; `name` (file or zip entry) is used in errors. */
export function parseNpyHeader(bytes: Uint8Array, name: string): NpyHeader {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new InvalidArgumentError(
      `not a .npy file: expected the magic string \\x93NUMPY, got ${bytes.length < 6 ? `only ${bytes.length} bytes` : `bytes ${hex(bytes.subarray(0, 6))}`}`,
      name,
    );
  }
  const major = bytes[6] ?? 0;
  const minor = bytes[7] ?? 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new InvalidArgumentError(`truncated .npy header (${bytes.length} bytes)`, name);
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new InvalidArgumentError(`unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`, name);
  }
  const dataOffset = headerStart + headerLen;
  if (dataOffset > bytes.length) {
    throw new InvalidArgumentError(
      `truncated .npy header: it declares ${headerLen} header bytes but the file has only ${bytes.length - headerStart} after the preamble`,
      name,
    );
  }
  const headerBytes = bytes.subarray(headerStart, dataOffset);
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(headerBytes);
  const header = new PyLiteralParser(text, name).parseAll();
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new InvalidArgumentError(`malformed .npy header: expected a dict, got ${JSON.stringify(text.trim())}`, name);
  }
  const { descr, fortran_order: fortranOrder, shape } = header;
  if (Array.isArray(descr)) {
    const pickled = JSON.stringify(descr).includes('O');
    throw new InvalidArgumentError(
      `structured dtype ${JSON.stringify(descr)} is not supported${pickled ? ' (it holds Python objects)' : ''}; save plain numeric arrays`,
      name,
    );
  }
  if (typeof descr !== 'string') {
    throw new InvalidArgumentError(`malformed .npy header: 'descr' must be a string, got ${JSON.stringify(descr)}`, name);
  }
  if (typeof fortranOrder !== 'boolean') {
    throw new InvalidArgumentError(
      `malformed .npy header: 'fortran_order' must be True or False, got ${JSON.stringify(fortranOrder)}`,
      name,
    );
  }
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) {
    throw new InvalidArgumentError(
      `malformed .npy header: 'shape' must be a tuple of non-negative integers, got ${JSON.stringify(shape)}`,
      name,
    );
  }
  return { version: [major, minor], descr, fortranOrder, shape: shape as number[], dataOffset };
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

function dtypeInfo(descr: string, name: string): { info: DTypeInfo; littleEndian: boolean } {
  const m = /^([<>|=]?)([a-zA-Z])(\d*)(.*)$/.exec(descr);
  const kind = m?.[2] ?? '';
  if (kind === 'O') {
    throw new InvalidArgumentError(
      `dtype '${descr}' is an object array (a Python pickle); pickles are never loaded: save a numeric dtype`,
      name,
    );
  }
  const info = m && m[4] === '' ? KINDS[kind + m[3]] : undefined;
  if (!m || !info) {
    throw new InvalidArgumentError(
      `unsupported dtype '${descr}'; supported: bool, (u)int8/16/32/64, float16/32/64`,
      name,
    );
  }
  const order = m[1];
  if (info.size > 1 && order === '|') {
    throw new InvalidArgumentError(`dtype '${descr}' has ${info.size}-byte items but no byte order`, name);
  }
  return { info, littleEndian: order === '>' ? false : order === '=' ? HOST_LITTLE_ENDIAN : true };
}

/** Reverses the bytes of every `size`-byte item of `b`, in place. */
function byteSwap(b: Uint8Array, size: number): void {
  for (let i = 0; i + size <= b.length; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = b[lo] as number;
      b[lo] = b[hi] as number;
      b[hi] = t;
    }
  }
}

function float16ToFloat32(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const v = h[i] as number;
    const sign = v & 0x8000 ? -1 : 1;
    const exp = (v >> 10) & 0x1f;
    const frac = v & 0x3ff;
    out[i] =
      exp === 0
        ? sign * 2 ** -14 * (frac / 1024)
        : exp === 31
          ? frac
            ? NaN
            : sign * Infinity
          : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

type Indexable = { [i: number]: number | bigint; length: number };

function newLike(src: NumericTypedArray, n: number): NumericTypedArray {
  const ctor = src.constructor as new (n: number) => NumericTypedArray;
  return new ctor(n);
}

/**
 * Reorders Fortran-order (column-major) data of `shape` into C order (row-major).
 * For ndim < 2 the two orders coincide and `data` is returned as is.
 */
export function fortranToC<T extends NumericTypedArray>(data: T, shape: readonly number[]): T {
  const n = shape.length;
  const total = shapeSize(shape);
  if (n < 2 || total === 0) return data;
  const out = newLike(data, total) as T;
  const src = data as unknown as Indexable;
  const dst = out as unknown as Indexable;
  // Fortran strides: the first axis varies fastest.
  const strides = new Array<number>(n);
  let s = 1;
  for (let k = 0; k < n; k++) {
    strides[k] = s;
    s *= shape[k] as number;
  }
  const last = shape[n - 1] as number;
  const lastStride = strides[n - 1] as number;
  const idx = new Array<number>(n - 1).fill(0);
  let base = 0; // source offset of the row start for the current outer index
  for (let i = 0; i < total; i += last) {
    for (let j = 0, off = base; j < last; j++, off += lastStride) dst[i + j] = src[off] as number;
    // Advance the outer odometer (axes 0..n-2, last of them fastest in C order).
    for (let k = n - 2; k >= 0; k--) {
      idx[k] = (idx[k] as number) + 1;
      base += strides[k] as number;
      if ((idx[k] as number) < (shape[k] as number)) break;
      base -= (shape[k] as number) * (strides[k] as number);
      idx[k] = 0;
    }
  }
  return out;
}

/** Builds a typed array of `dtype` over a fresh (aligned) copy of `bytes` in host order. */
function typedArrayOf(dtype: DTypeInfo['dtype'], buf: ArrayBuffer, count: number): NumericTypedArray {
  switch (dtype) {
    case 'bool': {
      const a = new Uint8Array(buf, 0, count);
      for (let i = 0; i < a.length; i++) if (a[i] !== 0) a[i] = 1;
      return a;
    }
    case 'uint8':
      return new Uint8Array(buf, 0, count);
    case 'int8':
      return new Int8Array(buf, 0, count);
    case 'uint16':
      return new Uint16Array(buf, 0, count);
    case 'int16':
      return new Int16Array(buf, 0, count);
    case 'uint32':
      return new Uint32Array(buf, 0, count);
    case 'int32':
      return new Int32Array(buf, 0, count);
    case 'uint64':
      return new BigUint64Array(buf, 0, count);
    case 'int64':
      return new BigInt64Array(buf, 0, count);
    case 'float16':
      return float16ToFloat32(new Uint16Array(buf, 0, count));
    case 'float32':
      return new Float32Array(buf, 0, count);
    case 'float64':
      return new Float64Array(buf, 0, count);
  }
}

/**
 * Decodes raw item bytes (`count` items of `itemSize` bytes in the given byte order) into a typed
 * array in host order. Copies, so `bytes` may be unaligned. Shared with the IDX reader.
 */
export function decodeItems(
  bytes: Uint8Array,
  dtype: NumericDType | 'float16',
  itemSize: number,
  count: number,
  littleEndian: boolean,
): NumericTypedArray {
  // new Uint8Array(view) copies; Buffer#slice (a Node Buffer is a Uint8Array) would not.
  const copy = new Uint8Array(bytes.subarray(0, count * itemSize));
  if (itemSize > 1 && littleEndian !== HOST_LITTLE_ENDIAN) byteSwap(copy, itemSize);
  return typedArrayOf(dtype, copy.buffer, count);
}

/** Bounds on what a reader allocates for one array; an absent bound is no bound. */
export interface ArrayLimits {
  /** Bytes of the array's data (element count x item size). */
  maxBytes?: number;
  /** Length of the first axis (the samples of a data set array). */
  maxSamples?: number;
}

/**
 * Refuses an array, from its header alone (before anything is allocated for it), whose data
 * (`shape` x `itemSize` bytes, dtype `dtype`) or first axis is over `limits`: ResourceExhaustedError
 * naming the array (`name`) and both numbers. Shared with the IDX reader.
 */
export function checkArrayLimits(shape: readonly number[], itemSize: number, dtype: string, name: string, limits: ArrayLimits): void {
  const { maxBytes, maxSamples } = limits;
  const samples = shape[0];
  if (maxSamples !== undefined && shape.length > 0 && samples !== undefined && samples > maxSamples) {
    throw new ResourceExhaustedError(
      `shape ${formatShape(shape)} holds ${samples} samples, over the limit of ${maxSamples}`,
      name,
    );
  }
  const bytes = shapeSize(shape) * itemSize;
  if (maxBytes !== undefined && bytes > maxBytes) {
    throw new ResourceExhaustedError(
      `shape ${formatShape(shape)} of dtype '${dtype}' needs ${bytes} bytes, over the limit of ${maxBytes} bytes`,
      name,
    );
  }
}

/**
 * Checks the header at the start of `head` (the first bytes of a .npy file) against `limits`
 * when `head` holds all of it; does nothing when it is cut off or malformed (the full parse
 * reports that). Lets a reader refuse an array before inflating or copying its data.
 */
export function checkNpyHeadLimits(head: Uint8Array, name: string, limits: ArrayLimits): void {
  if (limits.maxBytes === undefined && limits.maxSamples === undefined) return;
  let header: NpyHeader;
  let size: number;
  try {
    header = parseNpyHeader(head, name);
    size = dtypeInfo(header.descr, name).info.size;
  } catch {
    return;
  }
  checkArrayLimits(header.shape, size, header.descr, name, limits);
}

/**
 * Parses a .npy file into a C-order {@link NumericArray}. `name` (the file, or `file.npz:x.npy`)
 * is the subject of every error. Trailing bytes after the data are ignored, as numpy does.
 * `limits` refuse (ResourceExhaustedError) an array whose header declares more bytes or samples,
 * before its data is copied.
 */
export function parseNpy(bytes: Uint8Array, name = 'array.npy', limits: ArrayLimits = {}): NumericArray {
  const header = parseNpyHeader(bytes, name);
  const { info, littleEndian } = dtypeInfo(header.descr, name);
  checkArrayLimits(header.shape, info.size, header.descr, name, limits);
  const count = shapeSize(header.shape);
  const need = count * info.size;
  const have = bytes.length - header.dataOffset;
  if (!Number.isSafeInteger(need) || have < need) {
    throw new InvalidArgumentError(
      `truncated .npy data: shape ${formatShape(header.shape)} of dtype '${header.descr}' needs ${need} bytes, the file holds ${have}`,
      name,
    );
  }
  let data = decodeItems(bytes.subarray(header.dataOffset), info.dtype, info.size, count, littleEndian);
  if (header.fortranOrder) data = fortranToC(data, header.shape);
  const dtype: NumericDType = info.dtype === 'float16' ? 'float32' : info.dtype;
  return { data, shape: [...header.shape], dtype };
}

/**
 * Encodes an array as a C-order little-endian .npy file (format 1.0, or 2.0 when the header
 * needs it). The dtype is `array.dtype`, else the one the typed array implies.
 */
export function encodeNpy(array: NumericArray, name = 'array.npy'): Uint8Array {
  const dtype = dtypeOf(array);
  const descr = DESCR_OF[dtype];
  if (!descr) throw new InvalidArgumentError(`cannot write dtype ${JSON.stringify(dtype)}`, name);
  const shape = array.shape;
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new InvalidArgumentError(`shape must be a list of non-negative integers, got ${formatShape(shape)}`, name);
  }
  if (array.data.length !== shapeSize(shape)) {
    throw new InvalidArgumentError(
      `holds ${array.data.length} values but shape ${formatShape(shape)} needs ${shapeSize(shape)}`,
      name,
    );
  }
  const itemSize = array.data.BYTES_PER_ELEMENT;
  if (itemSize !== (KINDS[descr.slice(1)]?.size ?? -1)) {
    throw new InvalidArgumentError(
      `dtype ${dtype} needs ${descr.slice(2)}-byte items but the data is a ${array.data.constructor.name}`,
      name,
    );
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  let version = 1;
  let preamble = 10;
  if (dict.length + 1 + preamble > 0xffff) {
    version = 2;
    preamble = 12;
  }
  const pad = (64 - ((preamble + dict.length + 1) % 64)) % 64;
  dict = dict + ' '.repeat(pad) + '\n';
  const dataBytes = new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  const out = new Uint8Array(preamble + dict.length + dataBytes.length);
  out.set(MAGIC, 0);
  out[6] = version;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, dict.length, true);
  else view.setUint32(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[preamble + i] = dict.charCodeAt(i);
  out.set(dataBytes, preamble + dict.length);
  if (!HOST_LITTLE_ENDIAN && itemSize > 1) byteSwap(out.subarray(preamble + dict.length), itemSize);
  if (dtype === 'bool') {
    const d = out.subarray(preamble + dict.length);
    for (let i = 0; i < d.length; i++) if (d[i] !== 0) d[i] = 1;
  }
  return out;
}
