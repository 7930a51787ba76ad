/**
 * A small kustomize renderer for exactly the kustomization features deploy/k8s uses, so that the
 * manifests can be rendered and checked where no kustomize binary exists (CI machines, npm test).
 * It refuses, with an error naming the field, anything it does not implement, rather than
 * rendering it wrongly. Where `kubectl kustomize` is on PATH, test/deploy/kustomize.test.ts
 * compares this renderer's output with it, object by object.
 *
 * Supported kustomization.yaml fields (kustomize v5 semantics):
 * - apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization
 * - resources: YAML files (several documents allowed) and folders holding a kustomization.yaml
 * - namespace: set on every namespaced object
 * - labels: [{pairs, includeTemplates}] (includeSelectors must be false or absent: selectors are
 *   written out in the manifests, so a label added later can never change an immutable selector)
 * - images: [{name, newName, newTag, digest}] on every containers[]/initContainers[] image
 * - patches: [{path | patch, target?: {kind, name}}], strategic-merge patches only (see
 *   strategicMerge below for the list merge keys it knows)
 * Transformers run in kustomize's order: patches, namespace, labels, images.
 * Output order: kustomize's default ("legacy") kind order, then namespace, then name.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface K8sObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: JsonObject & { name: string; namespace?: string; labels?: { [key: string]: string } };
}

export class KustomizeError extends Error {
  override name = 'KustomizeError';
}

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'labels', 'images', 'patches']);

/** Kinds that have no namespace (the ones a kustomization might plausibly hold). */
const CLUSTER_SCOPED = new Set([
  'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume',
  'StorageClass', 'PriorityClass', 'RuntimeClass', 'IngressClass', 'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration', 'APIService', 'Node',
]);

/** Where kustomize's `labels` with includeTemplates puts labels besides metadata.labels. */
const TEMPLATE_LABEL_PATHS: { kind: string; path: string[] }[] = [
  { kind: 'Deployment', path: ['spec', 'template', 'metadata', 'labels'] },
  { kind: 'ReplicaSet', path: ['spec', 'template', 'metadata', 'labels'] },
  { kind: 'DaemonSet', path: ['spec', 'template', 'metadata', 'labels'] },
  { kind: 'StatefulSet', path: ['spec', 'template', 'metadata', 'labels'] },
  { kind: 'ReplicationController', path: ['spec', 'template', 'metadata', 'labels'] },
  { kind: 'Job', path: ['spec', 'template', 'metadata', 'labels'] },
  { kind: 'CronJob', path: ['spec', 'jobTemplate', 'metadata', 'labels'] },
  { kind: 'CronJob', path: ['spec', 'jobTemplate', 'spec', 'template', 'metadata', 'labels'] },
];

/** kustomize's legacy output order (kinds not listed come after, ValidatingWebhookConfiguration last). */
const LEGACY_ORDER = [
  'Namespace', 'ResourceQuota', 'StorageClass', 'CustomResourceDefinition', 'ServiceAccount', 'PodSecurityPolicy',
  'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding', 'ConfigMap', 'Secret', 'Endpoints', 'Service',
  'LimitRange', 'PriorityClass', 'PersistentVolume', 'PersistentVolumeClaim', 'Deployment', 'StatefulSet',
  'CronJob', 'PodDisruptionBudget',
];
const LEGACY_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

// Reading parsed YAML without casts: a missing or mistyped field reads as empty, and checks report it.
export const obj = (v: Json | undefined): JsonObject => (isObject(v) ? v : {});
export const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
export const str = (v: Json | undefined): string | undefined => (typeof v === 'string' ? v : undefined);
/** A value as text for messages and env values: scalars as written, maps and lists as JSON, absent or null as ''. */
export const text = (v: Json | undefined): string => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** "Deployment/memometer" or "Deployment/ns/memometer": how objects are named in messages. */
export function objectId(o: { kind: string; metadata: { name: string; namespace?: string } }): string {
  return o.metadata.namespace ? `${o.kind}/${o.metadata.namespace}/${o.metadata.name}` : `${o.kind}/${o.metadata.name}`;
}

const idKey = (o: K8sObject) => `${o.apiVersion}|${objectId(o)}`;

/** Every YAML document in `text` (empty documents skipped), as plain JSON values. */
export function parseYamlDocuments(text: string, source: string): Json[] {
  const docs = parseAllDocuments(text, { prettyErrors: true });
  if (!Array.isArray(docs)) throw new KustomizeError(`${source}: not a YAML stream`);
  const out: Json[] = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new KustomizeError(`${source}: ${doc.errors[0]!.message}`);
    // YAML 1.2 core schema, as kustomize (kyaml) reads it: "on"/"yes" stay strings.
    const value = doc.toJS({ maxAliasCount: 0 }) as Json | undefined;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function asK8sObject(value: Json, source: string): K8sObject {
  if (!isObject(value)) throw new KustomizeError(`${source}: a resource must be a mapping`);
  const { apiVersion, kind, metadata } = value;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    throw new KustomizeError(`${source}: a resource needs apiVersion and kind`);
  }
  if (kind.endsWith('List')) throw new KustomizeError(`${source}: ${kind} is not supported; list the items as documents`);
  if (!isObject(metadata) || typeof metadata.name !== 'string' || metadata.name === '') {
    throw new KustomizeError(`${source}: ${kind} needs metadata.name`);
  }
  return value as K8sObject;
}

function kustomizationFile(dir: string): string {
  for (const name of KUSTOMIZATION_FILES) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  throw new KustomizeError(`${dir}: no kustomization.yaml`);
}

function readKustomization(dir: string): JsonObject {
  const file = kustomizationFile(dir);
  const [doc, ...more] = parseYamlDocuments(readFileSync(file, 'utf8'), file);
  if (!isObject(doc) || more.length) throw new KustomizeError(`${file}: must hold one mapping`);
  if (doc.apiVersion !== undefined && doc.apiVersion !== 'kustomize.config.k8s.io/v1beta1') {
    throw new KustomizeError(`${file}: apiVersion ${text(doc.apiVersion)} is not supported`);
  }
  if (doc.kind !== undefined && doc.kind !== 'Kustomization') throw new KustomizeError(`${file}: kind must be Kustomization`);
  for (const key of Object.keys(doc)) {
    if (!SUPPORTED_FIELDS.has(key)) {
      throw new KustomizeError(`${file}: '${key}' is not supported by this renderer (scripts/deploy/kustomize.ts); supported: ${[...SUPPORTED_FIELDS].join(', ')}`);
    }
  }
  return doc;
}

function stringList(value: Json | undefined, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new KustomizeError(`${what} must be a list of strings`);
  return value;
}

function list(value: Json | undefined, what: string): JsonObject[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every(isObject)) throw new KustomizeError(`${what} must be a list of mappings`);
  return value;
}

function only(entry: JsonObject, allowed: string[], what: string): void {
  for (const key of Object.keys(entry)) {
    if (!allowed.includes(key)) throw new KustomizeError(`${what}: '${key}' is not supported by this renderer; supported: ${allowed.join(', ')}`);
  }
}

const clone = <T extends Json>(v: T): T => structuredClone(v);

// ---- strategic merge ------------------------------------------------------------------------------

/**
 * The patchMergeKey of the Kubernetes list fields a patch may touch, by field name and (for
 * `ports`) the kind of its parent. Lists not known here are replaced by the patch's list, which
 * is what strategic merge does for lists without a patch strategy (tolerations, envFrom, args,
 * NetworkPolicy rules, HPA metrics...). Primitive lists with a merge strategy (finalizers) are
 * not supported.
 */
function mergeKeyOf(field: string, parentPath: string[], kind: string): string | undefined {
  const inContainer = /^(containers|initContainers|ephemeralContainers)\[\]$/.test(parentPath[parentPath.length - 1] ?? '');
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'imagePullSecrets':
    case 'volumes':
      return 'name';
    case 'env':
      return inContainer ? 'name' : undefined;
    case 'volumeMounts':
      return inContainer ? 'mountPath' : undefined;
    case 'volumeDevices':
      return inContainer ? 'devicePath' : undefined;
    case 'ports':
      if (inContainer) return 'containerPort';
      if (kind === 'Service' && parentPath.join('/') === 'spec') return 'port';
      return undefined;
    case 'topologySpreadConstraints':
      return 'topologyKey';
    default:
      return undefined;
  }
}

function checkDirectives(patch: JsonObject, where: string): void {
  for (const key of Object.keys(patch)) {
    if (key.startsWith('$') && !(key === '$patch' && patch[key] === 'delete')) {
      throw new KustomizeError(`${where}: the directive '${key}' is not supported by this renderer (only '$patch: delete' in list items)`);
    }
  }
}

/** Strategic merge of `patch` into `target` (both fresh copies); returns the result. */
export function strategicMerge(target: Json, patch: Json, kind: string, at: string[] = []): Json {
  if (!isObject(patch)) return clone(patch);
  checkDirectives(patch, at.join('/') || '(root)');
  if (patch.$patch === 'delete') throw new KustomizeError(`${at.join('/')}: '$patch: delete' is only supported in list items`);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete out[key];
      continue;
    }
    const mergeKey = Array.isArray(value) ? mergeKeyOf(key, at, kind) : undefined;
    if (Array.isArray(value) && mergeKey !== undefined && Array.isArray(out[key])) {
      out[key] = mergeList(out[key], value, mergeKey, kind, [...at, `${key}[]`]);
    } else if (Array.isArray(value)) {
      out[key] = value.map((item) => {
        if (isObject(item)) checkDirectives(item, `${[...at, key].join('/')}[]`);
        if (isObject(item) && item.$patch !== undefined) throw new KustomizeError(`${[...at, key].join('/')}: '$patch' needs a list with a merge key`);
        return clone(item);
      });
    } else if (isObject(value)) {
      out[key] = strategicMerge(out[key] ?? null, value, kind, [...at, key]);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/**
 * Merges a list with a merge key. The order is kustomize's (kyaml merge2, checked against
 * `kubectl kustomize` v5.5): the patch's items first, in patch order (each merged with the
 * target's item of the same key), then the items only the target has, in target order.
 */
function mergeList(target: Json[], patch: Json[], mergeKey: string, kind: string, at: string[]): Json[] {
  const keyOf = (item: Json) => (isObject(item) ? item[mergeKey] : undefined);
  const deleted = new Set<Json | undefined>();
  const patched: Json[] = [];
  for (const item of patch) {
    if (!isObject(item) || item[mergeKey] === undefined) {
      throw new KustomizeError(`${at.join('/')}: every item of a merged list needs its merge key '${mergeKey}'`);
    }
    checkDirectives(item, at.join('/'));
    if (item.$patch === 'delete') {
      deleted.add(item[mergeKey]);
      continue;
    }
    const original = target.find((t) => keyOf(t) === item[mergeKey]);
    patched.push(strategicMerge(original !== undefined ? clone(original) : null, item, kind, at));
  }
  const inPatch = new Set(patched.map(keyOf));
  const targetOnly = target.filter((t) => !inPatch.has(keyOf(t)) && !deleted.has(keyOf(t))).map((t) => clone(t));
  return [...patched, ...targetOnly];
}

// ---- transformers ----------------------------------------------------------------------------------

function applyPatches(objects: K8sObject[], kustomization: JsonObject, dir: string): void {
  for (const [i, entry] of list(kustomization.patches, 'patches').entries()) {
    const what = `${dir}: patches[${i}]`;
    only(entry, ['path', 'patch', 'target'], what);
    if ((entry.path === undefined) === (entry.patch === undefined)) throw new KustomizeError(`${what}: give exactly one of path and patch`);
    const patchText = typeof entry.path === 'string' ? readFileSync(path.join(dir, entry.path), 'utf8') : text(entry.patch);
    const source = typeof entry.path === 'string' ? path.join(dir, entry.path) : what;
    const docs = parseYamlDocuments(patchText, source);
    if (docs.length !== 1 || !isObject(docs[0])) throw new KustomizeError(`${source}: a patch must be one mapping`);
    const patch = docs[0];
    if (typeof patch.op === 'string' || Array.isArray(docs[0])) throw new KustomizeError(`${source}: JSON 6902 patches are not supported`);
    let targets: K8sObject[];
    if (entry.target !== undefined) {
      if (!isObject(entry.target)) throw new KustomizeError(`${what}: target must be a mapping`);
      only(entry.target, ['kind', 'name'], `${what}.target`);
      const { kind, name } = entry.target;
      targets = objects.filter((o) => (kind === undefined || o.kind === kind) && (name === undefined || o.metadata.name === name));
    } else {
      const meta = isObject(patch.metadata) ? patch.metadata : {};
      if (typeof patch.kind !== 'string' || typeof meta.name !== 'string') {
        throw new KustomizeError(`${source}: a patch without a target needs kind and metadata.name`);
      }
      targets = objects.filter(
        (o) =>
          o.kind === patch.kind &&
          o.metadata.name === meta.name &&
          (patch.apiVersion === undefined || o.apiVersion === patch.apiVersion) &&
          (meta.namespace === undefined || o.metadata.namespace === meta.namespace),
      );
    }
    if (targets.length === 0) throw new KustomizeError(`${source}: the patch matches no resource`);
    for (const target of targets) {
      const merged = strategicMerge(target, patch, target.kind) as K8sObject;
      for (const key of Object.keys(target)) delete target[key];
      Object.assign(target, merged);
    }
  }
}

function applyNamespace(objects: K8sObject[], namespace: Json | undefined, dir: string): void {
  if (namespace === undefined) return;
  if (typeof namespace !== 'string' || namespace === '') throw new KustomizeError(`${dir}: namespace must be a non-empty string`);
  for (const o of objects) {
    if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') {
      throw new KustomizeError(`${dir}: ${o.kind} subjects are not handled by this renderer's namespace transformer`);
    }
    if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = namespace;
  }
}

function setLabels(obj: JsonObject, at: string[], pairs: Record<string, string>): void {
  let node: JsonObject = obj;
  for (const key of at) {
    if (!isObject(node[key])) node[key] = {};
    node = node[key];
  }
  Object.assign(node, pairs);
}

function applyLabels(objects: K8sObject[], labels: Json | undefined, dir: string): void {
  for (const [i, entry] of list(labels, 'labels').entries()) {
    const what = `${dir}: labels[${i}]`;
    only(entry, ['pairs', 'includeSelectors', 'includeTemplates'], what);
    if (entry.includeSelectors === true) {
      throw new KustomizeError(`${what}: includeSelectors is not supported (selectors are written out in the manifests)`);
    }
    if (!isObject(entry.pairs) || !Object.values(entry.pairs).every((v) => typeof v === 'string')) {
      throw new KustomizeError(`${what}: pairs must map label keys to strings`);
    }
    const pairs = entry.pairs as Record<string, string>;
    for (const o of objects) {
      setLabels(o, ['metadata', 'labels'], pairs);
      if (entry.includeTemplates === true) {
        for (const spec of TEMPLATE_LABEL_PATHS) if (spec.kind === o.kind) setLabels(o, spec.path, pairs);
      }
    }
  }
}

/** Splits an image reference into name, tag and digest (a registry port is part of the name). */
export function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), ...(digest ? { digest } : {}) };
  }
  return { name: rest, ...(digest ? { digest } : {}) };
}

function applyImages(objects: K8sObject[], images: Json | undefined, dir: string): void {
  const entries = list(images, 'images');
  if (!entries.length) return;
  for (const [i, e] of entries.entries()) only(e, ['name', 'newName', 'newTag', 'digest'], `${dir}: images[${i}]`);
  const visit = (node: Json): void => {
    if (Array.isArray(node)) return node.forEach(visit);
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if ((key === 'containers' || key === 'initContainers') && Array.isArray(value)) {
        for (const container of value) {
          if (!isObject(container) || typeof container.image !== 'string') continue;
          const current = splitImage(container.image);
          const entry = entries.find((e) => e.name === current.name);
          if (!entry) continue;
          const name = typeof entry.newName === 'string' ? entry.newName : current.name;
          if (typeof entry.digest === 'string') container.image = `${name}@${entry.digest}`;
          else if (typeof entry.newTag === 'string') container.image = `${name}:${entry.newTag}`;
          else container.image = `${name}${current.tag ? `:${current.tag}` : ''}${current.digest ? `@${current.digest}` : ''}`;
        }
      }
      visit(value);
    }
  };
  objects.forEach(visit);
}

// ---- build -----------------------------------------------------------------------------------------

function loadResources(dir: string, kustomization: JsonObject, seen: Set<string>): K8sObject[] {
  const out: K8sObject[] = [];
  for (const ref of stringList(kustomization.resources, `${dir}: resources`)) {
    if (/^[a-z]+:\/\//i.test(ref) || ref.startsWith('github.com/')) throw new KustomizeError(`${dir}: remote resource '${ref}' is not supported`);
    const target = path.resolve(dir, ref);
    if (!existsSync(target)) throw new KustomizeError(`${dir}: resource '${ref}' does not exist`);
    if (statSync(target).isDirectory()) {
      out.push(...build(target, seen));
    } else {
      for (const doc of parseYamlDocuments(readFileSync(target, 'utf8'), target)) out.push(asK8sObject(doc, target));
    }
  }
  const ids = new Set<string>();
  for (const o of out) {
    const key = idKey(o);
    if (ids.has(key)) throw new KustomizeError(`${dir}: two resources are ${objectId(o)} (${o.apiVersion})`);
    ids.add(key);
  }
  return out;
}

function build(dir: string, seen: Set<string>): K8sObject[] {
  const real = path.resolve(dir);
  if (seen.has(real)) throw new KustomizeError(`${dir}: cycle in resources`);
  const inner = new Set(seen).add(real);
  const kustomization = readKustomization(real);
  const objects = loadResources(real, kustomization, inner);
  applyPatches(objects, kustomization, real);
  applyNamespace(objects, kustomization.namespace, real);
  applyLabels(objects, kustomization.labels, real);
  applyImages(objects, kustomization.images, real);
  return objects;
}

function orderIndex(kind: string): number {
  const first = LEGACY_ORDER.indexOf(kind);
  if (first >= 0) return first;
  const last = LEGACY_LAST.indexOf(kind);
  return last >= 0 ? 10_000 + last : 1_000;
}

/** kustomize's Gvk.String() (group_version_kind, ~G for the core group): how it orders kinds it does not list. */
function gvkString(o: K8sObject): string {
  const slash = o.apiVersion.indexOf('/');
  const [group, version] = slash >= 0 ? [o.apiVersion.slice(0, slash), o.apiVersion.slice(slash + 1)] : ['~G', o.apiVersion];
  return `${group}_${version}_${o.kind}`;
}

const byteOrder = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

/** Renders the kustomization in `dir` (what `kustomize build dir` prints), as objects. */
export function renderKustomization(dir: string): K8sObject[] {
  return build(dir, new Set()).sort(
    (a, b) =>
      orderIndex(a.kind) - orderIndex(b.kind) ||
      (orderIndex(a.kind) === 1_000 ? byteOrder(gvkString(a), gvkString(b)) : 0) ||
      (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}

/** The objects as one YAML stream. */
export function toYaml(objects: K8sObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}
