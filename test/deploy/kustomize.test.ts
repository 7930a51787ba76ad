/**
 * The small kustomize renderer (scripts/deploy/kustomize.ts): its transformers on fixtures, its
 * refusals, and, where `kubectl kustomize` exists, identical output to the real kustomize for
 * the fixtures and for both overlays in deploy/k8s.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compareRenders, kubectlKustomize, kubectlVersion } from '../../scripts/deploy/kubectl.js';
import { KustomizeError, renderKustomization, splitImage, strategicMerge, type K8sObject } from '../../scripts/deploy/kustomize.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HAS_KUBECTL = kubectlVersion() !== undefined;
const work = mkdtempSync(path.join(tmpdir(), 'memometer-kustomize-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Writes files (path -> text) under a fresh folder and returns it. */
function fixture(name: string, files: Record<string, string>): string {
  const dir = path.join(work, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

const BASE_DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector: {pool: gpu}
      tolerations:
        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
      containers:
        - name: web
          image: registry.local:5000/team/web:1.0
          env:
            - {name: A, value: "1"}
            - {name: B, value: "2"}
          ports:
            - {name: http, containerPort: 8080}
          resources:
            limits: {memory: 1Gi, nvidia.com/gpu: 1}
        - name: sidecar
          image: busybox:1.36
      volumes:
        - name: tmp
          emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: http}
`;

/** A base plus an overlay using every supported feature. */
function fullFixture(): string {
  fixture('full', {
    'base/kustomization.yaml': `resources: [app.yaml]
labels:
  - pairs: {team: ml}
    includeTemplates: true
`,
    'base/app.yaml': BASE_DEPLOYMENT,
    'overlay/kustomization.yaml': `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod
resources: [../base, extra.yaml]
images:
  - {name: registry.local:5000/team/web, newName: example.com/web, newTag: "2.0"}
  - {name: busybox, digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
patches:
  - path: patch.yaml
  - target: {kind: Service, name: web}
    patch: |-
      apiVersion: v1
      kind: Service
      metadata: {name: web}
      spec:
        ports:
          - {name: http, port: 80, targetPort: 9090}
labels:
  - pairs: {env: prod}
`,
    'overlay/extra.yaml': `apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - {name: once, image: busybox:1.36}
`,
    'overlay/patch.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      nodeSelector: null
      tolerations:
        - {key: other, operator: Exists}
      containers:
        - name: web
          env:
            - {name: B, value: "20"}
            - {name: C, value: "3"}
            - {name: A, $patch: delete}
          resources:
            limits: {nvidia.com/gpu: null, cpu: "1"}
        - name: added
          image: busybox:1.36
      volumes:
        - name: data
          emptyDir: {}
`,
  });
  return path.join(work, 'full/overlay');
}

const byKind = (objects: K8sObject[], kind: string) => objects.find((o) => o.kind === kind)! as Record<string, any>;

describe('renderKustomization', () => {
  it('applies resources, patches, namespace, labels and images like kustomize', () => {
    const objects = renderKustomization(fullFixture());
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'Service/prod/web',
      'Deployment/prod/web',
      'Job/prod/once',
    ]);
    const d = byKind(objects, 'Deployment');
    expect(d.metadata.labels).toEqual({ app: 'web', team: 'ml', env: 'prod' });
    // includeTemplates on the base's labels only; the overlay's labels stay off templates.
    expect(d.spec.template.metadata.labels).toEqual({ app: 'web', team: 'ml' });
    expect(d.spec.selector.matchLabels).toEqual({ app: 'web' });
    const spec = d.spec.template.spec;
    expect(spec.nodeSelector).toBeUndefined();
    expect(spec.tolerations).toEqual([{ key: 'other', operator: 'Exists' }]); // no merge key: replaced
    // kustomize's order: the patch's items in patch order, then the target's other items.
    expect(spec.containers.map((c: { name: string }) => c.name)).toEqual(['web', 'added', 'sidecar']);
    expect(spec.containers[0].env).toEqual([
      { name: 'B', value: '20' },
      { name: 'C', value: '3' },
    ]);
    expect(spec.containers[0].resources.limits).toEqual({ memory: '1Gi', cpu: '1' });
    expect(spec.containers[0].ports).toEqual([{ name: 'http', containerPort: 8080 }]);
    expect(spec.containers[0].image).toBe('example.com/web:2.0');
    expect(spec.containers[1].image).toBe('busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
    expect(spec.volumes.map((v: { name: string }) => v.name)).toEqual(['data', 'tmp']);
    expect(byKind(objects, 'Service').spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 9090 }]);
    expect(byKind(objects, 'Job').spec.template.spec.containers[0].image).toMatch(/^busybox@sha256:/);
  });

  it('refuses what it does not implement, naming the field', () => {
    const cases: Record<string, string> = {
      commonLabels: 'resources: [a.yaml]\ncommonLabels: {a: b}\n',
      configMapGenerator: 'resources: [a.yaml]\nconfigMapGenerator: [{name: x, literals: [a=b]}]\n',
      includeSelectors: 'resources: [a.yaml]\nlabels: [{pairs: {a: b}, includeSelectors: true}]\n',
      json6902: 'resources: [a.yaml]\npatches: [{path: p.yaml, target: {kind: ConfigMap, name: a}}]\n',
      setElementOrder: 'resources: [a.yaml]\npatches: [{path: q.yaml}]\n',
      remote: 'resources: [https://github.com/x/y]\n',
    };
    const files = {
      'a.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n',
      'p.yaml': '- {op: add, path: /data/x, value: y}\n',
      'q.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n$setElementOrder/data: []\n',
    };
    for (const [name, kustomization] of Object.entries(cases)) {
      const dir = fixture(`refuse-${name}`, { ...files, 'kustomization.yaml': kustomization });
      expect(() => renderKustomization(dir), name).toThrow(KustomizeError);
    }
  });

  it('fails on a patch that matches nothing and on duplicate resources', () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n';
    const noMatch = fixture('no-match', {
      'kustomization.yaml': 'resources: [a.yaml]\npatches: [{path: p.yaml}]\n',
      'a.yaml': cm,
      'p.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {x: y}\n',
    });
    expect(() => renderKustomization(noMatch)).toThrow(/matches no resource/);
    const dup = fixture('dup', { 'kustomization.yaml': 'resources: [a.yaml, b.yaml]\n', 'a.yaml': cm, 'b.yaml': cm });
    expect(() => renderKustomization(dup)).toThrow(/two resources/);
  });

  it('orders merged lists as kustomize does: patch items first, then the rest of the target', () => {
    const list = (...names: string[]) => names.map((name) => ({ name }));
    const merge = (target: string[], patch: string[]) =>
      (strategicMerge({ spec: { volumes: list(...target) } }, { spec: { volumes: list(...patch) } }, 'Pod') as any).spec.volumes.map((v: { name: string }) => v.name);
    // Each case was checked against kubectl kustomize v5.5 (and is again below where kubectl exists).
    expect(merge(['a', 'b', 'c'], ['c'])).toEqual(['c', 'a', 'b']);
    expect(merge(['a', 'b'], ['b', 'n'])).toEqual(['b', 'n', 'a']);
    expect(merge(['a', 'b'], ['n', 'a'])).toEqual(['n', 'a', 'b']);
    expect(merge(['a', 'b', 'c', 'd'], ['d', 'b'])).toEqual(['d', 'b', 'a', 'c']);
  });

  it('merges Service ports by port and container ports by containerPort', () => {
    const svc = { spec: { ports: [{ name: 'a', port: 80 }, { name: 'b', port: 81 }] } };
    expect(strategicMerge(svc, { spec: { ports: [{ port: 81, targetPort: 9 }] } }, 'Service')).toEqual({
      spec: { ports: [{ name: 'b', port: 81, targetPort: 9 }, { name: 'a', port: 80 }] },
    });
  });

  it('splits image references', () => {
    expect(splitImage('registry.local:5000/a/b:1.2@sha256:ab')).toEqual({ name: 'registry.local:5000/a/b', tag: '1.2', digest: 'sha256:ab' });
    expect(splitImage('registry.local:5000/a/b')).toEqual({ name: 'registry.local:5000/a/b' });
    expect(splitImage('memometer')).toEqual({ name: 'memometer' });
  });
});

describe.runIf(HAS_KUBECTL)(`same output as kubectl kustomize (${kubectlVersion() ?? 'no kubectl'})`, () => {
  it('on the fixture that uses every supported feature', () => {
    const dir = fullFixture();
    expect(compareRenders(renderKustomization(dir), kubectlKustomize(dir)!)).toEqual([]);
  });

  it.each([
    [['a', 'b', 'c'], ['c']],
    [['a', 'b'], ['b', 'n']],
    [['a', 'b'], ['n', 'a']],
    [['a', 'b', 'c', 'd'], ['d', 'b']],
  ])('on a volumes list %j patched with %j', (target, patch) => {
    const vols = (names: string[]) => names.map((n) => `        - {name: ${n}, emptyDir: {}}`).join('\n');
    const dir = fixture(`order-${target.join('')}-${patch.join('')}`, {
      'kustomization.yaml': 'resources: [d.yaml]\npatches: [{path: p.yaml}]\n',
      'd.yaml': `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: x:1}]\n      volumes:\n${vols(target)}\n`,
      'p.yaml': `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      volumes:\n${vols(patch)}\n`,
    });
    expect(compareRenders(renderKustomization(dir), kubectlKustomize(dir)!)).toEqual([]);
  });

  it.each(['gpu', 'dev'])('on deploy/k8s/overlays/%s', (overlay) => {
    const dir = path.join(ROOT, 'deploy/k8s/overlays', overlay);
    expect(compareRenders(renderKustomization(dir), kubectlKustomize(dir)!)).toEqual([]);
  });
});
