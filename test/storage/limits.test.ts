/**
 * Limits before reading: objects over a byte limit are refused by their size before any of them
 * is read, .npz members by their declared (and actual) decompressed size before inflating, and
 * .npy headers by shape x dtype and samples before allocating; each refusal keeps the process's
 * peak memory far below the object's size. Real files (sparse where large), no mocks.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createDeflateRaw } from 'node:zlib';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError, ResourceExhaustedError } from '../../src/errors.js';
import { byteLimited } from '../../src/storage/byte-limited.js';
import { readDataset } from '../../src/storage/dataset-reader.js';
import { FileStore } from '../../src/storage/file-store.js';
import { encodeNpz, encodeZip } from '../../src/storage/formats/npz.js';
import { readModel } from '../../src/storage/model-source.js';

const MiB = 1024 ** 2;
const LIMIT = 64 * MiB;
const MAX_GROWTH = 100 * MiB;

/** The process's peak RSS in bytes (VmHWM), or undefined off Linux. */
function peakRss(): number | undefined {
  try {
    const m = /VmHWM:\s*(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How much the process's memory grew while `action` ran: the peak RSS (reset first through
 * /proc/self/clear_refs) over the RSS before, where Linux allows; else RSS after minus before.
 */
async function memoryGrowth(action: () => Promise<unknown>): Promise<{ growth: number; error: unknown }> {
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage().rss;
  let canResetPeak = true;
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    canResetPeak = false;
  }
  let error: unknown;
  try {
    await action();
  } catch (e) {
    error = e;
  }
  const peak = canResetPeak ? peakRss() : undefined;
  const after = peak ?? process.memoryUsage().rss;
  return { growth: after - before, error };
}

/** A sparse file of `bytes` bytes (a hole: it takes no disk and no page cache). */
async function sparseFile(file: string, bytes: number, head?: Uint8Array): Promise<void> {
  const handle = await open(file, 'w');
  try {
    if (head) await handle.write(head, 0, head.length, 0);
    await handle.truncate(bytes);
  } finally {
    await handle.close();
  }
}

/** A .npy header (format 1.0) for `shape` of dtype `descr`. */
function npyHeader(descr: string, shape: number[]): Uint8Array {
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  dict += ' '.repeat((64 - ((10 + dict.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + dict.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  return out;
}

/** Deflates `head` followed by `zeros` zero bytes, 1 MiB at a time (never holding the whole). */
async function deflateZeros(head: Uint8Array, zeros: number): Promise<Uint8Array> {
  const deflate = createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve, reject) => deflate.on('end', resolve).on('error', reject));
  const zero = Buffer.alloc(MiB);
  const write = (b: Uint8Array) => (deflate.write(b) ? Promise.resolve() : new Promise((r) => deflate.once('drain', r)));
  await write(head);
  for (let left = zeros; left > 0; left -= MiB) await write(left >= MiB ? zero : zero.subarray(0, left));
  deflate.end();
  await done;
  return new Uint8Array(Buffer.concat(chunks));
}

/** A one-entry ZIP archive: `name` deflated as `compressed`, declaring `declaredSize` bytes uncompressed. */
function zipOf(name: string, compressed: Uint8Array, declaredSize: number): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const local = new Uint8Array(30 + nameBytes.length);
  const lv = new DataView(local.buffer);
  lv.setUint32(0, 0x04034b50, true);
  lv.setUint16(4, 20, true);
  lv.setUint16(8, 8, true);
  lv.setUint32(18, compressed.length, true);
  lv.setUint32(22, declaredSize, true);
  lv.setUint16(26, nameBytes.length, true);
  local.set(nameBytes, 30);
  const central = new Uint8Array(46 + nameBytes.length);
  const cv = new DataView(central.buffer);
  cv.setUint32(0, 0x02014b50, true);
  cv.setUint16(4, 20, true);
  cv.setUint16(6, 20, true);
  cv.setUint16(10, 8, true);
  cv.setUint32(20, compressed.length, true);
  cv.setUint32(24, declaredSize, true);
  cv.setUint16(28, nameBytes.length, true);
  central.set(nameBytes, 46);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, 1, true);
  ev.setUint16(10, 1, true);
  ev.setUint32(12, central.length, true);
  ev.setUint32(16, local.length + compressed.length, true);
  return new Uint8Array(Buffer.concat([local, compressed, central, eocd]));
}

let dir: string;
let store: FileStore;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'memometer-limits-'));
  store = new FileStore(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('objects over the byte limit are refused before they are read', () => {
  it('a 300 MB data set object under a 64 MiB server limit: RESOURCE_EXHAUSTED naming the field and both numbers, < 100 MiB growth', async () => {
    const size = 300 * 1000 ** 2;
    await sparseFile(path.join(dir, 'big.npz'), size);
    const { growth, error } = await memoryGrowth(() => readDataset(byteLimited(store, LIMIT, 'dataset_uri'), 'big.npz'));
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    const message = (error as Error).message;
    expect(message).toMatch(/^dataset_uri: /);
    expect(message).toContain(String(size));
    expect(message).toContain(String(LIMIT));
    expect(growth).toBeLessThan(MAX_GROWTH);
  });

  it('the same object under readDataset({ maxBytes }) (library use): RESOURCE_EXHAUSTED before reading', async () => {
    const { growth, error } = await memoryGrowth(() => readDataset(store, 'big.npz', { maxBytes: LIMIT }));
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as Error).message).toContain(String(LIMIT));
    expect(growth).toBeLessThan(MAX_GROWTH);
  });

  it('the byte limit counts every object read: the second of two objects that pass it together is refused', async () => {
    await store.put('two/a.bin', new Uint8Array(600));
    await store.put('two/b.bin', new Uint8Array(600));
    const limited = byteLimited(store, 1000, 'dataset_uri');
    expect((await limited.get('two/a.bin')).length).toBe(600);
    await expect(limited.get('two/b.bin')).rejects.toThrow(/dataset_uri: 'two\/b\.bin' is 600 bytes \(1200 bytes with the 600 read before it\), over the limit of 1000 bytes/);
  });

  it('a 2 GiB + 1 byte model file under the default model limit (2 GiB) is RESOURCE_EXHAUSTED naming model_uri, not INTERNAL', async () => {
    const size = 2 * 1024 ** 3 + 1;
    await sparseFile(path.join(dir, 'huge.onnx'), size);
    const { growth, error } = await memoryGrowth(() => readModel(byteLimited(store, 2 * 1024 ** 3, 'model_uri'), 'huge.onnx'));
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as Error).message).toMatch(/^model_uri: .*2147483649 bytes.*2147483648 bytes/);
    expect(growth).toBeLessThan(MAX_GROWTH);
  });
});

describe('.npz members are refused by their decompressed size before inflating', () => {
  const INFLATED = 512 * 1000 ** 2;
  let honest: Uint8Array;
  let lying: Uint8Array;

  beforeAll(async () => {
    const header = npyHeader('|u1', [INFLATED / 1000, 1000]);
    const compressed = await deflateZeros(header, INFLATED);
    honest = zipOf('x.npy', compressed, header.length + INFLATED);
    lying = zipOf('x.npy', compressed, 1000);
    await store.put('bomb.npz', honest);
    await store.put('liar.npz', lying);
  });

  it('a small .npz whose member declares 512 MB under a 64 MiB limit: RESOURCE_EXHAUSTED naming the member, < 100 MiB growth', async () => {
    expect(honest.length).toBeLessThan(2 * MiB);
    const { growth, error } = await memoryGrowth(() => readDataset(store, 'bomb.npz', { maxBytes: LIMIT }));
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as Error).message).toMatch(/^bomb\.npz:x\.npy: declares \d+ bytes uncompressed, over the limit of 67108864 bytes/);
    expect(growth).toBeLessThan(MAX_GROWTH);
  });

  it('a member that inflates past its declared size stops inflating there (INVALID_ARGUMENT), < 100 MiB growth, even unlimited', async () => {
    const { growth, error } = await memoryGrowth(() => readDataset(store, 'liar.npz'));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as Error).message).toMatch(/^liar\.npz:x\.npy: corrupt deflate stream: it inflates to more than the declared 1000 bytes/);
    expect(growth).toBeLessThan(MAX_GROWTH);
  });

  it('the same member under a 64 MiB limit is refused by its .npy header (512 MB of uint8) before it is inflated', async () => {
    const { growth, error } = await memoryGrowth(() => readDataset(store, 'liar.npz', { maxBytes: LIMIT }));
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as Error).message).toBe(
      `liar.npz:x.npy: shape [${INFLATED / 1000}, 1000] of dtype '|u1' needs ${INFLATED} bytes, over the limit of ${LIMIT} bytes`,
    );
    expect(growth).toBeLessThan(MAX_GROWTH);
  });

  it('a .npy header declaring more samples than the limit is refused before its member is inflated', async () => {
    // 1.37 M samples of 28x28 bytes (1.07 GB of zeros), under a byte limit that lets it pass.
    const shape = [1_370_000, 28, 28];
    const header = npyHeader('|u1', shape);
    const bytes = zipOf('x.npy', await deflateZeros(header, 1_370_000 * 784), header.length + 1_370_000 * 784);
    await store.put('many.npz', bytes);
    const { growth, error } = await memoryGrowth(() => readDataset(store, 'many.npz', { maxSamples: 1_000_000, maxBytes: 2 * 1024 ** 3 }));
    expect(error).toBeInstanceOf(ResourceExhaustedError);
    expect((error as Error).message).toBe('many.npz:x.npy: shape [1370000, 28, 28] holds 1370000 samples, over the limit of 1000000');
    expect(growth).toBeLessThan(MAX_GROWTH);
  });

  it('a .npy header whose shape x dtype is over the byte limit is RESOURCE_EXHAUSTED naming the array and both numbers', async () => {
    // A stored member of 200 bytes whose header claims 40 MB: refused by the header, not read as truncated.
    const header = npyHeader('<f4', [1_000_000, 10]);
    await store.put('claims.npz', encodeZip([['x.npy', new Uint8Array(Buffer.concat([header, new Uint8Array(200)]))]]));
    await expect(readDataset(store, 'claims.npz', { maxBytes: 10_000 })).rejects.toThrow(
      /^claims\.npz:x\.npy: shape \[1000000, 10\] of dtype '<f4' needs 40000000 bytes, over the limit of 10000 bytes$/,
    );
    const x = { data: new Float32Array(64 * 10), shape: [64, 10] };
    const y = { data: new Int32Array(64), shape: [64] };
    await store.put('small.npz', encodeNpz({ x, y }, { compress: true }));
    await expect(readDataset(store, 'small.npz', { maxBytes: 2000 })).rejects.toThrow(
      /^small\.npz:x\.npy: declares 2688 bytes uncompressed, over the limit of 2000 bytes$/,
    );
    // Within the limits, the same data set reads as before; without options nothing is limited.
    expect((await readDataset(store, 'small.npz', { maxBytes: 10_000, maxSamples: 64 })).xShape).toEqual([64, 10]);
    expect((await readDataset(store, 'small.npz')).xShape).toEqual([64, 10]);
    await expect(readDataset(store, 'small.npz', { maxSamples: 63 })).rejects.toThrow(
      /^small\.npz:x\.npy: shape \[64, 10\] holds 64 samples, over the limit of 63$/,
    );
  });
});
