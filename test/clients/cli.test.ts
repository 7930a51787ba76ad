import { describe, expect, it } from 'vitest';
import type { ShownResult } from '../../src/clients/report.js';
import { runCli } from '../support/cli.js';

const cli = (...args: string[]) => runCli(args);

describe('memometer measure (local)', () => {
  it('measures the shipped example and prints one JSON object with every score per depth', async () => {
    const { code, stdout, stderr } = await cli('measure', '--depth', '1,2', '--epochs', '3', '--json', '--backend', 'wasm');
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as ShownResult & { backend: string };
    expect(report.backend).toBe('wasm');
    expect(report.depths.map((d: { copyDepth: number }) => d.copyDepth)).toEqual([1, 2]);
    for (const depth of report.depths) {
      for (const key of ['randomLabelAccuracy', 'chance', 'memorizationScore', 'heldOutRandomLabelAccuracy', 'classTrainAccuracy', 'classTestAccuracy']) {
        expect(typeof (depth as unknown as Record<string, unknown>)[key]).toBe('number');
      }
      expect(depth.chance).toBeCloseTo(0.1);
    }
    expect(stderr).toMatch(/planned: frozen mode, per-class heads/);
  });

  it.each([
    [['--labels', '1'], /--labels: must be an integer in \[2, 1000000\], got 1/],
    [['--depth', '9'], /--depth: copy depth 9 is not a valid cut: the model has 7 layers; valid depths: 1-7/],
    [['--epochs', 'ten'], /--epochs: expects a number, got 'ten'/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['--mode', 'frozen', '--lambda', '2'], /--lambda: applies only in joint mode/],
    [['--backend', 'tpu'], /--backend: unknown backend 'tpu'/],
    [['--head-workers', '0'], /--head-workers: must be 'auto' or an integer in \[1, 64\], got 0/],
  ])('exits 2 naming the flag for %j', async (args, message) => {
    const { code, stderr } = await cli('measure', ...args);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
  });

  it('is a pipeline gate: --fail-above passes under the limit and exits 3 naming the depth above it', async () => {
    const args = ['measure', '--depth', '1,2', '--epochs', '2', '--quiet'];
    const pass = await cli(...args, '--fail-above', '0.99');
    expect(pass.code).toBe(0);
    const fail = await cli(...args, '--fail-above', '0', '--json');
    expect(fail.code).toBe(3);
    expect(fail.stderr).toMatch(/memorization score 0\.\d+ at copy depth 2 exceeds --fail-above 0/);
    expect((JSON.parse(fail.stdout) as ShownResult).depths).toHaveLength(2);
    expect((await cli(...args, '--fail-above', 'high')).code).toBe(2);
  });

  it('exits 1 with a clear message for a missing model', async () => {
    const { code, stderr } = await cli('measure', '--model', 'no/such/model', '--dataset', 'examples/fashion-mnist-2k.npz');
    expect(code).toBe(1);
    expect(stderr).toMatch(/memometer: .*model\.json/);
  });
});
