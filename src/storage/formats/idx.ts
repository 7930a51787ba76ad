/**
 * The IDX format of MNIST / Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte magic
 * `00 00 <dtype> <ndim>`, `ndim` big-endian uint32 dimensions, then big-endian data in C order.
 * Files may be gzipped (detected by the 1f 8b magic, not by the name).
 *
 * Images are magic 0x00000803 (uint8, [m, rows, cols]), labels 0x00000801 (uint8, [m]).
 */
import { gunzipSync } from 'node:zlib';

import { InvalidArgumentError, ResourceExhaustedError } from '../../errors.js';
import { formatShape, shapeSize, type NumericArray, type NumericDType } from '../../arrays.js';
import { checkArrayLimits, decodeItems, type ArrayLimits } from './npy.js';
import { errorCode } from '../fs-errors.js';

const IDX_DTYPES: Record<number, { dtype: NumericDType; size: number }> = {
  0x08: { dtype: 'uint8', size: 1 },
  0x09: { dtype: 'int8', size: 1 },
  0x0b: { dtype: 'int16', size: 2 },
  0x0c: { dtype: 'int32', size: 4 },
  0x0d: { dtype: 'float32', size: 4 },
  0x0e: { dtype: 'float64', size: 8 },
};

/** Whether `bytes` start with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Gunzips `bytes`; `file` names it in errors (corrupt or truncated gzip -> InvalidArgumentError).
 * Output beyond `maxBytes` stops the inflation: ResourceExhaustedError naming the limit.
 */
export function gunzip(bytes: Uint8Array, file: string, maxBytes?: number): Uint8Array {
  try {
    const buf = gunzipSync(bytes, maxBytes === undefined ? {} : { maxOutputLength: Math.max(1, maxBytes) });
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    const code = errorCode(e);
    const msg = e instanceof Error ? e.message : String(e);
    if (code === 'ERR_BUFFER_TOO_LARGE' && maxBytes !== undefined) {
      throw new ResourceExhaustedError(`decompresses to more than the limit of ${maxBytes} bytes`, file, { cause: e });
    }
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new ResourceExhaustedError(`decompresses to more than this process can hold: ${msg}`, file, { cause: e });
    }
    throw new InvalidArgumentError(`corrupt or truncated gzip data: ${msg}`, file, { cause: e });
  }
}

/**
 * Parses an IDX file (gzipped or not) into a C-order {@link NumericArray} in host byte order.
 * `file` is the subject of every error. The data must exactly fill the declared shape. `limits`
 * bound the gunzipped size and the declared shape (bytes, samples): ResourceExhaustedError.
 */
export function parseIdx(bytes: Uint8Array, file = 'data.idx', limits: ArrayLimits = {}): NumericArray {
  // The header is at most 4 + 4 * 255 bytes; the gunzipped data at most maxBytes more.
  const raw = isGzip(bytes) ? gunzip(bytes, file, limits.maxBytes === undefined ? undefined : limits.maxBytes + 1024) : bytes;
  if (raw.length < 4) {
    throw new InvalidArgumentError(`not an IDX file: only ${raw.length} bytes, shorter than the 4-byte magic`, file);
  }
  const magicHex = Array.from(raw.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
  const code = raw[2] as number;
  const ndim = raw[3] as number;
  const info = IDX_DTYPES[code];
  if (raw[0] !== 0 || raw[1] !== 0 || !info || ndim === 0) {
    throw new InvalidArgumentError(
      `not an IDX file: magic 0x${magicHex} is not 0x0000TTDD with a type TT in 08/09/0b/0c/0d/0e and DD >= 1 dimensions ` +
        '(MNIST images are 0x00000803, labels 0x00000801)',
      file,
    );
  }
  const dataOffset = 4 + 4 * ndim;
  if (raw.length < dataOffset) {
    throw new InvalidArgumentError(`truncated IDX header: ${ndim} dimensions need ${dataOffset} header bytes, the file has ${raw.length}`, file);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const shape: number[] = [];
  for (let k = 0; k < ndim; k++) shape.push(view.getUint32(4 + 4 * k, false));
  checkArrayLimits(shape, info.size, info.dtype, file, limits);
  const count = shapeSize(shape);
  const need = count * info.size;
  const have = raw.length - dataOffset;
  if (have !== need) {
    throw new InvalidArgumentError(
      `${have < need ? 'truncated' : 'oversized'} IDX data: shape ${formatShape(shape)} of ${info.dtype} needs ${need} bytes after the header, the file holds ${have}`,
      file,
    );
  }
  const data = decodeItems(raw.subarray(dataOffset), info.dtype, info.size, count, false);
  return { data, shape, dtype: info.dtype };
}
