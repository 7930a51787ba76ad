/**
 * KEDA ScaledObjects in the rendered overlays. kubernetes-models knows no CRDs, so:
 * - checkScaledObjects() validates each ScaledObject against deploy/k8s/schemas/keda-scaledobject.schema.json
 *   (KEDA's CRD openAPIV3Schema, cut down to the fields used) with a small walker of type,
 *   format int32, required, properties, additionalProperties, items, enum and $ref; a field the
 *   schema does not list is reported (Kubernetes would prune it without a word). It also checks
 *   what the autoscaling needs: the target is in the overlay, min <= max, a Prometheus trigger
 *   on the server's queue-depth metric, and the server pods expose the port Prometheus scrapes.
 * - asKedaHpas() replaces each ScaledObject with the HorizontalPodAutoscaler KEDA creates for it
 *   (its name, target, min/max replicas, behavior, one External metric per trigger), so that
 *   the checks of k8s-checks.ts on HPAs (target, min/max, no spec.replicas next to it, labels,
 *   namespace, the autoscaling/v2 schema) apply to what runs in the cluster.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Finding } from './k8s-checks.js';
import { arr, isObject, obj, objectId, text, type Json, type JsonObject, type K8sObject } from './kustomize.js';

export const SCALED_OBJECT_API = 'keda.sh/v1alpha1';
export const SCHEMA_PATH = 'deploy/k8s/schemas/keda-scaledobject.schema.json';
/** The metrics the trigger must scale on (Prometheus names of memometer.queue.depth and memometer.measurements.running). */
export const QUEUE_METRICS = ['memometer_queue_depth', 'memometer_measurements_running'];
export const METRICS_PORT_ENV = 'OTEL_EXPORTER_PROMETHEUS_PORT';
/** OTEL_EXPORTER_PROMETHEUS_PORT's default (@opentelemetry/exporter-prometheus). */
export const DEFAULT_METRICS_PORT = 9464;

export interface Schema {
  type?: string;
  format?: string;
  required?: string[];
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  enum?: Json[];
  $ref?: string;
  $defs?: Record<string, Schema>;
}

export function loadScaledObjectSchema(root: string): Schema {
  return JSON.parse(readFileSync(path.join(root, SCHEMA_PATH), 'utf8')) as Schema;
}

const INT32 = [-(2 ** 31), 2 ** 31 - 1];

const typeOf = (v: Json): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v;

/** Problems of `value` against `schema`, each as [path, message]. */
export function validateSchema(value: Json, schema: Schema, root: Schema = schema, at = ''): [string, string][] {
  if (schema.$ref) {
    const name = /^#\/\$defs\/(.+)$/.exec(schema.$ref)?.[1];
    const target = name ? root.$defs?.[name] : undefined;
    if (!target) return [[at, `schema error: unresolved $ref ${schema.$ref}`]];
    return validateSchema(value, target, root, at);
  }
  const out: [string, string][] = [];
  const actual = typeOf(value);
  if (schema.type && !(actual === schema.type || (schema.type === 'number' && actual === 'integer'))) {
    return [[at, `must be ${schema.type}, got ${actual} ${JSON.stringify(value)}`]];
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) out.push([at, `must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`]);
  if (schema.format === 'int32' && typeof value === 'number' && (value < INT32[0]! || value > INT32[1]!)) out.push([at, 'is out of the int32 range']);
  const child = (key: string | number) => (typeof key === 'number' ? `${at}[${key}]` : at ? `${at}.${key}` : key);
  if (isObject(value)) {
    for (const key of schema.required ?? []) if (!(key in value)) out.push([child(key), 'is required']);
    for (const [key, v] of Object.entries(value)) {
      const property = schema.properties?.[key];
      if (property) out.push(...validateSchema(v, property, root, child(key)));
      else if (isObject(schema.additionalProperties)) out.push(...validateSchema(v, schema.additionalProperties, root, child(key)));
      else if (schema.properties && schema.additionalProperties !== true) out.push([child(key), `unknown field (not in ${SCHEMA_PATH})`]);
    }
  }
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => out.push(...validateSchema(v, schema.items!, root, child(i))));
  return out;
}

export const isScaledObject = (o: K8sObject) => o.kind === 'ScaledObject' && o.apiVersion === SCALED_OBJECT_API;

/** Schema and autoscaling checks of every ScaledObject of a rendered overlay. */
export function checkScaledObjects(objects: K8sObject[], root: string, schema = loadScaledObjectSchema(root)): Finding[] {
  const findings: Finding[] = [];
  for (const o of objects.filter(isScaledObject)) {
    const id = objectId(o);
    const add = (p: string, message: string, check = 'schema') => findings.push({ check, object: id, ...(p ? { path: p } : {}), message });
    for (const [p, message] of validateSchema(o, schema)) add(p, message);
    const spec = obj(o.spec);
    const ref = obj(spec.scaleTargetRef);
    const kind = typeof ref.kind === 'string' ? ref.kind : 'Deployment';
    const target = objects.find((t) => t.kind === kind && t.metadata.name === ref.name);
    if (!target) add('spec.scaleTargetRef', `targets ${kind}/${text(ref.name)}, which is not in this overlay`, 'labels');
    const min = typeof spec.minReplicaCount === 'number' ? spec.minReplicaCount : 0;
    const max = typeof spec.maxReplicaCount === 'number' ? spec.maxReplicaCount : 100;
    if (min < 0 || min > max || max < 1) add('spec', `minReplicaCount (${min}) must be >= 0 and <= maxReplicaCount (${max}), and maxReplicaCount >= 1`, 'availability');
    const prometheus = arr(spec.triggers).map(obj).filter((t) => t.type === 'prometheus');
    const onQueue = prometheus.filter((t) => QUEUE_METRICS.every((m) => text(obj(t.metadata).query).includes(m)));
    if (!onQueue.length) add('spec.triggers', `no prometheus trigger whose query reads ${QUEUE_METRICS.join(' and ')}`, 'availability');
    for (const t of onQueue) {
      const meta = obj(t.metadata);
      if (!/^https?:\/\//.test(text(meta.serverAddress))) add('spec.triggers', 'the prometheus trigger needs serverAddress (http(s)://...)', 'availability');
      if (!(Number(meta.threshold) > 0)) add('spec.triggers', 'the prometheus trigger needs a threshold > 0 (measurements per pod)', 'availability');
    }
    if (target) findings.push(...checkMetricsPort(target, objects, id));
  }
  return findings;
}

/** The server container exposes the Prometheus port (a containerPort named metrics) and the pods say so in prometheus.io annotations. */
function checkMetricsPort(deployment: K8sObject, objects: K8sObject[], scaledObject: string): Finding[] {
  const findings: Finding[] = [];
  const add = (p: string, message: string) => findings.push({ check: 'metrics', object: objectId(deployment), path: p, message: `${message} (${scaledObject} scales on it)` });
  const template = obj(obj(deployment.spec).template);
  const containers = arr(obj(template.spec).containers).map(obj);
  const ci = containers.findIndex((c) => c.name === 'memometer');
  const container = containers[ci];
  if (!container) return findings;
  const env = new Map<string, string>();
  for (const from of arr(container.envFrom).map(obj)) {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === obj(from.configMapRef).name);
    for (const [k, v] of Object.entries(obj(cm?.data))) if (typeof v === 'string') env.set(k, v);
  }
  for (const e of arr(container.env).map(obj)) if (typeof e.name === 'string' && typeof e.value === 'string') env.set(e.name, e.value);
  const exporters = (env.get('OTEL_METRICS_EXPORTER') ?? 'otlp').split(',').map((s) => s.trim());
  const cp = `spec.template.spec.containers[${ci}]`;
  if (!exporters.includes('prometheus') || env.get('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') {
    add(`${cp}.env`, 'OTEL_METRICS_EXPORTER must include prometheus: the queue depth is scraped from the pods');
  }
  const port = Number(env.get(METRICS_PORT_ENV) ?? DEFAULT_METRICS_PORT);
  const declared = arr(container.ports).map(obj).find((p) => p.name === 'metrics');
  if (!declared || declared.containerPort !== port) add(`${cp}.ports`, `needs a port named metrics with containerPort ${port} (${METRICS_PORT_ENV})`);
  const annotations = obj(obj(template.metadata).annotations);
  if (annotations['prometheus.io/scrape'] !== 'true' || annotations['prometheus.io/port'] !== String(port)) {
    add('spec.template.metadata.annotations', `needs prometheus.io/scrape: "true" and prometheus.io/port: "${port}"`);
  }
  return findings;
}

/**
 * The objects with every ScaledObject replaced by the HorizontalPodAutoscaler KEDA creates and
 * owns for it (name: advanced.horizontalPodAutoscalerConfig.name, else keda-hpa-NAME; minReplicas
 * at least 1: KEDA itself scales between 0 and 1).
 */
export function asKedaHpas(objects: K8sObject[]): K8sObject[] {
  return objects.map((o) => {
    if (!isScaledObject(o)) return o;
    const spec = obj(o.spec);
    const ref = obj(spec.scaleTargetRef);
    const hpaConfig = obj(obj(spec.advanced).horizontalPodAutoscalerConfig);
    const behavior = hpaConfig.behavior;
    const hpaSpec: JsonObject = {
      scaleTargetRef: {
        apiVersion: typeof ref.apiVersion === 'string' ? ref.apiVersion : 'apps/v1',
        kind: typeof ref.kind === 'string' ? ref.kind : 'Deployment',
        name: typeof ref.name === 'string' ? ref.name : '',
      },
      minReplicas: Math.max(1, typeof spec.minReplicaCount === 'number' ? spec.minReplicaCount : 1),
      maxReplicas: typeof spec.maxReplicaCount === 'number' ? spec.maxReplicaCount : 100,
      metrics: arr(spec.triggers).map(obj).map((t, i): JsonObject => {
        const threshold = text(obj(t.metadata).threshold) || '1';
        return {
          type: 'External',
          external: {
            metric: { name: `s${i}-${text(t.type)}`, selector: { matchLabels: { scaledobject: o.metadata.name } } },
            target: t.metricType === 'Value' ? { type: 'Value', value: threshold } : { type: 'AverageValue', averageValue: threshold },
          },
        };
      }),
    };
    if (isObject(behavior)) hpaSpec.behavior = structuredClone(behavior);
    const hpa: K8sObject = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { ...structuredClone(o.metadata), name: typeof hpaConfig.name === 'string' ? hpaConfig.name : `keda-hpa-${o.metadata.name}` },
      spec: hpaSpec,
    };
    return hpa;
  });
}
