/**
 * One Node.js release everywhere: .node-version (CI and scripts/with-node.sh), the Dockerfile's
 * NODE_VERSION default (every image stage), package.json engines and deploy/README.md agree.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');
const pinned = read('.node-version').trim();
const major = pinned.split('.')[0]!;

describe('the pinned Node.js release', () => {
  it('.node-version is a full release (MAJOR.MINOR.PATCH) of an even-numbered (LTS) line', () => {
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(Number(major) % 2).toBe(0);
  });

  it('is the Dockerfile NODE_VERSION default, and the gpu stages copy node from the build stage', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(new RegExp(`^ARG NODE_VERSION=${pinned.replace(/\./g, '\\.')}$`, 'm'));
    expect(dockerfile).toMatch(/^FROM node:\$\{NODE_VERSION\}-bookworm AS build$/m);
    expect(dockerfile).toMatch(/^FROM node:\$\{NODE_VERSION\}-bookworm-slim AS cpu$/m);
    // No other Node source in the image stages.
    expect(dockerfile.match(/^COPY --from=build \/usr\/local\/bin\/node /gm)?.length).toBe(2);
    expect(dockerfile).not.toMatch(/nodesource|nvm|apt-get install[^\n]*\bnodejs\b/);
  });

  it('satisfies package.json engines.node, which names the same major line', () => {
    const engines = (JSON.parse(read('package.json')) as { engines?: { node?: string } }).engines?.node;
    expect(engines).toBe(`>=${major}`);
  });

  it('is what deploy/README.md says the cpu image runs', () => {
    expect(read('deploy/README.md')).toContain(`node:${major}-bookworm-slim`);
  });

  it('.ci/run runs under scripts/with-node.sh', () => {
    expect(read('.ci/run')).toMatch(/exec scripts\/with-node\.sh "\$0"/);
  });
});
