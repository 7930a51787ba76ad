/**
 * Cross-check of scripts/deploy/kustomize.ts against the real kustomize inside kubectl, where a
 * kubectl with `kubectl kustomize` is on PATH (it renders offline; no cluster needed).
 */
import { spawnSync } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import { objectId, parseYamlDocuments, type K8sObject } from './kustomize.js';

/** The kubectl to use: $KUBECTL, else `kubectl` on PATH; KUBECTL= (empty) turns the comparison off. */
const KUBECTL = process.env.KUBECTL ?? 'kubectl';

/** `kubectl kustomize dir` as objects; undefined when there is no usable kubectl. */
export function kubectlKustomize(dir: string): K8sObject[] | undefined {
  if (!kubectlVersion()) return undefined;
  const run = spawnSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${run.stderr}`);
  return parseYamlDocuments(run.stdout, `kubectl kustomize ${dir}`) as K8sObject[];
}

/** Differences between two renders of the same kustomization (objects, contents and order). */
export function compareRenders(mine: K8sObject[], theirs: K8sObject[]): string[] {
  const out: string[] = [];
  const key = (o: K8sObject) => `${o.apiVersion} ${objectId(o)}`;
  for (const t of theirs) {
    const m = mine.find((x) => key(x) === key(t));
    if (!m) out.push(`only kubectl renders ${key(t)}`);
    else if (!isDeepStrictEqual(m, t)) out.push(`${key(t)} differs:\n  ours:    ${JSON.stringify(m)}\n  kubectl: ${JSON.stringify(t)}`);
  }
  for (const m of mine) if (!theirs.some((t) => key(t) === key(m))) out.push(`only this renderer renders ${key(m)}`);
  if (!out.length && mine.map(key).join() !== theirs.map(key).join()) out.push(`same objects in another order:\n  ours:    ${mine.map(key).join(', ')}\n  kubectl: ${theirs.map(key).join(', ')}`);
  return out;
}

/** The kubectl client version line, for reports. */
export function kubectlVersion(): string | undefined {
  if (!KUBECTL) return undefined;
  const probe = spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8', timeout: 30_000 });
  return probe.status === 0 && !probe.error ? probe.stdout.trim().replace(/\n/g, '; ') : undefined;
}
