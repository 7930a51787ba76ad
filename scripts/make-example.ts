/**
 * Produces the examples shipped in examples/: a stratified Fashion-MNIST subset (MIT licence,
 * read from the Debian package dataset-fashion-mnist) and the models trained on it with the wasm
 * backend: a small CNN (fashion-cnn) and a ResNet with BatchNormalization in two residual blocks
 * (fashion-resnet-bn, the conformance zoo's builder).
 *
 * Run: npx tsx scripts/make-example.ts [--source FASHION_MNIST_DIR] [dataset|fashion-cnn|fashion-resnet-bn ...]
 * Without names it makes all three; models train on the subset already in examples/.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { readLocalDataset } from '../src/clients/local-files.js';
import { initBackend } from '../src/metric/backend/index.js';
import type { Dataset, InputValues } from '../src/metric/dataset.js';
import { FileStore } from '../src/storage/file-store.js';
import { encodeNpz } from '../src/storage/formats/npz.js';
import { writeModelArtifacts } from '../src/storage/model-reader.js';
import { resnetBn } from '../test/conformance/zoo.js';

const DATASET = 'fashion-mnist-2k.npz';
const TRAIN_PER_CLASS = 200;
const TEST_PER_CLASS = 50;

/** A small CNN: two conv + pooling stages, Dense 64, Dense 10. */
function cnn(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 64, activation: 'relu' }),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ],
  });
}

/** The models shipped, by folder name, with their training epochs. */
const MODELS: Record<string, { build: () => tf.LayersModel; epochs: number }> = {
  'fashion-cnn': { build: cnn, epochs: 20 },
  'fashion-resnet-bn': { build: resnetBn, epochs: 10 },
};

/** The first `perClass` samples of every class, in file order. */
function stratified(x: InputValues, y: Int32Array, perClass: number): { x: Uint8Array; y: Uint8Array } {
  const taken = new Array<number>(10).fill(0);
  const rows: number[] = [];
  y.forEach((label, i) => {
    if (taken[label]! < perClass) {
      taken[label]!++;
      rows.push(i);
    }
  });
  const out = new Uint8Array(rows.length * 784);
  rows.forEach((r, i) => out.set(x.subarray(r * 784, (r + 1) * 784), i * 784));
  return { x: out, y: Uint8Array.from(rows, (r) => y[r]!) };
}

async function writeSubset(examples: FileStore, source: string): Promise<void> {
  const full = await readLocalDataset(source);
  const train = stratified(full.x, full.y, TRAIN_PER_CLASS);
  const test = stratified(full.xTest!, full.yTest!, TEST_PER_CLASS);
  const arrays = {
    x: { data: train.x, shape: [train.y.length, 28, 28] },
    y: { data: train.y, shape: [train.y.length] },
    x_test: { data: test.x, shape: [test.y.length, 28, 28] },
    y_test: { data: test.y, shape: [test.y.length] },
  };
  await examples.put(DATASET, encodeNpz(arrays, { compress: true }));
}

/** Images [m, 28, 28, 1] scaled to [0, 1], labels as float (sparse categorical). */
function tensors(x: InputValues, y: Int32Array): [tf.Tensor, tf.Tensor] {
  return [tf.tensor(Float32Array.from(x, (v) => v / 255), [y.length, 28, 28, 1]), tf.tensor(Float32Array.from(y), [y.length])];
}

async function trainAndSave(examples: FileStore, name: string, data: Dataset): Promise<void> {
  const { build, epochs } = MODELS[name]!;
  const model = build();
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const [xs, ys] = tensors(data.x, data.y);
  const [xt, yt] = tensors(data.xTest!, data.yTest!);
  const history = await model.fit(xs, ys, { epochs, batchSize: 32, shuffle: true, validationData: [xt, yt], verbose: 0 });
  const last = (key: string) => (history.history[key]!.at(-1) as number).toFixed(3);
  console.log(`${name}: trained ${epochs} epochs: train accuracy ${last('acc')}, test accuracy ${last('val_acc')}`);
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await writeModelArtifacts(examples, name, artifacts);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  tf.dispose([xs, ys, xt, yt]);
  model.dispose();
}

const { values, positionals } = parseArgs({
  options: { source: { type: 'string', default: '/usr/share/datasets/fashion-mnist' } },
  allowPositionals: true,
});
const wanted = positionals.length > 0 ? positionals : ['dataset', ...Object.keys(MODELS)];
const unknown = wanted.filter((w) => w !== 'dataset' && !(w in MODELS));
if (unknown.length > 0) throw new Error(`unknown example ${unknown.join(', ')}; choose from dataset, ${Object.keys(MODELS).join(', ')}`);

await initBackend('wasm');
const examples = new FileStore('examples');
if (wanted.includes('dataset')) await writeSubset(examples, values.source);
const subset = await readLocalDataset(`examples/${DATASET}`);
for (const name of wanted.filter((w) => w in MODELS)) await trainAndSave(examples, name, subset);
