import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLocalDataset } from '../../src/clients/local-files.js';
import { InvalidArgumentError } from '../../src/errors.js';
import type { Dataset } from '../../src/metric/dataset.js';
import { measure, type MeasureInput } from '../../src/metric/measure.js';
import { computeLayers, type Cut } from '../../src/metric/model/cut.js';
import { loadModel, tokenInput } from '../../src/metric/model/load.js';
import { prepareData } from '../../src/metric/prepare.js';
import { groupedTensor } from '../../src/metric/train/step.js';
import { extractFeatures, Trunk } from '../../src/metric/train/trunk.js';
import type { MeasureOptions } from '../../src/metric/types.js';
import { datasetFromArrays } from '../../src/storage/dataset-reader.js';
import { FileStore } from '../../src/storage/file-store.js';
import { encodeNpz } from '../../src/storage/formats/npz.js';
import { writeModelArtifacts } from '../../src/storage/model-reader.js';
import { runCli } from '../support/cli.js';
import { example, run, standardError, toArtifacts, useWasm } from '../support/engine.js';

/** Grey levels: the vocabulary. */
const LEVELS = 8;
/** 28x28 images averaged over 4x4 blocks: 49 tokens per image. */
const GRID = 7;
const LENGTH = GRID * GRID;

let dir: string;
let npz: string;
let tokens: MeasureInput;
/** The trained model's own accuracy on the training tokens, computed here without the engine. */
let directAccuracy: number;

/** Fashion-MNIST images as sequences of quantised 4x4-block grey levels, ids in [0, LEVELS). */
function tokenize(images: ArrayLike<number>, count: number): Uint8Array {
  const out = new Uint8Array(count * LENGTH);
  for (let s = 0; s < count; s++) {
    for (let by = 0; by < GRID; by++) {
      for (let bx = 0; bx < GRID; bx++) {
        let sum = 0;
        for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) sum += images[s * 784 + (by * 4 + y) * 28 + bx * 4 + x]!;
        out[s * LENGTH + by * GRID + bx] = Math.min(LEVELS - 1, Math.floor(sum / 16 / (256 / LEVELS)));
      }
    }
  }
  return out;
}

/** A bag-of-tokens text classifier: Embedding, GlobalAveragePooling1D, Dense. */
function classifier(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.embedding({ name: 'tokens', inputDim: LEVELS, outputDim: 16, inputLength: LENGTH, embeddingsInitializer: tf.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed: 1 }) }),
      tf.layers.globalAveragePooling1d({}),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

beforeAll(async () => {
  await useWasm();
  const images = (await example()).dataset;
  dir = await mkdtemp(path.join(tmpdir(), 'memometer-tokens-'));
  npz = path.join(dir, 'tokens.npz');
  const m = images.xShape[0]!;
  const mTest = images.xTestShape![0]!;
  await writeFile(npz, encodeNpz({
    x: { data: tokenize(images.x, m), shape: [m, LENGTH] },
    y: { data: Uint8Array.from(images.y), shape: [m] },
    x_test: { data: tokenize(images.xTest!, mTest), shape: [mTest, LENGTH] },
    y_test: { data: Uint8Array.from(images.yTest!), shape: [mTest] },
  }));
  const dataset = await readLocalDataset(npz);

  const model = classifier();
  model.compile({ optimizer: tf.train.adam(0.02), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const x = tf.tensor(dataset.x, dataset.xShape, 'int32');
  const y = tf.tensor(dataset.y, [m], 'float32');
  await model.fit(x, y, { epochs: 15, batchSize: 64, shuffle: false, verbose: 0 });
  const predicted = tf.tidy(() => (model.predict(x) as tf.Tensor).argMax(-1).equal(y.toInt()).mean());
  directAccuracy = (await predicted.data())[0]!;
  tf.dispose([x, y, predicted]);
  tokens = { model: await toArtifacts(model), dataset };
  await writeModelArtifacts(new FileStore(dir), 'model', tokens.model);
  model.dispose();
});
afterAll(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));

describe('integer token inputs end to end', () => {
  it('the reader keeps an integer .npz array as int32, value for value', async () => {
    const images = (await example()).dataset;
    expect(tokens.dataset.x).toBeInstanceOf(Int32Array);
    expect(tokens.dataset.xTest).toBeInstanceOf(Int32Array);
    expect(Array.from(tokens.dataset.x.subarray(0, 2 * LENGTH))).toEqual(Array.from(tokenize(images.x, 2)));
    expect(Math.max(...tokens.dataset.x)).toBe(LEVELS - 1);
    // The trained classifier reads the grey-level tokens far better than chance.
    expect(directAccuracy).toBeGreaterThan(0.3);
  });

  it('keeps token ids int32 through preparation and feature extraction (the input cut is int32)', async () => {
    const model = await loadModel(tokens.model);
    try {
      const tokenModel = tokenInput(model);
      expect(tokenModel).toEqual({ reason: 'its input feeds the Embedding layer tokens', embeddings: [{ layer: 'tokens', inputDim: LEVELS }] });
      const data = prepareData(tokens.dataset, { inputShape: [LENGTH], numClasses: 10, heldOutFraction: 0.1, seed: 0, tokens: tokenModel });
      expect(data.train.x).toBeInstanceOf(Int32Array);
      expect(data.heldOut.x).toBeInstanceOf(Int32Array);
      const layers = computeLayers(model);
      const atInput: Cut = { depth: layers.length, tensor: model.inputs[0]!, layers, outputLayer: layers.at(-1)! };
      const features = await extractFeatures(new Trunk(model, [atInput]), data.train, 256);
      expect(features.values[0]).toBeInstanceOf(Int32Array);
      expect(features.values[0]).toEqual(data.train.x);
      expect(features.classAccuracy).toBeCloseTo(directAccuracy, 6);
      const grouped = groupedTensor(features.values[0]!, [LENGTH], Int32Array.from([0, 1, 2, 3]), 2);
      expect(grouped.dtype).toBe('int32');
      expect(grouped.shape).toEqual([2, 2, LENGTH]);
      grouped.dispose();
    } finally {
      model.dispose();
    }
  });

  it.each(['frozen', 'joint'] as const)('measures depths 1 and 2 in %s mode with sane scores', async (mode) => {
    const options: Partial<MeasureOptions> = { mode, copyDepths: [1, 2], epochs: mode === 'frozen' ? 5 : 2 };
    const { result } = await run(tokens, options);
    expect(result.samples).toEqual({ train: 2000, heldOut: 500, heldOutSource: 'test' });
    expect(result.depths.map((d) => d.copyDepth)).toEqual([1, 2]);
    for (const d of result.depths) {
      expect(d.randomLabelAccuracy).toBeGreaterThanOrEqual(0);
      expect(d.randomLabelAccuracy).toBeLessThanOrEqual(1);
      expect(d.memorizationScore).toBeCloseTo((d.randomLabelAccuracy - 0.1) / 0.9, 10);
      expect(Math.abs(d.heldOutRandomLabelAccuracy - 0.1)).toBeLessThan(4 * standardError(0.1, 500));
      expect(d.curve.every(Number.isFinite)).toBe(true);
      if (mode === 'frozen') expect(d.classTrainAccuracy).toBeCloseTo(directAccuracy, 6);
      else expect(d.classTrainAccuracy).toBeGreaterThan(0.3);
    }
  });

  it('measures depth 3: heads holding the Embedding, fed the int32 tokens', async () => {
    for (const mode of ['frozen', 'joint'] as const) {
      const d = (await run(tokens, { mode, copyDepths: [3], epochs: 2 })).result.depths[0]!;
      expect(d.copyDepth).toBe(3);
      expect(d.randomLabelAccuracy).toBeGreaterThanOrEqual(0);
      expect(d.randomLabelAccuracy).toBeLessThanOrEqual(1);
      expect(Math.abs(d.heldOutRandomLabelAccuracy - 0.1)).toBeLessThan(4 * standardError(0.1, 500));
      expect(d.classTrainAccuracy).toBeGreaterThan(0.3);
    }
  });

  it('accepts integer-valued float inputs as the same tokens: identical scores', async () => {
    const options: Partial<MeasureOptions> = { copyDepths: [2], epochs: 2 };
    const floats = { ...tokens.dataset, x: Float32Array.from(tokens.dataset.x), xTest: Float32Array.from(tokens.dataset.xTest!) };
    const asFloat = (await run({ ...tokens, dataset: floats }, options)).result.depths[0]!;
    const asInt = (await run(tokens, options)).result.depths[0]!;
    expect(asFloat.seeds).toEqual(asInt.seeds);
  });
});

describe('token inputs the engine refuses', () => {
  const attempt = async (input: MeasureInput, options: Partial<MeasureOptions> = {}): Promise<Error> => {
    try {
      for await (const _ of measure(input, options)) void _;
    } catch (error) {
      return error as Error;
    }
    throw new Error('the measurement succeeded');
  };
  const withX = (x: Float32Array | Int32Array): Dataset => ({ ...tokens.dataset, x });

  it('refuses input scaling, saying why', async () => {
    const error = await attempt(tokens, { inputScaling: { scale: 1 / 255 } });
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toBe(
      'inputScaling: must not be set: the model takes integer token ids (its input feeds the Embedding layer tokens), which scaling would corrupt',
    );
  });

  it('refuses ids outside the embedding table and non-integer values, naming dataset.x', async () => {
    const outside = tokens.dataset.x.slice();
    outside[LENGTH + 3] = LEVELS;
    const e1 = await attempt({ ...tokens, dataset: withX(outside) });
    expect(e1).toBeInstanceOf(InvalidArgumentError);
    expect(e1.message).toBe(`dataset.x: token id ${LEVELS} at flat index ${LENGTH + 3} (sample 1) is outside [0, ${LEVELS}), the input range of Embedding layer tokens`);
    const negative = tokens.dataset.x.slice();
    negative[5] = -1;
    expect((await attempt({ ...tokens, dataset: withX(negative) })).message).toMatch(/^dataset\.x: token id -1 at flat index 5 \(sample 0\) is outside/);
    const fractional = Float32Array.from(tokens.dataset.x);
    fractional[7] = 2.5;
    expect((await attempt({ ...tokens, dataset: withX(fractional) })).message).toBe(
      'dataset.x: the model takes integer token ids (its input feeds the Embedding layer tokens), but value 2.5 at flat index 7 (sample 0) is not an int32 integer',
    );
  });

  it('the reader refuses integers that do not fit int32, naming the array', () => {
    const y = { data: new Int32Array(2), shape: [2] };
    const names = { x: 'big.npz:x', y: 'big.npz:y', xTest: 'big.npz:x_test', yTest: 'big.npz:y_test' };
    const caught = (x: Parameters<typeof datasetFromArrays>[0]['x']) => {
      try {
        datasetFromArrays({ x, y }, names);
      } catch (error) {
        return error as Error;
      }
      throw new Error('accepted');
    };
    const int64 = caught({ data: BigInt64Array.from([1n, 2n ** 40n]), shape: [2, 1] });
    expect(int64).toBeInstanceOf(InvalidArgumentError);
    expect(int64.message).toBe(
      'big.npz:x: integer inputs must fit int32: value 1099511627776 at flat index 1 (dtype int64); store them as float32 if they are not token ids',
    );
    expect(caught({ data: Uint32Array.from([0, 2 ** 31]), shape: [2, 1] }).message).toMatch(/^big\.npz:x: integer inputs must fit int32: value 2147483648 at flat index 1 \(dtype uint32\)/);
    const bools = datasetFromArrays({ x: { data: Uint8Array.from([1, 0]), shape: [2, 1], dtype: 'bool' }, y }, names);
    expect(bools.x).toEqual(Int32Array.from([1, 0]));
  });
});

describe('the CLI on a token model', () => {
  it('measures an Embedding model on an integer .npz and prints JSON', async () => {
    const { code, stdout, stderr } = await runCli(['measure', '--model', path.join(dir, 'model'), '--dataset', npz, '--depth', '1,2', '--epochs', '1', '--json', '--quiet']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as { depths: { copyDepth: number; randomLabelAccuracy: number; classTrainAccuracy: number }[] };
    expect(report.depths.map((d) => d.copyDepth)).toEqual([1, 2]);
    for (const d of report.depths) {
      expect(d.randomLabelAccuracy).toBeGreaterThan(0);
      expect(d.classTrainAccuracy).toBeCloseTo(directAccuracy, 6);
    }
    const scaled = await runCli(['measure', '--model', path.join(dir, 'model'), '--dataset', npz, '--scale', '0.5', '--quiet']);
    expect(scaled.code).toBe(2);
    expect(scaled.stderr).toMatch(/^memometer: inputScaling: must not be set: the model takes integer token ids/);
  });
});
