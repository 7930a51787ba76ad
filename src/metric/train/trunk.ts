import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../errors.js';
import { onBackend } from '../backend/failures.js';
import { firstNonFinite, shapeSize, type InputValues } from '../dataset.js';
import type { Cut } from '../model/cut.js';
import type { Split } from '../prepare.js';
import { Tally } from '../score.js';
import { correctCount } from './losses.js';
import { checkCancelled, valuesTensor, yieldToEventLoop } from './step.js';

/**
 * The network run once per batch for every requested cut: outputs the backbone features at each
 * cut and the model's own output, so several depths share one forward pass.
 */
export class Trunk {
  private readonly runner: tf.LayersModel;
  /** Index into the runner's outputs per cut; -1 where the cut is the model input itself. */
  private readonly slots: number[];
  readonly outputIsProbability: boolean;

  constructor(
    readonly model: tf.LayersModel,
    readonly cuts: Cut[],
  ) {
    const input = model.inputs[0]!;
    const outputs: tf.SymbolicTensor[] = [];
    this.slots = cuts.map((cut) => {
      if (cut.tensor.id === input.id) return -1;
      const known = outputs.findIndex((t) => t.id === cut.tensor.id);
      return known >= 0 ? known : outputs.push(cut.tensor) - 1;
    });
    outputs.push(model.outputs[0]!);
    this.runner = tf.model({ inputs: model.inputs, outputs });
    const last = model.layers[model.layers.length - 1]!;
    const config = last.getConfig() as { activation?: string };
    this.outputIsProbability = last.getClassName() === 'Softmax' || config.activation === 'softmax';
  }

  get trainable(): tf.Variable[] {
    return this.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /** Features per cut and the model output for a batch [B, ...input shape]. */
  run(x: tf.Tensor, training: boolean): { features: tf.Tensor[]; output: tf.Tensor } {
    const results = onBackend(`the model's ${training ? 'training' : 'inference'} pass`, () => this.runner.apply(x, { training })) as
      | tf.Tensor
      | tf.Tensor[];
    const all = Array.isArray(results) ? results : [results];
    return {
      features: this.slots.map((slot) => (slot < 0 ? x : all[slot]!)),
      output: all[all.length - 1]!,
    };
  }

  /** Whether cut `i` is the model input itself (its features are the inputs). */
  atInput(i: number): boolean {
    return this.slots[i]! < 0;
  }

  featureShapes(): number[][] {
    return this.cuts.map((cut) => cut.tensor.shape.slice(1) as number[]);
  }
}

export interface ExtractedFeatures {
  /** Per cut: [count, ...feature shape] row-major; token ids stay int32 at the input. */
  values: InputValues[];
  shapes: number[][];
  classAccuracy: number;
}

/** Runs the trunk over a split in inference mode and keeps the features in JS memory. */
export async function extractFeatures(
  trunk: Trunk,
  split: Split,
  chunk: number,
  signal?: AbortSignal,
): Promise<ExtractedFeatures> {
  const shapes = trunk.featureShapes();
  const sizes = shapes.map(shapeSize);
  const values = sizes.map((size, i) =>
    trunk.atInput(i) && split.x instanceof Int32Array ? new Int32Array(split.count * size) : new Float32Array(split.count * size),
  );
  const inputSize = shapeSize(split.sampleShape);
  const tally = new Tally();
  for (let start = 0; start < split.count; start += chunk) {
    checkCancelled(signal);
    const end = Math.min(split.count, start + chunk);
    const outputs = tf.tidy(() => {
      const x = valuesTensor(split.x.subarray(start * inputSize, end * inputSize), [end - start, ...split.sampleShape]);
      const y = tf.tensor(split.y.subarray(start, end), [end - start], 'int32');
      const { features, output } = trunk.run(x, false);
      return [...features.map((f) => f.clone()), correctCount(output, y, tf.onesLike(y).toFloat())];
    });
    for (let i = 0; i < sizes.length; i++) values[i]!.set(await outputs[i]!.data(), start * sizes[i]!);
    tally.add(end - start, { correct: (await outputs[outputs.length - 1]!.data())[0]! });
    tf.dispose(outputs);
    await yieldToEventLoop();
  }
  values.forEach((v, i) => {
    const bad = firstNonFinite(v);
    if (bad < 0) return;
    // Finite weights and inputs can still overflow, e.g. unscaled inputs through many layers.
    throw new InvalidArgumentError(
      `its features at copy depth ${trunk.cuts[i]!.depth} are not finite (${v[bad]} for sample ` +
        `${split.ids[Math.floor(bad / sizes[i]!)]}): its activations overflow float32; check the input scaling`,
      'model',
    );
  });
  return { values, shapes, classAccuracy: tally.mean('correct') };
}
