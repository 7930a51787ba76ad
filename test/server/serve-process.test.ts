import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadServerConfig } from '../../src/server/config.js';
import { healthCheck } from '../support/grpc-probes.js';

describe('server settings', () => {
  it('come from MEMOMETER_* variables, flags win, and bad values name their source', () => {
    const env = { MEMOMETER_PORT: '6000', MEMOMETER_MAX_QUEUED: '3', MEMOMETER_ALLOWED_BUCKETS: 'a, b', MEMOMETER_DATA_ROOT: '/data' };
    expect(loadServerConfig(env, { port: '7000' })).toMatchObject({
      port: 7000, maxQueued: 3, allowedBuckets: ['a', 'b'], dataRoot: '/data', host: '0.0.0.0', maxConcurrent: 1,
    });
    expect(() => loadServerConfig({ MEMOMETER_MAX_CONCURRENT: '0' })).toThrow(/^MEMOMETER_MAX_CONCURRENT: must be an integer >= 1, got '0'$/);
    expect(() => loadServerConfig({}, { maxQueued: 'many' })).toThrow(/^--max-queued: must be an integer >= 0, got 'many'$/);
  });
});

describe('memometer serve (a real process)', () => {
  it('serves, reports SERVING, and on SIGTERM drains and exits 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/clients/main.ts', 'serve', '--host', '127.0.0.1', '--port', '0'], {
      env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    const port = await new Promise<number>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /serving on 127\.0\.0\.1:(\d+) \(backend wasm/.exec(stderr);
        if (match) resolve(Number(match[1]));
      });
      child.on('exit', (code) => reject(new Error(`exited early with ${code}: ${stderr}`)));
    });
    expect(await healthCheck(`127.0.0.1:${port}`)).toBe('SERVING');
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/memometer: stopped/);
  });
});
