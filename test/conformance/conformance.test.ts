/**
 * Every zoo architecture at every valid copy depth: measurable in both modes and both head
 * initialisations, heads initialised from the top compute the top, and frozen-mode head
 * training leaves the model untouched. Models go through model.json artifacts, as users' do.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Heads, type HeadInit } from '../../src/metric/heads/heads.js';
import { computeLayers, cutModel, validCutDepths } from '../../src/metric/model/cut.js';
import { measure, type MeasureInput } from '../../src/metric/measure.js';
import { loadModel, tokenInput } from '../../src/metric/model/load.js';
import { prepareData, type Split } from '../../src/metric/prepare.js';
import { randomLabels, Stream } from '../../src/metric/random.js';
import { trainHeadsFrozen } from '../../src/metric/train/frozen.js';
import { extractFeatures, Trunk } from '../../src/metric/train/trunk.js';
import type { DepthResult, EpochEvent, MeasureOptions } from '../../src/metric/types.js';
import { example, toArtifacts, useWasm } from '../support/engine.js';
import { datasetFor, scalingFor, ZOO } from './zoo.js';

const NUM_CLASSES = 10;
const N = 10;
/** Tiny settings: the point is that every layer type works, not what the score is. */
const MEASURE: Partial<MeasureOptions> = { maxSamples: 30, epochs: 1, batchSize: 30, numRandomLabels: N };
/** Both modes with both head inits; per-class and shared heads alternate (shared ones run 5x faster). */
const SETTINGS = [
  { mode: 'frozen', headInit: 'fresh', heads: 'per-class' },
  { mode: 'frozen', headInit: 'top', heads: 'shared' },
  { mode: 'joint', headInit: 'fresh', heads: 'shared' },
  { mode: 'joint', headInit: 'top', heads: 'per-class' },
] as const;
/** Samples of the small split used for the head checks (per-class groups of up to 3). */
const PROBE_SAMPLES = 30;
const PER_GROUP = 3;

await useWasm();
const images = (await example()).dataset;

/** Each zoo model as users would hand it over: model.json artifacts, and the depths it offers. */
const cases = await Promise.all(
  ZOO.map(async (entry) => {
    const built = entry.build();
    const artifacts = await toArtifacts(built);
    built.dispose();
    const model = await loadModel(artifacts);
    const depths = validCutDepths(model);
    model.dispose();
    return { ...entry, artifacts, depths, dataset: datasetFor(entry.input, images), scaling: scalingFor(entry.input) };
  }),
);

/**
 * The oracle for which depths must be valid: those where exactly one tensor flows into the top
 * and the top holds the classifier (the last Dense). Layer types do not restrict the cut.
 */
function singleTensorCuts(model: tf.LayersModel): number[] {
  const layers = computeLayers(model);
  const classifier = layers.map((l) => l.getClassName()).lastIndexOf('Dense');
  const depths: number[] = [];
  for (let d = layers.length - classifier; d <= layers.length; d++) {
    const top = new Set(layers.slice(layers.length - d));
    const crossing = new Set(
      [...top].flatMap((l) => l.inboundNodes[0]!.inputTensors).filter((t) => !top.has(t.sourceLayer)).map((t) => t.id),
    );
    if (crossing.size === 1) depths.push(d);
  }
  return depths;
}

interface Measured {
  results: DepthResult[];
  epochs: EpochEvent[];
  /** Why the measurement stopped early; the depths scored before it keep their results. */
  error?: unknown;
}

/** Runs one measurement, keeping every depth's result that arrived before an error. */
async function measureAll(input: MeasureInput, options: Partial<MeasureOptions>): Promise<Measured> {
  const measured: Measured = { results: [], epochs: [] };
  try {
    for await (const event of measure(input, options)) {
      if (event.type === 'depthResult') measured.results.push(event.result);
      if (event.type === 'epoch') measured.epochs.push(event);
    }
  } catch (error) {
    measured.error = error;
  }
  return measured;
}

const snapshot = (model: tf.LayersModel) => model.getWeights().map((w) => w.dataSync().slice());

function expectUnitInterval(value: number, what: string): void {
  expect(Number.isFinite(value), `${what} = ${value} is not finite`).toBe(true);
  expect(value, what).toBeGreaterThanOrEqual(0);
  expect(value, what).toBeLessThanOrEqual(1);
}

describe.each(cases)('$name', ({ artifacts, depths, dataset, scaling }) => {
  let model: tf.LayersModel;
  let probe: Split;

  beforeAll(async () => {
    model = await loadModel(artifacts);
    const inputShape = model.inputs[0]!.shape.slice(1) as number[];
    const tokens = tokenInput(model);
    probe = prepareData(dataset, {
      inputShape, numClasses: NUM_CLASSES, maxSamples: PROBE_SAMPLES, heldOutFraction: 0.1, seed: 0,
      ...(scaling ? { inputScaling: scaling } : {}), ...(tokens ? { tokens } : {}),
    }).train;
  });
  afterAll(() => model.dispose());

  it('offers every cut where one tensor flows into the top', () => {
    expect(validCutDepths(model)).toEqual(singleTensorCuts(model));
  });

  describe.each(SETTINGS)('measure: $mode mode, $headInit $heads heads', ({ mode, headInit, heads }) => {
    /** One measurement over all valid depths, run by the first test that needs it. */
    let outcome: Promise<Measured> | undefined;
    const measured = () =>
      (outcome ??= measureAll({ model: artifacts, dataset }, {
        ...MEASURE, mode, headInit, heads, copyDepths: depths, ...(scaling ? { inputScaling: scaling } : {}),
      }));

    it.each(depths)('depth %i: finite scores in [0, 1]', async (depth) => {
      const { results, epochs, error } = await measured();
      const result = results.find((r) => r.copyDepth === depth);
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what the measurement threw, unchanged
      if (!result) throw error ?? new Error(`the measurement gave no result for depth ${depth}`);
      expectUnitInterval(result.randomLabelAccuracy, 'randomLabelAccuracy');
      expectUnitInterval(result.heldOutRandomLabelAccuracy, 'heldOutRandomLabelAccuracy');
      expectUnitInterval(result.classTrainAccuracy, 'classTrainAccuracy');
      expectUnitInterval(result.classTestAccuracy, 'classTestAccuracy');
      // (acc - 1/n) / (1 - 1/n) lies in [-1/(n-1), 1], up to rounding.
      expect(result.memorizationScore).toBeGreaterThanOrEqual(-1 / (N - 1) - 1e-12);
      expect(result.memorizationScore).toBeLessThanOrEqual(1);
      result.curve.forEach((acc, e) => expectUnitInterval(acc, `curve[${e}]`));
      for (const event of epochs.filter((e) => e.copyDepth === depth)) {
        for (const [name, loss] of Object.entries(event.losses)) {
          expect(Number.isFinite(loss), `epoch ${event.epoch} loss ${name} = ${loss}`).toBe(true);
        }
      }
    });
  });

  it.each(depths)('depth %i: heads initialised from the top compute the top', (depth) => {
    const cut = cutModel(model, depth);
    const [groups, k] = [2, PER_GROUP];
    const rowSize = probe.x.length / probe.count;
    const heads = new Heads(cut, { groups, outputs: NUM_CLASSES, init: 'top', seed: 1 });
    try {
      const diff = tf.tidy(() => {
        const x = tf.tensor(probe.x.subarray(0, groups * k * rowSize), [groups * k, ...probe.sampleShape]);
        const { features: [f], output } = new Trunk(model, [cut]).run(x, false);
        const logits = heads.apply(f!.reshape([groups, k, ...f!.shape.slice(1)]), false);
        return tf.softmax(logits).reshape(output.shape).sub(output).abs().max().dataSync()[0]!;
      });
      expect(diff).toBeLessThan(1e-5);
    } finally {
      heads.dispose();
    }
  });

  it.each(depths)('depth %i: frozen head training changes no model weight', async (depth) => {
    const before = snapshot(model);
    const cut = cutModel(model, depth);
    const extracted = await extractFeatures(new Trunk(model, [cut]), probe, PROBE_SAMPLES);
    const features = {
      values: extracted.values[0]!, sampleShape: extracted.shapes[0]!, groups: probe.y,
      labels: randomLabels(0, Stream.TrainLabels, probe.ids, N),
    };
    for (const init of ['fresh', 'top'] satisfies HeadInit[]) {
      const training = trainHeadsFrozen(cut, { groups: NUM_CLASSES, outputs: N, init, seed: 0 }, features, {
        epochs: 1, perGroup: PER_GROUP, learningRate: 1e-2, optimizer: 'adam', weightDecay: 0, seed: 0,
      });
      let step = await training.next();
      while (!step.done) step = await training.next();
      step.value.dispose();
    }
    expect(snapshot(model)).toEqual(before);
  });
});
