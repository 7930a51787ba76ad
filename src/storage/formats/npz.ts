/**
 * NumPy `.npz` reading and writing: a ZIP archive whose entries are `.npy` files
 * (`x.npy` -> array `x`).
 *
 * The ZIP reader is a small central-directory reader: stored (method 0) and deflated (method 8)
 * entries, CRC-checked. Archives that need ZIP64 (over 4 GiB or 65535 entries), multi-disk and
 * encrypted archives are rejected with InvalidArgumentError. numpy's own writer forces ZIP64 extra
 * fields into every *local* header; those are fine because sizes and offsets are taken from the
 * central directory.
 */
import { constants as zlibConstants, deflateRawSync, inflateRawSync } from 'node:zlib';

import { InvalidArgumentError, MemometerError, ResourceExhaustedError } from '../../errors.js';
import type { NumericArray } from '../../arrays.js';
import { checkNpyHeadLimits, encodeNpy, parseNpy, type ArrayLimits } from './npy.js';
import { errorCode } from '../fs-errors.js';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3), as ZIP uses it. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = (crcTable[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** One entry of a ZIP central directory. */
export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

/** Lists the entries of a ZIP archive from its central directory. `file` names it in errors. */
export function listZipEntries(bytes: Uint8Array, file: string): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const corrupt = (what: string): never => {
    throw new InvalidArgumentError(`not a valid .npz/ZIP archive: ${what}`, file);
  };
  if (bytes.length < 22) corrupt(`only ${bytes.length} bytes, shorter than a ZIP end record`);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
    if (view.getUint32(i, true) === SIG_EOCD && i + 22 + view.getUint16(i + 20, true) <= bytes.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    corrupt(
      view.getUint32(0, true) === SIG_LOCAL
        ? 'no end-of-central-directory record (the file looks truncated)'
        : `no ZIP signature (first bytes ${Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ')})`,
    );
  }
  const disk = view.getUint16(eocd + 4, true);
  const cdDisk = view.getUint16(eocd + 6, true);
  const entriesOnDisk = view.getUint16(eocd + 8, true);
  const count = view.getUint16(eocd + 10, true);
  const cdSize = view.getUint32(eocd + 12, true);
  const cdOffset = view.getUint32(eocd + 16, true);
  if (
    (eocd >= 20 && view.getUint32(eocd - 20, true) === SIG_ZIP64_LOCATOR) ||
    count === 0xffff ||
    cdSize === 0xffffffff ||
    cdOffset === 0xffffffff
  ) {
    throw new InvalidArgumentError(
      'ZIP64 archives (over 4 GiB or 65535 entries) are not supported; split the data set or store fewer samples',
      file,
    );
  }
  if (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== count) corrupt('multi-disk archives are not supported');
  if (cdOffset + cdSize > eocd) {
    corrupt(`the central directory (offset ${cdOffset}, ${cdSize} bytes) lies outside the file (${bytes.length} bytes); the file looks truncated`);
  }
  const entries: ZipEntry[] = [];
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > cdOffset + cdSize || view.getUint32(p, true) !== SIG_CENTRAL) {
      corrupt(`central directory entry ${n} at offset ${p} is damaged`);
    }
    const flags = view.getUint16(p + 8, true);
    const method = view.getUint16(p + 10, true);
    const crc = view.getUint32(p + 16, true);
    const compressedSize = view.getUint32(p + 20, true);
    const uncompressedSize = view.getUint32(p + 24, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    const localHeaderOffset = view.getUint32(p + 42, true);
    if (p + 46 + nameLen > bytes.length) corrupt(`central directory entry ${n} is cut off`);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    if (compressedSize === 0xffffffff || uncompressedSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      throw new InvalidArgumentError(
        `entry ${JSON.stringify(name)} needs ZIP64 (over 4 GiB), which is not supported; split the data set`,
        file,
      );
    }
    entries.push({ name, method, flags, crc32: crc, compressedSize, uncompressedSize, localHeaderOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The stored (maybe compressed) bytes of one entry, after its local header. */
function entryData(bytes: Uint8Array, entry: ZipEntry, file: string): Uint8Array {
  const subject = `${file}:${entry.name}`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const off = entry.localHeaderOffset;
  if (off + 30 > bytes.length || view.getUint32(off, true) !== SIG_LOCAL) {
    throw new InvalidArgumentError(`not a valid .npz/ZIP archive: the local header at offset ${off} is damaged`, subject);
  }
  if (entry.flags & 1) throw new InvalidArgumentError('encrypted ZIP entries are not supported', subject);
  const start = off + 30 + view.getUint16(off + 26, true) + view.getUint16(off + 28, true);
  const end = start + entry.compressedSize;
  if (end > bytes.length) {
    throw new InvalidArgumentError(
      `truncated: the entry's ${entry.compressedSize} bytes at offset ${start} run past the end of the file (${bytes.length} bytes)`,
      subject,
    );
  }
  return bytes.subarray(start, end);
}

/** Compressed bytes of an entry that {@link entryHead} inflates (at most ~1 MiB of output). */
const HEAD_COMPRESSED_BYTES = 1024;

/**
 * The first bytes of an entry's uncompressed data (for a look at a .npy header before the whole
 * entry is inflated), or undefined when they cannot be had cheaply.
 */
function entryHead(bytes: Uint8Array, entry: ZipEntry, file: string): Uint8Array | undefined {
  const raw = entryData(bytes, entry, file);
  if (entry.method === 0) return raw.subarray(0, 1 << 17);
  if (entry.method !== 8) return undefined;
  try {
    // A prefix of the deflate stream, flushed: what it holds so far, without an end-of-stream error.
    const buf = inflateRawSync(raw.subarray(0, HEAD_COMPRESSED_BYTES), {
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
      maxOutputLength: 2 << 20,
    });
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch {
    return undefined;
  }
}

/**
 * The uncompressed, CRC-checked bytes of one entry. Inflating stops (InvalidArgumentError) as
 * soon as the output passes the entry's declared size, so the declared size bounds the memory.
 */
export function readZipEntry(bytes: Uint8Array, entry: ZipEntry, file: string): Uint8Array {
  const subject = `${file}:${entry.name}`;
  const raw = entryData(bytes, entry, file);
  let out: Uint8Array;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.uncompressedSize) {
      throw new InvalidArgumentError(
        `stored entry has compressed size ${entry.compressedSize} but uncompressed size ${entry.uncompressedSize}`,
        subject,
      );
    }
    out = raw;
  } else if (entry.method === 8) {
    try {
      // One byte of head-room so that over-long output is detected rather than silently cut.
      const buf = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize + 1) });
      out = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const code = errorCode(e);
      if (code === 'ERR_BUFFER_TOO_LARGE') {
        throw new InvalidArgumentError(
          `corrupt deflate stream: it inflates to more than the declared ${entry.uncompressedSize} bytes`,
          subject,
          { cause: e },
        );
      }
      if (e instanceof RangeError) {
        throw new ResourceExhaustedError(
          `cannot inflate the entry's ${entry.uncompressedSize} bytes: ${msg}`,
          subject,
          { cause: e },
        );
      }
      throw new InvalidArgumentError(`corrupt or truncated deflate stream: ${msg}`, subject, { cause: e });
    }
  } else {
    throw new InvalidArgumentError(
      `compression method ${entry.method} is not supported (only stored = 0 and deflate = 8, as numpy writes)`,
      subject,
    );
  }
  if (out.length !== entry.uncompressedSize) {
    throw new InvalidArgumentError(
      `entry inflates to ${out.length} bytes but the archive declares ${entry.uncompressedSize}`,
      subject,
    );
  }
  const crc = crc32(out);
  if (crc !== entry.crc32) {
    throw new InvalidArgumentError(
      `CRC mismatch (computed ${crc.toString(16)}, archive says ${entry.crc32.toString(16)}): the file is corrupt`,
      subject,
    );
  }
  return out;
}

/**
 * Parses a .npz archive into array name -> array (`x.npy` -> `x`). Entries that are not .npy
 * files are ignored. `limits.maxBytes` bounds the declared uncompressed sizes of the .npy entries
 * together (checked before any is inflated) and each array's data; `limits.maxSamples` each
 * array's first axis (checked on its header, before its data is inflated or copied): beyond
 * them, ResourceExhaustedError naming the entry and the numbers. `file` names the archive in errors; errors inside an entry name
 * `file:entry.npy`.
 */
export function parseNpz(bytes: Uint8Array, file = 'arrays.npz', limits: ArrayLimits = {}): Map<string, NumericArray> {
  const out = new Map<string, NumericArray>();
  const entries = listZipEntries(bytes, file).filter((entry) => entry.name.endsWith('.npy'));
  const { maxBytes } = limits;
  if (maxBytes !== undefined) {
    // Declared sizes first: nothing is inflated when the arrays together would pass the limit.
    let declared = 0;
    for (const entry of entries) {
      declared += entry.uncompressedSize;
      if (declared > maxBytes) {
        const before = declared > entry.uncompressedSize ? ` (${declared} bytes with the arrays before it)` : '';
        throw new ResourceExhaustedError(
          `declares ${entry.uncompressedSize} bytes uncompressed${before}, over the limit of ${maxBytes} bytes`,
          `${file}:${entry.name}`,
        );
      }
    }
  }
  for (const entry of entries) {
    const key = entry.name.slice(0, -'.npy'.length);
    if (out.has(key)) throw new InvalidArgumentError(`array ${JSON.stringify(key)} appears twice`, file);
    const subject = `${file}:${entry.name}`;
    try {
      // The array's header (shape x dtype, samples) is checked before the entry is inflated.
      const head = entryHead(bytes, entry, file);
      if (head) checkNpyHeadLimits(head, subject, limits);
      out.set(key, parseNpy(readZipEntry(bytes, entry, file), subject, limits));
    } catch (e) {
      if (e instanceof MemometerError) throw e;
      throw new InvalidArgumentError(`cannot read entry: ${e instanceof Error ? e.message : String(e)}`, subject, { cause: e });
    }
  }
  return out;
}

/** Options of {@link encodeNpz}. */
export interface EncodeNpzOptions {
  /** Deflate the entries (like numpy.savez_compressed). Default false (like numpy.savez). */
  compress?: boolean;
}

/**
 * Encodes arrays as a .npz archive, one `<name>.npy` entry per array, in iteration order.
 * Timestamps are fixed (1980-01-01) so equal inputs give byte-identical archives.
 */
export function encodeNpz(
  arrays: Readonly<Record<string, NumericArray>> | ReadonlyMap<string, NumericArray>,
  options: EncodeNpzOptions = {},
): Uint8Array {
  const items: [string, NumericArray][] =
    arrays instanceof Map ? [...(arrays as ReadonlyMap<string, NumericArray>).entries()] : Object.entries(arrays as Record<string, NumericArray>);
  return encodeZip(
    items.map(([key, array]) => {
      if (!key) throw new InvalidArgumentError('array names must be non-empty', 'arrays');
      return [`${key}.npy`, encodeNpy(array, `${key}.npy`)] as const;
    }),
    options,
  );
}

/** A ZIP archive of `entries` (name, bytes) in order, stored or deflated; fixed timestamps. */
export function encodeZip(items: readonly (readonly [string, Uint8Array])[], options: EncodeNpzOptions = {}): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
  for (const [entryName, data] of items) {
    const nameBytes = enc.encode(entryName);
    const crc = crc32(data);
    const method = options.compress ? 8 : 0;
    const body = options.compress ? new Uint8Array(deflateRawSync(data)) : data;
    if (data.length >= 0xffffffff || offset + 30 + nameBytes.length + body.length >= 0xffffffff) {
      throw new ResourceExhaustedError('the archive would exceed 4 GiB, which needs ZIP64 (not supported)', entryName);
    }
    const utf8Flag = /^[\x20-\x7e]*$/.test(entryName) ? 0 : 0x800;
    const local = new Uint8Array(30 + nameBytes.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(6, utf8Flag, true);
    lv.setUint16(8, method, true);
    lv.setUint16(10, 0, true);
    lv.setUint16(12, DOS_DATE, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    lv.setUint16(28, 0, true);
    local.set(nameBytes, 30);
    const central = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(8, utf8Flag, true);
    cv.setUint16(10, method, true);
    cv.setUint16(12, 0, true);
    cv.setUint16(14, DOS_DATE, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    central.set(nameBytes, 46);
    locals.push(local, body);
    centrals.push(central);
    offset += local.length + body.length;
  }
  if (items.length >= 0xffff) {
    throw new ResourceExhaustedError(`${items.length} entries need ZIP64 (not supported)`, 'arrays');
  }
  const cdSize = centrals.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, SIG_EOCD, true);
  ev.setUint16(8, items.length, true);
  ev.setUint16(10, items.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const parts = [...locals, ...centrals, eocd];
  const out = new Uint8Array(parts.reduce((s, x) => s + x.length, 0));
  let p = 0;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}
