import { clip, InvalidArgumentError, quote } from '../errors.js';

/**
 * The object store abstraction every reader and writer of memometer goes through, so that the
 * same code reads from a local directory, a bucket, or an in-memory map.
 *
 * Keys are '/'-separated paths relative to the store root, e.g. `models/cnn/model.json`. They
 * never start with '/', never contain empty, '.' or '..' segments, and never contain '\\' or NUL.
 * Implementations reject such keys with InvalidArgumentError naming the key, through
 * {@link checkKey} (the one copy of these rules).
 */
export interface ObjectStore {
  /**
   * The whole object at `key`. A missing object (or a key naming a "directory") rejects with
   * NotFoundError whose subject is the key.
   */
  get(key: string): Promise<Uint8Array>;
  /**
   * The size in bytes of the object at `key`, without reading it (a stat, a HEAD), so that a
   * reader can refuse an object over its limit before holding any of it. A missing object (or a
   * "directory") rejects with NotFoundError whose subject is the key.
   */
  size(key: string): Promise<number>;
  /**
   * Stores `body` at `key` (strings are written as UTF-8), replacing any existing object.
   * Readers never observe a partially written object.
   */
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** Whether an object exists at `key` (false for "directories"). */
  exists(key: string): Promise<boolean>;
  /**
   * All keys that start with `prefix` (a plain string prefix, like S3: `data/` lists everything
   * under the data folder, recursively; `data/train-` lists keys beginning so), sorted.
   * Returns [] when nothing matches; `''` lists the whole store.
   */
  list(prefix: string): Promise<string[]>;
}

/** The store of the server's own records: it can create an object exactly once. */
export interface StateStore extends ObjectStore {
  /**
   * Writes `body` at `key` only if no object is there; true when this call created it. Of
   * concurrent callers with the same key, exactly one gets true. `body` must be unique to the
   * caller (it may be compared after writing).
   */
  putIfAbsent(key: string, body: string): Promise<boolean>;
  /**
   * Up to `limit` keys that start with `prefix` and sort after `startAfter` ('' = from the
   * first), in UTF-8 byte order (S3's order; JavaScript's for ASCII keys): one page of a long
   * listing. On S3 it costs the page (LIST with start-after, stopped at `limit`); a directory has
   * no sorted listing, so FileStore lists the whole prefix and cuts.
   */
  listAfter(prefix: string, startAfter: string, limit: number): Promise<string[]>;
}

/** UTF-8 byte order of two keys (code point order), the order of S3 listings. */
export function utf8Order(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Checks listAfter's `limit`: a positive whole number. */
export function checkListLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1) throw new InvalidArgumentError(`must be a positive whole number, got ${limit}`, 'limit');
}

/**
 * Checks an object key: a non-empty '/'-separated relative path without empty, '.' or '..'
 * segments, '\\' or NUL. Throws InvalidArgumentError naming the key (clipped) otherwise. Every
 * store calls it before touching a key.
 */
export function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '') {
    throw new InvalidArgumentError(`an object key must be a non-empty string, got ${typeof key === 'string' ? quote(key) : typeof key}`, 'key');
  }
  if (key.includes('\\') || key.includes('\0')) {
    throw new InvalidArgumentError(`object key ${quote(key)} contains '\\' or NUL; keys use '/' separators`, clip(key));
  }
  if (key.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new InvalidArgumentError(
      `object key ${quote(key)} must be a relative '/'-separated path without empty, '.' or '..' segments`,
      clip(key),
    );
  }
}

/** Whether `key` passes {@link checkKey}. */
export function isValidKey(key: string): boolean {
  try {
    checkKey(key);
    return true;
  } catch {
    return false;
  }
}

/**
 * Checks a `list` prefix: a string (maybe empty) that does not start with '/' and holds no '\\'
 * or NUL. Throws InvalidArgumentError (subject `prefix`) otherwise.
 */
export function checkPrefix(prefix: string): void {
  if (typeof prefix !== 'string' || prefix.startsWith('/') || prefix.includes('\\') || prefix.includes('\0')) {
    throw new InvalidArgumentError(
      `a key prefix must be a relative '/'-separated string, got ${typeof prefix === 'string' ? quote(prefix) : typeof prefix}`,
      'prefix',
    );
  }
}

/** Joins key parts with '/', dropping empty parts and duplicate separators. */
export function joinKey(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter((s) => s !== '')
    .join('/');
}

/** The "folder" part of a key: `a/b/c.json` -> `a/b`, `c.json` -> `''`. */
export function keyDirname(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? '' : key.slice(0, i);
}

/** The last segment of a key: `a/b/c.json` -> `c.json`. */
export function keyBasename(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? key : key.slice(i + 1);
}
