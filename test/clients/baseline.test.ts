import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseReportFile } from '../../src/report/report-file.js';
import type { ShownResult } from '../../src/clients/report.js';
import { runCli } from '../support/cli.js';

const cli = (...args: string[]) => runCli(args);
const measure = (...args: string[]) => cli('measure', '--depth', '1,2', '--quiet', ...args);

let dir: string;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'memometer-baseline-'));
  const first = await measure('--epochs', '2', '--report', path.join(dir, 'base.html'));
  expect(first.code, first.stderr).toBe(0);
  base = path.join(dir, 'base.json');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('memometer measure --baseline (local)', () => {
  it('passes the same settings, with zero deltas in the JSON output', async () => {
    const { code, stdout, stderr } = await measure('--epochs', '2', '--baseline', base, '--fail-above-increase', '0', '--json');
    expect(code, stderr).toBe(0);
    const result = JSON.parse(stdout) as ShownResult;
    expect(result.baselineReportUri).toBe(base);
    expect(result.baselineDifferences).toEqual([]);
    // Same seed, data and backend: the same scores.
    for (const d of result.depths) expect(d.baseline).toMatchObject({ memorizationScore: d.memorizationScore, memorizationScoreDelta: 0, randomLabelAccuracyDelta: 0 });
  });

  it('refuses a baseline measured with other settings before measuring, listing them (exit 2)', async () => {
    // --labels 10 is the default the baseline ran with: only the epochs differ.
    const { code, stdout, stderr } = await measure('--epochs', '6', '--labels', '10', '--baseline', base, '--fail-above-increase', '0.05');
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/memometer: --baseline: the baseline .*base\.json was measured with other settings \(epochs: 2 -> 6\)/);
    expect(stderr).toMatch(/--allow-different-settings/);
  });

  it('with --allow-different-settings, shows the deltas and exits 3 naming the depth whose score rose by more than the threshold', async () => {
    // Three times the epochs let the heads memorize more at depth 2: its score rises by about 0.1.
    const report = path.join(dir, 'longer.html');
    const { code, stdout, stderr } = await measure('--epochs', '6', '--baseline', base, '--allow-different-settings', '--fail-above-increase', '0.05', '--report', report);
    expect(code, stderr).toBe(3);
    expect(stderr).toMatch(/memometer: memorization score at copy depth 2 rose by 0\.\d{4} \(baseline 0\.\d{4}, now 0\.\d{4}\), more than 0\.05 \(--fail-above-increase\)/);
    expect(stderr).not.toMatch(/copy depth 1 rose/);
    expect(stdout).toMatch(/memorization {2}baseline {2}change/);
    expect(stdout).toMatch(/\n {4}2 .* 0\.\d{3} {5}0\.\d{3} {2}\+0\.\d{3} /);
    expect(stdout).toMatch(`baseline: ${base}\nbaseline differs: epochs: 2 -> 6`);
    // The written report carries the comparison too.
    const written = parseReportFile(await readFile(path.join(dir, 'longer.json'), 'utf8'), 'longer.json');
    expect(written.result.baselineReportUri).toBe(base);
    expect(written.result.baselineDifferences).toEqual(['epochs: 2 -> 6']);
    expect(written.result.depths[1]!.baseline!.memorizationScoreDelta).toBeGreaterThan(0.05);
    expect(written.request.baselineReportUri).toBe(base);
  });

  it('exits 2 for gate flags without --baseline or out of range, 2 for a malformed baseline, 1 for a missing one', async () => {
    const malformed = path.join(dir, 'malformed.json');
    await writeFile(malformed, '{"measurementId": ""}');
    const [noBaseline, allowAlone, range, bad, missing] = await Promise.all([
      measure('--fail-above-increase', '0.05'),
      measure('--allow-different-settings'),
      measure('--baseline', base, '--fail-above-increase', '2'),
      measure('--baseline', malformed),
      measure('--baseline', path.join(dir, 'none.json')),
    ]);
    expect([noBaseline.code, noBaseline.stderr]).toEqual([2, 'memometer: --fail-above-increase: needs --baseline\n']);
    expect([allowAlone.code, allowAlone.stderr]).toEqual([2, 'memometer: --allow-different-settings: needs --baseline\n']);
    expect([range.code, range.stderr]).toEqual([2, "memometer: --fail-above-increase: expects a score in [0, 1], got '2'\n"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/memometer: --baseline: .*malformed\.json: not a memometer report\.json: request must be an object/);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/memometer: --baseline: no report at '.*none\.json'/);
  });
});
