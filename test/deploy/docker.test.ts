/**
 * The container image, as far as it can be tested without a Docker engine:
 * - the Dockerfile's static checks (scripts/deploy/docker-checks.ts) and dockerfilelint pass, and
 *   catch deliberately broken Dockerfiles and .dockerignore files;
 * - docker/healthcheck.mjs exits 0 only on SERVING, against a real server started in-process;
 * - docker/entrypoint.sh runs the CLI from the image's layout (/app: dist/ compiled here,
 *   proto/, examples/, package.json, node_modules), serves, passes the health check and stops
 *   on SIGTERM;
 * - docker/check-gpu-binding.sh fails the GPU build when the binding did not install.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDockerfile, checkRuntimeDependencies, formatDockerFinding, lintDockerfile } from '../../scripts/deploy/docker-checks.js';
import { DockerIgnore, parseDockerfile, splitFlags, words } from '../../scripts/deploy/dockerfile.js';
import { SERVICE_NAME } from '../../src/server/server.js';
import { startTestService } from '../support/service.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const work = mkdtempSync(path.join(tmpdir(), 'memometer-docker-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const healthcheck = (args: string[], script = path.join(ROOT, 'docker/healthcheck.mjs')) => run(process.execPath, [script, ...args], { timeoutMs: 30_000 });

/** A TCP port that nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const findings = (root: string) => [...checkDockerfile(root)].map(formatDockerFinding).join('\n');

describe('Dockerfile', () => {
  it('passes the static checks and dockerfilelint with every rule on', () => {
    expect(findings(ROOT)).toBe('');
    expect(lintDockerfile(ROOT).map(formatDockerFinding).join('\n')).toBe('');
  });

  it('passes `dockerfilelint Dockerfile` (npm run lint:docker) with exit code 0', async () => {
    const result = await run(process.execPath, [path.join(ROOT, 'node_modules/dockerfilelint/bin/dockerfilelint'), 'Dockerfile']);
    expect(result.stdout + result.stderr).toContain('None found');
    expect(result.code).toBe(0);
  });

  it('copies only sources that exist and that .dockerignore lets into the context', () => {
    const ignore = new DockerIgnore(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
    const copies = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).filter((i) => i.name === 'COPY');
    const fromContext = copies.filter((i) => splitFlags(i.args).flags.from === undefined).flatMap((i) => words(splitFlags(i.args).rest).words.slice(0, -1));
    expect(fromContext.sort()).toEqual(
      ['docker/check-gpu-binding.sh', 'docker/entrypoint.sh', 'docker/entrypoint.sh', 'docker/healthcheck.mjs', 'docker/healthcheck.mjs', 'examples', 'examples', 'package-lock.json', 'package-lock.json', 'package-lock.json', 'package.json', 'package.json', 'package.json', 'package.json', 'package.json', 'proto', 'proto', 'src', 'tsconfig.json'].sort(),
    );
    for (const source of fromContext) {
      expect(existsSync(path.join(ROOT, source)), source).toBe(true);
      expect(ignore.excludes(source), source).toBe(false);
    }
    // Produced by build stages, not taken from the context.
    const fromStages = copies.filter((i) => splitFlags(i.args).flags.from !== undefined).map((i) => `${splitFlags(i.args).flags.from} ${words(splitFlags(i.args).rest).words[0]}`);
    expect(new Set(fromStages)).toEqual(
      new Set(['build /usr/local/bin/node', 'build /usr/local/lib/node_modules/npm', 'build /app/dist', 'prod-deps-cpu /app/node_modules', 'prod-deps-gpu /app/node_modules']),
    );
  });
});

describe('.dockerignore matching (Docker rules)', () => {
  it('last match wins, patterns match parents, ** spans folders', () => {
    const ignore = new DockerIgnore('# c\n*\n!src/\n!package.json\nsrc/**/*.test.ts\n**/secret*\n');
    expect(ignore.excludes('node_modules/x/index.js')).toBe(true);
    expect(ignore.excludes('dist')).toBe(true);
    expect(ignore.excludes('src/server/server.ts')).toBe(false);
    expect(ignore.excludes('src/a/b/c.test.ts')).toBe(true);
    expect(ignore.excludes('src/x/secret.key')).toBe(true);
    expect(ignore.excludes('package.json')).toBe(false);
    expect(ignore.excludes('package-lock.json')).toBe(true);
    const real = new DockerIgnore(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
    for (const p of ['node_modules', 'dist', '.git', 'test', 'deploy', 'bench', '.tmp', 'README.md']) expect(real.excludes(p), p).toBe(true);
  });
});

describe('broken Dockerfiles are caught', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const dockerignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8');

  /** A build context like the repository's (links to it) with its own Dockerfile and .dockerignore. */
  function context(name: string, file: string, ignore = dockerignore): string {
    const dir = path.join(work, `ctx-${name}`);
    mkdirSync(dir);
    for (const entry of ['src', 'proto', 'examples', 'docker', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      symlinkSync(path.join(ROOT, entry), path.join(dir, entry));
    }
    writeFileSync(path.join(dir, 'Dockerfile'), file);
    writeFileSync(path.join(dir, '.dockerignore'), ignore);
    return dir;
  }

  it('a COPY of a missing file, and a source .dockerignore leaves out', () => {
    const out = findings(context('copy', dockerfile.replace('COPY tsconfig.json ./', 'COPY tsconfig.build.json ./'), dockerignore.replace('!proto/\n', '')));
    expect(out).toMatch(/the build context has no tsconfig\.build\.json/);
    expect(out).toMatch(/proto is excluded by \.dockerignore/);
    expect(out).toMatch(/gpu: \/app\/proto\/memometer\/v1\/memometer\.proto is missing/);
  });

  it('a COPY --from of something the stage does not produce', () => {
    const out = findings(context('from', dockerfile.replace('COPY --from=build /app/dist ./dist', 'COPY --from=build /app/build ./dist')));
    expect(out).toMatch(/stage 'build' has no \/app\/build/);
  });

  it('build tools, root, a non-gRPC healthcheck and the wrong backend in a runtime stage', () => {
    const gpuStart = dockerfile.lastIndexOf('FROM ${CUDA_REPO}');
    const gpu = dockerfile
      .slice(gpuStart)
      .replace('USER 10001:10001', 'USER root')
      .replace('MEMOMETER_BACKEND=node-gpu', 'MEMOMETER_BACKEND=auto')
      .replace('CMD ["node", "/app/docker/healthcheck.mjs"]', 'CMD ["curl", "-f", "http://localhost:50051/"]')
      .replace('WORKDIR /app', 'RUN apt-get update && apt-get install -y g++\nWORKDIR /app');
    const out = findings(context('runtime', dockerfile.slice(0, gpuStart) + gpu));
    expect(out).toMatch(/gpu: RUN installs packages or uses build tools in a runtime stage: apt-get install -y g\+\+/);
    expect(out).toMatch(/gpu: USER root must be a numeric non-root UID/);
    expect(out).toMatch(/gpu: ENV MEMOMETER_BACKEND is auto, expected node-gpu/);
    expect(out).toMatch(/gpu: HEALTHCHECK must be CMD \["node", "\.\.\.\/docker\/healthcheck\.mjs"\]/);
  });

  it('a GPU install that drops the optional binding, or does not check it', () => {
    const out = findings(
      context('gpu-deps', dockerfile.replace('ci --omit=dev --foreground-scripts', 'ci --omit=dev --omit=optional --foreground-scripts').replace('RUN sh docker/check-gpu-binding.sh /app', '')),
    );
    expect(out).toMatch(/the GPU install must keep optional dependencies and install scripts/);
    expect(out).toMatch(/must run docker\/check-gpu-binding\.sh after npm ci/);
  });

  it('a package the server loads that the production install would leave out', () => {
    const dir = path.join(work, 'deps');
    mkdirSync(path.join(dir, 'src'), { recursive: true });
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ dependencies: { minio: '1' }, devDependencies: { yaml: '2' } }));
    writeFileSync(
      path.join(dir, 'src/a.ts'),
      "import type { X } from 'typescript';\nimport { Client } from 'minio';\nimport {\n  parse,\n} from 'yaml';\nconst m = await import('kubernetes-models');\n",
    );
    expect(checkRuntimeDependencies(dir).map((f) => f.message)).toEqual([
      'src/a.ts loads yaml, which the production install leaves out (not in dependencies)',
      'src/a.ts loads kubernetes-models, which the production install leaves out (not in dependencies)',
    ]);
  });

  it('dockerfilelint findings other than its known --start-period false positive', () => {
    const dir = context('lint', dockerfile.replace('FROM node:${NODE_VERSION}-bookworm-slim AS cpu', 'FROM debian AS cpu'));
    expect(lintDockerfile(dir).map(formatDockerFinding).join('\n')).toMatch(/missing_tag/);
  });
});

describe('docker/healthcheck.mjs', () => {
  it('asks for the service name the server registers', () => {
    expect(readFileSync(path.join(ROOT, 'docker/healthcheck.mjs'), 'utf8')).toContain(`const DEFAULT_SERVICE = '${SERVICE_NAME}';`);
  });

  it('exits 0 against a real server that is SERVING, for the service and for the server as a whole', async () => {
    const service = await startTestService({}, {});
    try {
      const ok = await healthcheck(['--address', service.address]);
      expect(ok.stdout).toContain(`'${SERVICE_NAME}': SERVING`);
      expect(ok.code).toBe(0);
      expect((await healthcheck(['--address', service.address, '--service', ''])).code).toBe(0);
      const unknown = await healthcheck(['--address', service.address, '--service', 'no.such.Service']);
      expect(unknown.stderr).toContain('NOT_FOUND');
      expect(unknown.code).toBe(1);
    } finally {
      await service.stop();
    }
  });

  it('exits 1 on NOT_SERVING (a draining server)', async () => {
    const server = new grpc.Server();
    new HealthImplementation({ '': 'NOT_SERVING', [SERVICE_NAME]: 'NOT_SERVING' }).addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    try {
      const result = await healthcheck(['--address', `127.0.0.1:${port}`]);
      expect(result.stderr).toContain('NOT_SERVING');
      expect(result.code).toBe(1);
    } finally {
      server.forceShutdown();
    }
  });

  it('exits 1 when nothing listens, 2 on bad arguments', async () => {
    const down = await healthcheck(['--address', `127.0.0.1:${await freePort()}`, '--timeout', '3']);
    expect(down.stderr).toMatch(/UNAVAILABLE|DEADLINE_EXCEEDED/);
    expect(down.code).toBe(1);
    expect((await healthcheck(['--bogus'])).code).toBe(2);
    expect((await healthcheck(['--timeout', '0'])).code).toBe(2);
  });
});

/**
 * MEMOMETER_TEST_PROD_INSTALL=1: the layout gets its own `npm ci --omit=dev --omit=optional`
 * (as the cpu image) instead of a link to the repository's node_modules.
 */
const PROD_INSTALL = process.env.MEMOMETER_TEST_PROD_INSTALL === '1';

describe(`docker/entrypoint.sh in the image layout (node_modules: ${PROD_INSTALL ? 'production install' : 'the repository\'s'})`, () => {
  const app = path.join(work, 'app');

  beforeAll(async () => {
    // /app as the runtime stages lay it out; dist/ compiled by tsc as `npm run build` does.
    mkdirSync(path.join(app, 'docker'), { recursive: true });
    const tsc = await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--outDir', path.join(app, 'dist'), '--declaration', 'false', '--sourceMap', 'false'], { timeoutMs: 240_000 });
    expect(tsc.stdout + tsc.stderr).toBe('');
    cpSync(path.join(ROOT, 'package.json'), path.join(app, 'package.json'));
    cpSync(path.join(ROOT, 'proto'), path.join(app, 'proto'), { recursive: true });
    cpSync(path.join(ROOT, 'examples'), path.join(app, 'examples'), { recursive: true });
    for (const f of ['entrypoint.sh', 'healthcheck.mjs']) cpSync(path.join(ROOT, 'docker', f), path.join(app, 'docker', f));
    if (PROD_INSTALL) {
      // What the cpu image gets: production dependencies only (slow: ~375 MB; opt-in).
      cpSync(path.join(ROOT, 'package-lock.json'), path.join(app, 'package-lock.json'));
      const npm = await run('npm', ['ci', '--omit=dev', '--omit=optional', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: 400_000 });
      expect(npm.code, npm.stderr).toBe(0);
    } else {
      symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'));
    }
  }, 500_000);

  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
    PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`,
    HOME: work,
    ...extra,
  });

  it('prints the usage for --help, run from any folder', async () => {
    const result = await run('sh', [path.join(app, 'docker/entrypoint.sh'), '--help'], { cwd: tmpdir(), env: env() });
    expect(result.stdout).toMatch(/^usage:\n {2}memometer measure/);
    expect(result.stdout).toContain('memometer serve');
    expect(result.code).toBe(0);
  });

  it('serves, passes the health check, and stops cleanly on SIGTERM', async () => {
    const child = spawn('sh', [path.join(app, 'docker/entrypoint.sh'), 'serve'], {
      cwd: '/',
      env: env({ MEMOMETER_HOST: '127.0.0.1', MEMOMETER_PORT: '0', MEMOMETER_BACKEND: 'wasm', MEMOMETER_SHUTDOWN_GRACE_SECONDS: '1', OTEL_TRACES_EXPORTER: 'none', TMPDIR: work }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no 'serving' line in 60 s: ${stderr}`)), 60_000);
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          const m = /serving on [\d.]+:(\d+) \(backend wasm/.exec(stderr);
          if (m) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        });
        child.on('close', () => reject(new Error(`exited early: ${stderr}`)));
      });
      const health = await healthcheck(['--address', `127.0.0.1:${port}`], path.join(app, 'docker/healthcheck.mjs'));
      expect(health.code).toBe(0);
      // exec: the shell is gone, node has the shell's PID and gets the signal itself.
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).toContain('memometer: stopped');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('says so and exits 127 when dist/ is missing', async () => {
    const empty = path.join(work, 'empty-app/docker');
    mkdirSync(empty, { recursive: true });
    cpSync(path.join(ROOT, 'docker/entrypoint.sh'), path.join(empty, 'entrypoint.sh'));
    const result = await run('sh', [path.join(empty, 'entrypoint.sh'), 'serve'], { env: env() });
    expect(result.stderr).toMatch(/dist\/clients\/main\.js is missing/);
    expect(result.code).toBe(127);
  });
});

describe('docker/check-gpu-binding.sh', () => {
  const script = path.join(ROOT, 'docker/check-gpu-binding.sh');
  const pkg = (app: string) => path.join(app, 'node_modules/@tensorflow/tfjs-node-gpu');

  it('fails without the package, without libtensorflow, or without the addon; passes with all three', async () => {
    const app = path.join(work, 'gpu-app');
    expect((await run('sh', [script, app])).stderr).toMatch(/tfjs-node-gpu is not installed/);
    mkdirSync(pkg(app), { recursive: true });
    writeFileSync(path.join(pkg(app), 'package.json'), '{}');
    const noLib = await run('sh', [script, app]);
    expect(noLib.stderr).toMatch(/libtensorflow is missing/);
    expect(noLib.code).toBe(1);
    mkdirSync(path.join(pkg(app), 'deps/lib'), { recursive: true });
    writeFileSync(path.join(pkg(app), 'deps/lib/libtensorflow.so.2.9.1'), '');
    const noAddon = await run('sh', [script, app]);
    expect(noAddon.stderr).toMatch(/tfjs_binding\.node is missing/);
    expect(noAddon.code).toBe(1);
    mkdirSync(path.join(pkg(app), 'lib/napi-v8'), { recursive: true });
    writeFileSync(path.join(pkg(app), 'lib/napi-v8/tfjs_binding.node'), '');
    const ok = await run('sh', [script, app]);
    expect(ok.stdout).toContain('check-gpu-binding: ok');
    expect(ok.code).toBe(0);
  });
});
