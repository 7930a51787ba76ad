import { mkdtemp, readdir, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import { FileStore } from '../../src/storage/file-store.js';
import { joinKey, keyBasename, keyDirname } from '../../src/storage/store.js';

let root: string;
let store: FileStore;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'memometer-fs-'));
  store = new FileStore(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('FileStore', () => {
  it('round-trips bytes and strings, creating folders', async () => {
    await store.put('a/b/c.bin', new Uint8Array([1, 2, 3]));
    await store.put('hello.txt', 'héllo');
    expect(Array.from(await store.get('a/b/c.bin'))).toEqual([1, 2, 3]);
    expect(new TextDecoder().decode(await store.get('hello.txt'))).toBe('héllo');
  });

  it('replaces objects atomically and leaves no temp files behind', async () => {
    await store.put('x/obj', 'one');
    await store.put('x/obj', 'two');
    expect(new TextDecoder().decode(await store.get('x/obj'))).toBe('two');
    expect(await readdir(path.join(root, 'x'))).toEqual(['obj']);
  });

  it('concurrent puts to one key leave one complete object', async () => {
    const bodies = Array.from({ length: 8 }, (_, i) => new Uint8Array(100_000).fill(i));
    await Promise.all(bodies.map((b) => store.put('race.bin', b)));
    const got = await store.get('race.bin');
    expect(got.length).toBe(100_000);
    expect(got.every((v) => v === got[0])).toBe(true);
    expect(await readdir(root)).toEqual(['race.bin']);
  });

  it('missing objects reject with NotFoundError naming the key', async () => {
    const err = await store.get('no/such.npz').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).subject).toBe('no/such.npz');
    expect((err as Error).message).toContain('no/such.npz');
    await store.put('dir/file', 'x');
    await expect(store.get('dir')).rejects.toBeInstanceOf(NotFoundError); // a "directory"
    await expect(store.get('dir/file/below')).rejects.toBeInstanceOf(NotFoundError); // through a file
  });

  it('exists is true for objects only', async () => {
    await store.put('d/e.txt', 'x');
    expect(await store.exists('d/e.txt')).toBe(true);
    expect(await store.exists('d')).toBe(false);
    expect(await store.exists('d/missing')).toBe(false);
    expect(await store.exists('d/e.txt/under')).toBe(false);
  });

  it('lists keys by plain string prefix, recursively and sorted', async () => {
    for (const k of ['data/b.npz', 'data/a.npz', 'data/sub/c.bin', 'database.txt', 'models/m/model.json']) {
      await store.put(k, k);
    }
    expect(await store.list('data/')).toEqual(['data/a.npz', 'data/b.npz', 'data/sub/c.bin']);
    expect(await store.list('data')).toEqual(['data/a.npz', 'data/b.npz', 'data/sub/c.bin', 'database.txt']);
    expect(await store.list('data/s')).toEqual(['data/sub/c.bin']);
    expect(await store.list('')).toEqual([
      'data/a.npz',
      'data/b.npz',
      'data/sub/c.bin',
      'database.txt',
      'models/m/model.json',
    ]);
    expect(await store.list('nothing/here/')).toEqual([]);
    expect(await store.list('database.txt/')).toEqual([]);
  });

  it('list skips in-flight temp files and follows symbolic links', async () => {
    await store.put('d/real.bin', 'x');
    await writeFile(path.join(root, 'd', '.real.bin.memometer-tmp-1-abc'), 'partial');
    const outside = await mkdtemp(path.join(tmpdir(), 'memometer-linked-'));
    try {
      await mkdir(path.join(outside, 'inner'));
      await writeFile(path.join(outside, 'inner', 'f.txt'), 'linked');
      await symlink(outside, path.join(root, 'linked'));
      expect(await store.list('d/')).toEqual(['d/real.bin']);
      expect(await store.list('linked/')).toEqual(['linked/inner/f.txt']);
      expect(new TextDecoder().decode(await store.get('linked/inner/f.txt'))).toBe('linked');
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('rejects keys that are absolute, escape the root or have empty segments', async () => {
    for (const bad of ['', '/etc/passwd', '../x', 'a/../../x', 'a//b', 'a/./b', 'a\\b', 'a/']) {
      const err = await store.get(bad).catch((e: unknown) => e);
      expect(err, bad).toBeInstanceOf(InvalidArgumentError);
      await expect(store.put(bad, 'x'), bad).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(store.list('/abs')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('put through a file path component is a FailedPreconditionError', async () => {
    await store.put('file', 'x');
    const err = await store.put('file/child', 'y').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as FailedPreconditionError).subject).toBe('file/child');
  });
});

describe('key helpers', () => {
  it('join, dirname and basename keys', () => {
    expect(joinKey('a/', '/b', '', 'c.json')).toBe('a/b/c.json');
    expect(joinKey('', 'model.json')).toBe('model.json');
    expect(keyDirname('a/b/c.json')).toBe('a/b');
    expect(keyDirname('c.json')).toBe('');
    expect(keyBasename('a/b/c.json')).toBe('c.json');
  });
});
