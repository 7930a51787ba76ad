/**
 * One contract for every ObjectStore: the same checks over a local folder (FileStore), a confined
 * local folder (ConfinedFileStore) and a real S3-compatible server (S3Store, a fresh bucket).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import { ConfinedFileStore } from '../../src/storage/confined-file-store.js';
import { FileStore } from '../../src/storage/file-store.js';
import type { ObjectStore, StateStore } from '../../src/storage/store.js';
import { s3Store } from '../support/service.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'memometer-contract-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Subject {
  name: string;
  make: () => Promise<ObjectStore>;
  state: boolean;
}

const SUBJECTS: Subject[] = [
  { name: 'FileStore', make: async () => new FileStore(await tempDir()), state: true },
  { name: 'ConfinedFileStore', make: async () => new ConfinedFileStore(await tempDir()), state: false },
  {
    name: 'S3Store',
    make: async () => {
      const bucket = `contract-${randomBytes(5).toString('hex')}`;
      const store = s3Store(bucket);
      await store.client.makeBucket(bucket);
      return store;
    },
    state: true,
  },
];

const BAD_KEYS = ['', '/abs', 'a//b', 'a/./b', '../up', 'a/..', 'back\\slash', 'nul\0byte', 'trailing/'];

describe.each(SUBJECTS)('$name keeps the ObjectStore contract', ({ make, state }) => {
  let store: ObjectStore;
  const fresh = async () => (store ??= await make());

  it('puts, gets, sizes and finds objects; strings are written as UTF-8', async () => {
    const s = await fresh();
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await s.put('data/a.bin', bytes);
    await s.put('data/b.txt', 'héllo');
    expect(Array.from(await s.get('data/a.bin'))).toEqual(Array.from(bytes));
    expect(new TextDecoder().decode(await s.get('data/b.txt'))).toBe('héllo');
    expect(await s.size('data/a.bin')).toBe(5);
    expect(await s.size('data/b.txt')).toBe(6);
    expect(await s.exists('data/a.bin')).toBe(true);
    expect(await s.exists('data/none')).toBe(false);
    await s.put('data/a.bin', 'replaced');
    expect(new TextDecoder().decode(await s.get('data/a.bin'))).toBe('replaced');
    expect(await s.size('data/a.bin')).toBe(8);
    await s.put('empty', new Uint8Array(0));
    expect(await s.size('empty')).toBe(0);
    expect((await s.get('empty')).length).toBe(0);
  });

  it('lists keys by plain prefix, sorted, recursively; [] when nothing matches', async () => {
    const s = await fresh();
    await s.put('list/x/2', '2');
    await s.put('list/x/1', '1');
    await s.put('list/y', 'y');
    await s.put('list-other', 'o');
    expect(await s.list('list/')).toEqual(['list/x/1', 'list/x/2', 'list/y']);
    expect(await s.list('list/x')).toEqual(['list/x/1', 'list/x/2']);
    expect(await s.list('list')).toEqual(['list-other', 'list/x/1', 'list/x/2', 'list/y']);
    expect(await s.list('nothing/')).toEqual([]);
    expect(await s.list('')).toEqual(expect.arrayContaining(['list/y', 'list-other']));
  });

  it('rejects get and size of an absent object, or of a "directory", with NotFoundError naming the key', async () => {
    const s = await fresh();
    await s.put('dir/inside', 'x');
    for (const key of ['absent/key.npz', 'dir']) {
      await expect(s.get(key)).rejects.toBeInstanceOf(NotFoundError);
      await expect(s.size(key)).rejects.toBeInstanceOf(NotFoundError);
      await expect(s.size(key)).rejects.toMatchObject({ subject: key });
    }
    expect(await s.exists('dir')).toBe(false);
  });

  it.each(BAD_KEYS)('rejects the key %j in every operation with InvalidArgumentError', async (key) => {
    const s = await fresh();
    await expect(s.get(key)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(s.size(key)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(s.exists(key)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(s.put(key, 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
    if (state) await expect((s as StateStore).putIfAbsent(key, 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('rejects list prefixes that start with / or hold \\ or NUL', async () => {
    const s = await fresh();
    for (const prefix of ['/abs', 'a\\b', 'a\0b']) {
      await expect(s.list(prefix)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
  });

  it.runIf(state)('listAfter: up to limit keys under the prefix after startAfter, in byte order', async () => {
    const s = (await make()) as StateStore;
    for (const key of ['page/1', 'page/2', 'page/3', 'page/4', 'page/5', 'page-other', 'pagf']) await s.put(key, 'x');
    expect(await s.listAfter('page/', '', 2)).toEqual(['page/1', 'page/2']);
    expect(await s.listAfter('page/', 'page/2', 2)).toEqual(['page/3', 'page/4']);
    expect(await s.listAfter('page/', 'page/4', 10)).toEqual(['page/5']);
    expect(await s.listAfter('page/', 'page/5', 10)).toEqual([]);
    expect(await s.listAfter('page/', 'page/25', 1)).toEqual(['page/3']); // startAfter need not exist
    expect(await s.listAfter('page/', 'a', 2)).toEqual(['page/1', 'page/2']); // before the prefix: from the first
    expect(await s.listAfter('page/', 'z', 2)).toEqual([]);
    for (const limit of [0, -1, 1.5, Number.NaN]) await expect(s.listAfter('page/', '', limit)).rejects.toThrowError(/^limit: must be a positive whole number/);
  });

  it.runIf(state)('putIfAbsent: of 5 concurrent callers with distinct bodies exactly one gets true, and its body stays', async () => {
    const s = (await fresh()) as StateStore;
    const bodies = Array.from({ length: 5 }, (_, i) => `caller-${i}-${randomBytes(8).toString('hex')}`);
    const results = await Promise.all(bodies.map((b) => s.putIfAbsent('claims/one', b)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = bodies[results.indexOf(true)];
    expect(new TextDecoder().decode(await s.get('claims/one'))).toBe(winner);
    expect(await s.putIfAbsent('claims/one', 'late')).toBe(false);
  });
});
