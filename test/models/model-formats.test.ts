/**
 * Models in the formats users ship, through the same entry the CLI and the server use
 * (readModel: format detected from the bytes): every ONNX fixture measured at depths 1-3 in
 * both modes, the Keras fixtures, NCHW data sets, and the files that are no model.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLocalModelSource } from '../../src/clients/local-files.js';
import { InvalidArgumentError } from '../../src/errors.js';
import type { Dataset } from '../../src/metric/dataset.js';
import type { PlanEvent } from '../../src/metric/types.js';
import { EXAMPLE_DATASET, run, SCALE_255, toArtifacts, useWasm } from '../support/engine.js';
import { readLocalDataset } from '../../src/clients/local-files.js';
import { runCli } from '../support/cli.js';
import type { ShownResult } from '../../src/clients/report.js';

const ONNX = ['cnn', 'resnet_bn_folded', 'resnet_bn_kept', 'mobilenet', 'view_flatten', 'mlp_ln_gelu', 'pool_variants', 'pad_asym', 'convtranspose'];
const KERAS = ['seq_cnn.keras', 'residual.keras', 'seq_cnn_legacy.h5'];
const TINY = { copyDepths: [1, 2, 3], epochs: 1, maxSamples: 60, batchSize: 30, ...SCALE_255 };

let images: Dataset;
/** The example images as NCHW [m, 1, 28, 28], as a PyTorch pipeline keeps them. */
let nchw: Dataset;
let dir: string;

beforeAll(async () => {
  await useWasm();
  images = await readLocalDataset(EXAMPLE_DATASET);
  nchw = { ...images, xShape: [images.xShape[0]!, 1, 28, 28], xTestShape: [images.xTestShape![0]!, 1, 28, 28] };
  dir = await mkdtemp(path.join(tmpdir(), 'memometer-formats-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe.each(ONNX)('ONNX %s', (name) => {
  it.each(['frozen', 'joint'] as const)('measures depths 1-3 in %s mode with finite scores; the plan names the format', async (mode) => {
    const source = await readLocalModelSource(`test/fixtures/onnx/${name}.onnx`);
    const { events, result } = await run({ model: source.artifacts, dataset: nchw, source: source.info }, { ...TINY, mode });
    const plan = events[0] as PlanEvent;
    expect(plan.model).toMatchObject({ format: 'onnx', inputLayout: 'NCHW' });
    expect(result.depths.map((d) => d.copyDepth)).toEqual([1, 2, 3]);
    for (const d of result.depths) {
      expect(Number.isFinite(d.randomLabelAccuracy)).toBe(true);
      expect(d.randomLabelAccuracy).toBeGreaterThanOrEqual(0);
    }
  });
});

describe.each(KERAS)('Keras %s', (file) => {
  it('is detected from its bytes and measured at depths 1-2', async () => {
    const source = await readLocalModelSource(`test/fixtures/keras/${file}`);
    expect(source.info.format).toBe('keras');
    const { result } = await run({ model: source.artifacts, dataset: images, source: source.info }, { ...TINY, copyDepths: [1, 2] });
    expect(result.depths).toHaveLength(2);
  });
});

describe('detection and layouts', () => {
  it('detects ONNX from the bytes, whatever the file is called, and notes batch norm folded by the exporter', async () => {
    const renamed = path.join(dir, 'exported-model.bin');
    await writeFile(renamed, readFileSync('test/fixtures/onnx/resnet_bn_folded.onnx'));
    const source = await readLocalModelSource(renamed);
    expect(source.info.format).toBe('onnx');
    expect(source.info.notes.join(' ')).toMatch(/folded it into the convolutions/);
    expect((await readLocalModelSource('test/fixtures/onnx/resnet_bn_kept.onnx')).info.notes).toEqual([]);
  });

  it('refuses a file that is no model, naming the formats it reads', async () => {
    const junk = path.join(dir, 'weights.bin');
    await writeFile(junk, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    await expect(readLocalModelSource(junk)).rejects.toThrow(InvalidArgumentError);
    await expect(readLocalModelSource(junk)).rejects.toThrow(/weights.bin is not a model memometer reads: expected an ONNX file, a Keras .keras or .h5 file, or a TF.js model.json/);
  });

  it('takes NCHW and NHWC images alike: the same scores, the plan says which it got', async () => {
    const model = tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 3], filters: 4, kernelSize: 3, strides: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.flatten(), tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ] });
    const artifacts = await toArtifacts(model);
    model.dispose();
    // Three-channel images (the grey image with a different offset per channel) in both layouts.
    const m = 80;
    const hwc = new Float32Array(m * 784 * 3);
    const chw = new Float32Array(m * 3 * 784);
    for (let s = 0; s < m; s++) {
      for (let p = 0; p < 784; p++) {
        for (let c = 0; c < 3; c++) {
          const v = images.x[s * 784 + p]! + 10 * c;
          hwc[(s * 784 + p) * 3 + c] = v;
          chw[(s * 3 + c) * 784 + p] = v;
        }
      }
    }
    const y = images.y.subarray(0, m);
    const options = { copyDepths: [1, 2], epochs: 1, ...SCALE_255 };
    const a = await run({ model: artifacts, dataset: { x: hwc, xShape: [m, 28, 28, 3], y } }, options);
    const b = await run({ model: artifacts, dataset: { x: chw, xShape: [m, 3, 28, 28], y } }, options);
    expect((a.events[0] as PlanEvent).datasetLayout).toBe('NHWC');
    expect((b.events[0] as PlanEvent).datasetLayout).toBe('NCHW');
    expect(b.result.depths.map((d) => d.randomLabelAccuracy)).toEqual(a.result.depths.map((d) => d.randomLabelAccuracy));
    expect(b.result.depths[0]!.classTrainAccuracy).toBe(a.result.depths[0]!.classTrainAccuracy);
    const wrong = run({ model: artifacts, dataset: { x: chw, xShape: [m, 28, 3, 28], y } }, options);
    await expect(wrong).rejects.toThrow(/dataset.x: sample shape \[28, 3, 28\] does not match the model input shape \[28, 28, 3\] \(NHWC\) or its NCHW form \[3, 28, 28\]/);
  });
});

describe('memometer measure --model FILE.onnx', () => {
  it('runs from the CLI in joint mode and prints the plan with the model format', async () => {
    const { code, stdout, stderr } = await runCli([
      'measure', '--model', 'test/fixtures/onnx/resnet_bn_kept.onnx', '--dataset', EXAMPLE_DATASET, '--depth', '1,2,3',
      '--mode', 'joint', '--epochs', '1', '--max-samples', '60', '--scale', String(1 / 255), '--json',
    ]);
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/onnx model \(takes NCHW images\)/);
    expect((JSON.parse(stdout) as ShownResult).depths.map((d: { copyDepth: number }) => d.copyDepth)).toEqual([1, 2, 3]);
  });
});
