/**
 * Produces the example shipped in examples/: a stratified Fashion-MNIST subset (MIT licence,
 * read from the Debian package dataset-fashion-mnist) and a small CNN trained on it with the
 * wasm backend. Run: npx tsx scripts/make-example.ts [FASHION_MNIST_DIR]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/metric/backend/index.js';
import { readLocalDataset } from '../src/clients/local-files.js';
import { FileStore } from '../src/storage/file-store.js';
import { encodeNpz } from '../src/storage/formats/npz.js';
import { writeModelArtifacts } from '../src/storage/model-reader.js';

const source = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const TRAIN_PER_CLASS = 200;
const TEST_PER_CLASS = 50;
const EPOCHS = 20;

/** The first `perClass` samples of every class, in file order. */
function stratified(x: Float32Array, y: Int32Array, perClass: number): { x: Uint8Array; y: Uint8Array } {
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

await initBackend('wasm');
const full = await readLocalDataset(source);
const train = stratified(full.x, full.y, TRAIN_PER_CLASS);
const test = stratified(full.xTest!, full.yTest!, TEST_PER_CLASS);
const examples = new FileStore('examples');
await examples.put(
  'fashion-mnist-2k.npz',
  encodeNpz(
    {
      x: { data: train.x, shape: [train.y.length, 28, 28] },
      y: { data: train.y, shape: [train.y.length] },
      x_test: { data: test.x, shape: [test.y.length, 28, 28] },
      y_test: { data: test.y, shape: [test.y.length] },
    },
    { compress: true },
  ),
);

const model = tf.sequential({
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
model.compile({ optimizer: tf.train.adam(1e-3), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
const xs = tf.tensor(Float32Array.from(train.x, (v) => v / 255), [train.y.length, 28, 28, 1]);
const ys = tf.tensor(Float32Array.from(train.y), [train.y.length]);
const xt = tf.tensor(Float32Array.from(test.x, (v) => v / 255), [test.y.length, 28, 28, 1]);
const yt = tf.tensor(Float32Array.from(test.y), [test.y.length]);
const history = await model.fit(xs, ys, { epochs: EPOCHS, batchSize: 32, shuffle: true, validationData: [xt, yt], verbose: 0 });
const last = (key: string) => (history.history[key]!.at(-1) as number).toFixed(3);
console.log(`trained ${EPOCHS} epochs: train accuracy ${last('acc')}, test accuracy ${last('val_acc')}`);
await model.save(
  tf.io.withSaveHandler(async (artifacts) => {
    await writeModelArtifacts(examples, 'fashion-cnn', artifacts);
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }),
);
