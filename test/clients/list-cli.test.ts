/** `memometer list` as a process, against a real server whose state folder the test seeds. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Measurement } from '../../src/gen/memometer/v1/memometer.js';
import { MeasurementRegistry } from '../../src/server/registry.js';
import { FileStore } from '../../src/storage/file-store.js';
import { runCli } from '../support/cli.js';
import { startTestService, type TestService } from '../support/service.js';
import { ids, seed } from '../server/list-support.js';

const TOKEN = 'cli-list-token';
let service: TestService;
/** Newest first: a FAILED, b SUCCEEDED, a SUCCEEDED, b QUEUED. */
let all: Measurement[];

beforeAll(async () => {
  service = await startTestService({ apiToken: TOKEN });
  all = await seed(new MeasurementRegistry(new FileStore(service.stateDir)), [
    { model: 'b', state: 'QUEUED' }, { model: 'a', state: 'SUCCEEDED' }, { model: 'b', state: 'SUCCEEDED' }, { model: 'a', state: 'FAILED' },
  ]);
});
afterAll(() => service?.stop());

const list = (...args: string[]) => runCli(['list', '--server', service.address, ...args], { MEMOMETER_API_TOKEN: TOKEN });
const jsonIds = (stdout: string) => stdout.trim().split('\n').map((line) => (JSON.parse(line) as { measurementId: string }).measurementId);

describe('memometer list', () => {
  it('prints a table, newest first: id, state, created, model, best score or error', async () => {
    const { code, stdout } = await list();
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +STATE +CREATED +MODEL +RESULT$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(ids(all));
    expect(lines[1]).toMatch(new RegExp(`^${all[0]!.measurementId}  FAILED +\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ  a +NOT_FOUND: model_uri: no such model$`));
    expect(lines[2]).toMatch(/ SUCCEEDED .* b +best score 0\.5000 at depth 2$/);
    expect(lines[4]).toMatch(/ QUEUED .* b$/);
  });

  it('--model, --state and --since build the filter; --limit caps the count; --json prints JSON lines', async () => {
    const filtered = await list('--model', 'a', '--state', 'succeeded', '--json');
    expect(filtered.code).toBe(0);
    expect(jsonIds(filtered.stdout)).toEqual([all[2]!.measurementId]);
    expect(JSON.parse(filtered.stdout)).toMatchObject({ state: 'MEASUREMENT_STATE_SUCCEEDED', request: { modelUri: 'a' } });
    const recent = await list('--since', all[1]!.createTime!.toISOString(), '--limit', '1', '--json');
    expect(jsonIds(recent.stdout)).toEqual([all[0]!.measurementId]);
  });

  it('exits 2 naming the flag or the field', async () => {
    expect(await list('--since', 'yesterday')).toMatchObject({ code: 2, stderr: expect.stringMatching(/^memometer: --since: 'yesterday' is not an RFC 3339 timestamp/) });
    expect(await list('--limit', '0')).toMatchObject({ code: 2, stderr: expect.stringMatching(/^memometer: --limit: expects a positive integer, got '0'/) });
    expect(await runCli(['list'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/^memometer: --server: is required/) });
  }, 240_000); // three processes, each loading the whole CLI
});

describe('memometer reindex', () => {
  it('lists the records that have no index entry (from before the index), once; the server then lists them', async () => {
    const registry = new MeasurementRegistry(new FileStore(service.stateDir));
    const legacy = { ...all[1]!, measurementId: 'legacy-record-cli-0', createTime: new Date(Date.now() + 60_000) };
    await registry.save(legacy); // a record as written before the listing index existed
    expect(jsonIds((await list('--json', '--limit', '1')).stdout)).toEqual([all[0]!.measurementId]);

    const first = await runCli(['reindex', '--state-uri', service.stateDir]);
    expect(first).toMatchObject({ code: 0, stdout: `memometer: ${all.length + 1} measurement record(s), 1 index entry written\n` });
    expect(jsonIds((await list('--json', '--limit', '1')).stdout)).toEqual([legacy.measurementId]);
    const again = await runCli(['reindex', '--state-uri', service.stateDir]);
    expect(again.stdout).toBe(`memometer: ${all.length + 1} measurement record(s), 0 index entries written\n`);
  }, 240_000); // four processes, each loading the whole CLI
});
