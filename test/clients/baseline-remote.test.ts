import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShownResult } from '../../src/clients/report.js';
import { runCli } from '../support/cli.js';
import { exampleBucket, s3Env, startTestService, type TestService } from '../support/service.js';

let service: TestService;
let measure: (...args: string[]) => ReturnType<typeof runCli>;
const BASE = 's3://cli-baseline/base/report.json';

beforeAll(async () => {
  const { modelUri, datasetUri } = await exampleBucket('cli-baseline');
  service = await startTestService();
  measure = (...args) => runCli(['measure', '--server', service.address, '--model', modelUri, '--dataset', datasetUri,
    '--depth', '1,2', '--scale', String(1 / 255), '--quiet', ...args], s3Env());
  const first = await measure('--epochs', '2', '--output', 's3://cli-baseline/base');
  expect(first.code, first.stderr).toBe(0);
});
afterAll(() => service?.stop());

describe('memometer measure --server --baseline', () => {
  it('exits 2 with the service\'s list of differences when the baseline was measured with other settings', async () => {
    const { code, stderr } = await measure('--epochs', '6', '--baseline', BASE, '--fail-above-increase', '0.05');
    expect(code).toBe(2);
    expect(stderr).toMatch(/memometer: FAILED_PRECONDITION: baseline_report_uri: the baseline s3:\/\/cli-baseline\/base\/report\.json was measured with other settings \(epochs: 2 -> 6\)/);
  });

  it('gates on the deltas the service returns: exit 3 naming the depth whose score rose by more than the threshold', async () => {
    const { code, stdout, stderr } = await measure('--epochs', '6', '--baseline', BASE, '--allow-different-settings', '--fail-above-increase', '0.05', '--json');
    expect(code, stderr).toBe(3);
    expect(stderr).toMatch(/memometer: memorization score at copy depth 2 rose by 0\.\d{4} \(baseline 0\.\d{4}, now 0\.\d{4}\), more than 0\.05 \(--fail-above-increase\)/);
    const result = JSON.parse(stdout) as ShownResult;
    expect(result.baselineReportUri).toBe(BASE);
    expect(result.baselineDifferences).toEqual(['epochs: 2 -> 6']);
    expect(result.depths[1]!.baseline!.memorizationScoreDelta).toBeGreaterThan(0.05);
  });
});
