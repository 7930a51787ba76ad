/**
 * Writes every model of the conformance zoo (test/conformance/zoo.ts: untrained, seeded, 10
 * classes) as TF.js model.json + weights into FOLDER/<name>/, and the example images as 49-token
 * sequences (FOLDER/fashion-tokens-2k.npz) for the Embedding model, so that `memometer measure`
 * and outside checks can run on every architecture:
 *
 *   npx tsx scripts/make-zoo.ts FOLDER
 *   npm run memometer -- measure --model FOLDER/resnet_bn --dataset examples/fashion-mnist-2k.npz --scale 0.00392156862745098
 *   npm run memometer -- measure --model FOLDER/token_embedding --dataset FOLDER/fashion-tokens-2k.npz
 */
import * as tf from '@tensorflow/tfjs';
import { readLocalDataset } from '../src/clients/local-files.js';
import { initBackend } from '../src/metric/backend/index.js';
import type { Dataset } from '../src/metric/dataset.js';
import { FileStore } from '../src/storage/file-store.js';
import { encodeNpz } from '../src/storage/formats/npz.js';
import { writeModelArtifacts } from '../src/storage/model-reader.js';
import { tokenDataset, ZOO } from '../test/conformance/zoo.js';

const IMAGES = 'examples/fashion-mnist-2k.npz';
const TOKENS = 'fashion-tokens-2k.npz';

function npz(ds: Dataset): Uint8Array {
  return encodeNpz(
    {
      x: { data: ds.x, shape: ds.xShape },
      y: { data: ds.y, shape: [ds.y.length] },
      ...(ds.xTest && ds.xTestShape && ds.yTest
        ? { x_test: { data: ds.xTest, shape: ds.xTestShape }, y_test: { data: ds.yTest, shape: [ds.yTest.length] } }
        : {}),
    },
    { compress: true },
  );
}

const folder = process.argv[2];
if (!folder) {
  console.error('usage: npx tsx scripts/make-zoo.ts FOLDER');
  process.exit(2);
}
await initBackend('wasm');
const store = new FileStore(folder);
for (const { name, build } of ZOO) {
  const model = build();
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await writeModelArtifacts(store, name, artifacts);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  console.log(`${folder}/${name}: ${model.countParams()} parameters`);
  model.dispose();
}
await store.put(TOKENS, npz(tokenDataset(await readLocalDataset(IMAGES))));
console.log(`${folder}/${TOKENS}: the example images as 49 tokens in [0, 8)`);
