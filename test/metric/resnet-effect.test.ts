/**
 * The papers' depth effect on a ResNet with BatchNormalization (examples/fashion-resnet-bn): heads
 * holding a residual block see features that still tell training samples apart, so they learn
 * random labels far better than heads that copy only the final Dense on the pooled features.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readLocalDataset, readLocalModel } from '../../src/clients/local-files.js';
import type { MeasureInput } from '../../src/metric/measure.js';
import { computeLayers } from '../../src/metric/model/cut.js';
import { loadModel } from '../../src/metric/model/load.js';
import { RESNET_BLOCK2_FIRST_LAYER } from '../conformance/zoo.js';
import { EXAMPLE_DATASET, run, SCALE_255, standardError, useWasm } from '../support/engine.js';

const RESNET = 'examples/fashion-resnet-bn';
/** 30 samples per class head; 20 epochs of 10 steps let the heads' batch-norm statistics settle. */
const OPTIONS = { maxSamples: 300, epochs: 20, batchSize: 30, learningRate: 3e-3, numRandomLabels: 10, ...SCALE_255 };

let input: MeasureInput;
/** The copy depth whose top is the second residual block, global average pooling and Dense. */
let blockDepth: number;

beforeAll(async () => {
  await useWasm();
  input = { model: await readLocalModel(RESNET), dataset: await readLocalDataset(EXAMPLE_DATASET) };
  const model = await loadModel(input.model);
  const layers = computeLayers(model);
  blockDepth = layers.length - layers.findIndex((l) => l.name === RESNET_BLOCK2_FIRST_LAYER);
  model.dispose();
});

describe('random-label accuracy on a BN ResNet (frozen, n = 10)', () => {
  it('is higher with a residual block in the top than with the last Dense alone', async () => {
    const { result } = await run(input, { ...OPTIONS, copyDepths: [1, blockDepth] });
    const [dense, block] = result.depths;
    const m = result.samples.train;
    expect(block!.copyDepth).toBe(blockDepth);
    // The difference of two accuracies over m samples each: its standard error.
    const se = Math.hypot(standardError(dense!.randomLabelAccuracy, m), standardError(block!.randomLabelAccuracy, m));
    expect(block!.randomLabelAccuracy - dense!.randomLabelAccuracy).toBeGreaterThan(5 * se);
    // Samples the heads never trained on stay at chance: the gap is memorization, not leakage.
    for (const d of result.depths) {
      expect(Math.abs(d.heldOutRandomLabelAccuracy - 0.1)).toBeLessThan(4 * standardError(0.1, result.samples.heldOut));
    }
  });
});
