import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';

import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { InvalidArgumentError, NotFoundError } from '../../src/errors.js';
import type { NumericArray } from '../../src/metric/dataset.js';
import { readDataset } from '../../src/storage/dataset-reader.js';
import { FileStore } from '../../src/storage/file-store.js';
import { encodeNpz } from '../../src/storage/formats/npz.js';
import { readModelArtifacts, SHARD_NAME, writeModelArtifacts } from '../../src/storage/model-reader.js';

let root: string;
let store: FileStore;
let n = 0;
/** A fresh key prefix per test, so tests share one temp store without clashing. */
let dir: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'memometer-readers-'));
  store = new FileStore(root);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
beforeEach(() => {
  dir = `t${++n}`;
});

const f32 = (values: number[], shape: number[]): NumericArray => ({ data: new Float32Array(values), shape });
const u8 = (values: number[], shape: number[]): NumericArray => ({ data: new Uint8Array(values), shape });
const i64 = (values: number[], shape: number[]): NumericArray => ({ data: BigInt64Array.from(values, BigInt), shape });

async function putNpz(name: string, arrays: Record<string, NumericArray>, compress = false): Promise<string> {
  const key = `${dir}/${name}`;
  await store.put(key, encodeNpz(arrays, { compress }));
  return key;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

/** A hand-built IDX file (big-endian header, uint8 data). */
function idxU8(shape: number[], values: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + values.length);
  const v = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = shape.length;
  shape.forEach((d, k) => v.setUint32(4 + 4 * k, d, false));
  out.set(values, 4 + 4 * shape.length);
  return out;
}

describe('readDataset from .npz', () => {
  it('reads x, y, x_test, y_test: raw inputs (not scaled; integer arrays stay int32) and int32 labels', async () => {
    const key = await putNpz(
      'd.npz',
      {
        x: u8([0, 255, 3, 4, 5, 6, 7, 8], [2, 2, 2]),
        y: i64([3, 0], [2]),
        x_test: u8([9, 10, 11, 12], [1, 2, 2]),
        y_test: i64([1], [1]),
      },
      true,
    );
    const ds = await readDataset(store, key);
    expect(ds.xShape).toEqual([2, 2, 2]); // no channel axis added
    expect(ds.x).toBeInstanceOf(Int32Array);
    expect(Array.from(ds.x)).toEqual([0, 255, 3, 4, 5, 6, 7, 8]);
    expect(ds.y).toBeInstanceOf(Int32Array);
    expect(Array.from(ds.y)).toEqual([3, 0]);
    expect(ds.xTestShape).toEqual([1, 2, 2]);
    expect(Array.from(ds.xTest ?? [])).toEqual([9, 10, 11, 12]);
    expect(Array.from(ds.yTest ?? [])).toEqual([1]);
  });

  it('test split is optional; integer-valued float labels, [m, 1] labels and Keras x_train/y_train names are accepted', async () => {
    const key = await putNpz('k.npz', { x_train: f32([1, 2, 3], [3, 1]), y_train: f32([2, 0, 1], [3, 1]) });
    const ds = await readDataset(store, key);
    expect(ds.x).toBeInstanceOf(Float32Array);
    expect(ds.xShape).toEqual([3, 1]);
    expect(Array.from(ds.y)).toEqual([2, 0, 1]);
    expect(ds.xTest).toBeUndefined();
    expect(ds.yTest).toBeUndefined();
  });

  it('decodes one-hot labels into class indices', async () => {
    const key = await putNpz('oh.npz', {
      x: f32([1, 2, 3, 4, 5, 6], [3, 2]),
      y: f32([0, 0, 1, 1, 0, 0, 0, 1, 0], [3, 3]),
    });
    expect(Array.from((await readDataset(store, key)).y)).toEqual([2, 0, 1]);
  });

  it('missing x or y lists the arrays found', async () => {
    const key = await putNpz('no-y.npz', { x: f32([1, 2], [2, 1]), labels: i64([0, 1], [2]) });
    const err = await rejection(readDataset(store, key));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toBe(
      `${key}: is missing array y: a data set .npz needs arrays x and y (optionally x_test and y_test); it holds x [2, 1], labels [2]`,
    );
  });

  const cases: [string, Record<string, NumericArray>, RegExp][] = [
    ['length mismatch', { x: f32([1, 2, 3], [3, 1]), y: i64([0, 1], [2]) }, /:y: .*:x has 3 samples \(shape \[3, 1\]\) but .*:y has 2 labels \(shape \[2\]\)/],
    ['negative label', { x: f32([1, 2], [2, 1]), y: i64([0, -1], [2]) }, /:y: labels must be integer class indices >= 0: negative label -1 at index 1 \(dtype int64\)/],
    ['fractional label', { x: f32([1, 2], [2, 1]), y: f32([0, 1.5], [2]) }, /:y: .*non-integer label 1\.5 at index 1 \(dtype float32\)/],
    ['NaN label', { x: f32([1, 2], [2, 1]), y: f32([NaN, 1], [2]) }, /:y: .*NaN at index 0/],
    ['huge label', { x: f32([1, 2], [2, 1]), y: i64([0, 2 ** 40], [2]) }, /:y: .*label 1099511627776 exceeds 2\^31-1 at index 1/],
    ['NaN input', { x: f32([1, 2, 3, NaN], [2, 2]), y: i64([0, 1], [2]) }, /:x: inputs must be finite: value NaN at flat index 3 \(sample 1\) of shape \[2, 2\]/],
    ['infinite input', { x: f32([Infinity, 1], [2, 1]), y: i64([0, 1], [2]) }, /:x: inputs must be finite: value Infinity at flat index 0 \(sample 0\)/],
    ['float32 overflow', { x: { data: new Float64Array([1, 1e300]), shape: [2, 1] }, y: i64([0, 1], [2]) }, /:x: inputs must be finite: value 1e\+300 \(overflows float32\) at flat index 1/],
    ['x_test without y_test', { x: f32([1, 2], [2, 1]), y: i64([0, 1], [2]), x_test: f32([1], [1, 1]) }, /:y_test: .*:x_test is present but .*:y_test is missing; give both or neither/],
    ['test sample shape', { x: f32([1, 2, 3, 4], [2, 2]), y: i64([0, 1], [2]), x_test: f32([1, 2, 3], [1, 3]), y_test: i64([0], [1]) }, /:x_test: sample shape \[3\] \(shape \[1, 3\]\) differs from .*:x's sample shape \[2\] \(shape \[2, 2\]\)/],
    ['test length mismatch', { x: f32([1, 2], [2, 1]), y: i64([0, 1], [2]), x_test: f32([1, 2], [2, 1]), y_test: i64([0], [1]) }, /:y_test: .*:x_test has 2 samples \(shape \[2, 1\]\) but .*:y_test has 1 labels \(shape \[1\]\)/],
    ['bad test label', { x: f32([1, 2], [2, 1]), y: i64([0, 1], [2]), x_test: f32([1], [1, 1]), y_test: i64([-3], [1]) }, /:y_test: .*negative label -3 at index 0/],
    ['not one-hot', { x: f32([1, 2], [2, 1]), y: f32([1, 0, 0.5, 0.5], [2, 2]) }, /:y: labels of shape \[2, 2\] must be class indices or one-hot rows .* row 1 is \[0\.5, 0\.5\]/],
    ['all-zero one-hot row', { x: f32([1, 2], [2, 1]), y: f32([1, 0, 0, 0], [2, 2]) }, /:y: labels of shape \[2, 2\] look one-hot but row 1 has no 1/],
    ['3-d labels', { x: f32([1, 2], [2, 1]), y: f32([1, 0], [2, 1, 1]) }, /:y: labels must have shape \[m\], \[m, 1\] or one-hot \[m, classes\], got \[2, 1, 1\]/],
    ['1-d inputs', { x: f32([1, 2], [2]), y: i64([0, 1], [2]) }, /:x: inputs must have shape \[m, \.\.\.sampleShape\] with at least one sample axis, got \[2\]; reshape to \[2, 1\]/],
    ['no samples', { x: f32([], [0, 3]), y: i64([], [0]) }, /:x: has no samples: shape \[0, 3\]/],
  ];
  it.each(cases)('rejects %s with InvalidArgumentError naming the array', async (_, arrays, re) => {
    const key = await putNpz('bad.npz', arrays);
    const err = await rejection(readDataset(store, key));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message.startsWith(`${key}:`)).toBe(true);
    expect(err.message).toMatch(re);
  });

  it('a missing .npz is a NotFoundError naming the key; a corrupt one an InvalidArgumentError naming the file', async () => {
    const err = await rejection(readDataset(store, `${dir}/absent.npz`));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).subject).toBe(`${dir}/absent.npz`);
    await store.put(`${dir}/corrupt.npz`, 'PK\x03\x04 not really');
    const bad = await rejection(readDataset(store, `${dir}/corrupt.npz`));
    expect(bad).toBeInstanceOf(InvalidArgumentError);
    expect(bad.message).toMatch(new RegExp(`^${dir}/corrupt\\.npz: not a valid \\.npz/ZIP archive`));
  });
});

describe('readDataset from a folder of IDX files', () => {
  async function putMnistLike(gz: boolean, withTest: boolean): Promise<void> {
    const wrap = (b: Uint8Array): Uint8Array => (gz ? new Uint8Array(gzipSync(b)) : b);
    const sfx = gz ? '.gz' : '';
    await store.put(`${dir}/mnist/train-images-idx3-ubyte${sfx}`, wrap(idxU8([3, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255])));
    await store.put(`${dir}/mnist/train-labels-idx1-ubyte${sfx}`, wrap(idxU8([3], [7, 0, 9])));
    if (withTest) {
      await store.put(`${dir}/mnist/t10k-images-idx3-ubyte${sfx}`, wrap(idxU8([2, 2, 2], [1, 1, 1, 1, 2, 2, 2, 2])));
      await store.put(`${dir}/mnist/t10k-labels-idx1-ubyte${sfx}`, wrap(idxU8([2], [4, 5])));
    }
  }

  it.each([
    [true, true],
    [false, true],
    [true, false],
  ])('reads [m, h, w] images and labels (gzipped=%s, with t10k=%s)', async (gz, withTest) => {
    await putMnistLike(gz, withTest);
    for (const key of [`${dir}/mnist`, `${dir}/mnist/`]) {
      const ds = await readDataset(store, key);
      expect(ds.xShape).toEqual([3, 2, 2]);
      expect(Array.from(ds.x)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
      expect(Array.from(ds.y)).toEqual([7, 0, 9]);
      if (withTest) {
        expect(ds.xTestShape).toEqual([2, 2, 2]);
        expect(Array.from(ds.yTest ?? [])).toEqual([4, 5]);
      } else {
        expect(ds.xTest).toBeUndefined();
      }
    }
  });

  it('an empty or unrelated folder is a NotFoundError listing what is there', async () => {
    await store.put(`${dir}/misc/readme.txt`, 'hi');
    const err = await rejection(readDataset(store, `${dir}/misc`));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toContain(`the prefix '${dir}/misc/' holds ${dir}/misc/readme.txt`);
    expect(err.message).toContain('train-images-idx3-ubyte[.gz]');
    expect(await rejection(readDataset(store, `${dir}/nothing`))).toBeInstanceOf(NotFoundError);
  });

  it('images without labels (or test images without test labels) is a NotFoundError naming the missing file', async () => {
    await store.put(`${dir}/half/train-images-idx3-ubyte.gz`, gzipSync(idxU8([1, 1, 1], [0])));
    const err = await rejection(readDataset(store, `${dir}/half`));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).subject).toBe(`${dir}/half/train-labels-idx1-ubyte[.gz]`);
    await store.put(`${dir}/half/train-labels-idx1-ubyte.gz`, gzipSync(idxU8([1], [0])));
    await store.put(`${dir}/half/t10k-labels-idx1-ubyte.gz`, gzipSync(idxU8([1], [0])));
    const err2 = await rejection(readDataset(store, `${dir}/half`));
    expect(err2).toBeInstanceOf(NotFoundError);
    expect((err2 as NotFoundError).subject).toBe(`${dir}/half/t10k-images-idx3-ubyte[.gz]`);
  });

  it('validates IDX contents: mismatched lengths name both files and lengths, test sample shape must match', async () => {
    await store.put(`${dir}/m/train-images-idx3-ubyte`, idxU8([2, 1, 1], [0, 1]));
    await store.put(`${dir}/m/train-labels-idx1-ubyte`, idxU8([3], [0, 1, 2]));
    const err = await rejection(readDataset(store, `${dir}/m`));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toBe(
      `${dir}/m/train-labels-idx1-ubyte: ${dir}/m/train-images-idx3-ubyte has 2 samples (shape [2, 1, 1]) but ${dir}/m/train-labels-idx1-ubyte has 3 labels (shape [3])`,
    );
    await store.put(`${dir}/m/train-labels-idx1-ubyte`, idxU8([2], [0, 1]));
    await store.put(`${dir}/m/t10k-images-idx3-ubyte`, idxU8([1, 2, 1], [0, 1]));
    await store.put(`${dir}/m/t10k-labels-idx1-ubyte`, idxU8([1], [0]));
    const err2 = await rejection(readDataset(store, `${dir}/m`));
    expect(err2.message).toMatch(/t10k-images-idx3-ubyte: sample shape \[2, 1\] \(shape \[1, 2, 1\]\) differs from .*train-images-idx3-ubyte's sample shape \[1, 1\]/);
  });

  it('an object that is neither .npz nor a folder is an unsupported-format InvalidArgumentError', async () => {
    await store.put(`${dir}/data.csv`, '1,2,3\n');
    const err = await rejection(readDataset(store, `${dir}/data.csv`));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(new RegExp(`^${dir}/data\\.csv: unsupported data set format`));
  });

  const FASHION = '/usr/share/datasets/fashion-mnist';
  // The Debian package dataset-fashion-mnist (installed by .ci/run and the README's setup).
  it(
    `reads the real Fashion-MNIST folder at ${FASHION}`,
    async () => {
      const ds = await readDataset(new FileStore(path.dirname(FASHION)), path.basename(FASHION));
      expect(ds.xShape).toEqual([60_000, 28, 28]);
      expect(ds.xTestShape).toEqual([10_000, 28, 28]);
      expect(ds.y.length).toBe(60_000);
      expect(Math.max(...ds.y)).toBe(9);
      expect(Math.max(...ds.x.subarray(0, 784 * 10))).toBeLessThanOrEqual(255);
    },
  );
});

describe('model artifacts', () => {
  let artifacts: tf.io.ModelArtifacts;
  let model: tf.LayersModel;
  const input = tf.tensor2d([
    [0.1, -0.2, 0.3],
    [1, 2, 3],
  ]);

  beforeAll(async () => {
    await tf.setBackend('cpu');
    const seq = tf.sequential();
    seq.add(tf.layers.dense({ units: 4, inputShape: [3], activation: 'relu', kernelInitializer: 'glorotUniform' }));
    seq.add(tf.layers.dense({ units: 2, activation: 'softmax' }));
    seq.compile({ optimizer: 'adam', loss: 'sparseCategoricalCrossentropy' });
    model = seq;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
  });

  it('writes model.json + one shard and reads them back into a working LayersModel', async () => {
    const jsonKey = await writeModelArtifacts(store, `${dir}/model`, artifacts);
    expect(jsonKey).toBe(`${dir}/model/model.json`);
    expect(await store.list(`${dir}/model/`)).toEqual([`${dir}/model/${SHARD_NAME}`, `${dir}/model/model.json`]);
    const json = JSON.parse(new TextDecoder().decode(await store.get(jsonKey))) as { weightsManifest: { paths: string[] }[] };
    expect(json.weightsManifest.map((g) => g.paths)).toEqual([[SHARD_NAME]]);

    for (const key of [`${dir}/model`, `${dir}/model/`, jsonKey]) {
      const back = await readModelArtifacts(store, key);
      expect(back.format).toBe('layers-model');
      expect(back.weightSpecs).toEqual(artifacts.weightSpecs);
      expect(back.weightData).toBeInstanceOf(ArrayBuffer);
      expect((back.weightData as ArrayBuffer).byteLength).toBe(4 * (3 * 4 + 4 + 4 * 2 + 2));
      expect(back.trainingConfig).toEqual(artifacts.trainingConfig);
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(back));
      const want = (model.predict(input) as tf.Tensor).arraySync();
      const got = (loaded.predict(input) as tf.Tensor).arraySync();
      expect(got).toEqual(want);
      loaded.dispose();
    }
  });

  it('concatenates several shards in manifest order, relative to model.json, and sizes quantized weights', async () => {
    const kernel = new Float32Array([1, 2, 3, 4]);
    const q = new Uint8Array([9, 8, 7]);
    const modelJson = {
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: {} },
      weightsManifest: [
        { paths: ['shards/a.bin', 'shards/b.bin'], weights: [{ name: 'k', shape: [2, 2], dtype: 'float32' }] },
        { paths: ['./q.bin'], weights: [{ name: 'q', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', min: 0, scale: 1 } }] },
      ],
    };
    await store.put(`${dir}/m/model.json`, JSON.stringify(modelJson));
    const kb = new Uint8Array(kernel.buffer);
    await store.put(`${dir}/m/shards/a.bin`, kb.subarray(0, 6));
    await store.put(`${dir}/m/shards/b.bin`, kb.subarray(6));
    await store.put(`${dir}/m/q.bin`, q);
    const a = await readModelArtifacts(store, `${dir}/m/model.json`);
    expect(a.weightSpecs?.map((s) => s.name)).toEqual(['k', 'q']);
    const bytes = new Uint8Array(a.weightData as ArrayBuffer);
    expect(Array.from(new Float32Array(bytes.slice(0, 16).buffer))).toEqual([1, 2, 3, 4]);
    expect(Array.from(bytes.subarray(16))).toEqual([9, 8, 7]);
    expect(a.convertedBy).toBeNull();
  });

  it('a missing shard is a NotFoundError naming the shard', async () => {
    await writeModelArtifacts(store, `${dir}/m`, artifacts);
    await rm(path.join(root, dir, 'm', SHARD_NAME));
    const err = await rejection(readModelArtifacts(store, `${dir}/m`));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).subject).toBe(`${dir}/m/${SHARD_NAME}`);
    expect(err.message).toContain(`weight shard listed in ${dir}/m/model.json is missing`);
  });

  it('a truncated shard is an InvalidArgumentError with expected vs actual bytes', async () => {
    await writeModelArtifacts(store, `${dir}/m`, artifacts);
    const shard = await store.get(`${dir}/m/${SHARD_NAME}`);
    await store.put(`${dir}/m/${SHARD_NAME}`, shard.subarray(0, shard.length - 8));
    const err = await rejection(readModelArtifacts(store, `${dir}/m`));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toBe(
      `${dir}/m/model.json: weight group 0 (4 weights) needs 104 bytes but its shard ${dir}/m/${SHARD_NAME} holds 96 bytes (expected 104, actual 96)`,
    );
  });

  it('corrupt model.json is an InvalidArgumentError naming model.json; a missing one a NotFoundError', async () => {
    await store.put(`${dir}/m/model.json`, '{"modelTopology": {"class_name": ');
    const err = await rejection(readModelArtifacts(store, `${dir}/m`));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(new RegExp(`^${dir}/m/model\\.json: is not valid JSON`));
    const missing = await rejection(readModelArtifacts(store, `${dir}/elsewhere`));
    expect(missing).toBeInstanceOf(NotFoundError);
    expect((missing as NotFoundError).subject).toBe(`${dir}/elsewhere/model.json`);
  });

  it('rejects graph models, by format and by a node list', async () => {
    await store.put(`${dir}/g1/model.json`, JSON.stringify({ format: 'graph-model', modelTopology: {}, weightsManifest: [] }));
    await store.put(`${dir}/g2/model.json`, JSON.stringify({ modelTopology: { node: [], library: {} }, weightsManifest: [] }));
    for (const g of ['g1', 'g2']) {
      const err = await rejection(readModelArtifacts(store, `${dir}/${g}`));
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err.message).toContain(`${dir}/${g}/model.json: graph models cannot be cut or trained; export a Keras/LayersModel`);
    }
    await expect(
      writeModelArtifacts(store, `${dir}/g3`, { format: 'graph-model', modelTopology: {}, weightSpecs: [], weightData: new ArrayBuffer(0) }),
    ).rejects.toThrow(/graph models cannot be cut or trained/);
  });

  it('rejects malformed manifests and shard paths outside the store', async () => {
    const base = { modelTopology: { class_name: 'Sequential', config: {} } };
    const cases: [unknown, RegExp][] = [
      [{ ...base }, /weightsManifest must be a list of \{paths, weights\} groups/],
      [{ weightsManifest: [] }, /has no modelTopology object/],
      [{ ...base, weightsManifest: [{ paths: ['../../../x.bin'], weights: [] }] }, /shard path "(\.\.\/){3}x\.bin" points outside the store/],
      [{ ...base, weightsManifest: [{ paths: ['https://evil/x.bin'], weights: [] }] }, /must be relative to model\.json's folder/],
      [{ ...base, weightsManifest: [{ paths: ['a.bin'], weights: [{ name: 'w', shape: [1], dtype: 'string' }] }] }, /weight "w" has dtype string/],
      [{ ...base, weightsManifest: [{ paths: ['a.bin'], weights: [{ name: 'w', shape: [1], dtype: 'float32', quantization: { dtype: 'int4' } }] }] }, /unsupported quantization dtype "int4"/],
      [[1, 2], /must hold a JSON object, got an array/],
    ];
    for (const [json, re] of cases) {
      await store.put(`${dir}/bad/model.json`, JSON.stringify(json));
      await store.put(`${dir}/bad/a.bin`, new Uint8Array(4));
      const err = await rejection(readModelArtifacts(store, `${dir}/bad`));
      expect(err, String(re)).toBeInstanceOf(InvalidArgumentError);
      expect(err.message, String(re)).toMatch(re);
    }
  });

  it('writeModelArtifacts refuses weight data whose size differs from the specs', async () => {
    const err = await rejection(
      writeModelArtifacts(store, `${dir}/w`, { ...artifacts, weightData: (artifacts.weightData as ArrayBuffer).slice(4) }),
    );
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toBe(`${dir}/w/model.json: 4 weights need 104 bytes but weightData holds 100 bytes (expected 104, actual 100)`);
    expect(await store.exists(`${dir}/w/model.json`)).toBe(false);
  });
});
