/**
 * A head worker: its own TF.js backend and copy of the model, training a contiguous range of a
 * cut's per-class heads on features in shared memory (see head-workers.ts for the main side).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CancelledError } from '../../errors.js';
import { initBackend } from '../backend/select.js';
import { Heads } from '../heads/heads.js';
import { cutModel } from '../model/cut.js';
import { loadModel } from '../model/load.js';
import { GroupedBatches } from './batches.js';
import { countCorrect, headsEpoch, type StepResult } from './heads-step.js';
import { toWire, type Command, type FrozenJob, type Reply, type WorkerSetup } from './heads-worker-protocol.js';
import { createOptimizer } from './optimizer.js';

interface Active {
  job: FrozenJob;
  heads: Heads;
  optimizer: ReturnType<typeof createOptimizer>;
  batches: GroupedBatches;
}

const port = parentPort!;
const setup = workerData as WorkerSetup;

function checkStop(): void {
  if (Atomics.load(setup.stop, 0) !== 0) throw new CancelledError('the measurement was cancelled');
}

function release(active: Active | undefined): void {
  active?.optimizer.dispose();
  active?.heads.dispose();
}

async function main(): Promise<void> {
  await initBackend(setup.backend);
  const model = await loadModel(setup.model);
  let active: Active | undefined;

  async function handle(command: Command): Promise<Reply> {
    if (command.type === 'begin') {
      release(active);
      active = undefined;
      const { job } = command;
      const heads = new Heads(cutModel(model, job.depth), { ...job.headsOptions, groups: job.range.end - job.range.first, firstGroup: job.range.first });
      active = {
        job,
        heads,
        optimizer: createOptimizer(job.training.optimizer, job.training.learningRate),
        batches: new GroupedBatches(job.train.groups, job.headsOptions.groups, job.training.perGroup),
      };
      return { type: 'begun' };
    }
    const { job, heads, optimizer, batches } = active!;
    if (command.type === 'epoch') {
      const steps: StepResult[] = [];
      for await (const step of headsEpoch(heads, optimizer, job.train, batches, job.range, job.training, command.epoch, checkStop)) {
        steps.push(step);
      }
      return { type: 'epoch', steps };
    }
    const count = (split: 'train' | 'heldOut') => countCorrect(heads, job[split], job.headsOptions.groups, job.training.perGroup, job.range);
    const correct = { train: await count('train'), heldOut: await count('heldOut') };
    release(active);
    active = undefined;
    return { type: 'finished', correct };
  }

  // The main thread sends one command at a time and waits for its reply.
  port.on('message', (command: Command) => {
    handle(command).then(
      (reply) => port.postMessage(reply),
      (error: unknown) => port.postMessage({ type: 'error', error: toWire(error) } satisfies Reply),
    );
  });
  port.postMessage({ type: 'ready' } satisfies Reply);
}

main().catch((error: unknown) => port.postMessage({ type: 'error', error: toWire(error) } satisfies Reply));
