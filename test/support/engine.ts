import * as tf from '@tensorflow/tfjs';
import { readLocalDataset, readLocalModel } from '../../src/clients/local-files.js';
import { initBackend } from '../../src/metric/backend/index.js';
import type { Dataset } from '../../src/metric/dataset.js';
import { measure, type MeasureInput } from '../../src/metric/measure.js';
import type { MeasureOptions, MeasurementEvent, MeasurementResult } from '../../src/metric/types.js';

export const EXAMPLE_MODEL = 'examples/fashion-cnn';
export const EXAMPLE_DATASET = 'examples/fashion-mnist-2k.npz';

/** The wasm backend with our gradient kernels: what the product runs on CPU machines. */
export async function useWasm(): Promise<void> {
  await initBackend('wasm');
}

export async function toArtifacts(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return artifacts!;
}

/** The real example: a CNN trained on a 2,000-image Fashion-MNIST subset (500 test images). */
export async function example(): Promise<MeasureInput> {
  return { model: await readLocalModel(EXAMPLE_MODEL), dataset: await readLocalDataset(EXAMPLE_DATASET) };
}

/** The example images flattened to 784 values, for dense models. */
export function flattened(ds: Dataset): Dataset {
  return { ...ds, xShape: [ds.xShape[0]!, 784], ...(ds.xTestShape ? { xTestShape: [ds.xTestShape[0]!, 784] } : {}) };
}

/** Runs a measurement to the end and returns its events and result. */
export async function run(
  input: MeasureInput,
  options: Partial<MeasureOptions>,
): Promise<{ events: MeasurementEvent[]; result: MeasurementResult }> {
  const events: MeasurementEvent[] = [];
  for await (const event of measure(input, options)) events.push(event);
  const done = events.at(-1);
  if (done?.type !== 'done') throw new Error('measurement ended without a done event');
  return { events, result: done.result };
}

/** Binomial standard error of an accuracy near p over `count` samples. */
export const standardError = (p: number, count: number) => Math.sqrt((p * (1 - p)) / count);

export const SCALE_255 = { inputScaling: { scale: 1 / 255 } } as const;
