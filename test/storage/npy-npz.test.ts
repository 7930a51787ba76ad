import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { deflateRawSync } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError } from '../../src/errors.js';
import type { NumericArray } from '../../src/metric/dataset.js';
import { FileStore } from '../../src/storage/file-store.js';
import { encodeNpy, fortranToC, parseNpy, parseNpyHeader } from '../../src/storage/formats/npy.js';
import { crc32, encodeNpz, listZipEntries, parseNpz } from '../../src/storage/formats/npz.js';
import { caught } from '../support/errors.js';

// Files written by numpy 2.4.6 (np.save / np.savez / np.savez_compressed), embedded so the tests
// check a foreign writer without needing Python. numpy forces ZIP64 extra fields into every local
// header of an .npz; the central directory holds the real sizes.
const NUMPY_SAVEZ = // x = arange(6, uint8).reshape(2, 3), y = int64 [1, 0]
  'UEsDBC0AAAAAAAAAIQB+ntfP//////////8FABQAeC5ucHkBABAAhgAAAAAAAACGAAAAAAAAAJNOVU1QWQEAdgB7J2Rlc2NyJzogJ3x1MScsICdmb3J0cmFuX29yZGVyJzogRmFsc2UsICdzaGFwZSc6ICgyLCAzKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAKAAECAwQFUEsDBC0AAAAAAAAAIQBx+zmr//////////8FABQAeS5ucHkBABAAkAAAAAAAAACQAAAAAAAAAJNOVU1QWQEAdgB7J2Rlc2NyJzogJzxpOCcsICdmb3J0cmFuX29yZGVyJzogRmFsc2UsICdzaGFwZSc6ICgyLCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAKAQAAAAAAAAAAAAAAAAAAAFBLAQItAy0AAAAAAAAAIQB+ntfPhgAAAIYAAAAFAAAAAAAAAAAAAACAAQAAAAB4Lm5weVBLAQItAy0AAAAAAAAAIQBx+zmrkAAAAJAAAAAFAAAAAAAAAAAAAACAAb0AAAB5Lm5weVBLBQYAAAAAAgACAGYAAACEAQAAAAA=';
const NUMPY_SAVEZ_COMPRESSED = // x = arange(6, float32).reshape(2, 3) / 4, y = int64 [2, 1]
  'UEsDBC0AAAAIAAAAIQAKnACk//////////8FABQAeC5ucHkBABAAmAAAAAAAAABWAAAAAAAAAJvsF+obEMnIUMZQrZ6SWpxcpG6loG6TZqKuo6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GkY6CsaaOgq1CmQDLgYwaLADEvYMDA5A3ADEC+wBUEsDBC0AAAAIAAAAIQAdT1tO//////////8FABQAeS5ucHkBABAAkAAAAAAAAABKAAAAAAAAAJvsF+obEMnIUMZQrZ6SWpxcpG6loG6TaaGuo6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GkY6mjoKtQoUAC4mBghghNIAUEsBAi0DLQAAAAgAAAAhAAqcAKRWAAAAmAAAAAUAAAAAAAAAAAAAAIABAAAAAHgubnB5UEsBAi0DLQAAAAgAAAAhAB1PW05KAAAAkAAAAAUAAAAAAAAAAAAAAIABjQAAAHkubnB5UEsFBgAAAAACAAIAZgAAAA4BAAAAAA==';
const NUMPY_FORTRAN_BIG_ENDIAN = // np.asfortranarray(np.arange(24, dtype='>i4').reshape(2, 3, 4))
  'k05VTVBZAQB2AHsnZGVzY3InOiAnPmk0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAADAAAAAQAAAAQAAAACAAAABQAAAABAAAADQAAAAUAAAARAAAACQAAABUAAAACAAAADgAAAAYAAAASAAAACgAAABYAAAADAAAADwAAAAcAAAATAAAACwAAABc=';
const NUMPY_OBJECT_PICKLE = // np.array([{'a': 1}, None], dtype=object), saved with allow_pickle=True
  'k05VTVBZAQB2AHsnZGVzY3InOiAnfE8nLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAqABJWUAAAAAAAAAIwWbnVtcHkuX2NvcmUubXVsdGlhcnJheZSMDF9yZWNvbnN0cnVjdJSTlIwFbnVtcHmUjAduZGFycmF5lJOUSwCFlEMBYpSHlFKUKEsBSwKFlGgDjAVkdHlwZZSTlIwCTziUiYiHlFKUKEsDjAF8lE5OTkr/////Sv////9LP3SUYoldlCh9lIwBYZRLAXNOZXSUYi4=';

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** A .npy file with a hand-written header (version 1.0 unless told), padded to 64 bytes. */
function npyWithHeader(dict: string, data: Uint8Array, major = 1): Uint8Array {
  const pre = major === 1 ? 10 : 12;
  const padded = dict + ' '.repeat((64 - ((pre + dict.length + 1) % 64)) % 64) + '\n';
  const header = new TextEncoder().encode(padded);
  const out = new Uint8Array(pre + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const v = new DataView(out.buffer);
  if (major === 1) v.setUint16(8, header.length, true);
  else v.setUint32(8, header.length, true);
  out.set(header, pre);
  out.set(data, pre + header.length);
  return out;
}


const SAMPLES: [string, NumericArray][] = [
  ['float32', { data: new Float32Array([1.5, -2, 3.25, 1e30, -0, 7]), shape: [2, 3] }],
  ['float64', { data: new Float64Array([Math.PI, -1e300, 5e-324, 0]), shape: [2, 2] }],
  ['uint8', { data: new Uint8Array([0, 1, 254, 255]), shape: [4] }],
  ['int8', { data: new Int8Array([-128, -1, 0, 127]), shape: [1, 4] }],
  ['uint16', { data: new Uint16Array([0, 65535, 256]), shape: [3] }],
  ['int16', { data: new Int16Array([-32768, 32767, -2]), shape: [3, 1] }],
  ['uint32', { data: new Uint32Array([0, 4294967295, 65536]), shape: [3] }],
  ['int32', { data: new Int32Array([-2147483648, 2147483647, 3, 4, 5, 6]), shape: [3, 2] }],
  ['int64', { data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 42n]), shape: [3] }],
  ['uint64', { data: new BigUint64Array([0n, 2n ** 64n - 1n]), shape: [2] }],
  ['bool', { data: new Uint8Array([1, 0, 0, 1]), shape: [2, 2], dtype: 'bool' }],
  ['scalar float32', { data: new Float32Array([42]), shape: [] }],
  ['empty int32', { data: new Int32Array(0), shape: [0, 3] }],
];

describe('.npy', () => {
  it.each(SAMPLES)('round-trips %s', (_, array) => {
    const bytes = encodeNpy(array);
    expect(bytes[6]).toBe(1);
    expect(parseNpyHeader(bytes, 'a.npy').dataOffset % 64).toBe(0);
    const back = parseNpy(bytes, 'a.npy');
    expect(back.shape).toEqual(array.shape);
    expect(back.data.constructor).toBe(array.data.constructor);
    expect(Array.from(back.data as ArrayLike<number | bigint>)).toEqual(Array.from(array.data as ArrayLike<number | bigint>));
    expect(back.dtype).toBe(array.dtype ?? _.replace(/^(scalar|empty) /, ''));
  });

  it('reads from an unaligned buffer (copying)', () => {
    const bytes = encodeNpy({ data: new Float64Array([1.25, -3]), shape: [2] });
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const back = parseNpy(shifted.subarray(3), 'shifted.npy');
    expect(Array.from(back.data as Float64Array)).toEqual([1.25, -3]);
  });

  it('transposes a Fortran-order array (hand-built header) into C order', () => {
    // C-order [[0, 1, 2], [3, 4, 5]] is stored column by column: 0 3 1 4 2 5.
    const data = new Uint8Array(new Float32Array([0, 3, 1, 4, 2, 5]).buffer);
    const f = npyWithHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data);
    const a = parseNpy(f, 'f.npy');
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.data as Float32Array)).toEqual([0, 1, 2, 3, 4, 5]);
    // A 1-D Fortran array is the same as C order.
    const f1 = npyWithHeader("{'descr': '|u1', 'fortran_order': True, 'shape': (3,), }", new Uint8Array([7, 8, 9]));
    expect(Array.from(parseNpy(f1, 'f1.npy').data as Uint8Array)).toEqual([7, 8, 9]);
  });

  it('fortranToC handles 4 dimensions', () => {
    const shape = [2, 3, 4, 5];
    const c = Int32Array.from({ length: 120 }, (_, i) => i);
    // Build the Fortran layout of c: element (i,j,k,l) at i + 2j + 6k + 24l.
    const f = new Int32Array(120);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++)
        for (let k = 0; k < 4; k++)
          for (let l = 0; l < 5; l++) f[i + 2 * j + 6 * k + 24 * l] = c[((i * 3 + j) * 4 + k) * 5 + l] as number;
    expect(Array.from(fortranToC(f, shape))).toEqual(Array.from(c));
  });

  it('converts big-endian arrays (hand-built)', () => {
    const be = new Uint8Array(16);
    const v = new DataView(be.buffer);
    v.setFloat64(0, -1.5, false);
    v.setFloat64(8, 1e100, false);
    const a = parseNpy(npyWithHeader("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", be), 'be.npy');
    expect(a.dtype).toBe('float64');
    expect(Array.from(a.data as Float64Array)).toEqual([-1.5, 1e100]);
    const be16 = new Uint8Array([0x01, 0x02, 0xff, 0xfe]);
    const b = parseNpy(npyWithHeader("{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }", be16), 'be16.npy');
    expect(Array.from(b.data as Int16Array)).toEqual([0x0102, -2]);
    const be64 = new Uint8Array(8);
    new DataView(be64.buffer).setBigInt64(0, -5n, false);
    const c = parseNpy(npyWithHeader("{'descr': '>i8', 'fortran_order': False, 'shape': (), }", be64), 'be64.npy');
    expect(c.shape).toEqual([]);
    expect(Array.from(c.data as BigInt64Array)).toEqual([-5n]);
  });

  it('reads files written by numpy: Fortran-order big-endian int32', () => {
    const a = parseNpy(b64(NUMPY_FORTRAN_BIG_ENDIAN), 'numpy-f.npy');
    expect(a.shape).toEqual([2, 3, 4]);
    expect(a.dtype).toBe('int32');
    expect(Array.from(a.data as Int32Array)).toEqual(Array.from({ length: 24 }, (_, i) => i));
  });

  it('reads header versions 2.0 and 3.0 (utf-8) and Python 2 style long integers', () => {
    const data = new Uint8Array(new Int32Array([1, 2, 3, 4]).buffer);
    const v2 = parseNpy(npyWithHeader("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", data, 2), 'v2.npy');
    expect(v2.shape).toEqual([2, 2]);
    const v3 = parseNpy(npyWithHeader('{"descr": "<i4", "fortran_order": False, "shape": (4,)}', data, 3), 'v3.npy');
    expect(Array.from(v3.data as Int32Array)).toEqual([1, 2, 3, 4]);
    const py2 = parseNpy(npyWithHeader("{'descr': '<i4', 'fortran_order': False, 'shape': (2L, 2L), }", data), 'py2.npy');
    expect(py2.shape).toEqual([2, 2]);
  });

  it('widens float16 to float32 and normalises bool', () => {
    const h = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7c00, 0x0001, 0x3555]).buffer);
    const a = parseNpy(npyWithHeader("{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }", h), 'h.npy');
    expect(a.dtype).toBe('float32');
    const d = Array.from(a.data as Float32Array);
    expect(d.slice(0, 4)).toEqual([1, -2, Infinity, 2 ** -24]);
    expect(d[4]).toBeCloseTo(1 / 3, 3);
    const b = parseNpy(npyWithHeader("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", new Uint8Array([0, 2, 1])), 'b.npy');
    expect(b.dtype).toBe('bool');
    expect(Array.from(b.data as Uint8Array)).toEqual([0, 1, 1]);
  });

  it('rejects pickled object arrays, naming the file', () => {
    const err = caught(() => parseNpy(b64(NUMPY_OBJECT_PICKLE), 'objects.npy'));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(/^objects\.npy: dtype '\|O' is an object array \(a Python pickle\)/);
    const structured = npyWithHeader("{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,), }", new Uint8Array(12));
    expect(caught(() => parseNpy(structured, 's.npy')).message).toMatch(/s\.npy: structured dtype .* Python objects/);
  });

  it('rejects unsupported dtypes and malformed headers', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['unicode', npyWithHeader("{'descr': '<U5', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(20)), /unsupported dtype '<U5'/],
      ['complex', npyWithHeader("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)), /unsupported dtype '<c8'/],
      ['datetime', npyWithHeader("{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(8)), /unsupported dtype '<M8\[ns\]'/],
      ['no order', npyWithHeader("{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }", new Uint8Array(4)), /no byte order/],
      ['bad shape', npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", new Uint8Array(4)), /'shape' must be a tuple of non-negative integers/],
      ['bad dict', npyWithHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1,) ", new Uint8Array(4)), /malformed \.npy header/],
      ['code', npyWithHeader("{'descr': __import__('os'), }", new Uint8Array(4)), /unsupported expression '__import__'/],
      ['fortran flag', npyWithHeader("{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }", new Uint8Array(4)), /'fortran_order' must be True or False/],
      ['magic', new TextEncoder().encode('PK\x03\x04 this is a zip'), /not a \.npy file: expected the magic string/],
      ['version', (() => { const b = encodeNpy({ data: new Uint8Array(1), shape: [1] }); b[6] = 9; return b; })(), /unsupported \.npy format version 9\.0/],
    ];
    for (const [label, bytes, re] of cases) {
      const err = caught(() => parseNpy(bytes, `${label}.npy`));
      expect(err, label).toBeInstanceOf(InvalidArgumentError);
      expect(err.message, label).toContain(`${label}.npy: `);
      expect(err.message, label).toMatch(re);
    }
  });

  it('rejects truncated files with expected and actual byte counts', () => {
    const full = encodeNpy({ data: new Float32Array(10), shape: [2, 5] });
    const err = caught(() => parseNpy(full.subarray(0, full.length - 4), 'cut.npy'));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toBe("cut.npy: truncated .npy data: shape [2, 5] of dtype '<f4' needs 40 bytes, the file holds 36");
    expect(caught(() => parseNpy(full.subarray(0, 40), 'head.npy')).message).toMatch(/head\.npy: truncated \.npy header/);
    expect(caught(() => parseNpy(full.subarray(0, 4), 'tiny.npy')).message).toMatch(/tiny\.npy: not a \.npy file/);
  });

  it('encodeNpy checks data against shape and dtype', () => {
    expect(caught(() => encodeNpy({ data: new Float32Array(5), shape: [2, 3] }, 'w.npy')).message).toBe(
      'w.npy: holds 5 values but shape [2, 3] needs 6',
    );
    expect(caught(() => encodeNpy({ data: new Float32Array(2), shape: [2], dtype: 'int64' }, 'w.npy')).message).toMatch(
      /dtype int64 needs 8-byte items but the data is a Float32Array/,
    );
  });
});

/** A ZIP archive built by hand (for foreign-writer shapes the encoder does not produce). */
function handZip(entries: { name: string; data: Uint8Array; method: 0 | 8 | 12 }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = new TextEncoder().encode(e.name);
    const body = e.method === 8 ? new Uint8Array(deflateRawSync(e.data)) : e.data;
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, 0x8, true); // data descriptor flag: sizes are only in the central directory
    lv.setUint16(8, e.method, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const desc = new Uint8Array(16);
    const dv = new DataView(desc.buffer);
    dv.setUint32(0, 0x08074b50, true);
    dv.setUint32(4, crc32(e.data), true);
    dv.setUint32(8, body.length, true);
    dv.setUint32(12, e.data.length, true);
    const c = new Uint8Array(46 + name.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, 0x8, true);
    cv.setUint16(10, e.method, true);
    cv.setUint32(16, crc32(e.data), true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, e.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    c.set(name, 46);
    parts.push(local, body, desc);
    central.push(c);
    offset += local.length + body.length + desc.length;
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22 + 7);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  ev.setUint16(20, 7, true);
  eocd.set(new TextEncoder().encode('comment'), 22);
  return Buffer.concat([...parts, ...central, eocd]);
}

describe('.npz', () => {
  let root: string;
  let store: FileStore;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'memometer-npz-'));
    store = new FileStore(root);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it.each([false, true])('round-trips every dtype through a file (compress=%s)', async (compress) => {
    const arrays = Object.fromEntries(SAMPLES.map(([n, a]) => [n.replace(' ', '_'), a]));
    await store.put('all.npz', encodeNpz(arrays, { compress }));
    const back = parseNpz(await store.get('all.npz'), 'all.npz');
    expect([...back.keys()]).toEqual(Object.keys(arrays));
    for (const [name, a] of Object.entries(arrays)) {
      const b = back.get(name);
      expect(b?.shape, name).toEqual(a.shape);
      expect(Array.from(b?.data as ArrayLike<number | bigint>), name).toEqual(Array.from(a.data as ArrayLike<number | bigint>));
    }
    const methods = listZipEntries(await store.get('all.npz'), 'all.npz').map((e) => e.method);
    expect(new Set(methods)).toEqual(new Set([compress ? 8 : 0]));
  });

  it('is deterministic', () => {
    const a = { x: { data: new Float32Array([1, 2]), shape: [2] } };
    expect(Buffer.from(encodeNpz(a, { compress: true })).equals(Buffer.from(encodeNpz(a, { compress: true })))).toBe(true);
  });

  it('reads numpy.savez and numpy.savez_compressed files (ZIP64 local extras)', () => {
    const plain = parseNpz(b64(NUMPY_SAVEZ), 'np.npz');
    expect(plain.get('x')).toEqual({ data: new Uint8Array([0, 1, 2, 3, 4, 5]), shape: [2, 3], dtype: 'uint8' });
    expect(plain.get('y')).toEqual({ data: new BigInt64Array([1n, 0n]), shape: [2], dtype: 'int64' });
    const comp = parseNpz(b64(NUMPY_SAVEZ_COMPRESSED), 'npc.npz');
    expect(Array.from(comp.get('x')?.data as Float32Array)).toEqual([0, 0.25, 0.5, 0.75, 1, 1.25]);
    expect(Array.from(comp.get('y')?.data as BigInt64Array)).toEqual([2n, 1n]);
  });

  it('reads a hand-built archive with deflateRawSync entries, data descriptors, a comment and non-.npy entries', () => {
    const x = encodeNpy({ data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] });
    const y = encodeNpy({ data: new Int32Array([0, 1]), shape: [2] });
    const zip = handZip([
      { name: 'x.npy', data: x, method: 8 },
      { name: 'notes.txt', data: new TextEncoder().encode('ignored'), method: 0 },
      { name: 'y.npy', data: y, method: 8 },
    ]);
    const arrays = parseNpz(zip, 'hand.npz');
    expect([...arrays.keys()]).toEqual(['x', 'y']);
    expect(Array.from(arrays.get('x')?.data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it('rejects corrupt and truncated archives, naming the file', () => {
    const good = encodeNpz({ x: { data: new Float32Array(64).fill(1), shape: [8, 8] } }, { compress: true });
    const stored = encodeNpz({ x: { data: new Float32Array(64).fill(1), shape: [8, 8] } });
    const flipped = stored.slice();
    flipped[200] = (flipped[200] as number) ^ 0xff; // inside x.npy's data
    const badDeflate = good.slice();
    badDeflate.fill(0xff, 40, 60);
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty', new Uint8Array(0), /not a valid \.npz\/ZIP archive: only 0 bytes/],
      ['text', new TextEncoder().encode('this is certainly not a zip archive at all'), /no ZIP signature \(first bytes 74 68 69 73\)/],
      ['cut-end', good.subarray(0, good.length - 10), /no end-of-central-directory record \(the file looks truncated\)/],
      ['cut-middle', Buffer.concat([good.subarray(0, 30), good.subarray(good.length - 22 - 51)]), /cut-middle\.npz: not a valid \.npz\/ZIP archive: the central directory \(offset 114, 51 bytes\) lies outside the file \(103 bytes\); the file looks truncated/],
      ['crc', flipped, /^crc\.npz:x\.npy: CRC mismatch \(computed [0-9a-f]+, archive says [0-9a-f]+\): the file is corrupt$/],
      ['deflate', badDeflate, /^deflate\.npz:x\.npy: corrupt deflate stream/],
      ['npy', encodeNpzRaw('x.npy', new TextEncoder().encode('garbage')), /npy\.npz:x\.npy: not a \.npy file/],
    ];
    for (const [label, bytes, re] of cases) {
      const err = caught(() => parseNpz(bytes, `${label}.npz`));
      expect(err, label).toBeInstanceOf(InvalidArgumentError);
      expect(err.message, label).toContain(`${label}.npz`);
      expect(err.message, label).toMatch(re);
    }
  });

  it('rejects ZIP64 archives, unsupported compression and encryption clearly', () => {
    const zip = encodeNpz({ x: { data: new Uint8Array(4), shape: [4] } });
    const z64 = zip.slice();
    new DataView(z64.buffer).setUint16(z64.length - 22 + 10, 0xffff, true);
    expect(caught(() => parseNpz(z64, 'big.npz')).message).toMatch(/^big\.npz: ZIP64 archives .* are not supported/);
    const entry64 = zip.slice();
    const cd = new DataView(entry64.buffer).getUint32(entry64.length - 22 + 16, true);
    new DataView(entry64.buffer).setUint32(cd + 20, 0xffffffff, true);
    expect(caught(() => parseNpz(entry64, 'e64.npz')).message).toMatch(/e64\.npz: entry "x\.npy" needs ZIP64/);
    const bzip = handZip([{ name: 'x.npy', data: encodeNpy({ data: new Uint8Array(1), shape: [1] }), method: 12 }]);
    expect(caught(() => parseNpz(bzip, 'bz.npz')).message).toMatch(/bz\.npz:x\.npy: compression method 12 is not supported/);
    const enc = zip.slice();
    new DataView(enc.buffer).setUint16(cd + 8, 1, true);
    expect(caught(() => parseNpz(enc, 'enc.npz')).message).toMatch(/enc\.npz:x\.npy: encrypted ZIP entries are not supported/);
  });

  it('rejects pickled object arrays inside an archive', () => {
    const zip = encodeNpzRaw('objs.npy', b64(NUMPY_OBJECT_PICKLE));
    const err = caught(() => parseNpz(zip, 'p.npz'));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(/^p\.npz:objs\.npy: dtype '\|O' is an object array \(a Python pickle\)/);
  });
});

/** An archive holding one entry with arbitrary bytes. */
function encodeNpzRaw(name: string, data: Uint8Array): Uint8Array {
  return handZip([{ name, data, method: 0 }]);
}

describe('.npz in a Node Buffer', () => {
  it('reads stored arrays from a Buffer that views a larger allocation (Buffer#slice does not copy)', () => {
    const x: NumericArray = { data: Float32Array.from({ length: 12 }, (_, i) => i / 4), shape: [3, 4] };
    const stored = encodeNpz({ x }, { compress: false });
    const inside = Buffer.concat([Buffer.alloc(13, 7), Buffer.from(stored)]).subarray(13);
    expect(Array.from(parseNpz(inside).get('x')!.data as Float32Array)).toEqual(Array.from(x.data as Float32Array));
  });
});
