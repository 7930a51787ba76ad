/**
 * The Dockerfile and .dockerignore parsing under scripts/deploy/dockerfile.ts (dockerfile-ast and
 * @balena/dockerignore): parser directives (`# escape=`), heredocs, and .dockerignore exceptions.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildCommandIn } from '../../scripts/deploy/docker-checks.js';
import { DockerIgnore, lookup, modelDockerfile, parseDockerfile } from '../../scripts/deploy/dockerfile.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('parseDockerfile', () => {
  it('honours `# escape=`: backticks continue lines, a trailing backslash does not', () => {
    const text = [
      '# escape=`',
      'FROM node:20 AS build',
      'WORKDIR C:\\app\\',
      'COPY package.json `',
      '     package-lock.json ./',
      '# a comment inside the continuation',
      'RUN npm ci `',
      '    --omit=dev',
      'ENV A=1 `',
      '    B="two words"',
    ].join('\n');
    const ins = parseDockerfile(text);
    expect(ins.map((i) => `${i.line} ${i.name}`)).toEqual(['2 FROM', '3 WORKDIR', '4 COPY', '7 RUN', '9 ENV']);
    expect(ins[1]!.args).toBe('C:\\app\\');
    expect(ins[2]!.words).toEqual(['package.json', 'package-lock.json', './']);
    expect(ins[3]!.args).toMatch(/^npm ci\s+--omit=dev$/);
    expect(ins[4]!.properties).toEqual([
      { name: 'A', value: '1' },
      { name: 'B', value: 'two words' },
    ]);
  });

  it('reads flags and the exec (JSON) form', () => {
    const [copy, health, entry] = parseDockerfile(
      'FROM x\nCOPY --from=build --chown=1:1 /a /b\nHEALTHCHECK --interval=30s --start-period=60s CMD ["node", "/h.mjs"]\nENTRYPOINT ["/bin/sh", "/e.sh"]\n',
    ).slice(1);
    expect(copy!.flags).toEqual({ from: 'build', chown: '1:1' });
    expect(copy!.words).toEqual(['/a', '/b']);
    expect(copy!.args).toBe('--from=build --chown=1:1 /a /b');
    expect(health!.flags).toEqual({ interval: '30s', 'start-period': '60s' });
    expect(health!.rest).toBe('CMD ["node", "/h.mjs"]');
    expect(entry!.json).toBe(true);
    expect(entry!.words).toEqual(['/bin/sh', '/e.sh']);
  });

  const heredocs = [
    'FROM node:20 AS build',
    'WORKDIR /app',
    'COPY package.json package-lock.json ./',
    'RUN <<EOF',
    'set -e',
    'npm ci --omit=dev',
    'EOF',
    'COPY <<EOT /app/settings.txt',
    'not a file of the build context',
    'EOT',
    'USER 10001',
  ].join('\n');

  it('keeps heredoc bodies inside their instruction', () => {
    const ins = parseDockerfile(heredocs);
    expect(ins.map((i) => `${i.line} ${i.name}`)).toEqual(['1 FROM', '2 WORKDIR', '3 COPY', '4 RUN', '8 COPY', '11 USER']);
    expect(ins[3]!.heredocs).toEqual([{ name: 'EOF', body: 'set -e\nnpm ci --omit=dev' }]);
    expect(ins[4]!.words).toEqual(['<<EOT', '/app/settings.txt']);
    expect(ins[4]!.heredocs.map((h) => h.name)).toEqual(['EOT']);
    expect(buildCommandIn(ins[3]!.args)).toBe('npm ci --omit=dev');
  });

  it('models a heredoc RUN and a heredoc COPY without taking their bodies for context files', () => {
    const model = modelDockerfile(heredocs, ROOT, new DockerIgnore(''));
    expect(model.findings).toEqual([]);
    const [stage] = model.stages;
    expect(lookup(stage!, '/app/node_modules', ROOT)).toEqual({ exists: true, why: 'produced by RUN npm ci (line 4)' });
    expect(lookup(stage!, '/app/settings.txt', ROOT).exists).toBe(true);
    expect(lookup(stage!, '/app/package.json', ROOT).exists).toBe(true);
  });
});

describe('.dockerignore exceptions (@balena/dockerignore)', () => {
  const ignore = new DockerIgnore(['*', '!src/', 'src/**/*.test.ts', '!src/keep.test.ts', '!docs', 'docs/*.md', '!docs/README.md', '**/*.log', '!important.log'].join('\n'));

  it('re-includes with `!`, and the last matching pattern wins', () => {
    expect(ignore.excludes('package.json')).toBe(true);
    expect(ignore.excludes('src/a.ts')).toBe(false);
    expect(ignore.excludes('./src/a.ts')).toBe(false);
    expect(ignore.excludes('src/x/y.test.ts')).toBe(true);
    expect(ignore.excludes('src/keep.test.ts')).toBe(false);
    expect(ignore.excludes('docs/guide.md')).toBe(true);
    expect(ignore.excludes('docs/README.md')).toBe(false);
    expect(ignore.excludes('docs/img/a.png')).toBe(false);
    expect(ignore.excludes('src/debug.log')).toBe(true);
    expect(ignore.excludes('important.log')).toBe(false);
  });

  it('an exception for a file inside an excluded folder', () => {
    const only = new DockerIgnore('dist\n!dist/clients/main.js\n');
    expect(only.excludes('dist/server/server.js')).toBe(true);
    expect(only.excludes('dist/clients/main.js')).toBe(false);
    expect(only.excludes('src/a.ts')).toBe(false);
  });
});
