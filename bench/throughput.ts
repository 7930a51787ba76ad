/**
 * `throughput`: a full frozen measurement (the public `measure`) of the example Fashion-MNIST
 * CNN on the 60,000 training images (10,000 test images as the held-out split), per-class heads,
 * n = 10, 10 epochs, d = 1 and d = 2 as separate measurements. Peak memory is sampled.
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { readLocalDataset, readLocalModel } from '../src/clients/local-files.js';
import type { Dataset } from '../src/metric/dataset.js';
import { measure } from '../src/metric/measure.js';
import type { MeasureOptions, MeasurementResult } from '../src/metric/types.js';
import { cyclicLabels, median, MiB, num, printTable, seededFloats, useBackend, type Section } from './util.js';

const MODEL = 'examples/fashion-cnn';
const DATASET = '/usr/share/datasets/fashion-mnist';
const EPOCHS = 10;
const SAMPLE_MS = 100;

/** The real Fashion-MNIST, or same-sized synthetic data when its package is not installed. */
async function loadDataset(): Promise<{ dataset: Dataset; source: string }> {
  if (existsSync(DATASET)) return { dataset: await readLocalDataset(DATASET), source: `Fashion-MNIST from ${DATASET}` };
  const make = (m: number, seed: number) => ({
    x: seededFloats(m * 784, seed).map((v) => Math.floor((v + 1) * 127.5)),
    shape: [m, 28, 28],
    y: cyclicLabels(m, 10),
  });
  const [train, test] = [make(60_000, 1), make(10_000, 2)];
  return {
    dataset: { x: train.x, xShape: train.shape, y: train.y, xTest: test.x, xTestShape: test.shape, yTest: test.y },
    source: `SYNTHETIC data (${DATASET} is missing: apt-get install dataset-fashion-mnist)`,
  };
}

/** Max of process RSS and of TF.js's tensor bytes, sampled every 100 ms while running. */
class PeakMemory {
  rss = 0;
  tensorBytes = 0;
  private readonly timer = setInterval(() => this.sample(), SAMPLE_MS);

  constructor() {
    this.sample();
  }

  private sample(): void {
    this.rss = Math.max(this.rss, process.memoryUsage().rss);
    this.tensorBytes = Math.max(this.tensorBytes, tf.memory().numBytes);
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

/** Size of the wasm module's linear memory (grows, never shrinks; 4 GiB at most). */
function wasmHeapBytes(): number {
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return backend.wasm?.HEAPU8?.byteLength ?? Number.NaN;
}

export const throughputSection: Section = {
  name: 'throughput',
  async run() {
    await useBackend('wasm');
    const model = await readLocalModel(MODEL);
    const { dataset, source } = await loadDataset();
    const rows: string[][] = [];
    for (const depth of [1, 2]) {
      const rssBefore = process.memoryUsage().rss;
      const peak = new PeakMemory();
      let featureSeconds = Number.NaN;
      const rates: number[] = [];
      let result: MeasurementResult | undefined;
      try {
        const options: Partial<MeasureOptions> = { copyDepths: [depth], epochs: EPOCHS, heads: 'per-class', numRandomLabels: 10, inputScaling: { scale: 1 / 255 } };
        for await (const event of measure({ model, dataset }, options)) {
          if (event.type === 'features') featureSeconds = event.seconds;
          if (event.type === 'epoch') rates.push(event.samplesPerSecond);
          if (event.type === 'done') result = event.result;
        }
      } finally {
        peak.stop();
      }
      const r = result!;
      const d = r.depths[0]!;
      rows.push([
        String(depth),
        `${r.samples.train} / ${r.samples.heldOut}`,
        num(featureSeconds),
        `${num(median(rates))} (${num(Math.min(...rates))}-${num(Math.max(...rates))})`,
        num(r.seconds),
        `${MiB(peak.rss)} (${MiB(rssBefore)} before)`,
        MiB(peak.tensorBytes),
        MiB(wasmHeapBytes()),
        `${num(d.randomLabelAccuracy)} / ${num(d.heldOutRandomLabelAccuracy)}`,
      ]);
      console.log(`  throughput d = ${depth}: ${num(r.seconds)} s`);
    }
    printTable(
      `throughput: frozen measure(), ${EPOCHS} epochs, per-class heads, n = 10, example fashion-cnn (wasm)`,
      ['d', 'train / held-out', 'features s', 'train samples/s median (min-max over epochs)', 'total s', 'peak RSS MiB', 'peak tf.memory numBytes MiB', 'wasm heap MiB after', 'rl-acc train / held-out'],
      rows,
      [
        `data: ${source}; inputs scaled by 1/255; features s = extraction of train + held-out; total s = the done event's seconds (also scoring)`,
        'peak RSS of the section\'s process, sampled every 100 ms (d = 2 runs after d = 1 in the same process: "before" is the RSS at its start); the wasm heap is the module memory size after the run (it never shrinks, max 4 GiB)',
      ],
    );
  },
};
