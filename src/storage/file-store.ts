import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import * as path from 'node:path';

import { clip, InvalidArgumentError, NotFoundError } from '../errors.js';
import { errorCode, fsError, isAbsent, type FsOperation } from './fs-errors.js';
import { checkKey, checkListLimit, checkPrefix, utf8Order, type StateStore } from './store.js';

/** Marks in-flight temp files of {@link FileStore.put}; `list` never returns them. */
const TEMP_MARK = '.memometer-tmp-';

/** How deep `list` descends (keeps symbolic-link cycles finite). */
const MAX_LIST_DEPTH = 64;

/**
 * A {@link StateStore} (an object store with create-if-absent writes) over a directory of the
 * local file system: key `a/b.npz` is the file `<root>/a/b.npz`. `put` creates missing directories and is atomic (it writes a temp file in the
 * target directory, then renames it over the target).
 */
export class FileStore implements StateStore {
  readonly root: string;

  constructor(root: string) {
    if (!root) throw new InvalidArgumentError('the store root must be a directory path, got an empty string', 'root');
    this.root = path.resolve(root);
  }

  /** Checks a key ({@link checkKey}) and maps it to its file path under the root. */
  private pathOf(key: string): string {
    checkKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  private mapError(e: unknown, key: string, op: FsOperation): unknown {
    return fsError(e, clip(key), op);
  }

  async get(key: string): Promise<Uint8Array> {
    const file = this.pathOf(key);
    try {
      const buf = await readFile(file);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      throw this.mapError(e, key, 'get');
    }
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    try {
      await this.placeViaTemp(key, body, (tmp, file) => rename(tmp, file));
    } catch (e) {
      throw this.mapError(e, key, 'put');
    }
  }

  /** Writes `body` to a temp file beside `key`'s file, then `place`s it (rename or link). */
  private async placeViaTemp(key: string, body: Uint8Array | string, place: (tmp: string, file: string) => Promise<void>): Promise<void> {
    const file = this.pathOf(key);
    const dir = path.dirname(file);
    const tmp = path.join(dir, `.${path.basename(file)}${TEMP_MARK}${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(dir, { recursive: true });
      await writeFile(tmp, body);
      await place(tmp, file);
    } finally {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /**
   * Creates the object only if none is there: the body goes to a temp file, which is then
   * hard-linked to the key (link(2) fails with EEXIST when the key exists, atomically), so of
   * concurrent callers exactly one wins and no reader sees a partial object.
   */
  async putIfAbsent(key: string, body: string): Promise<boolean> {
    try {
      await this.placeViaTemp(key, body, (tmp, file) => link(tmp, file));
      return true;
    } catch (e) {
      if (errorCode(e) === 'EEXIST') return false;
      throw this.mapError(e, key, 'put');
    }
  }

  async exists(key: string): Promise<boolean> {
    const file = this.pathOf(key);
    try {
      return (await stat(file)).isFile();
    } catch (e) {
      if (isAbsent(e)) return false;
      throw this.mapError(e, key, 'stat');
    }
  }

  async size(key: string): Promise<number> {
    const file = this.pathOf(key);
    let info;
    try {
      info = await stat(file);
    } catch (e) {
      throw this.mapError(e, key, 'stat');
    }
    if (!info.isFile()) throw new NotFoundError('no such object in the store (a directory)', clip(key));
    return info.size;
  }

  async list(prefix: string): Promise<string[]> {
    checkPrefix(prefix);
    // Walk only the deepest directory the prefix fully names.
    const cut = prefix.lastIndexOf('/');
    const dirKey = cut < 0 ? '' : prefix.slice(0, cut);
    const dirSegments = dirKey === '' ? [] : dirKey.split('/');
    if (dirSegments.some((s) => s === '' || s === '.' || s === '..')) return [];
    const out: string[] = [];
    const walk = async (dir: string, keyPrefix: string, depth: number): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isAbsent(e)) return;
        throw this.mapError(e, keyPrefix || prefix || '.', 'list');
      }
      for (const entry of entries) {
        const key = keyPrefix + entry.name;
        const full = path.join(dir, entry.name);
        let isDir = entry.isDirectory();
        let isFile = entry.isFile();
        if (entry.isSymbolicLink()) {
          // Follow links (e.g. a data set linked into the store); dangling links are skipped.
          const target = await stat(full).catch(() => undefined);
          isDir = target?.isDirectory() ?? false;
          isFile = target?.isFile() ?? false;
        }
        if (isDir) {
          // Descend only where keys below can still match the prefix; the depth bound stops link cycles.
          const sub = key + '/';
          if ((sub.startsWith(prefix) || prefix.startsWith(sub)) && depth < MAX_LIST_DEPTH) {
            await walk(full, sub, depth + 1);
          }
        } else if (isFile && !entry.name.includes(TEMP_MARK) && key.startsWith(prefix)) {
          out.push(key);
        }
      }
    };
    await walk(path.join(this.root, ...dirSegments), dirKey === '' ? '' : dirKey + '/', dirSegments.length);
    return out.sort();
  }

  async listAfter(prefix: string, startAfter: string, limit: number): Promise<string[]> {
    checkListLimit(limit);
    const keys = (await this.list(prefix)).filter((k) => utf8Order(k, startAfter) > 0);
    return keys.sort(utf8Order).slice(0, limit);
  }
}
