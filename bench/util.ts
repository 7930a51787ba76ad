/** Shared helpers of the benchmark sections: timing, statistics, tables, seeded data, backends. */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/metric/backend/index.js';

export { seededFloats } from '../test/support/seeded.js';

export interface Section {
  name: string;
  run(): Promise<void>;
}

export type BenchBackend = 'cpu' | 'wasm';

/** Makes `name` the active TF.js backend (wasm with the project's gradient kernels). */
export async function useBackend(name: BenchBackend): Promise<void> {
  await initBackend(name);
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Wall-clock milliseconds of `fn` (awaited). */
export async function timeMs(fn: () => unknown): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** A number with about 3 significant digits, no exponent for the ranges printed here. */
export function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return x.toFixed(digits);
}

/** numerator / denominator as "12.3x". */
export function ratio(numerator: number, denominator: number): string {
  return `${num(numerator / denominator)}x`;
}

/** Whether a ratio meets its target, for the tables' last column. */
export function verdict(value: number, target: number): string {
  return value >= target ? `yes (>= ${num(target)}x)` : `NO (< ${num(target)}x)`;
}

export const MiB = (bytes: number): string => num(bytes / 2 ** 20);

/** Prints a titled, column-aligned table (markdown-compatible) followed by notes. */
export function printTable(title: string, header: string[], rows: string[][], notes: string[] = []): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [`\n### ${title}\n`, line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
  if (notes.length) out.push('', ...notes.map((n) => `- ${n}`));
  console.log(out.join('\n'));
}

/** Class labels 0, 1, ..., C-1, 0, 1, ...: every class equally often. */
export function cyclicLabels(count: number, classes: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => i % classes);
}

/** Drains an async generator and returns its return value. */
export async function drain<T, R>(run: AsyncGenerator<T, R>, onValue?: (value: T) => void): Promise<R> {
  for (let step = await run.next(); ; step = await run.next()) {
    if (step.done) return step.value;
    onValue?.(step.value);
  }
}

/** Waits for (and frees) tensors a step returned: on wasm this is where the step's work ends. */
export async function settle(tensors: tf.Tensor[]): Promise<void> {
  for (const t of tensors) await t.data();
  tf.dispose(tensors);
}
