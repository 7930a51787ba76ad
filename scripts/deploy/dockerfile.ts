/**
 * Static checks of the Dockerfile, for a machine without a Docker engine: the instructions (parsed
 * by dockerfile-ast: parser directives such as `# escape=`, continuations, heredocs), the
 * .dockerignore (matched by @balena/dockerignore, Docker's rules), and a walk through the stages
 * that tracks which paths each stage has (copied from the build context, produced by `npm ci` /
 * `npm run build`, or shipped by the base image), so that every COPY source, the ENTRYPOINT and
 * HEALTHCHECK scripts and what the server reads at run time (dist/, proto/, package.json,
 * node_modules) are known to exist where they are used.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Ignore } from '@balena/dockerignore';
import { Copy, DockerfileParser, JSONInstruction, ModifiableInstruction, PropertyInstruction, Run, type Heredoc } from 'dockerfile-ast';

export interface Instruction {
  /** 1-based line of the keyword. */
  line: number;
  /** Upper case: FROM, RUN, COPY, ... */
  name: string;
  /** The arguments as Docker reads them: flags included, continuations joined, heredoc bodies included. */
  args: string;
  /** The leading `--flag[=value]` options (a flag without a value is 'true'). */
  flags: Record<string, string>;
  /** `args` without the flags. */
  rest: string;
  /** The words after the flags, heredoc bodies left out: the exec (JSON) form's strings, or the shell form's words. */
  words: string[];
  /** Whether the instruction is in exec (JSON) form. */
  json: boolean;
  /** `<<NAME` here-documents (RUN, COPY), with their bodies. */
  heredocs: { name: string; body: string }[];
  /** KEY=value pairs of ENV, ARG and LABEL (quotes and escapes resolved; null: an ARG without a default). */
  properties: { name: string; value: string | null }[];
}

export interface Finding {
  check: string;
  line?: number;
  message: string;
}

/** Offsets of the starts of the lines of `text` (dockerfile-ast positions are line/character). */
function offsets(text: string): (pos: { line: number; character: number }) => number {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === '\n') starts.push(i + 1);
  return (pos) => (starts[pos.line] ?? text.length) + pos.character;
}

/** The instructions of a Dockerfile (comments and parser directives dropped), parsed by dockerfile-ast. */
export function parseDockerfile(text: string): Instruction[] {
  const at = offsets(text);
  return DockerfileParser.parse(text)
    .getInstructions()
    .map((ins): Instruction => {
      const heredocs: Heredoc[] = ins instanceof Run || ins instanceof Copy ? ins.getHeredocs() : [];
      const flagList = ins instanceof ModifiableInstruction ? ins.getFlags() : [];
      const flags: Record<string, string> = {};
      for (const f of flagList) flags[f.getName()] = f.getValue() ?? 'true';
      // getArgumentsContent: the text after the flags with escaped newlines (and comment lines inside them) removed.
      const rest = (ins.getArgumentsContent() ?? '').trim();
      const bodyStart = heredocs[0]?.getContentRange()?.start;
      const lineWords = ins
        .getArguments()
        .filter((a) => !bodyStart || a.isBefore(bodyStart))
        .map((a) => a.getValue());
      const json = ins instanceof JSONInstruction && ins.getJSONStrings().length > 0;
      return {
        line: ins.getRange().start.line + 1,
        name: ins.getKeyword(),
        args: [...flagList.map((f) => f.toString()), rest].join(' ').trim(),
        flags,
        rest,
        words: json ? words(rest).words : lineWords,
        json,
        heredocs: heredocs.map((h) => {
          const range = h.getContentRange();
          return { name: h.getName(), body: range ? text.slice(at(range.start), at(range.end)) : '' };
        }),
        properties: ins instanceof PropertyInstruction ? ins.getProperties().map((p) => ({ name: p.getName(), value: p.getValue() })) : [],
      };
    });
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
  if (rest.trim().startsWith('[')) {
    const parsed: unknown = JSON.parse(rest);
    if (!Array.isArray(parsed) || !parsed.every((w): w is string => typeof w === 'string')) throw new Error(`not a JSON array of strings: ${rest}`);
    return { words: parsed, json: true };
  }
  return { words: rest.split(/\s+/).filter(Boolean), json: false };
}

/** Replaces $VAR and ${VAR} with known values (unknown ones stay as written). */
export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, a?: string, b?: string) => vars[(a ?? b)!] ?? m);
}

// ---- .dockerignore ---------------------------------------------------------------------------------------

// A CommonJS module (`module.exports = factory`) whose types declare `export default`: require gives the factory.
const ignore = createRequire(import.meta.url)('@balena/dockerignore') as typeof import('@balena/dockerignore').default;

/** A .dockerignore, matched by @balena/dockerignore (Docker's rules: last matching pattern wins, `!` re-includes, a pattern also matches a path's children). */
export class DockerIgnore {
  private readonly matcher: Ignore;

  constructor(text: string) {
    this.matcher = ignore().add(text.split(/\r?\n/));
  }

  /** Whether `rel` (a path relative to the context, '/' separated) is left out of the context. */
  excludes(rel: string): boolean {
    const clean = path.posix.normalize(rel).replace(/^\.\/?/, '').replace(/\/+$/, '');
    return clean !== '' && this.matcher.ignores(clean);
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
      for (const p of ins.properties) globalArgs[p.name] = p.value ?? '';
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
    if (ins.name === 'ENV') for (const p of ins.properties) stage.env[p.name] = p.value ?? '';
    if (ins.name === 'ADD') findings.push({ check: 'dockerfile', line: ins.line, message: 'use COPY, not ADD' });
    if (ins.name === 'RUN') {
      if (/\bnpm(?:-cli\.js)?\s+(ci|install)\b/.test(ins.args)) stage.paths.set(resolveIn(stage.workdir, 'node_modules'), { kind: 'produced', by: `RUN npm ci (line ${ins.line})` });
      if (/\bnpm\s+run\s+build\b/.test(ins.args)) {
        stage.paths.set(resolveIn(stage.workdir, outDir), { kind: 'produced', by: `RUN npm run build (line ${ins.line})`, outDir });
      }
    }
    if (ins.name === 'COPY') {
      const { flags } = ins;
      const all = ins.words.map((w) => substitute(w, vars));
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
        const heredoc = /^<<-?["']?([^"']+)["']?$/.exec(source);
        if (heredoc) {
          // A here-document: a file written by the instruction itself, not taken from the context.
          stage.paths.set(destDir ? path.posix.join(destAbs, heredoc[1]!) : destAbs, { kind: 'produced', by: `COPY <<${heredoc[1]!} (line ${ins.line})` });
          continue;
        }
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
