/**
 * `throughput`: full frozen measurements (the public `measure`) of the example Fashion-MNIST CNN
 * on the 60,000 training images (10,000 test images as the held-out split), per-class heads,
 * n = 10, 10 epochs, one measurement per depth 1, 2, 3 and one of all three, in three variants side by side: TF.js's
 * own wasm kernels (MEMOMETER_SIMD_KERNELS=off, the engine before the SIMD kernels), the SIMD
 * kernels on one thread, and the SIMD kernels with 2 head workers. Every (variant, depth) runs in
 * its own Node process, so peak memory is its own and the wasm heap starts empty.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { readLocalDataset, readLocalModel } from '../src/clients/local-files.js';
import type { Dataset } from '../src/metric/dataset.js';
import { measure } from '../src/metric/measure.js';
import type { MeasureOptions, MeasurementResult } from '../src/metric/types.js';
import { cyclicLabels, median, MiB, num, printTable, ratio, seededFloats, useBackend, type Section } from './util.js';

const MODEL = 'examples/fashion-cnn';
const DATASET = '/usr/share/datasets/fashion-mnist';
const EPOCHS = 10;
/** Depth sets, one measurement each: `1;2;3;1,2,3` unless MEMOMETER_BENCH_DEPTHS names others. */
const DEPTH_SETS = (process.env.MEMOMETER_BENCH_DEPTHS ?? '1;2;3;1,2,3').split(';').map((set) => set.split(',').map(Number));
const SAMPLE_MS = 100;
/** Set in a child process: the one (variant, depth) it measures. */
const RUN_ENV = 'MEMOMETER_BENCH_THROUGHPUT_RUN';
/** A child's result line on stdout. */
const RESULT_PREFIX = 'THROUGHPUT_RESULT ';

export interface Variant {
  name: string;
  simd: 'on' | 'off';
  headWorkers: number;
}

export const VARIANTS: Variant[] = [
  { name: 'TF.js kernels (before)', simd: 'off', headWorkers: 1 },
  { name: 'SIMD kernels, 1 thread', simd: 'on', headWorkers: 1 },
  { name: 'SIMD kernels, 2 head workers', simd: 'on', headWorkers: 2 },
];

export interface RunResult {
  variant: string;
  depths: number[];
  featureSeconds: number;
  samplesPerSecond: number[];
  totalSeconds: number;
  peakRss: number;
  wasmHeap: number;
  headWorkers: number;
  /** Per depth: random-label accuracy on train and held-out. */
  accuracy: string;
  source: string;
}

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

/** Max of process RSS (worker threads included), sampled every 100 ms while running. */
class PeakMemory {
  rss = 0;
  private readonly timer = setInterval(() => this.sample(), SAMPLE_MS);

  constructor() {
    this.sample();
  }

  private sample(): void {
    this.rss = Math.max(this.rss, process.memoryUsage().rss);
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

/** Size of the main thread's wasm linear memory (grows, never shrinks; 4 GiB at most). */
function wasmHeapBytes(): number {
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return backend.wasm?.HEAPU8?.byteLength ?? Number.NaN;
}

/** In a child process: one measurement at the given depths with the variant's settings. */
export async function runOne(variant: Variant, depths: number[], epochs = EPOCHS): Promise<RunResult> {
  await useBackend('wasm');
  const model = await readLocalModel(MODEL);
  const { dataset, source } = await loadDataset();
  const peak = new PeakMemory();
  const result: Partial<RunResult> = { variant: variant.name, depths, source, samplesPerSecond: [] };
  let done: MeasurementResult | undefined;
  try {
    const options: Partial<MeasureOptions> = {
      copyDepths: depths, epochs, heads: 'per-class', numRandomLabels: 10, inputScaling: { scale: 1 / 255 },
      headWorkers: variant.headWorkers,
    };
    for await (const event of measure({ model, dataset }, options)) {
      if (event.type === 'planned') result.headWorkers = Math.max(...(event.headWorkers ?? [1]));
      if (event.type === 'features') result.featureSeconds = event.seconds;
      if (event.type === 'epoch') result.samplesPerSecond!.push(event.samplesPerSecond);
      if (event.type === 'done') done = event.result;
    }
  } finally {
    peak.stop();
  }
  return {
    ...(result as RunResult),
    totalSeconds: done!.seconds,
    peakRss: peak.rss,
    wasmHeap: wasmHeapBytes(),
    accuracy: done!.depths.map((d) => `${num(d.randomLabelAccuracy)} / ${num(d.heldOutRandomLabelAccuracy)}`).join(', '),
  };
}

/** In the parent: runs (variant, depth) in a child process with the variant's environment. */
function runChild(variant: Variant, depths: number[]): RunResult {
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, 'throughput'], {
    env: { ...process.env, [RUN_ENV]: JSON.stringify({ variant, depths }), MEMOMETER_SIMD_KERNELS: variant.simd },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  const line = child.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
  if (child.status !== 0 || line === undefined) {
    throw new Error(`throughput run ${variant.name} d = ${depths.join(',')} failed (exit ${child.status}):\n${child.stdout.slice(-2000)}`);
  }
  return JSON.parse(line.slice(RESULT_PREFIX.length)) as RunResult;
}

export const throughputSection: Section = {
  name: 'throughput',
  async run() {
    const own = process.env[RUN_ENV];
    if (own) {
      const { variant, depths } = JSON.parse(own) as { variant: Variant; depths: number[] };
      console.log(`${RESULT_PREFIX}${JSON.stringify(await runOne(variant, depths))}`);
      return;
    }
    const results: RunResult[] = [];
    // Variants interleaved per depth, so that a change in the machine's load hits all of them.
    for (const depths of DEPTH_SETS) {
      for (const variant of VARIANTS) {
        const r = runChild(variant, depths);
        console.log(`  throughput ${variant.name}, d = ${depths.join(',')}: ${num(r.totalSeconds)} s`);
        results.push(r);
      }
    }
    const before = (r: RunResult) => results.find((b) => b.depths.join() === r.depths.join() && b.variant === VARIANTS[0]!.name)!;
    printTable(
      `throughput: frozen measure(), ${EPOCHS} epochs, per-class heads, n = 10, example fashion-cnn (wasm)`,
      ['d', 'variant', 'head workers', 'features s', 'heads train samples/s median (min-max)', 'total s', 'total vs before', 'peak RSS MiB', 'wasm heap MiB', 'rl-acc train / held-out per depth'],
      results.map((r) => [
        r.depths.join(','),
        r.variant,
        String(r.headWorkers),
        num(r.featureSeconds),
        `${num(median(r.samplesPerSecond))} (${num(Math.min(...r.samplesPerSecond))}-${num(Math.max(...r.samplesPerSecond))})`,
        num(r.totalSeconds),
        ratio(before(r).totalSeconds, r.totalSeconds),
        MiB(r.peakRss),
        MiB(r.wasmHeap),
        r.accuracy,
      ]),
      [
        `data: ${results[0]?.source}; inputs scaled by 1/255`,
        'each row is its own Node process; heads samples/s over all epochs of all depths of the row; features s = extraction of train + held-out; total s = the done event\'s seconds (extraction, training, scoring)',
        'before = MEMOMETER_SIMD_KERNELS=off: TF.js 4.22\'s own wasm BatchMatMul and tf-op optimizer updates; peak RSS includes the head workers\' threads; the wasm heap is the main thread\'s',
        'same seed in every variant: a depth\'s random-label accuracies differ only by float rounding between kernels (and not at all between 1 and 2 head workers)',
      ],
    );
  },
};
