/**
 * Static checks of the Dockerfile, for a machine without a Docker engine: a parser for the
 * instructions it uses, a .dockerignore matcher, and a walk through the stages that tracks which
 * paths each stage has (copied from the build context, produced by `npm ci` / `npm run build`,
 * or shipped by the base image), so that every COPY source, the ENTRYPOINT and HEALTHCHECK
 * scripts and what the server reads at run time (dist/, proto/, package.json, node_modules) are
 * known to exist where they are used.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';

export interface Instruction {
  line: number;
  /** Upper case: FROM, RUN, COPY, ... */
  name: string;
  /** The arguments as written (continuations joined, flags included). */
  args: string;
}

export interface Finding {
  check: string;
  line?: number;
  message: string;
}

/** Instructions of a Dockerfile: comments dropped, `\` continuations joined. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split(/\r?\n/);
  let current: { line: number; text: string } | undefined;
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && !current)) return; // comments may sit inside continuations
    const continued = /\\\s*$/.test(raw);
    const piece = continued ? raw.replace(/\\\s*$/, '') : raw;
    if (current) current.text += ` ${piece.trim()}`;
    else current = { line: i + 1, text: piece.trim() };
    if (!continued) {
      const m = /^(\S+)\s*(.*)$/s.exec(current.text)!;
      out.push({ line: current.line, name: m[1]!.toUpperCase(), args: m[2]!.trim() });
      current = undefined;
    }
  });
  return out;
}

/** Splits leading `--flag=value` options from the rest of the arguments. */
export function splitFlags(args: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest);
    if (!m) break;
    flags[m[1]!] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
  return { flags, rest };
}

/** The words of an instruction: JSON (exec) form or whitespace-separated. */
export function words(rest: string): { words: string[]; json: boolean } {
  if (rest.trim().startsWith('[')) return { words: JSON.parse(rest) as string[], json: true };
  return { words: rest.split(/\s+/).filter(Boolean), json: false };
}

/** Replaces $VAR and ${VAR} with known values (unknown ones stay as written). */
export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a?: string, b?: string) => vars[(a ?? b)!] ?? m);
}

// ---- .dockerignore ---------------------------------------------------------------------------------------

interface IgnoreRule {
  negate: boolean;
  regex: RegExp;
  pattern: string;
}

function patternRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      if (pattern[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A .dockerignore (Docker's rules: last matching pattern wins, a pattern also matches a path's parents). */
export class DockerIgnore {
  readonly rules: IgnoreRule[];

  constructor(text: string) {
    this.rules = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => {
        const negate = l.startsWith('!');
        const cleaned = path.posix.normalize((negate ? l.slice(1) : l).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
        return { negate, pattern: cleaned, regex: patternRegex(cleaned) };
      });
  }

  /** Whether `rel` (a path relative to the context, '/' separated) is left out of the context. */
  excludes(rel: string): boolean {
    const clean = path.posix.normalize(rel).replace(/^\.\/?/, '').replace(/\/+$/, '');
    const parts = clean.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of this.rules) {
      if (candidates.some((c) => rule.regex.test(c))) excluded = !rule.negate;
    }
    return excluded;
  }
}

// ---- stages ----------------------------------------------------------------------------------------------

/** Paths the base images are known to provide (the only ones a COPY --from may take from them). */
export const BASE_IMAGE_PATHS: { image: RegExp; paths: string[] }[] = [
  { image: /^node:/, paths: ['/usr/local/bin/node', '/usr/local/lib/node_modules/npm'] },
];

type Origin =
  | { kind: 'context'; source: string } // a file or folder of the repository
  | { kind: 'produced'; by: string; outDir?: string } // node_modules from npm ci, dist/ from tsc
  | { kind: 'base'; image: string };

export interface Stage {
  name: string;
  index: number;
  from: string;
  line: number;
  workdir: string;
  env: Record<string, string>;
  paths: Map<string, Origin>;
  instructions: Instruction[];
}

export interface DockerfileModel {
  stages: Stage[];
  globalArgs: Record<string, string>;
  findings: Finding[];
}

function resolveIn(workdir: string, p: string): string {
  return path.posix.resolve(workdir, p);
}

/** Whether `p` exists in the stage, and where it came from. */
export function lookup(stage: Stage, p: string, root: string): { exists: boolean; why: string } {
  const target = path.posix.normalize(p).replace(/\/+$/, '');
  for (const [at, origin] of stage.paths) {
    if (target !== at && !target.startsWith(`${at}/`)) continue;
    const rel = target === at ? '' : target.slice(at.length + 1);
    if (origin.kind === 'context') {
      const file = path.join(root, origin.source, rel);
      return { exists: existsSync(file), why: `copied from ${path.posix.join(origin.source, rel)}` };
    }
    if (origin.kind === 'produced') {
      if (origin.outDir !== undefined && rel !== '') {
        // tsc maps src/x.ts to <outDir>/x.js (and .d.ts / .js.map).
        const base = rel.replace(/\.(js|d\.ts|js\.map)$/, '');
        const ok = rel === base ? existsSync(path.join(root, 'src', base)) : existsSync(path.join(root, 'src', `${base}.ts`));
        return { exists: ok, why: `compiled from src/${base}.ts by ${origin.by}` };
      }
      return { exists: true, why: `produced by ${origin.by}` };
    }
    return { exists: target === at, why: `from the base image ${origin.image}` };
  }
  return { exists: false, why: 'nothing puts it there' };
}

/**
 * Walks the stages: WORKDIR, ENV and ARG values, COPY destinations (checking every source), and
 * the outputs of `npm ci` / `npm install` (node_modules) and `npm run build` (tsconfig's outDir).
 */
export function modelDockerfile(text: string, root: string, ignore: DockerIgnore): DockerfileModel {
  const findings: Finding[] = [];
  const stages: Stage[] = [];
  const globalArgs: Record<string, string> = {};
  const tsconfig = JSON.parse(readFileSync(path.join(root, 'tsconfig.json'), 'utf8')) as { compilerOptions?: { outDir?: string } };
  const outDir = tsconfig.compilerOptions?.outDir ?? 'dist';
  for (const ins of parseDockerfile(text)) {
    const stage = stages[stages.length - 1];
    if (ins.name === 'ARG' && !stage) {
      const [k, v] = ins.args.split('=');
      globalArgs[k!.trim()] = (v ?? '').trim();
      continue;
    }
    if (ins.name === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(substitute(ins.args, globalArgs));
      if (!m) {
        findings.push({ check: 'dockerfile', line: ins.line, message: `cannot parse FROM ${ins.args}` });
        continue;
      }
      const from = m[1]!;
      const parent = stages.find((s) => s.name === from);
      const paths = new Map<string, Origin>(parent ? parent.paths : []);
      if (!parent) {
        for (const known of BASE_IMAGE_PATHS) if (known.image.test(from)) for (const p of known.paths) paths.set(p, { kind: 'base', image: from });
      }
      stages.push({
        name: m[2] ?? String(stages.length),
        index: stages.length,
        from,
        line: ins.line,
        workdir: parent?.workdir ?? '/',
        env: { ...(parent?.env ?? {}) },
        paths,
        instructions: [],
      });
      continue;
    }
    if (!stage) {
      findings.push({ check: 'dockerfile', line: ins.line, message: `${ins.name} before the first FROM` });
      continue;
    }
    stage.instructions.push(ins);
    const vars = { ...globalArgs, ...stage.env };
    if (ins.name === 'WORKDIR') stage.workdir = resolveIn(stage.workdir, substitute(ins.args, vars));
    if (ins.name === 'ENV') {
      for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) stage.env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
    }
    if (ins.name === 'ADD') findings.push({ check: 'dockerfile', line: ins.line, message: 'use COPY, not ADD' });
    if (ins.name === 'RUN') {
      if (/\bnpm(?:-cli\.js)?\s+(ci|install)\b/.test(ins.args)) stage.paths.set(resolveIn(stage.workdir, 'node_modules'), { kind: 'produced', by: `RUN npm ci (line ${ins.line})` });
      if (/\bnpm\s+run\s+build\b/.test(ins.args)) {
        stage.paths.set(resolveIn(stage.workdir, outDir), { kind: 'produced', by: `RUN npm run build (line ${ins.line})`, outDir });
      }
    }
    if (ins.name === 'COPY') {
      const { flags, rest } = splitFlags(ins.args);
      const all = words(substitute(rest, vars)).words;
      if (all.length < 2) {
        findings.push({ check: 'copy', line: ins.line, message: 'COPY needs a source and a destination' });
        continue;
      }
      const dest = all[all.length - 1]!;
      const sources = all.slice(0, -1);
      const destDir = dest.endsWith('/') || sources.length > 1;
      const destAbs = resolveIn(stage.workdir, dest);
      const fromStage = flags.from !== undefined ? stages.find((s) => s.name === flags.from) : undefined;
      if (flags.from !== undefined && !fromStage) {
        findings.push({ check: 'copy', line: ins.line, message: `--from=${flags.from} names no earlier stage (external images are not allowed here)` });
        continue;
      }
      for (const source of sources) {
        if (/[*?[]/.test(source)) {
          findings.push({ check: 'copy', line: ins.line, message: `wildcard source '${source}' is not supported by this check` });
          continue;
        }
        const name = path.posix.basename(source);
        const target = destDir ? path.posix.join(destAbs, name) : destAbs;
        if (fromStage) {
          const found = lookup(fromStage, source, root);
          if (!found.exists) findings.push({ check: 'copy', line: ins.line, message: `stage '${fromStage.name}' has no ${source} (${found.why})` });
          const origin = [...fromStage.paths.entries()].find(([at]) => source === at || source.startsWith(`${at}/`));
          if (origin) {
            const [at, o] = origin;
            stage.paths.set(target, o.kind === 'context' ? { kind: 'context', source: path.posix.join(o.source, source.slice(at.length + 1)) } : o);
          }
        } else {
          const rel = path.posix.normalize(source).replace(/^\.\/?/, '').replace(/\/+$/, '');
          const abs = path.join(root, rel);
          if (!existsSync(abs)) {
            findings.push({ check: 'copy', line: ins.line, message: `the build context has no ${source}` });
            continue;
          }
          if (ignore.excludes(rel)) {
            findings.push({ check: 'copy', line: ins.line, message: `${source} is excluded by .dockerignore` });
            continue;
          }
          if (statSync(abs).isDirectory()) {
            const dropped = listFiles(abs).map((f) => path.posix.join(rel, f)).filter((f) => ignore.excludes(f));
            if (dropped.length) findings.push({ check: 'copy', line: ins.line, message: `.dockerignore drops ${dropped.length} file(s) of ${source}, e.g. ${dropped[0]}` });
          }
          stage.paths.set(target, { kind: 'context', source: rel });
        }
      }
    }
  }
  return { stages, globalArgs, findings };
}

function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), path.posix.join(prefix, e.name)) : [path.posix.join(prefix, e.name)],
  );
}

/** The last instruction of a kind in a stage. */
export function last(stage: Stage, name: string): Instruction | undefined {
  return [...stage.instructions].reverse().find((i) => i.name === name);
}
