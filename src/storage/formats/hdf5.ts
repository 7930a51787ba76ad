/**
 * Read-only access to an HDF5 file held in memory, through h5wasm (the HDF5 C library compiled
 * to WebAssembly). The bytes are written into h5wasm's in-memory file system under a unique name,
 * opened read-only, and closed and unlinked when the callback returns or throws, so nothing stays
 * behind in the wasm heap between calls.
 *
 * HDF5 errors become InvalidArgumentError with the innermost HDF5 diagnostic (for example
 * "truncated file: eof = 3000, ... stored_eof = 62064") instead of printing to stderr.
 */
import * as h5wasm from 'h5wasm';

import { InvalidArgumentError, MemometerError } from '../../errors.js';

/** A dataset read as float32 values in row-major order. */
export interface Hdf5Array {
  shape: number[];
  values: Float32Array;
  /** The stored type, for messages: 'float32', 'float64', 'float16', 'bfloat16', 'int64', ... */
  storedType: string;
}

/** What {@link withHdf5} hands its callback. Paths are absolute within the file, without a leading slash. */
export interface Hdf5Reader {
  /** 'group', 'dataset', 'other', or undefined when nothing is at `path`. */
  kind(path: string): 'group' | 'dataset' | 'other' | undefined;
  /** The member names of the group at `path` ('' is the root); [] when it is not a group. */
  keys(path: string): string[];
  /** The attribute names of the object at `path`. */
  attrNames(path: string): string[];
  /**
   * An attribute's value: string, number, bigint, string[] or a typed array (h5wasm's decoding);
   * undefined when the object or attribute does not exist.
   */
  attr(path: string, name: string): unknown;
  /** A numeric dataset as float32 (float64, float16, bfloat16 and integer types are converted). */
  array(path: string): Hdf5Array;
}

const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Whether the bytes are an HDF5 file: the superblock signature at offset 0 or, after a user
 * block, at 512, 1024, 2048, ... as the HDF5 specification allows.
 */
export function isHdf5(bytes: Uint8Array): boolean {
  for (let offset = 0; offset + HDF5_SIGNATURE.length <= bytes.length; offset = offset === 0 ? 512 : offset * 2) {
    if (HDF5_SIGNATURE.every((b, i) => bytes[offset + i] === b)) return true;
  }
  return false;
}

let fileCounter = 0;
let readyModule: Promise<unknown> | undefined;

async function ready(): Promise<NonNullable<typeof h5wasm.FS>> {
  readyModule ??= h5wasm.ready.then((module) => {
    // Errors throw (with HDF5's diagnostic stack as the message) instead of printing to stderr.
    module.activate_throwing_error_handler();
    return module;
  });
  await readyModule;
  const fs = h5wasm.FS;
  if (!fs) throw new Error('h5wasm did not initialise its file system');
  return fs;
}

/** The innermost line of an HDF5 diagnostic stack, which names the actual problem. */
export function hdf5Reason(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const frames = [...text.matchAll(/#\d+: .*? in ([A-Za-z0-9_]+)\(\): (.*)$/gm)];
  const last = frames.at(-1);
  return last ? `${last[2]!.trim()} (${last[1]})` : text.split('\n')[0]!;
}

function typeName(meta: { type: number; size: number; signed: boolean }, attrs: Record<string, { value: unknown }>): string {
  const dtypeAttr = attrs['dtype']?.value;
  if (dtypeAttr === 'bfloat16') return 'bfloat16';
  if (meta.type === 1) return `float${meta.size * 8}`;
  if (meta.type === 0) return `${meta.signed ? 'int' : 'uint'}${meta.size * 8}`;
  return `HDF5 type class ${meta.type}`;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/**
 * Opens `bytes` as an HDF5 file and runs `fn` on it; the file is closed and removed from the wasm
 * file system afterwards. `file` names the file in errors (subject 'model' is the caller's choice
 * through `subject`).
 */
export async function withHdf5<T>(bytes: Uint8Array, file: string, subject: string, fn: (h5: Hdf5Reader) => T): Promise<T> {
  const fs = await ready();
  const path = `/memometer-${process.pid}-${++fileCounter}.h5`;
  fs.writeFile(path, bytes);
  let h5file: h5wasm.File | undefined;
  try {
    try {
      h5file = new h5wasm.File(path, 'r');
    } catch (e) {
      throw new InvalidArgumentError(`${file}: not a readable HDF5 file: ${hdf5Reason(e)}`, subject, { cause: e });
    }
    const root = h5file;
    const get = (p: string) => (p === '' ? root : root.get(p));
    const reader: Hdf5Reader = {
      kind(p) {
        const entity = get(p);
        if (!entity) return undefined;
        if (entity instanceof h5wasm.Group) return 'group';
        if (entity instanceof h5wasm.Dataset) return 'dataset';
        return 'other';
      },
      keys(p) {
        const entity = get(p);
        return entity instanceof h5wasm.Group ? entity.keys() : [];
      },
      attrNames(p) {
        const entity = get(p);
        return entity && 'attrs' in entity ? Object.keys(entity.attrs) : [];
      },
      attr(p, name) {
        const entity = get(p);
        if (!entity || !('attrs' in entity)) return undefined;
        const attrs = entity.attrs;
        return name in attrs ? attrs[name]!.value : undefined;
      },
      array(p) {
        const entity = get(p);
        if (!(entity instanceof h5wasm.Dataset)) {
          throw new InvalidArgumentError(`${file}: no dataset at ${p}`, subject);
        }
        const meta = entity.metadata;
        const shape = entity.shape ?? [];
        const storedType = typeName(meta, entity.attrs);
        const raw = entity.value;
        let values: Float32Array;
        if (storedType === 'float32' && raw instanceof Float32Array) {
          values = raw;
        } else if (storedType === 'bfloat16' && (raw instanceof Uint16Array || raw instanceof Int16Array)) {
          const bits = new Uint32Array(raw.length);
          for (let i = 0; i < raw.length; i++) bits[i] = ((raw[i] as number) & 0xffff) << 16;
          values = new Float32Array(bits.buffer);
        } else if (storedType === 'float16' && raw instanceof Uint16Array) {
          values = Float32Array.from(raw, halfToFloat);
        } else if (ArrayBuffer.isView(raw) && !(raw instanceof DataView)) {
          const typed = raw as unknown as ArrayLike<number | bigint>;
          values = new Float32Array(typed.length);
          for (let i = 0; i < typed.length; i++) values[i] = Number(typed[i]);
        } else if (typeof raw === 'number' || typeof raw === 'bigint') {
          values = Float32Array.of(Number(raw));
        } else {
          throw new InvalidArgumentError(`${file}: dataset ${p} holds ${storedType} values, not numbers`, subject);
        }
        return { shape, values, storedType };
      },
    };
    try {
      return fn(reader);
    } catch (e) {
      if (e instanceof MemometerError) throw e;
      throw new InvalidArgumentError(`${file}: cannot read the HDF5 file: ${hdf5Reason(e)}`, subject, { cause: e });
    }
  } finally {
    try {
      h5file?.close();
    } finally {
      fs.unlink(path);
    }
  }
}
