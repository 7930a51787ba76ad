/**
 * What the Dockerfile must get right for memometer, checked without a Docker engine (see
 * dockerfile.ts for the stage model): both runtime targets (gpu, the default, and cpu) run the
 * server as a numeric non-root user, from files that are really there, with no build tools, with
 * a HEALTHCHECK that is a real gRPC health check, and with the backend each target is for.
 * Also runs dockerfilelint with every rule on, allowing only its one known false positive.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SERVER_DEFAULTS } from '../../src/server/config.js';
import { DockerIgnore, last, lookup, modelDockerfile, words, type Finding, type Stage } from './dockerfile.js';

const require = createRequire(import.meta.url);

export const RUNTIME_TARGETS = {
  gpu: { backend: 'node-gpu', base: /(^|\/)cuda:11\.2(\.\d+)?-cudnn8-runtime-ubuntu\d+\.\d+$/, baseWhat: 'a CUDA 11.2 + cuDNN 8 runtime image' },
  cpu: { backend: 'wasm', base: /^node:[\w.-]*slim$/, baseWhat: 'a node slim image' },
} as const;

/** Commands that install packages or run build tools: not allowed in a runtime stage's RUN. */
const PACKAGE_MANAGERS = /^(apt-get|apt|apk|yum|dnf|microdnf)\s+(install|add)\b/;
const BUILD_COMMANDS = new Set(['gcc', 'g++', 'cc', 'c++', 'make', 'cmake', 'python', 'python3', 'pip', 'pip3', 'node-gyp', 'npm', 'npx', 'yarn', 'pnpm', 'corepack']);

/** The first build-time command in a RUN line, if any (each of its `&&` / `;` / `|` commands, and each line of a heredoc, is looked at). */
export function buildCommandIn(run: string): string | undefined {
  for (const part of run.split(/&&|\|\||;|\||\n/)) {
    const command = part.trim().replace(/^([A-Za-z_][A-Za-z0-9_]*=\S*\s+)+/, '');
    const first = command.split(/\s+/)[0] ?? '';
    if (PACKAGE_MANAGERS.test(command) || BUILD_COMMANDS.has(path.posix.basename(first)) || /npm-cli\.js/.test(command)) return command;
  }
  return undefined;
}

/** Files the server reads at run time, relative to the app folder. */
export const RUNTIME_FILES = [
  'package.json', // "type": "module": dist/*.js are ES modules
  'dist/clients/main.js', // the entry point (docker/entrypoint.sh)
  'dist/server/server.js',
  'proto/memometer/v1/memometer.proto', // PROTO_ROOT = dist/server/../../proto, for reflection
  'node_modules',
];

/** The healthcheck's imports that must be production dependencies. */
function scriptImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^import\s[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!).filter((s) => !s.startsWith('node:') && !s.startsWith('.'));
}

const IMPORTS = [
  /^\s*(?:import|export)\s+(?!type\b)[^;]*?\bfrom\s+['"]([^'"]+)['"]/gm,
  /^\s*import\s+['"]([^'"]+)['"]/gm,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
];

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path.join(dir, e.name)] : [],
  );
}

/**
 * The packages src/ loads at run time (value imports, dynamic imports with a literal name,
 * require), which the production install (`npm ci --omit=dev`) must provide: each must be a
 * dependency or an optionalDependency, never only a devDependency.
 */
export function checkRuntimeDependencies(root: string): Finding[] {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
  const prod = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]);
  const findings: Finding[] = [];
  for (const file of tsFiles(path.join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of IMPORTS) {
      for (const m of text.matchAll(pattern)) {
        const spec = m[1]!;
        if (spec.startsWith('.') || spec.startsWith('node:') || spec.startsWith('/')) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!prod.has(name)) findings.push({ check: 'dependencies', message: `${path.relative(root, file)} loads ${name}, which the production install leaves out (not in dependencies)` });
      }
    }
  }
  return findings;
}

/** dockerfilelint with every rule on; the one false positive it has on this file is allowed. */
export function lintDockerfile(root: string): Finding[] {
  const { run } = require('dockerfilelint') as typeof import('dockerfilelint');
  const content = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const lines = content.split(/\r?\n/);
  // A folder without .dockerfilelintrc: all rules on.
  const items = run(os.tmpdir() + path.sep + 'no-dockerfilelintrc-here', content);
  const findings: Finding[] = [];
  for (const item of items) {
    // dockerfilelint 1.8 reads HEALTHCHECK options with /--\w+/: --start-period becomes "--start".
    const known = item.rule === 'invalid_format' && /^\s*HEALTHCHECK\b.*--start-period=/.test(lines[item.line - 1] ?? '');
    if (!known) findings.push({ check: 'dockerfilelint', line: item.line, message: `${item.rule}: ${item.title}` });
  }
  const rcFile = path.join(root, '.dockerfilelintrc');
  if (existsSync(rcFile)) {
    const rules = Object.keys((parseYaml(readFileSync(rcFile, 'utf8')) as { rules?: Record<string, unknown> } | null)?.rules ?? {});
    for (const rule of rules) {
      if (rule !== 'invalid_format') findings.push({ check: 'dockerfilelint', message: `.dockerfilelintrc turns off '${rule}': only invalid_format (a known false positive) may be off` });
    }
  }
  return findings;
}

function producer(stage: Stage, p: string, stages: Stage[]): { stage: Stage; line: number; args: string } | undefined {
  const origin = stage.paths.get(p);
  if (!origin || origin.kind !== 'produced') return undefined;
  const line = Number(/line (\d+)/.exec(origin.by)?.[1]);
  for (const s of stages) {
    const ins = s.instructions.find((i) => i.line === line);
    if (ins) return { stage: s, line, args: ins.args };
  }
  return undefined;
}

export function checkDockerfile(root: string): Finding[] {
  const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const ignoreFile = path.join(root, '.dockerignore');
  const ignore = new DockerIgnore(existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8') : '');
  const model = modelDockerfile(text, root, ignore);
  const findings: Finding[] = [...model.findings, ...checkRuntimeDependencies(root)];
  const add = (message: string, line?: number, check = 'runtime') => findings.push(line !== undefined ? { check, line, message } : { check, message });

  for (const p of ['node_modules', 'dist', '.git', 'test', 'deploy', '.tmp', 'bench']) {
    if (existsSync(path.join(root, p)) && !ignore.excludes(p)) add(`.dockerignore lets ${p}/ into the build context`, undefined, 'context');
  }
  const lastStage = model.stages[model.stages.length - 1];
  if (lastStage?.name !== 'gpu') add(`the last stage (the default target) should be gpu, is ${lastStage?.name}`);

  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { type?: string; dependencies?: Record<string, string> };
  for (const dep of scriptImports(path.join(root, 'docker/healthcheck.mjs'))) {
    if (!pkg.dependencies?.[dep]) add(`docker/healthcheck.mjs imports ${dep}, which is not a production dependency`, undefined, 'healthcheck');
  }
  if (pkg.type !== 'module') add('package.json must say "type": "module" (dist/ holds ES modules)');

  for (const [target, want] of Object.entries(RUNTIME_TARGETS)) {
    const stage = model.stages.find((s) => s.name === target);
    if (!stage) {
      add(`no stage named ${target}`);
      continue;
    }
    const at = (what: string) => `${target}: ${what}`;
    if (!want.base.test(stage.from)) add(at(`FROM ${stage.from} is not ${want.baseWhat}`), stage.line);
    if (model.stages.some((s) => s.name === stage.from)) add(at(`must start from a base image, not from stage ${stage.from}`), stage.line);
    for (const ins of stage.instructions) {
      const command = ins.name === 'RUN' ? buildCommandIn(ins.args) : undefined;
      if (command) add(at(`RUN installs packages or uses build tools in a runtime stage: ${command.slice(0, 80)}`), ins.line);
    }
    if (!lookup(stage, '/usr/local/bin/node', root).exists) add(at('no /usr/local/bin/node'));
    for (const f of RUNTIME_FILES) {
      const found = lookup(stage, path.posix.join(stage.workdir, f), root);
      if (!found.exists) add(at(`${path.posix.join(stage.workdir, f)} is missing (${found.why})`));
    }
    // node_modules: production only; the GPU one with the binding, checked at build time.
    const deps = producer(stage, path.posix.join(stage.workdir, 'node_modules'), model.stages);
    if (!deps) add(at('node_modules does not come from an npm ci of a build stage'));
    else {
      if (!/--omit=dev\b/.test(deps.args)) add(at(`node_modules (stage ${deps.stage.name}, line ${deps.line}) is not a production install (--omit=dev)`));
      const checksBinding = deps.stage.instructions.some((i) => i.name === 'RUN' && i.line > deps.line && /check-gpu-binding\.sh/.test(i.args));
      if (target === 'gpu') {
        if (/--omit=optional|--no-optional|--ignore-scripts/.test(deps.args)) add(at('the GPU install must keep optional dependencies and install scripts (@tensorflow/tfjs-node-gpu)'), deps.line);
        if (!checksBinding) add(at(`stage ${deps.stage.name} must run docker/check-gpu-binding.sh after npm ci`), deps.line);
      }
    }
    if (stage.env.MEMOMETER_BACKEND !== want.backend) add(at(`ENV MEMOMETER_BACKEND is ${stage.env.MEMOMETER_BACKEND ?? 'unset'}, expected ${want.backend}`));
    const port = stage.env.MEMOMETER_PORT ?? String(SERVER_DEFAULTS.port);
    const expose = last(stage, 'EXPOSE');
    if (!expose || !expose.args.split(/\s+/).some((p) => p.replace(/\/tcp$/, '') === port)) add(at(`EXPOSE ${port} is missing`), expose?.line);

    const user = last(stage, 'USER');
    if (!user) add(at('no USER: the image would run as root'));
    else if (!/^[1-9]\d*(:[1-9]\d*)?$/.test(user.args)) add(at(`USER ${user.args} must be a numeric non-root UID[:GID] (Kubernetes runAsNonRoot can only verify numbers)`), user.line);

    const entry = last(stage, 'ENTRYPOINT');
    if (!entry?.json) add(at('ENTRYPOINT must be in exec (JSON) form'), entry?.line);
    else {
      const script = entry.words.find((w) => w.endsWith('entrypoint.sh'));
      if (!script) add(at('ENTRYPOINT must run docker/entrypoint.sh'), entry.line);
      else if (!lookup(stage, script, root).exists) add(at(`ENTRYPOINT script ${script} is not in the image`), entry.line);
    }
    const cmd = last(stage, 'CMD');
    if (!cmd || JSON.stringify(cmd.words) !== '["serve"]') add(at('CMD must be ["serve"]'), cmd?.line);

    const health = last(stage, 'HEALTHCHECK');
    if (!health) add(at('no HEALTHCHECK'));
    else {
      const { flags, rest } = health;
      const cmdPart = rest.replace(/^CMD\s+/, '');
      const hw = words(cmdPart);
      const script = hw.words.find((w) => w.endsWith('healthcheck.mjs'));
      if (!hw.json || hw.words[0] !== 'node' || !script) add(at('HEALTHCHECK must be CMD ["node", ".../docker/healthcheck.mjs"] (a gRPC health check)'), health.line);
      else if (!lookup(stage, script, root).exists) add(at(`HEALTHCHECK script ${script} is not in the image`), health.line);
      if (!flags['start-period']) add(at('HEALTHCHECK needs --start-period (the backend initialises before the port opens)'), health.line);
    }
  }
  return findings;
}

export function formatDockerFinding(f: Finding): string {
  return `[${f.check}] Dockerfile${f.line !== undefined ? `:${f.line}` : ''}: ${f.message}`;
}
