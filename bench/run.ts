/**
 * `npm run bench [-- SECTION ...]`: runs the named sections (all without arguments) in order and
 * prints a table per section. With several sections each runs in its own Node process, so that
 * one section's memory (the wasm heap never shrinks) and backend state do not leak into the next.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { backendSection } from './backend.js';
import { cachingSection } from './caching.js';
import { headsSection } from './heads.js';
import { runtimeSection } from './runtime.js';
import { throughputSection } from './throughput.js';
import { num, type Section } from './util.js';

const SECTIONS: Section[] = [backendSection, cachingSection, headsSection, throughputSection, runtimeSection];

async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => !SECTIONS.some((s) => s.name === a));
  if (unknown.length) {
    console.error(`unknown section(s) ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}`);
    return 2;
  }
  const chosen = args.length ? SECTIONS.filter((s) => args.includes(s.name)) : SECTIONS;
  if (chosen.length > 1) {
    for (const section of chosen) {
      const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, section.name], { stdio: 'inherit' });
      if (child.status !== 0) return child.status ?? 1;
    }
    return 0;
  }
  const section = chosen[0]!;
  console.log(
    `\n== ${section.name}: ${new Date().toISOString()}, Node ${process.version}, TF.js ${tf.version.tfjs}, ` +
      `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load average ${os.loadavg().map((l) => num(l)).join(' ')}`,
  );
  const started = performance.now();
  await section.run();
  console.log(`(${section.name}: ${num((performance.now() - started) / 1000)} s, load average ${os.loadavg().map((l) => num(l)).join(' ')})`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
