import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);

describe('the TypeScript client package entry', () => {
  it('builds with type declarations and imports by package name', async () => {
    await exec('npm', ['run', 'build'], { timeout: 240_000 });
    expect(existsSync('dist/clients/index.d.ts')).toBe(true);
    // Started by path at run time, not imported: the head workers' entry must be built too.
    expect(existsSync('dist/metric/train/heads-worker.js')).toBe(true);
    // Self-reference through package.json "exports", as a dependent project would import it.
    const script = `import { MemometerClient, MeasureMemorizationRequest, Mode } from 'memometer';
      const request = MeasureMemorizationRequest.fromPartial({ modelUri: 's3://b/m', mode: Mode.MODE_JOINT });
      const client = new MemometerClient({ address: '127.0.0.1:1' });
      client.close();
      console.log(JSON.stringify(MeasureMemorizationRequest.toJSON(request)));`;
    const { stdout } = await exec('node', ['--input-type=module', '-e', script], { timeout: 60_000 });
    expect(JSON.parse(stdout)).toMatchObject({ modelUri: 's3://b/m', mode: 'MODE_JOINT' });
    // tsc on 2 cores shared with the rest of the suite can take minutes.
  }, 300_000);
});
