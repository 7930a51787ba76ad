/**
 * `backend`: ms per training step (forward + backward + SGD update) on the pure-JS cpu backend
 * vs wasm with the project's gradient kernels, same model, same seeded weights and batch.
 */
import * as tf from '@tensorflow/tfjs';
import { median, num, printTable, ratio, seededFloats, timeMs, useBackend, verdict, type BenchBackend, type Section } from './util.js';

const BATCH = 64;
const WASM_WARMUP = 2;
const WASM_STEPS = 10;
const DENSE_STEPS = 10;

interface ModelSpec {
  name: string;
  inputShape: number[];
  classes: number;
  /** Built once per backend; seeded initializers give both backends the same weights. */
  build(): tf.LayersModel;
  target: number;
}

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

const CNN: ModelSpec = {
  name: 'A: CNN 32x32x3',
  inputShape: [32, 32, 3],
  classes: 10,
  target: 200,
  build: () =>
    tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 32, kernelSize: 3, activation: 'relu', kernelInitializer: init(1) }),
        tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: init(2) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init(3) }),
        tf.layers.dense({ units: 10, kernelInitializer: init(4) }),
      ],
    }),
};

const MLP: ModelSpec = {
  name: 'B: dense 512-256-100',
  inputShape: [512],
  classes: 100,
  target: 3,
  build: () =>
    tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [512], units: 256, activation: 'relu', kernelInitializer: init(5) }),
        tf.layers.dense({ units: 100, kernelInitializer: init(6) }),
      ],
    }),
};

/** A model, its optimizer and a fixed batch, all living on one backend. */
class Trainer {
  private readonly model: tf.LayersModel;
  private readonly variables: tf.Variable[];
  private readonly optimizer = tf.train.sgd(0.01);
  private readonly batches = new Map<number, [tf.Tensor, tf.Tensor]>();

  private constructor(
    readonly backend: BenchBackend,
    private readonly spec: ModelSpec,
  ) {
    this.model = spec.build();
    this.variables = this.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  static async create(backend: BenchBackend, spec: ModelSpec): Promise<Trainer> {
    await useBackend(backend);
    return new Trainer(backend, spec);
  }

  private batch(size: number): [tf.Tensor, tf.Tensor] {
    let batch = this.batches.get(size);
    if (!batch) {
      const shape = [size, ...this.spec.inputShape];
      const x = tf.tensor(seededFloats(shape.reduce((a, b) => a * b, 1), 7), shape);
      const y = tf.oneHot(tf.tensor1d(Int32Array.from({ length: size }, (_, i) => i % this.spec.classes), 'int32'), this.spec.classes);
      batch = [x, y];
      this.batches.set(size, batch);
    }
    return batch;
  }

  /** Milliseconds of one step on a batch of `size` (switches to this trainer's backend first). */
  async step(size = BATCH): Promise<number> {
    await useBackend(this.backend);
    const [x, y] = this.batch(size);
    return timeMs(async () => {
      const loss = tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(y, this.model.apply(x, { training: true }) as tf.Tensor),
          this.variables,
        );
        this.optimizer.applyGradients(grads);
        return value;
      });
      await loss.data();
      loss.dispose();
    });
  }

  async steps(count: number): Promise<number[]> {
    const times: number[] = [];
    for (let i = 0; i < count; i++) times.push(await this.step());
    return times;
  }

  async dispose(): Promise<void> {
    await useBackend(this.backend);
    this.model.dispose();
    this.optimizer.dispose();
    this.batches.forEach((b) => tf.dispose(b));
  }
}

function row(spec: ModelSpec, cpuMs: number, wasmMs: number, how: string): string[] {
  return [spec.name, num(cpuMs), num(wasmMs), ratio(cpuMs, wasmMs), verdict(cpuMs / wasmMs, spec.target), how];
}

/** The CNN: wasm steps before and after ONE cpu step (the cpu step takes minutes). */
async function cnnRow(): Promise<string[]> {
  const [cpu, wasm] = [await Trainer.create('cpu', CNN), await Trainer.create('wasm', CNN)];
  try {
    await wasm.steps(WASM_WARMUP);
    const before = await wasm.steps(WASM_STEPS / 2);
    const warm = await cpu.step(1);
    console.log(`  backend A: cpu warm-up step on a batch of 1: ${num(warm)} ms; now one cpu step at batch ${BATCH} ...`);
    const cpuMs = await cpu.step();
    const after = await wasm.steps(WASM_STEPS / 2);
    return row(CNN, cpuMs, median([...before, ...after]), `cpu: 1 step after a batch-1 warm-up; wasm: median of ${WASM_STEPS} after ${WASM_WARMUP} warm-up`);
  } finally {
    await cpu.dispose();
    await wasm.dispose();
  }
}

/** The dense net: cpu and wasm steps alternate, medians of each. */
async function mlpRow(): Promise<string[]> {
  const [cpu, wasm] = [await Trainer.create('cpu', MLP), await Trainer.create('wasm', MLP)];
  try {
    const times: Record<BenchBackend, number[]> = { cpu: [], wasm: [] };
    for (let i = 0; i < WASM_WARMUP + DENSE_STEPS; i++) {
      for (const t of [cpu, wasm]) {
        const ms = await t.step();
        if (i >= WASM_WARMUP) times[t.backend].push(ms);
      }
    }
    return row(MLP, median(times.cpu), median(times.wasm), `alternating steps, medians of ${DENSE_STEPS} each after ${WASM_WARMUP} warm-up`);
  } finally {
    await cpu.dispose();
    await wasm.dispose();
  }
}

export const backendSection: Section = {
  name: 'backend',
  async run() {
    const rows = [await mlpRow(), await cnnRow()];
    printTable(
      `backend: ms per training step, batch ${BATCH} (forward + backward + SGD)`,
      ['model', 'cpu ms/step', 'wasm ms/step', 'cpu/wasm', 'target met', 'how measured'],
      rows,
      ['wasm = @tensorflow/tfjs-backend-wasm (one thread, SIMD) + registerWasmGradientKernels; cpu = pure-JS backend'],
    );
  },
};
