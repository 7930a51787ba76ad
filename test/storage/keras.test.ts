import { readFileSync } from 'node:fs';

import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';

import { readLocalDataset } from '../../src/clients/local-files.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { loadModel } from '../../src/metric/model/load.js';
import { isKerasFile, readKerasModel, toSnakeCase } from '../../src/storage/formats/keras.js';
import { encodeZip, listZipEntries, parseNpz, readZipEntry } from '../../src/storage/formats/npz.js';
import { EXAMPLE_DATASET, run, SCALE_255, useWasm } from '../support/engine.js';

const DIR = 'test/fixtures/keras';
const FIXTURES = ['seq_cnn.keras', 'residual.keras', 'seq_cnn_legacy.h5', 'rnn.keras', 'rnn_legacy.h5', 'bidir_rnn.keras'] as const;

const fixture = (file: string) => new Uint8Array(readFileSync(`${DIR}/${file}`));

function expected(file: string): { x: tf.Tensor; y: Float32Array; yShape: number[] } {
  const arrays = parseNpz(fixture(file.replace(/\.(keras|h5)$/, '.npz')), file);
  const x = arrays.get('x')!;
  const y = arrays.get('y')!;
  return { x: tf.tensor(x.data as Float32Array, x.shape), y: y.data as Float32Array, yShape: y.shape };
}

/** A ZIP archive of `entries`, for hand-made broken .keras files. */
function zip(entries: Record<string, Uint8Array | string>): Uint8Array {
  const enc = new TextEncoder();
  return encodeZip(Object.entries(entries).map(([name, content]) => [name, typeof content === 'string' ? enc.encode(content) : content] as const), { compress: true });
}

/** The entries of a fixture .keras archive, to rebuild it with changes. */
function unzip(file: string): Record<string, Uint8Array> {
  const bytes = fixture(file);
  return Object.fromEntries(listZipEntries(bytes, file).map((e) => [e.name, readZipEntry(bytes, e, file)]));
}

async function rejection(promise: Promise<unknown>): Promise<InvalidArgumentError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidArgumentError);
  expect((error as InvalidArgumentError).subject).toBe('model');
  return error as InvalidArgumentError;
}

beforeAll(async () => {
  await useWasm();
});

describe('Keras model files', () => {
  it.each(FIXTURES)('%s loads and predicts what an independent numpy implementation computed', async (file) => {
    const bytes = fixture(file);
    expect(isKerasFile(bytes)).toBe(true);
    const artifacts = await readKerasModel(bytes, file);
    const model = await loadModel(artifacts);
    try {
      const { x, y, yShape } = expected(file);
      const out = model.predict(x) as tf.Tensor;
      expect(out.shape).toEqual(yShape);
      const got = out.dataSync();
      let maxDiff = 0;
      for (let i = 0; i < y.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - y[i]!));
      expect(maxDiff).toBeLessThan(1e-4);
      tf.dispose([x, out]);
    } finally {
      model.dispose();
    }
  });

  it('normalises the Keras 3 config to the form TF.js reads', async () => {
    const artifacts = await readKerasModel(fixture('residual.keras'), 'residual.keras');
    const text = JSON.stringify(artifacts.modelTopology);
    for (const gone of ['"module"', '"registered_name"', '"build_config"', 'DTypePolicy', '__keras_tensor__', '"batch_shape"', '"keepdims"', '"synchronized"']) {
      expect(text).not.toContain(gone);
    }
    const topology = artifacts.modelTopology as { class_name: string; config: { layers: { name: string; inbound_nodes: unknown }[]; input_layers: unknown } };
    expect(topology.class_name).toBe('Functional');
    expect(topology.config.input_layers).toEqual([['input_layer', 0, 0]]);
    const add = topology.config.layers.find((l) => l.name === 'residual_add')!;
    expect(add.inbound_nodes).toEqual([[['stem_relu', 0, 0, {}], ['block_bn', 0, 0, {}]]]);
    // Weights are found under Keras' class-name paths but named after the layers, as TF.js names them.
    expect(artifacts.weightSpecs!.map((w) => w.name)).toEqual([
      'stem_conv/kernel', 'stem_conv/bias',
      'stem_bn/gamma', 'stem_bn/beta', 'stem_bn/moving_mean', 'stem_bn/moving_variance',
      'block_conv/kernel', 'block_conv/bias',
      'block_bn/gamma', 'block_bn/beta', 'block_bn/moving_mean', 'block_bn/moving_variance',
      'logits/kernel', 'logits/bias',
    ]);
    // The optimizer state saved with the trained Sequential model is not read as model weights.
    const seq = await readKerasModel(fixture('seq_cnn.keras'), 'seq_cnn.keras');
    expect(seq.weightSpecs!.map((w) => w.name)).toEqual(['conv2d/kernel', 'conv2d/bias', 'dense/kernel', 'dense/bias', 'dense_1/kernel', 'dense_1/bias']);
  });

  it('maps RNN cell variables and Bidirectional copies to the names TF.js gives them', async () => {
    const rnnNames = ['lstm/kernel', 'lstm/recurrent_kernel', 'lstm/bias', 'gru/kernel', 'gru/recurrent_kernel', 'gru/bias', 'dense/kernel', 'dense/bias'];
    for (const file of ['rnn.keras', 'rnn_legacy.h5']) {
      const artifacts = await readKerasModel(fixture(file), file);
      expect(artifacts.weightSpecs!.map((w) => w.name)).toEqual(rnnNames);
      expect(artifacts.weightSpecs!.find((w) => w.name === 'gru/bias')!.shape).toEqual([24]);
    }
    const bidir = await readKerasModel(fixture('bidir_rnn.keras'), 'bidir_rnn.keras');
    expect(bidir.weightSpecs!.map((w) => w.name)).toEqual([
      'bidirectional/forward_lstm/kernel', 'bidirectional/forward_lstm/recurrent_kernel', 'bidirectional/forward_lstm/bias',
      'bidirectional/backward_lstm/kernel', 'bidirectional/backward_lstm/recurrent_kernel', 'bidirectional/backward_lstm/bias',
      'simple_rnn/kernel', 'simple_rnn/recurrent_kernel', 'simple_rnn/bias', 'dense/kernel', 'dense/bias',
    ]);
    const layers = (bidir.modelTopology as { config: { layers: { class_name: string; config: Record<string, unknown> }[] } }).config.layers;
    const wrapper = layers.find((l) => l.class_name === 'Bidirectional')!.config;
    expect(wrapper).not.toHaveProperty('backward_layer');
    expect((wrapper['layer'] as { config: { name: string } }).config.name).toBe('lstm');
  });

  it('names weight groups as Keras does (naming.to_snake_case)', () => {
    expect(['Conv2D', 'BatchNormalization', 'ReLU', 'GlobalAveragePooling2D', 'InputLayer', 'MaxPooling2D', 'Functional'].map(toSnakeCase)).toEqual([
      'conv2d', 'batch_normalization', 're_lu', 'global_average_pooling2d', 'input_layer', 'max_pooling2d', 'functional',
    ]);
  });

  it('is not fooled by other files', async () => {
    expect(isKerasFile(new TextEncoder().encode('{"modelTopology": {}}'))).toBe(false);
    const error = await rejection(readKerasModel(new TextEncoder().encode('{"modelTopology": {}}'), 'model.json'));
    expect(error.message).toMatch(/not a Keras model file/);
  });
});

describe('broken Keras files', () => {
  it('a truncated .keras archive', async () => {
    const bytes = fixture('seq_cnn.keras');
    const error = await rejection(readKerasModel(bytes.subarray(0, bytes.length - 400), 'seq_cnn.keras'));
    expect(error.message).toMatch(/seq_cnn\.keras.*truncated/);
  });

  it('a truncated legacy .h5 file', async () => {
    const bytes = fixture('seq_cnn_legacy.h5');
    const error = await rejection(readKerasModel(bytes.subarray(0, 3000), 'seq_cnn_legacy.h5'));
    expect(error.message).toMatch(/seq_cnn_legacy\.h5: not a readable HDF5 file: truncated file/);
  });

  it('a zip without config.json', async () => {
    const entries = unzip('seq_cnn.keras');
    delete entries['config.json'];
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/m\.keras: the \.keras archive has no config\.json \(entries: metadata\.json, model\.weights\.h5\)/);
  });

  it('a zip without model.weights.h5', async () => {
    const entries = unzip('seq_cnn.keras');
    delete entries['model.weights.h5'];
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/no model\.weights\.h5/);
  });

  it('an h5 file without model_config (a weights-only file)', async () => {
    // The weights file inside a .keras archive is an HDF5 file with no model_config.
    const error = await rejection(readKerasModel(unzip('seq_cnn.keras')['model.weights.h5']!, 'weights.h5'));
    expect(error.message).toMatch(/weights\.h5: the HDF5 file has no model_config attribute/);
  });

  it('weights missing for a layer', async () => {
    const entries = unzip('residual.keras');
    type Layer = { class_name: string; name: string; config: { name: string } };
    const config = JSON.parse(new TextDecoder().decode(entries['config.json'])) as { config: { layers: Layer[] } };
    // A third Conv2D would read layers/conv2d_2, which the weights file does not have.
    const layers = config.config.layers;
    const extra = structuredClone(layers[4]!);
    extra.name = extra.config.name = 'extra_conv';
    layers.splice(5, 0, extra);
    entries['config.json'] = new TextEncoder().encode(JSON.stringify(config));
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/weights missing for layer extra_conv \(Conv2D\).*layers\/conv2d_2\/vars, found none/);
  });

  it('a weight whose shape does not fit the layer config', async () => {
    const entries = unzip('seq_cnn.keras');
    const text = new TextDecoder().decode(entries['config.json']).replace('"units": 16', '"units": 17');
    entries['config.json'] = new TextEncoder().encode(text);
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/shape mismatch for weight kernel of layer dense \(Dense\): the file holds \[676, 16\], the layer config implies \[\?, 17\]/);
  });

  it('a layer class TF.js does not have', async () => {
    const entries = unzip('seq_cnn.keras');
    const text = new TextDecoder().decode(entries['config.json']).replace('"class_name": "Flatten"', '"class_name": "MyFlatten"');
    entries['config.json'] = new TextEncoder().encode(text);
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/unsupported class name MyFlatten \(layer flatten\)/);
  });

  it('a GRU with reset_after=True (the Keras 3 default), which TF.js cannot run', async () => {
    const entries = unzip('rnn.keras');
    const text = new TextDecoder().decode(entries['config.json']);
    expect(text).toContain('"reset_after": false');
    entries['config.json'] = new TextEncoder().encode(text.replace('"reset_after": false', '"reset_after": true'));
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/unsupported GRU setting in layer gru: reset_after = true .*not supported by TF\.js 4\.22's GRU/);
    expect(error.message).toMatch(/GRU\(\.\.\., reset_after=False\)/);
  });

  it('a Bidirectional layer whose backward layer is not the mirror of the forward one', async () => {
    const entries = unzip('bidir_rnn.keras');
    type Wrapped = { config: { units: number; activation: string } };
    const config = JSON.parse(new TextDecoder().decode(entries['config.json'])) as { config: { layers: { class_name: string; config: { backward_layer: Wrapped } }[] } };
    config.config.layers.find((l) => l.class_name === 'Bidirectional')!.config.backward_layer.config.activation = 'relu';
    entries['config.json'] = new TextEncoder().encode(JSON.stringify(config));
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/unsupported Bidirectional setting in layer bidirectional: its backward_layer is not the forward LSTM with go_backwards flipped/);
  });

  it('a config whose layers are missing or not layer objects', async () => {
    const withConfig = (change: (config: { class_name: string; config: { layers: unknown } }) => void) => {
      const entries = unzip('seq_cnn.keras');
      const config = JSON.parse(new TextDecoder().decode(entries['config.json'])) as { class_name: string; config: { layers: unknown } };
      change(config);
      entries['config.json'] = new TextEncoder().encode(JSON.stringify(config));
      return readKerasModel(zip(entries), 'm.keras');
    };
    expect((await rejection(withConfig((c) => (c.config.layers = 'none')))).message).toMatch(/the Sequential config has no layers list/);
    const notALayer = await rejection(withConfig((c) => ((c.config.layers as unknown[])[1] = 42)));
    expect(notALayer.message).toMatch(/layer 1 of Sequential is not a \{class_name, config\} object/);
    const oddClass = await rejection(withConfig((c) => ((c as { class_name: unknown }).class_name = { a: 1 })));
    expect(oddClass.message).toMatch(/has no class_name/);
  });

  it('a subclassed model', async () => {
    const entries = unzip('seq_cnn.keras');
    entries['config.json'] = new TextEncoder().encode(JSON.stringify({ module: 'my', class_name: 'MyModel', config: {}, registered_name: 'my>MyModel' }));
    const error = await rejection(readKerasModel(zip(entries), 'm.keras'));
    expect(error.message).toMatch(/unsupported class name MyModel/);
  });
});

describe('a measurement on a Keras model', () => {
  it('gives finite scores at depths 1 and 2', async () => {
    const model = await readKerasModel(fixture('seq_cnn.keras'), 'seq_cnn.keras');
    const dataset = await readLocalDataset(EXAMPLE_DATASET);
    const { result } = await run({ model, dataset }, { copyDepths: [1, 2], epochs: 1, maxSamples: 100, ...SCALE_255 });
    expect(result.depths).toHaveLength(2);
    for (const d of result.depths) {
      expect(Number.isFinite(d.randomLabelAccuracy)).toBe(true);
      expect(Number.isFinite(d.memorizationScore)).toBe(true);
      expect(Number.isFinite(d.heldOutRandomLabelAccuracy)).toBe(true);
    }
  });
});
