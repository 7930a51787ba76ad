import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError, ResourceExhaustedError } from '../errors.js';
import type { Dataset, InputValues } from './dataset.js';
import { estimateHeadParameters, type Heads, type HeadsOptions } from './heads/heads.js';
import { cutModel, type Cut } from './model/cut.js';
import { loadModel, tokenInput } from './model/load.js';
import { resolveOptions } from './options.js';
import { prepareData, type PreparedData } from './prepare.js';
import { randomLabels, Stream } from './random.js';
import { meanAndStd, memorizationScore, zAboveChance } from './score.js';
import { trainHeadsFrozen } from './train/frozen.js';
import { headWorkerCount, HeadWorkers, shared } from './train/head-workers.js';
import { evaluateHeads, type Features, type HeadTraining, type SeedAccuracy } from './train/heads-step.js';
import { trainJoint } from './train/joint.js';
import { OPTIMIZER_SLOTS } from './train/optimizer.js';
import { extractFeatures, Trunk, type ExtractedFeatures } from './train/trunk.js';
import type { DepthResult, EpochEvent, MeasureOptions, MeasurementEvent, ModelInfo, PlanEvent, SeedScore } from './types.js';

export interface MeasureInput {
  model: tf.io.ModelArtifacts;
  dataset: Dataset;
  /** Where the model came from; a TF.js LayersModel when absent. */
  source?: ModelInfo;
}

const TFJS_MODEL: ModelInfo = { format: 'tfjs', notes: [], inputLayout: 'NHWC' };

const EXTRACT_CHUNK = 256;
const BYTES = 4;
/** Held-out random-label accuracy this many standard errors above chance means labels leak. */
const LEAK_Z = 4;

interface Layout {
  groups: number;
  perGroup: number;
  trainGroups: Int32Array;
  heldOutGroups: Int32Array;
}

function layout(data: PreparedData, options: MeasureOptions, numClasses: number): Layout {
  const perClass = options.heads === 'per-class';
  const groups = perClass ? numClasses : 1;
  return {
    groups,
    perGroup: perClass ? Math.max(1, Math.round(options.batchSize / numClasses)) : options.batchSize,
    trainGroups: perClass ? data.train.y : new Int32Array(data.train.count),
    heldOutGroups: perClass ? data.heldOut.y : new Int32Array(data.heldOut.count),
  };
}

function modelShape(model: tf.LayersModel): { inputShape: number[]; numClasses: number } {
  const input = model.inputs[0]!.shape.slice(1);
  const output = model.outputs[0]!.shape;
  if (input.some((d) => d === null) || output.length !== 2) {
    throw new InvalidArgumentError(
      `needs a fixed input shape and a [batch, classes] output; got input [${input}] and output [${output}]`,
      'model',
    );
  }
  return { inputShape: input as number[], numClasses: output[1] as number };
}

function planBytes(
  options: MeasureOptions, data: PreparedData, model: tf.LayersModel, headParams: number[], featureSizes: number[], headWorkers: number,
): number {
  const samples = data.train.count + data.heldOut.count;
  const perParam = BYTES * (2 + OPTIMIZER_SLOTS[options.optimizer]);
  // Head workers split the heads between them; each holds its own copy of the model's weights.
  const heads = headParams.reduce((a, b) => a + b, 0) * perParam;
  const workers = headWorkers > 1 ? headWorkers * model.countParams() * BYTES : 0;
  const input = samples * data.train.x.length / Math.max(1, data.train.count) * BYTES;
  const features = options.mode === 'frozen' ? samples * featureSizes.reduce((a, b) => a + b, 0) * BYTES : 0;
  const backbone = options.mode === 'joint' ? model.countParams() * perParam : 0;
  return heads + workers + input + features + backbone;
}

function features(values: InputValues, shape: number[], groups: Int32Array, labels: Int32Array): Features {
  return { values, sampleShape: shape, groups, labels };
}

interface SplitLabels {
  train: Int32Array;
  heldOut: Int32Array;
}

const sharedLabels = (labels: SplitLabels): SplitLabels => ({ train: shared(labels.train), heldOut: shared(labels.heldOut) });

/** Both splits' features at cut `d` with one seed's random labels. */
function splitFeatures(d: number, train: ExtractedFeatures, heldOut: ExtractedFeatures, lay: Layout, labels: SplitLabels) {
  return {
    train: features(train.values[d]!, train.shapes[d]!, lay.trainGroups, labels.train),
    heldOut: features(heldOut.values[d]!, heldOut.shapes[d]!, lay.heldOutGroups, labels.heldOut),
  };
}

async function headsAccuracy(heads: Heads, split: { train: Features; heldOut: Features }, lay: Layout): Promise<SeedAccuracy> {
  return {
    train: await evaluateHeads(heads, split.train, lay.groups, lay.perGroup),
    heldOut: await evaluateHeads(heads, split.heldOut, lay.groups, lay.perGroup),
  };
}

function scoreSeed(seed: number, acc: SeedAccuracy, train: ExtractedFeatures, heldOut: ExtractedFeatures, n: number): SeedScore {
  return {
    seed,
    randomLabelAccuracy: acc.train,
    memorizationScore: memorizationScore(acc.train, n),
    heldOutRandomLabelAccuracy: acc.heldOut,
    classTrainAccuracy: train.classAccuracy,
    classTestAccuracy: heldOut.classAccuracy,
  };
}

/** Frozen mode on the main thread for one cut and seed: trains, scores and releases the heads. */
async function* frozenHere(
  cut: Cut, headsOptions: HeadsOptions, split: { train: Features; heldOut: Features }, training: HeadTraining, lay: Layout,
): AsyncGenerator<EpochEvent, SeedAccuracy> {
  const heads = yield* trainHeadsFrozen(cut, headsOptions, split.train, training);
  try {
    return await headsAccuracy(heads, split, lay);
  } finally {
    heads.dispose();
  }
}

function depthResult(depth: number, params: number, scores: SeedScore[], curves: number[][], n: number): DepthResult {
  const acc = meanAndStd(scores.map((s) => s.randomLabelAccuracy));
  const mem = meanAndStd(scores.map((s) => s.memorizationScore));
  const mean = (f: (s: SeedScore) => number) => meanAndStd(scores.map(f)).mean;
  return {
    copyDepth: depth,
    randomLabelAccuracy: acc.mean,
    randomLabelAccuracyStd: acc.std,
    chance: 1 / n,
    memorizationScore: mem.mean,
    memorizationScoreStd: mem.std,
    heldOutRandomLabelAccuracy: mean((s) => s.heldOutRandomLabelAccuracy),
    classTrainAccuracy: mean((s) => s.classTrainAccuracy),
    classTestAccuracy: mean((s) => s.classTestAccuracy),
    headParameters: params,
    seeds: scores,
    curve: curves[0]!.map((_, e) => meanAndStd(curves.map((c) => c[e]!)).mean),
  };
}

function warningsFor(results: DepthResult[], options: MeasureOptions, heldOutCount: number): string[] {
  const n = options.numRandomLabels;
  const warnings: string[] = [];
  for (const r of results) {
    const z = zAboveChance(r.heldOutRandomLabelAccuracy, n, heldOutCount * r.seeds.length);
    if (z > LEAK_Z) {
      warnings.push(
        `depth ${r.copyDepth}: held-out random-label accuracy ${r.heldOutRandomLabelAccuracy.toFixed(4)} is ` +
          `${z.toFixed(1)} standard errors above chance ${(1 / n).toFixed(4)}: random labels may leak into the inputs`,
      );
    }
  }
  if (options.mode === 'joint' && options.lambda > 0 && options.learningRate < 1e-4) {
    warnings.push(
      `learningRate ${options.learningRate} is low: heads that learn too slowly make lambda look effective when it is not`,
    );
  }
  return warnings;
}

/** Re-yields a training run's events after `onEvent`; closing it closes the run (its finally). */
async function* tap<R>(run: AsyncGenerator<EpochEvent, R>, onEvent: (e: EpochEvent) => void): AsyncGenerator<EpochEvent, R> {
  try {
    let step = await run.next();
    for (; !step.done; step = await run.next()) {
      onEvent(step.value);
      yield step.value;
    }
    return step.value;
  } finally {
    await run.return(undefined as never);
  }
}

/**
 * One measurement: plans (cuts, heads, memory), trains, scores. Yields typed events; the last
 * one is `done` with the result. Every tensor is released when the iteration ends, also when
 * it is cancelled (options.signal) or abandoned.
 */
export async function* measure(input: MeasureInput, given: Partial<MeasureOptions>): AsyncGenerator<MeasurementEvent> {
  const started = performance.now();
  const options = resolveOptions(given);
  const n = options.numRandomLabels;
  const model = await loadModel(input.model);
  try {
    const { inputShape, numClasses } = modelShape(model);
    const data = prepareData(input.dataset, { ...options, inputShape, numClasses, tokens: tokenInput(model), seed: options.seeds[0]! });
    const cuts = options.copyDepths.map((d) => cutModel(model, d));
    const lay = layout(data, options, numClasses);
    const headParameters = cuts.map((cut) => estimateHeadParameters(cut, lay.groups, n));
    const featureSizes = cuts.map((cut) => cut.tensor.shape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1));
    const headWorkers = headParameters.map((params) =>
      headWorkerCount(options.headWorkers, {
        backend: tf.getBackend(), mode: options.mode, groups: lay.groups, headParameters: params, samples: data.train.count,
        epochs: options.epochs, seeds: options.seeds.length,
      }),
    );
    const estimatedBytes = planBytes(options, data, model, headParameters, featureSizes, Math.max(...headWorkers));
    if (estimatedBytes > options.memoryBudgetBytes) {
      throw new ResourceExhaustedError(
        `the measurement needs about ${(estimatedBytes / 2 ** 20).toFixed(0)} MiB (heads: ${headParameters.join(', ')} parameters ` +
          `at depths ${options.copyDepths.join(', ')}); the budget is ${(options.memoryBudgetBytes / 2 ** 20).toFixed(0)} MiB. ` +
          'Use shared heads, a smaller copy depth, fewer random labels or fewer samples',
        'memoryBudgetBytes',
      );
    }
    const samples: PlanEvent['samples'] = { train: data.train.count, heldOut: data.heldOut.count, heldOutSource: data.heldOutSource };
    yield {
      type: 'planned', backend: tf.getBackend(), mode: options.mode, heads: options.heads, copyDepths: options.copyDepths,
      headsPerDepth: lay.groups, headParameters, ...(options.mode === 'frozen' ? { headWorkers } : {}), samples, numClasses, estimatedBytes,
      model: input.source ?? TFJS_MODEL, datasetLayout: data.layout,
    };

    const labelsFor = (seed: number): SplitLabels => ({
      train: randomLabels(seed, Stream.TrainLabels, data.train.ids, n),
      heldOut: randomLabels(seed, Stream.HeldOutLabels, data.heldOut.ids, n),
    });
    const headsOptions = (seed: number): HeadsOptions => ({ groups: lay.groups, outputs: n, init: options.headInit, seed });
    const training = (seed: number): HeadTraining => ({
      epochs: options.epochs, perGroup: lay.perGroup, learningRate: options.learningRate, optimizer: options.optimizer,
      weightDecay: options.weightDecay, seed, signal: options.signal,
    });
    const results: DepthResult[] = [];
    let fineTunedModel: tf.io.ModelArtifacts | undefined;

    if (options.mode === 'frozen') {
      // The workers load the model while the main thread extracts the features.
      const poolSize = Math.max(...headWorkers);
      const starting = poolSize > 1 ? HeadWorkers.start(poolSize, input.model) : undefined;
      starting?.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
      try {
        const extractStart = performance.now();
        const trunk = new Trunk(model, cuts);
        const train = await extractFeatures(trunk, data.train, EXTRACT_CHUNK, options.signal);
        const heldOut = await extractFeatures(trunk, data.heldOut, EXTRACT_CHUNK, options.signal);
        yield { type: 'features', seconds: (performance.now() - extractStart) / 1000, samples: data.train.count + data.heldOut.count };
        const pool = await starting;
        if (pool) [lay.trainGroups, lay.heldOutGroups] = [shared(lay.trainGroups), shared(lay.heldOutGroups)];
        for (const [d, cut] of cuts.entries()) {
          const workers = headWorkers[d]!;
          // Into shared memory once per cut, in place of the unshared copy.
          if (workers > 1) [train.values[d], heldOut.values[d]] = [shared(train.values[d]!), shared(heldOut.values[d]!)];
          const scores: SeedScore[] = [];
          const curves: number[][] = [];
          for (const seed of options.seeds) {
            const labels = labelsFor(seed);
            const curve: number[] = [];
            const run = workers > 1
              ? pool!.trainFrozen(workers, cut.depth, headsOptions(seed), splitFeatures(d, train, heldOut, lay, sharedLabels(labels)), training(seed))
              : frozenHere(cut, headsOptions(seed), splitFeatures(d, train, heldOut, lay, labels), training(seed), lay);
            scores.push(scoreSeed(seed, yield* tap(run, (e) => curve.push(e.randomLabelAccuracy)), train, heldOut, n));
            curves.push(curve);
          }
          const result = depthResult(cut.depth, headParameters[d]!, scores, curves, n);
          results.push(result);
          yield { type: 'depthResult', result };
        }
      } finally {
        await starting?.then((pool) => pool.close(), () => undefined);
      }
    } else {
      const scores: SeedScore[][] = cuts.map(() => []);
      const curves: number[][][] = cuts.map(() => []);
      for (const seed of options.seeds) {
        const artifacts = options.reinitialize ? { ...input.model, weightSpecs: undefined, weightData: undefined } : input.model;
        const tuned = await loadModel(artifacts);
        let heads: Heads[] = [];
        try {
          const trunk = new Trunk(tuned, options.copyDepths.map((d) => cutModel(tuned, d)));
          const labels = labelsFor(seed);
          const seedCurves: number[][] = cuts.map(() => []);
          const run = trainJoint(trunk, data.train, lay.trainGroups, labels.train, headsOptions(seed), {
            ...training(seed), lambda: options.lambda, labelSmoothing: options.labelSmoothing,
          });
          heads = yield* tap(run, (e) => seedCurves[options.copyDepths.indexOf(e.copyDepth)]!.push(e.randomLabelAccuracy));
          const train = await extractFeatures(trunk, data.train, EXTRACT_CHUNK, options.signal);
          const heldOut = await extractFeatures(trunk, data.heldOut, EXTRACT_CHUNK, options.signal);
          for (const [d, h] of heads.entries()) {
            scores[d]!.push(scoreSeed(seed, await headsAccuracy(h, splitFeatures(d, train, heldOut, lay, labels), lay), train, heldOut, n));
            curves[d]!.push(seedCurves[d]!);
          }
          if (seed === options.seeds[options.seeds.length - 1]) {
            await tuned.save(tf.io.withSaveHandler((a) => {
              fineTunedModel = a;
              return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' as const } });
            }));
          }
        } finally {
          heads.forEach((h) => h.dispose());
          tuned.dispose();
        }
      }
      for (const [d, cut] of cuts.entries()) {
        const result = depthResult(cut.depth, headParameters[d]!, scores[d]!, curves[d]!, n);
        results.push(result);
        yield { type: 'depthResult', result };
      }
    }
    yield {
      type: 'done',
      result: {
        mode: options.mode, heads: options.heads, numRandomLabels: n, chance: 1 / n, samples, depths: results,
        warnings: warningsFor(results, options, data.heldOut.count), seconds: (performance.now() - started) / 1000,
      },
      ...(fineTunedModel ? { fineTunedModel } : {}),
    };
  } finally {
    model.dispose();
  }
}
