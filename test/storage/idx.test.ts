import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

import { describe, expect, it } from 'vitest';

import { InvalidArgumentError } from '../../src/errors.js';
import { isGzip, parseIdx } from '../../src/storage/formats/idx.js';
import { caught } from '../support/errors.js';

/** A hand-built IDX file: magic 00 00 <code> <ndim>, big-endian dims, then `data` (already big-endian). */
function idx(code: number, shape: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + data.length);
  const v = new DataView(out.buffer);
  out[2] = code;
  out[3] = shape.length;
  shape.forEach((d, k) => v.setUint32(4 + 4 * k, d, false));
  out.set(data, 4 + 4 * shape.length);
  return out;
}

/** Big-endian bytes of `values` written with a DataView setter of `size` bytes. */
function be(values: number[], size: number, set: (v: DataView, o: number, x: number) => void): Uint8Array {
  const out = new Uint8Array(values.length * size);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => set(v, i * size, x));
  return out;
}


const IMAGES = idx(0x08, [3, 2, 2], new Uint8Array([0, 1, 2, 3, 10, 11, 12, 13, 250, 251, 252, 255]));
const LABELS = idx(0x08, [3], new Uint8Array([9, 0, 4]));

describe('IDX', () => {
  it.each([
    ['plain', (b: Uint8Array) => b],
    ['gzipped', (b: Uint8Array) => new Uint8Array(gzipSync(b))],
  ])('reads %s MNIST-style images (0x00000803) and labels (0x00000801)', (_, wrap) => {
    const images = parseIdx(wrap(IMAGES), 'train-images-idx3-ubyte');
    expect(images.shape).toEqual([3, 2, 2]);
    expect(images.dtype).toBe('uint8');
    expect(Array.from(images.data as Uint8Array)).toEqual([0, 1, 2, 3, 10, 11, 12, 13, 250, 251, 252, 255]);
    const labels = parseIdx(wrap(LABELS), 'train-labels-idx1-ubyte');
    expect(labels.shape).toEqual([3]);
    expect(Array.from(labels.data as Uint8Array)).toEqual([9, 0, 4]);
  });

  it('detects gzip by magic, not by name', () => {
    expect(isGzip(gzipSync(LABELS))).toBe(true);
    expect(isGzip(LABELS)).toBe(false);
    expect(Array.from(parseIdx(gzipSync(LABELS), 'labels-without-gz-suffix').data as Uint8Array)).toEqual([9, 0, 4]);
  });

  it('reads every IDX dtype, converting from big-endian', () => {
    const cases: [number, string, number[], Uint8Array][] = [
      [0x09, 'int8', [-128, -1, 127], new Uint8Array([0x80, 0xff, 0x7f])],
      [0x0b, 'int16', [-2, 258, 32767], be([-2, 258, 32767], 2, (v, o, x) => v.setInt16(o, x, false))],
      [0x0c, 'int32', [-5, 1 << 20, 7], be([-5, 1 << 20, 7], 4, (v, o, x) => v.setInt32(o, x, false))],
      [0x0d, 'float32', [1.5, -0.25, 2 ** 40], be([1.5, -0.25, 2 ** 40], 4, (v, o, x) => v.setFloat32(o, x, false))],
      [0x0e, 'float64', [Math.PI, -1e300, 0], be([Math.PI, -1e300, 0], 8, (v, o, x) => v.setFloat64(o, x, false))],
    ];
    for (const [code, dtype, values, data] of cases) {
      const a = parseIdx(gzipSync(idx(code, [1, 3], data)), `t-${dtype}`);
      expect(a.dtype, dtype).toBe(dtype);
      expect(a.shape, dtype).toEqual([1, 3]);
      expect(Array.from(a.data as ArrayLike<number>), dtype).toEqual(values);
    }
  });

  it('rejects bad magic, truncated and oversized files, and corrupt gzip, naming the file', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['short', new Uint8Array([0, 0, 8]), /only 3 bytes, shorter than the 4-byte magic/],
      ['magic', idx(0x07, [3], new Uint8Array(3)), /magic 0x00000701 is not 0x0000TTDD/],
      ['npy', new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]), /magic 0x934e554d/],
      ['ndim0', new Uint8Array([0, 0, 8, 0]), /magic 0x00000800/],
      ['header', IMAGES.subarray(0, 10), /truncated IDX header: 3 dimensions need 16 header bytes, the file has 10/],
      ['data', IMAGES.subarray(0, IMAGES.length - 1), /truncated IDX data: shape \[3, 2, 2\] of uint8 needs 12 bytes after the header, the file holds 11/],
      ['extra', new Uint8Array([...LABELS, 1]), /oversized IDX data: shape \[3\] of uint8 needs 3 bytes after the header, the file holds 4/],
      ['gzip', gzipSync(IMAGES).subarray(0, 20), /corrupt or truncated gzip data/],
    ];
    for (const [label, bytes, re] of cases) {
      const err = caught(() => parseIdx(bytes, `${label}-idx`));
      expect(err, label).toBeInstanceOf(InvalidArgumentError);
      expect(err.message.startsWith(`${label}-idx: `), label).toBe(true);
      expect(err.message, label).toMatch(re);
    }
  });

  const FASHION = '/usr/share/datasets/fashion-mnist';
  // The Debian package dataset-fashion-mnist (installed by .ci/run and the README's setup).
  it(
    `reads the real Fashion-MNIST test labels from ${FASHION}`,
    () => {
      const labels = parseIdx(new Uint8Array(readFileSync(`${FASHION}/t10k-labels-idx1-ubyte.gz`)), 't10k-labels-idx1-ubyte.gz');
      expect(labels.shape).toEqual([10_000]);
      const counts = new Array<number>(10).fill(0);
      for (const l of labels.data as Uint8Array) counts[l] = (counts[l] ?? 0) + 1;
      expect(counts).toEqual(new Array<number>(10).fill(1000));
    },
  );
});
