import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../support/service.js';

const exec = promisify(execFile);

/** The example Go client, built offline by scripts/build-go-client.sh (Debian's Go packages). */
const BINARY = path.resolve('.tmp/go/bin/memometer-measure');
const TOKEN = 'go-client-token';

let service: TestService;

/** Runs the Go binary against the test server; never throws on a non-zero exit. */
async function goClient(args: string[], token?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.MEMOMETER_API_TOKEN;
  if (token !== undefined) env.MEMOMETER_API_TOKEN = token;
  try {
    const { stdout, stderr } = await exec(BINARY, ['-server', service.address, '-timeout', '100s', ...args], { env, timeout: 110_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  // A cold build compiles grpc-go and protobuf from /usr/share/gocode (~20 s); later ones are cached.
  await exec('scripts/build-go-client.sh', [BINARY], { timeout: 300_000 });
  service = await startTestService({ apiToken: TOKEN });
}, 320_000);
afterAll(() => service?.stop());

const EXAMPLE = ['-model', 'examples/fashion-cnn', '-dataset', 'examples/fashion-mnist-2k.npz', '-scale', '0.00392156862745098'];
const NUMBER = String.raw`(\d+\.\d+)`;

describe('Go client (memometer-measure)', () => {
  it('reads the whole stream and prints one line per depth', async () => {
    const { code, stdout, stderr } = await goClient([...EXAMPLE, '-epochs', '2', '-depths', '1,2'], TOKEN);
    expect(stderr).toMatch(/^measurement \S+/m);
    expect(stderr).toMatch(/depth 1 epoch 2\/2 random_label_accuracy=/);
    expect(stderr).toMatch(/depth 2 epoch 2\/2 random_label_accuracy=/);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const [i, line] of lines.entries()) {
      const match = new RegExp(
        `^depth ${i + 1} random_label_accuracy=${NUMBER} chance=${NUMBER} memorization_score=(-?\\d+\\.\\d+) held_out=${NUMBER}$`,
      ).exec(line);
      expect(match, line).not.toBeNull();
      const [accuracy, chance, , heldOut] = match!.slice(1).map(Number);
      expect(chance).toBeCloseTo(0.1, 4);
      expect(accuracy).toBeGreaterThanOrEqual(0);
      expect(accuracy).toBeLessThanOrEqual(1);
      expect(heldOut).toBeLessThanOrEqual(1);
    }
  });

  it('exits 1 with the status code and the field name for a bad request (-token flag)', async () => {
    const { code, stdout, stderr } = await goClient(['-token', TOKEN, ...EXAMPLE, '-epochs', '1', '-depths', '99']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/INVALID_ARGUMENT: copy_depths: copy depth 99 is not a valid cut/);
  });

  it('exits 1 with UNAUTHENTICATED without a token', async () => {
    const { code, stderr } = await goClient([...EXAMPLE, '-depths', '1']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/UNAUTHENTICATED: authorization: a bearer token is required/);
  });
});
