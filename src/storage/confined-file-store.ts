import { realpath } from 'node:fs/promises';
import * as path from 'node:path';
import { clip, PermissionDeniedError } from '../errors.js';
import { FileStore } from './file-store.js';
import { checkKey, checkPrefix, type ObjectStore } from './store.js';

/** The real path of `target`, or of its nearest existing ancestor when it does not exist yet. */
async function realExisting(target: string): Promise<string> {
  try {
    return await realpath(target);
  } catch {
    const parent = path.dirname(target);
    return parent === target ? target : path.join(await realExisting(parent), path.basename(target));
  }
}

const inside = (root: string, p: string) => p === root || p.startsWith(root + path.sep);

/**
 * A FileStore that refuses every object whose real path (symbolic links resolved) lies outside
 * its root, or inside a folder excluded from it (the server's own state): what a server uses
 * for local paths sent by remote callers.
 */
export class ConfinedFileStore implements ObjectStore {
  private readonly files: FileStore;
  private realRoot?: Promise<string>;
  private readonly excluded: { dir: string; real: Promise<string> }[] = [];

  constructor(readonly root: string) {
    this.files = new FileStore(root);
  }

  /** Refuses every key whose real path lies in `dir` (an absolute folder, inside the root or not). */
  exclude(dir: string): void {
    const absolute = path.resolve(dir);
    this.excluded.push({ dir: absolute, real: realExisting(absolute) });
  }

  /** Whether `target` (an absolute path) lies in an excluded folder, before links are resolved. */
  isExcluded(target: string): boolean {
    return this.excluded.some(({ dir }) => inside(dir, path.resolve(target)));
  }

  /** Checks `key` ({@link checkKey}; a list prefix is checked by {@link checkPrefix} instead), then where it resolves. */
  private async check(key: string, isPrefix = false): Promise<void> {
    if (!isPrefix) checkKey(key);
    this.realRoot ??= realExisting(this.files.root);
    const real = await realExisting(path.join(this.files.root, ...key.split('/')));
    if (!inside(await this.realRoot, real)) {
      throw new PermissionDeniedError('resolves outside the data root (symbolic link)', clip(key));
    }
    for (const { real: dir } of this.excluded) {
      if (inside(await dir, real)) throw new PermissionDeniedError("resolves into the server's state folder", clip(key));
    }
  }

  async get(key: string): Promise<Uint8Array> {
    await this.check(key);
    return this.files.get(key);
  }

  async size(key: string): Promise<number> {
    await this.check(key);
    return this.files.size(key);
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    await this.check(key);
    return this.files.put(key, body);
  }

  async exists(key: string): Promise<boolean> {
    await this.check(key);
    return this.files.exists(key);
  }

  async list(prefix: string): Promise<string[]> {
    checkPrefix(prefix);
    if (prefix) await this.check(prefix.replace(/\/+$/, ''), true);
    const keys = await this.files.list(prefix);
    if (!this.excluded.length) return keys;
    // A listing of a folder that holds the state folder never shows the records.
    const realRoot = await (this.realRoot ??= realExisting(this.files.root));
    const dirs = await Promise.all(this.excluded.map((e) => e.real));
    return keys.filter((k) => !dirs.some((d) => inside(d, path.join(realRoot, ...k.split('/')))));
  }
}
