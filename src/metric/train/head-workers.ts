import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type * as tf from '@tensorflow/tfjs';
import { ResourceExhaustedError } from '../../errors.js';
import type { InputValues } from '../dataset.js';
import type { HeadsOptions } from '../heads/heads.js';
import type { EpochEvent } from '../types.js';
import type { GroupRange } from './batches.js';
import { frozenEpochs } from './frozen.js';
import { accuracyOf, type Features, type HeadTraining, type SeedAccuracy, type StepResult } from './heads-step.js';
import { fromWire, type Command, type Reply, type WorkerSetup } from './heads-worker-protocol.js';
import { checkCancelled } from './step.js';

/**
 * Work (parameters of one head x training samples x epochs x seeds) from which 'auto' trains a
 * cut's per-class heads in workers. Measured on 2 cores (10 heads of 105k parameters, 2,000
 * samples): two workers train the epochs about 1.35x faster, but their start (own backend and
 * model, about a second, partly slowing feature extraction) is repaid only from about 6e9; a
 * conv head's work per parameter is higher but counted the same.
 */
export const HEAD_WORKER_MIN_WORK = 1e10;
/** What 'auto' uses when the work pays: one wasm instance per core, two cores assumed shared. */
const AUTO_WORKERS = 2;

export interface HeadWork {
  backend: string;
  mode: string;
  groups: number;
  /** Of all G heads. */
  headParameters: number;
  samples: number;
  epochs: number;
  seeds: number;
}

/** How many threads train one cut's heads: 1 (the main thread) unless the work pays. */
export function headWorkerCount(setting: number | 'auto', { backend, mode, groups, headParameters, samples, epochs, seeds }: HeadWork): number {
  if (backend !== 'wasm' || mode !== 'frozen' || groups < 2) return 1;
  if (setting !== 'auto') return Math.min(setting, groups);
  const work = (headParameters / groups) * samples * epochs * seeds;
  return work < HEAD_WORKER_MIN_WORK ? 1 : Math.min(AUTO_WORKERS, availableParallelism(), groups);
}

/** The same array over shared memory (one copy, then no copy per worker). */
export function shared<T extends InputValues>(values: T): T {
  if (values.buffer instanceof SharedArrayBuffer) return values;
  const Type = values.constructor as new (buffer: SharedArrayBuffer) => T;
  const copy = new Type(new SharedArrayBuffer(values.byteLength));
  copy.set(values);
  return copy;
}

/** Heads [first, end) of each of `count` near-equal contiguous ranges of `groups`. */
function splitGroups(groups: number, count: number): GroupRange[] {
  return Array.from({ length: count }, (_, i) => ({ first: Math.floor((i * groups) / count), end: Math.floor(((i + 1) * groups) / count) }));
}

/**
 * The worker's entry: the compiled .js next to this module, or the .ts source under tsx or
 * vitest, loaded through tsx's hooks registered inside the worker (Node 20 does not apply
 * `--import tsx` from a worker's execArgv to the worker's entry module).
 */
function workerEntry(): URL {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new URL('./heads-worker.js', self);
  const source = JSON.stringify(new URL('./heads-worker.ts', self).href);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  return new URL(`data:text/javascript,${encodeURIComponent(`import { register } from ${tsx}; register(); await import(${source});`)}`);
}

/** One worker, one command at a time; a crash or exit fails the command waiting on it. */
class Channel {
  private waiting?: { resolve(reply: Reply): void; reject(error: Error): void };
  private failure?: Error;

  constructor(readonly worker: Worker) {
    worker.on('message', (reply: Reply) => {
      const waiting = this.take();
      if (reply.type === 'error') waiting?.reject(fromWire(reply.error));
      else waiting?.resolve(reply);
    });
    worker.on('error', (error: Error & { code?: string }) =>
      this.fail(
        error.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new ResourceExhaustedError('a head worker ran out of memory; use fewer head workers', 'headWorkers', { cause: error })
          : error,
      ),
    );
    worker.on('exit', (code) => this.fail(new Error(`a head worker exited (code ${code})`)));
  }

  /** The next reply (the first one is 'ready'), after sending `command` if given. */
  next(command?: Command): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      if (command) this.worker.postMessage(command);
    });
  }

  private take() {
    const waiting = this.waiting;
    this.waiting = undefined;
    return waiting;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.take()?.reject(this.failure);
  }
}

/**
 * Threads that train per-class heads in frozen mode, each with its own wasm backend (one core)
 * and copy of the model, on features in shared memory. Every worker trains a contiguous range
 * of the heads on the very batches the main thread would use, so scores equal a single-thread
 * run's; the main thread sums their per-step losses and correct counts.
 */
export class HeadWorkers {
  private closing?: Promise<void>;

  private constructor(
    private readonly channels: Channel[],
    private readonly stop: Int32Array,
  ) {}

  /** Starts `count` workers on `model`; resolves once all have loaded it. */
  static async start(count: number, model: tf.io.ModelArtifacts): Promise<HeadWorkers> {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const workerData: WorkerSetup = { model, backend: 'wasm', stop };
    const pool = new HeadWorkers(Array.from({ length: count }, () => new Channel(new Worker(workerEntry(), { workerData }))), stop);
    try {
      await pool.all(() => undefined);
      return pool;
    } catch (error) {
      await pool.close();
      throw error;
    }
  }

  /**
   * Frozen mode for one cut and seed on the first `count` workers: the events trainHeadsFrozen
   * yields, then the heads' random-label accuracy (the heads stay in the workers). Any failure
   * or an early stop closes the pool.
   */
  async *trainFrozen(
    count: number,
    depth: number,
    headsOptions: HeadsOptions,
    { train, heldOut }: { train: Features; heldOut: Features },
    training: HeadTraining,
  ): AsyncGenerator<EpochEvent, SeedAccuracy> {
    const { signal, ...rest } = training;
    const ranges = splitGroups(headsOptions.groups, count);
    const onAbort = () => void this.close();
    signal?.addEventListener('abort', onAbort);
    let finished = false;
    try {
      checkCancelled(signal);
      await this.all((i) => ({ type: 'begin', job: { depth, headsOptions, range: ranges[i]!, training: rest, train, heldOut } }), count, signal);
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- an async generator cannot be an arrow function; it needs the pool
      const pool = this;
      yield* frozenEpochs(depth, training, async function* (epoch) {
        const replies = await pool.all(() => ({ type: 'epoch', epoch }), count, signal);
        yield* sumSteps(replies.map((r) => (r as Extract<Reply, { type: 'epoch' }>).steps));
      });
      const replies = (await this.all(() => ({ type: 'finish' }), count, signal)) as Extract<Reply, { type: 'finished' }>[];
      const correct = (split: 'train' | 'heldOut') => replies.reduce((sum, r) => sum + r.correct[split], 0);
      finished = true;
      return { train: accuracyOf(correct('train'), train), heldOut: accuracyOf(correct('heldOut'), heldOut) };
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!finished) await this.close();
    }
  }

  /** Ends every worker: promptly (the stop flag, then terminate), also mid-step. */
  close(): Promise<void> {
    if (!this.closing) {
      Atomics.store(this.stop, 0, 1);
      this.closing = Promise.all(this.channels.map((c) => c.worker.terminate())).then(() => undefined);
    }
    return this.closing;
  }

  /** Each of the first `count` workers' reply to its command; a cancellation wins over the errors it causes. */
  private async all(command: (i: number) => Command | undefined, count = this.channels.length, signal?: AbortSignal): Promise<Reply[]> {
    try {
      return await Promise.all(this.channels.slice(0, count).map((c, i) => c.next(command(i))));
    } catch (error) {
      checkCancelled(signal);
      throw error;
    }
  }
}

/** The whole step's results from each range's: loss shares and correct counts add up. */
function* sumSteps(perWorker: StepResult[][]): Generator<StepResult> {
  for (let s = 0; s < perWorker[0]!.length; s++) {
    const steps = perWorker.map((w) => w[s]!);
    yield { loss: steps.reduce((a, b) => a + b.loss, 0), hits: steps.reduce((a, b) => a + b.hits, 0), real: steps[0]!.real };
  }
}
