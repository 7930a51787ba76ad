#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { InvalidArgumentError, MemometerError } from '../errors.js';
import { initBackend, parseBackendRequest } from '../metric/backend/index.js';
import { measure } from '../metric/measure.js';
import type { MeasurementResult } from '../metric/types.js';
import { describeForCli, measureOptionsFrom, parseMeasureArgs } from './measure-flags.js';
import { readLocalDataset, readLocalModel } from './local-files.js';
import { formatResult, Progress } from './report.js';

const USAGE = `usage: memometer measure [--model PATH] [--dataset PATH] [--depth 1,2,3] [--labels N]
         [--mode frozen|joint] [--heads per-class|shared] [--head-init fresh|top]
         [--epochs E] [--batch-size B] [--lr X] [--optimizer adam|sgd|momentum]
         [--weight-decay X] [--lambda X] [--label-smoothing X] [--reinit]
         [--seed S[,S...]] [--max-samples M] [--held-out-fraction F]
         [--scale X] [--offset X] [--mean M[,M...]] [--std S[,S...]]
         [--memory-budget-mb MB] [--backend auto|node-gpu|node|wasm|cpu] [--json] [--quiet]

Without --model/--dataset it measures the example CNN on the Fashion-MNIST subset shipped in
examples/ (inputs scaled by 1/255).`;

/** Exit codes: 0 ok, 1 the measurement failed, 2 bad arguments or input. */
const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples');
export const EXAMPLE_MODEL = path.join(EXAMPLES, 'fashion-cnn');
export const EXAMPLE_DATASET = path.join(EXAMPLES, 'fashion-mnist-2k.npz');

async function runMeasure(args: string[]): Promise<number> {
  const { values } = parseMeasureArgs(args);
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  const options = measureOptionsFrom(values);
  const usingExample = values.model === undefined && values.dataset === undefined;
  if (usingExample && !options.inputScaling) options.inputScaling = { scale: 1 / 255 };
  const backend = await initBackend(values.backend ? parseBackendRequest(values.backend, '--backend') : undefined);
  const model = await readLocalModel(values.model ?? EXAMPLE_MODEL);
  const dataset = await readLocalDataset(values.dataset ?? EXAMPLE_DATASET);
  const progress = values.quiet ? undefined : new Progress(process.stderr);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort(new Error('interrupted (SIGINT)')));
  let result: MeasurementResult | undefined;
  for await (const event of measure({ model, dataset }, { ...options, signal: controller.signal })) {
    progress?.show(event);
    if (event.type === 'done') result = event.result;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ backend: backend.name, model: values.model ?? EXAMPLE_MODEL, dataset: values.dataset ?? EXAMPLE_DATASET, ...result })}\n`);
  } else {
    process.stdout.write(`${formatResult(result!)}\n`);
  }
  return EXIT.ok;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'measure') return await runMeasure(rest);
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? EXIT.usage : EXIT.ok;
    }
    throw new InvalidArgumentError(`unknown command '${command}'; expected measure`, 'command');
  } catch (error) {
    if (error instanceof MemometerError) {
      process.stderr.write(`memometer: ${describeForCli(error)}\n`);
      return error.kind === 'INVALID_ARGUMENT' ? EXIT.usage : EXIT.failed;
    }
    process.stderr.write(`memometer: internal error: ${(error as Error).stack ?? String(error)}\n`);
    return EXIT.failed;
  }
}

// Run only as the entry point (bin links resolve to this file), not when imported by tests.
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
