/**
 * `runtime`: the pinned Node.js (the one running the bench, `scripts/with-node.sh npm run bench`)
 * against an older one (MEMOMETER_BENCH_BASELINE_NODE, default /usr/bin/node: Debian's Node 20
 * here) on the same wasm work, so a runtime upgrade shows whether V8's wasm got slower. Each
 * round runs one child process per Node, the order alternating between rounds, and every child
 * does the same three things: stacked-heads steps on TF.js's own wasm kernels and on memometer's
 * SIMD kernels (the heads section's fashion-cnn d = 2 and C = 100 cases), and a short frozen
 * measure() of the example CNN on Fashion-MNIST (the throughput section's run, fewer epochs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { beforeAfter, SHAPES, type BeforeAfter } from './heads.js';
import { runOne, VARIANTS } from './throughput.js';
import { median, num, printTable, ratio, useBackend, type Section } from './util.js';

const ROUNDS = 3;
const MEASURE_DEPTHS = [2];
const MEASURE_EPOCHS = 3;
const HEAD_SHAPES = [SHAPES[0]!, SHAPES[2]!];
/** Set in a child process: run the workload and print one result line. */
const RUN_ENV = 'MEMOMETER_BENCH_RUNTIME_RUN';
const RESULT_PREFIX = 'RUNTIME_RESULT ';

interface ChildResult {
  node: string;
  heads: BeforeAfter[];
  featureSeconds: number;
  measureSeconds: number;
  samplesPerSecond: number;
  accuracy: string;
}

async function workload(): Promise<ChildResult> {
  await useBackend('wasm');
  const heads: BeforeAfter[] = [];
  for (const shape of HEAD_SHAPES) heads.push(await beforeAfter(shape));
  const run = await runOne(VARIANTS[1]!, MEASURE_DEPTHS, MEASURE_EPOCHS);
  return {
    node: process.version,
    heads,
    featureSeconds: run.featureSeconds,
    measureSeconds: run.totalSeconds,
    samplesPerSecond: median(run.samplesPerSecond),
    accuracy: run.accuracy,
  };
}

function runChild(node: string): ChildResult {
  const child = spawnSync(node, [...process.execArgv, process.argv[1]!, 'runtime'], {
    env: { ...process.env, [RUN_ENV]: '1', MEMOMETER_SIMD_KERNELS: 'on' },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  const line = child.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
  if (child.status !== 0 || line === undefined) {
    throw new Error(`runtime run under ${node} failed (exit ${child.status}):\n${child.stdout.slice(-2000)}`);
  }
  return JSON.parse(line.slice(RESULT_PREFIX.length)) as ChildResult;
}

function versionOf(node: string): string {
  const child = spawnSync(node, ['--version'], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`${node} --version failed (exit ${child.status}): ${child.stderr}`);
  return child.stdout.trim();
}

export const runtimeSection: Section = {
  name: 'runtime',
  async run() {
    if (process.env[RUN_ENV]) {
      console.log(`${RESULT_PREFIX}${JSON.stringify(await workload())}`);
      return;
    }
    const baseline = process.env.MEMOMETER_BENCH_BASELINE_NODE ?? '/usr/bin/node';
    // Skipped, not failed: `npm run bench` runs every section, and a machine may have one Node.
    if (!existsSync(baseline)) return console.log(`runtime: skipped: no baseline Node at ${baseline} (set MEMOMETER_BENCH_BASELINE_NODE)`);
    const [oldVersion, newVersion] = [versionOf(baseline), process.version];
    if (oldVersion === newVersion) {
      return console.log(`runtime: skipped: the baseline ${baseline} is ${oldVersion}, the Node running the bench (run it through scripts/with-node.sh)`);
    }
    const results: Record<'old' | 'new', ChildResult[]> = { old: [], new: [] };
    for (let round = 0; round < ROUNDS; round++) {
      // Alternating order, so that a drift in the machine's load hits both sides alike.
      const order: ('old' | 'new')[] = round % 2 ? ['new', 'old'] : ['old', 'new'];
      for (const side of order) {
        const r = runChild(side === 'old' ? baseline : process.execPath);
        console.log(`  runtime round ${round + 1}, Node ${r.node}: measure ${num(r.measureSeconds)} s`);
        results[side].push(r);
      }
    }
    const rows: string[][] = [];
    // Times (lower is better): the ratio old/new is the new Node's speed-up.
    const row = (what: string, pick: (r: ChildResult) => number, digits = num) => {
      const [o, n] = [median(results.old.map(pick)), median(results.new.map(pick))];
      rows.push([what, digits(o), digits(n), ratio(o, n)]);
    };
    HEAD_SHAPES.forEach((shape, i) => {
      row(`heads step ${shape.label}, TF.js wasm kernels, ms`, (r) => r.heads[i]!.beforeMs);
      row(`heads step ${shape.label}, SIMD kernels, ms`, (r) => r.heads[i]!.afterMs);
    });
    row(`measure() d = ${MEASURE_DEPTHS.join(',')}: feature extraction, s`, (r) => r.featureSeconds);
    row(`measure() d = ${MEASURE_DEPTHS.join(',')}, ${MEASURE_EPOCHS} epochs: total, s`, (r) => r.measureSeconds);
    const [o, n] = [median(results.old.map((r) => r.samplesPerSecond)), median(results.new.map((r) => r.samplesPerSecond))];
    rows.push(['measure(): heads training samples/s (higher is better)', num(o), num(n), ratio(n, o)]);
    const accuracies = new Set([...results.old, ...results.new].map((r) => r.accuracy));
    printTable(
      `runtime: Node ${oldVersion} (${baseline}) vs Node ${newVersion} (${process.execPath}), the same wasm work`,
      ['work', `Node ${oldVersion}`, `Node ${newVersion}`, `speed-up on ${newVersion}`],
      rows,
      [
        `medians of ${ROUNDS} rounds; each round one child process per Node, the order alternating between rounds`,
        `heads steps: medians of the heads section's alternating before/after steps; measure(): example fashion-cnn, per-class heads, n = 10, one thread`,
        `random-label accuracy train / held-out of measure() in every run: ${[...accuracies].join('; ')} (one value = both Nodes compute the same)`,
      ],
    );
  },
};
