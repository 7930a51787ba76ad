import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleBucket, startTestService, type TestService } from '../support/service.js';

/** Debian's Python, which has python3-grpcio and python3-protobuf (scripts/install-test-deps.sh). */
const PYTHON = '/usr/bin/python3';
const PACKAGE = path.resolve('src/clients/python');
const TOKEN = 'python-client-token';

function hasModules(...modules: string[]): boolean {
  try {
    execFileSync(PYTHON, ['-c', modules.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const HAS_GRPC = hasModules('grpc', 'google.protobuf');
const HAS_PIP = hasModules('setuptools', 'pip');

/** Runs Debian's Python (or a venv's); never throws on a non-zero exit. */
function python(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; executable?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  // No __pycache__ folders in the checkout.
  const env = { ...(options.env ?? process.env), PYTHONDONTWRITEBYTECODE: '1' };
  return new Promise((resolve) => {
    execFile(options.executable ?? PYTHON, args, { env, cwd: options.cwd, timeout: 240_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('Python client (src/clients/python)', () => {
  let service: TestService;
  let uris: { modelUri: string; datasetUri: string };

  beforeAll(async () => {
    // A prerequisite of the suite, not optional: fail with the fix rather than skip silently.
    if (!HAS_GRPC) throw new Error(`${PYTHON} cannot import grpc and google.protobuf: run scripts/install-test-deps.sh (python3-grpcio, python3-protobuf)`);
    uris = await exampleBucket('pyclient');
    service = await startTestService({ apiToken: TOKEN });
  });
  afterAll(() => service?.stop());

  it('passes its unit tests and its tests against a live server with S3, none skipped', async () => {
    const { code, stderr } = await python(['-m', 'unittest', 'discover', '-s', path.join(PACKAGE, 'tests'), '-v'], {
      env: {
        ...process.env,
        // The repository layout: the client package, and the generated memometer.v1 beside it.
        PYTHONPATH: [PACKAGE, path.resolve('src/gen/python')].join(path.delimiter),
        MEMOMETER_TEST_TARGET: service.address,
        MEMOMETER_TEST_TOKEN: TOKEN,
        MEMOMETER_TEST_MODEL_URI: uris.modelUri,
        MEMOMETER_TEST_DATASET_URI: uris.datasetUri,
        MEMOMETER_TEST_OUTPUT_URI: 's3://pyclient/out',
      },
    });
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/^OK$/m); // "OK (skipped=N)" would mean the live tests did not run
  }, 300_000);

  it('installs with pip (stubs included) and works from outside the repository', async () => {
    expect(HAS_PIP, `${PYTHON} cannot import setuptools and pip: run scripts/install-test-deps.sh (python3-pip, python3-venv)`).toBe(true);
    const dir = await mkdtemp(path.join(tmpdir(), 'memometer-python-'));
    const venv = path.join(dir, 'venv');
    const venvPython = path.join(venv, 'bin', 'python');
    try {
      // Debian's pip and setuptools from the system site-packages: offline, no ensurepip.
      expect((await python(['-m', 'venv', '--system-site-packages', '--without-pip', venv])).code).toBe(0);
      const install = await python(['-m', 'pip', 'install', '--no-deps', '--no-build-isolation', '--no-index', '--disable-pip-version-check', '--quiet', PACKAGE], { executable: venvPython });
      expect(install.code, install.stderr).toBe(0);
      const check = await python(['-c', 'import memometer, memometer.v1.memometer_pb2_grpc as g; print(memometer.__file__); print(g.__file__)'], { executable: venvPython, cwd: dir });
      expect(check.code, check.stderr).toBe(0);
      for (const file of check.stdout.trim().split('\n')) expect(file.startsWith(path.join(venv, 'lib'))).toBe(true);
      const unit = await python(['-m', 'unittest', 'discover', '-s', path.join(PACKAGE, 'tests'), '-p', 'test_client.py'], { executable: venvPython, cwd: dir });
      expect(unit.code, unit.stderr).toBe(0);
      expect(unit.stderr).toMatch(/^OK$/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
      // pip builds in the source tree (git-ignored); stale build/lib files would ship in the next wheel.
      await rm(path.join(PACKAGE, 'build'), { recursive: true, force: true });
      await rm(path.join(PACKAGE, 'memometer.egg-info'), { recursive: true, force: true });
    }
  }, 120_000);
});
