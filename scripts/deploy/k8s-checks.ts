/**
 * Checks on rendered Kubernetes manifests (deploy/k8s overlays): schemas, field names, labels,
 * and what the memometer server needs from its Deployment: the gRPC health probes on its port
 * and health service name, every environment variable it reads, a termination grace period
 * longer than its drain, a hardened security context, a writable /tmp, GPU settings that match
 * the backend, and the Service, PDB, HPA and NetworkPolicy around it.
 *
 * Everything that concerns the server is taken from the server's own code (SERVICE_NAME,
 * SERVER_ENV, SERVER_DEFAULTS, loadServerConfig, s3ConfigFromEnv, BACKEND_ENV), so that a change
 * there that the manifests do not follow fails `npm run check:deploy` and `npm test`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BACKEND_ENV, parseBackendRequest } from '../../src/metric/backend/select.js';
import { loadServerConfig, SERVER_DEFAULTS, SERVER_ENV, type ServerConfig } from '../../src/server/config.js';
import { SERVICE_NAME } from '../../src/server/server.js';
import { parseS3Uri, s3ConfigFromEnv, type S3Config } from '../../src/storage/s3-config.js';
import { checkFieldNames, modelClass } from './field-names.js';
import { arr, isObject, obj, objectId, str, text, type Json, type JsonObject, type K8sObject } from './kustomize.js';

export interface Finding {
  check: string;
  object: string;
  path?: string;
  message: string;
}

/**
 * The recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/)
 * that every object and pod template must carry. app.kubernetes.io/version is left out on
 * purpose: it would have to change with every image tag.
 */
export const REQUIRED_LABELS = [
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  'app.kubernetes.io/component',
  'app.kubernetes.io/part-of',
  'app.kubernetes.io/managed-by',
] as const;
export const FIXED_LABELS: Record<string, string> = {
  'app.kubernetes.io/part-of': 'memometer',
  'app.kubernetes.io/managed-by': 'kustomize',
};

/** How the server's Deployment is found: these labels on its pod template. */
export const SERVER_SELECTOR = { 'app.kubernetes.io/name': 'memometer', 'app.kubernetes.io/component': 'server' };
export const SERVER_CONTAINER = 'memometer';
export const CREDENTIALS_SECRET = 'memometer-credentials';

/**
 * terminationGracePeriodSeconds must exceed MEMOMETER_SHUTDOWN_GRACE_SECONDS by this much: after
 * the grace period the server cancels what still runs, waits for the cancelled measurements to
 * write their state (to S3), gives open calls up to 2 s (server.ts), then flushes traces.
 */
export const SHUTDOWN_MARGIN_SECONDS = 15;

/**
 * Variables the server reads that the Deployment must set: their defaults are wrong in a cluster.
 * (OTEL_EXPORTER_OTLP_ENDPOINT is required separately, only while tracing is on.)
 */
export const REQUIRED_ENV: Record<string, string> = {
  MEMOMETER_STATE_URI: 'the default is a folder inside the pod: replicas would not share measurement records',
  MEMOMETER_API_TOKEN: 'unset, every caller that reaches the port may run measurements',
  MEMOMETER_BACKEND: "'auto' falls back to wasm/cpu without a word when the GPU binding fails",
  AWS_ACCESS_KEY_ID: 'unset (with its partner), S3 is accessed anonymously',
  AWS_SECRET_ACCESS_KEY: 'unset (with its partner), S3 is accessed anonymously',
};

/** What each variable the server reads means when the Deployment leaves it unset. */
export function unsetMeaning(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, name] of Object.entries(SERVER_ENV)) {
    if (key in SERVER_DEFAULTS) {
      const value = SERVER_DEFAULTS[key as keyof typeof SERVER_DEFAULTS];
      out[name] = `default ${Array.isArray(value) ? `[${value.join(',')}] (any bucket)` : String(value)} (SERVER_DEFAULTS.${key})`;
    }
  }
  Object.assign(out, {
    [SERVER_ENV.dataRoot]: 'requests may not name local paths (inputs come from S3)',
    [BACKEND_ENV]: "default 'auto' (the image sets it too)",
    AWS_SESSION_TOKEN: 'the long-lived keys from the Secret are used',
    XDG_STATE_HOME: 'read only when MEMOMETER_STATE_URI is unset (the default state folder); the overlays set that',
    AWS_REGION: 'default us-east-1 (DEFAULT_S3_REGION)',
    AWS_DEFAULT_REGION: 'read only when AWS_REGION is unset',
    S3_ENDPOINT: 'AWS S3 (s3.amazonaws.com, https), or AWS_ENDPOINT_URL',
    AWS_ENDPOINT_URL: 'read only when S3_ENDPOINT is unset; with neither, AWS S3',
    S3_USE_HTTPS: 'default 1 (https for an endpoint without a scheme)',
    S3_VERIFY_SSL: 'default 1 (verify TLS certificates)',
    OTEL_SDK_DISABLED: 'the server traces',
    OTEL_TRACES_EXPORTER: 'default otlp',
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'default http://localhost:4318 (nothing listens there in a pod)',
    OTEL_SERVICE_NAME: "default 'memometer' (DEFAULT_SERVICE_NAME)",
    OTEL_RESOURCE_ATTRIBUTES: 'no pod/namespace/node attributes on spans',
  });
  return out;
}

const ENV_PATTERNS = [
  /\b(?:process\.)?env\.([A-Z][A-Z0-9_]*)\b/g,
  /\benv\[\s*['"]([A-Z][A-Z0-9_]*)['"]\s*\]/g,
  /\benv(?:String|Flag)\(\s*env,\s*['"]([A-Z][A-Z0-9_]*)['"]/g,
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'gen' ? [] : sourceFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

/**
 * Every environment variable the server's code reads, with where it was found: SERVER_ENV,
 * BACKEND_ENV, and `env.NAME` / `env['NAME']` / `envString(env, 'NAME')` reads anywhere in src/
 * (generated code excepted).
 */
export function envReadByServer(root: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const [key, name] of Object.entries(SERVER_ENV)) found.set(name, `src/server/config.ts SERVER_ENV.${key}`);
  found.set(BACKEND_ENV, 'src/metric/backend/select.ts BACKEND_ENV');
  for (const file of sourceFiles(path.join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of ENV_PATTERNS) {
      for (const m of text.matchAll(pattern)) {
        if (!found.has(m[1]!)) found.set(m[1]!, path.relative(root, file));
      }
    }
  }
  return found;
}

// ---- small helpers -------------------------------------------------------------------------------

type Obj = JsonObject;
const num = (v: Json | undefined): number | undefined => (typeof v === 'number' ? v : undefined);
const labelsOf = (v: Json | undefined): Record<string, string> => obj(v) as Record<string, string>;

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}

/** Pod templates: [object, template path, template]. */
export function podTemplates(objects: K8sObject[]): { owner: K8sObject; at: string; template: Obj }[] {
  const out: { owner: K8sObject; at: string; template: Obj }[] = [];
  for (const o of objects) {
    if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind)) {
      out.push({ owner: o, at: 'spec.template', template: obj(obj(o.spec).template) });
    } else if (o.kind === 'CronJob') {
      out.push({ owner: o, at: 'spec.jobTemplate.spec.template', template: obj(obj(obj(obj(o.spec).jobTemplate).spec).template) });
    } else if (o.kind === 'Pod') {
      out.push({ owner: o, at: '', template: o });
    }
  }
  return out;
}

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function labelProblems(labels: Record<string, string>): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(labels)) {
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if (!LABEL_NAME.test(name) || (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)))) {
      out.push(`invalid label key '${key}'`);
    }
    if (typeof value !== 'string') out.push(`label ${key} must be a string, got ${JSON.stringify(value)}`);
    else if (value !== '' && !LABEL_NAME.test(value)) out.push(`invalid value '${value}' for label ${key}`);
  }
  return out;
}

// ---- schema ----------------------------------------------------------------------------------------

/** kubernetes-models validate(): types, formats, enums and required fields of every object. */
export async function checkSchemas(objects: K8sObject[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const o of objects) {
    const Model = await modelClass(o.apiVersion, o.kind);
    if (!Model) {
      findings.push({ check: 'schema', object: objectId(o), message: `unknown apiVersion/kind ${o.apiVersion} ${o.kind}` });
      continue;
    }
    try {
      new Model(structuredClone(o)).validate();
    } catch (error) {
      const errors = (error as { errors?: { instancePath: string; message?: string }[] }).errors;
      if (!errors) throw error;
      for (const e of errors) {
        findings.push({ check: 'schema', object: objectId(o), path: e.instancePath.replace(/^\//, '').replaceAll('/', '.'), message: e.message ?? 'invalid' });
      }
    }
  }
  return findings;
}

// ---- labels ----------------------------------------------------------------------------------------

export function checkLabels(objects: K8sObject[]): Finding[] {
  const findings: Finding[] = [];
  const add = (o: K8sObject, p: string, message: string) => findings.push({ check: 'labels', object: objectId(o), path: p, message });
  const requireLabels = (o: K8sObject, p: string, labels: Record<string, string>) => {
    for (const key of REQUIRED_LABELS) if (!labels[key]) add(o, p, `missing label ${key}`);
    for (const [key, value] of Object.entries(FIXED_LABELS)) {
      if (labels[key] && labels[key] !== value) add(o, p, `label ${key} is '${labels[key]}', expected '${value}'`);
    }
    for (const problem of labelProblems(labels)) add(o, p, problem);
  };
  for (const o of objects) requireLabels(o, 'metadata.labels', labelsOf(o.metadata.labels));
  const templates = podTemplates(objects);
  for (const { owner, at, template } of templates) {
    const labels = labelsOf(obj(template.metadata).labels);
    requireLabels(owner, `${at}.metadata.labels`, labels);
    if (owner.kind !== 'Job' && owner.kind !== 'Pod' && owner.kind !== 'CronJob') {
      const selector = labelsOf(obj(obj(owner.spec).selector).matchLabels);
      if (!Object.keys(selector).length) add(owner, 'spec.selector.matchLabels', 'empty selector');
      else if (!selects(selector, labels)) add(owner, 'spec.selector.matchLabels', 'does not match the pod template labels');
    }
  }
  const allPodLabels = templates.map((t) => labelsOf(obj(t.template.metadata).labels));
  const selectsSomething = (selector: Record<string, string>) => allPodLabels.some((labels) => selects(selector, labels));
  for (const o of objects) {
    if (o.kind === 'Service' && str(obj(o.spec).type) !== 'ExternalName') {
      const selector = labelsOf(obj(o.spec).selector);
      if (!selectsSomething(selector)) add(o, 'spec.selector', 'selects no pod template in this overlay');
    }
    if (o.kind === 'PodDisruptionBudget' && !selectsSomething(labelsOf(obj(obj(o.spec).selector).matchLabels))) {
      add(o, 'spec.selector.matchLabels', 'selects no pod template in this overlay');
    }
    if (o.kind === 'NetworkPolicy' && !selectsSomething(labelsOf(obj(obj(o.spec).podSelector).matchLabels))) {
      add(o, 'spec.podSelector.matchLabels', 'selects no pod template in this overlay');
    }
    if (o.kind === 'HorizontalPodAutoscaler') {
      const ref = obj(obj(o.spec).scaleTargetRef);
      if (!objects.some((t) => t.kind === ref.kind && t.metadata.name === ref.name)) {
        add(o, 'spec.scaleTargetRef', `targets ${text(ref.kind)}/${text(ref.name)}, which is not in this overlay`);
      }
    }
  }
  return findings;
}

// ---- pod security (every pod template) ------------------------------------------------------------------

export function checkPodSecurity(objects: K8sObject[]): Finding[] {
  const findings: Finding[] = [];
  for (const { owner, at, template } of podTemplates(objects)) {
    const add = (p: string, message: string) => findings.push({ check: 'security', object: objectId(owner), path: `${at}.spec${p ? `.${p}` : ''}`, message });
    const spec = obj(template.spec);
    const pod = obj(spec.securityContext);
    const sa = objects.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === str(spec.serviceAccountName));
    if (spec.automountServiceAccountToken !== false && !(spec.automountServiceAccountToken === undefined && sa?.automountServiceAccountToken === false)) {
      add('automountServiceAccountToken', 'must be false (the pods call no Kubernetes API)');
    }
    if (str(spec.serviceAccountName) && !sa) add('serviceAccountName', `ServiceAccount ${text(spec.serviceAccountName)} is not in this overlay`);
    if (spec.hostNetwork === true || spec.hostPID === true || spec.hostIPC === true) add('', 'must not use host namespaces');
    const containers = [...arr(spec.initContainers), ...arr(spec.containers)].map(obj);
    containers.forEach((c, i) => {
      const p = (field: string) => `${i < arr(spec.initContainers).length ? 'initContainers' : 'containers'}[${i < arr(spec.initContainers).length ? i : i - arr(spec.initContainers).length}]${field}`;
      const sc = obj(c.securityContext);
      const eff = (key: string) => (sc[key] !== undefined ? sc[key] : pod[key]);
      if (eff('runAsNonRoot') !== true) add(p('.securityContext.runAsNonRoot'), 'must be true (pod or container)');
      const uid = num(eff('runAsUser'));
      if (uid === undefined || uid <= 0) add(p('.securityContext.runAsUser'), 'must be a numeric non-root UID (pod or container)');
      if (sc.readOnlyRootFilesystem !== true) add(p('.securityContext.readOnlyRootFilesystem'), 'must be true');
      if (sc.allowPrivilegeEscalation !== false) add(p('.securityContext.allowPrivilegeEscalation'), 'must be false');
      if (sc.privileged === true) add(p('.securityContext.privileged'), 'must not be true');
      if (!arr(obj(sc.capabilities).drop).includes('ALL')) add(p('.securityContext.capabilities.drop'), "must drop ALL");
      if (arr(obj(sc.capabilities).add).length) add(p('.securityContext.capabilities.add'), 'must add no capability');
      if (str(obj(eff('seccompProfile')).type) !== 'RuntimeDefault') add(p('.securityContext.seccompProfile'), 'type must be RuntimeDefault (pod or container)');
      const image = str(c.image) ?? '';
      const tag = image.includes('@') ? 'digest' : /:[^/:]+$/.test(image) ? image.slice(image.lastIndexOf(':') + 1) : undefined;
      if (!tag) add(p('.image'), `'${image}' has no tag or digest (the overlay's images: entry should set one)`);
      else if (tag === 'latest') add(p('.image'), "must not be ':latest'");
      const resources = obj(c.resources);
      if (!str(obj(resources.requests).memory) || obj(resources.requests).cpu === undefined) add(p('.resources.requests'), 'must request cpu and memory');
      if (obj(resources.limits).memory === undefined) add(p('.resources.limits.memory'), 'must be set');
    });
  }
  return findings;
}

// ---- the memometer server --------------------------------------------------------------------------------

export interface ServerEnvReport {
  overlay?: string;
  /** Variable -> where its value comes from, for the report. */
  sources: Map<string, string>;
  env: Record<string, string>;
  config?: ServerConfig;
  s3?: S3Config;
  externalSecrets: string[];
}

interface ResolvedEnv {
  env: Record<string, string>;
  sources: Map<string, string>;
  externalSecrets: Set<string>;
}

/** The container's environment as the kubelet would build it (secrets as placeholders). */
function resolveEnv(container: Obj, objects: K8sObject[], add: (p: string, m: string) => void): ResolvedEnv {
  const env: Record<string, string> = {};
  const sources = new Map<string, string>();
  const externalSecrets = new Set<string>();
  const find = (kind: string, name: string | undefined) => objects.find((o) => o.kind === kind && o.metadata.name === name);
  const secretKeys = (secret: K8sObject) => [...Object.keys(obj(secret.data)), ...Object.keys(obj(secret.stringData))];
  arr(container.envFrom).map(obj).forEach((from, i) => {
    const cmName = str(obj(from.configMapRef).name);
    const secretName = str(obj(from.secretRef).name);
    if (cmName !== undefined) {
      const cm = find('ConfigMap', cmName);
      if (!cm) return add(`envFrom[${i}]`, `ConfigMap ${cmName} is not in this overlay`);
      for (const [k, v] of Object.entries(obj(cm.data))) {
        env[k] = text(v);
        sources.set(k, `ConfigMap ${cmName}`);
      }
    } else if (secretName !== undefined) {
      const secret = find('Secret', secretName);
      if (!secret) return add(`envFrom[${i}]`, `envFrom a Secret not in this overlay (${secretName}) hides which variables it sets; use env secretKeyRef`);
      for (const k of secretKeys(secret)) {
        env[k] = `secret-${k}`;
        sources.set(k, `Secret ${secretName}`);
      }
    }
  });
  const expand = (value: string) => value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
  arr(container.env).map(obj).forEach((e, i) => {
    const name = str(e.name) ?? '';
    const from = obj(e.valueFrom);
    if (e.value !== undefined) {
      env[name] = expand(text(e.value));
      sources.set(name, 'env value');
    } else if (from.secretKeyRef !== undefined) {
      const ref = obj(from.secretKeyRef);
      const secretName = str(ref.name) ?? '';
      const key = str(ref.key) ?? '';
      const secret = find('Secret', secretName);
      if (secret && !secretKeys(secret).includes(key)) add(`env[${i}].valueFrom.secretKeyRef`, `Secret ${secretName} has no key ${key}`);
      if (!secret) externalSecrets.add(`${secretName}/${key}`);
      if (ref.optional === true) add(`env[${i}].valueFrom.secretKeyRef.optional`, 'secrets the server needs must not be optional');
      env[name] = `secret-${key}`;
      sources.set(name, `Secret ${secretName} key ${key}${secret ? '' : ' (created outside the overlay)'}`);
    } else if (from.configMapKeyRef !== undefined) {
      const ref = obj(from.configMapKeyRef);
      const cm = find('ConfigMap', str(ref.name));
      const value = cm ? obj(cm.data)[str(ref.key) ?? ''] : undefined;
      if (value === undefined) add(`env[${i}].valueFrom.configMapKeyRef`, `ConfigMap ${text(ref.name)} key ${text(ref.key)} is not in this overlay`);
      env[name] = text(value);
      sources.set(name, `ConfigMap ${text(ref.name)} key ${text(ref.key)}`);
    } else if (from.fieldRef !== undefined || from.resourceFieldRef !== undefined) {
      env[name] = `<${str(obj(from.fieldRef).fieldPath) ?? str(obj(from.resourceFieldRef).resource) ?? name}>`;
      sources.set(name, 'pod field');
    }
  });
  return { env, sources, externalSecrets };
}

/** The TCP ports an egress policy set allows from the server pods; undefined = not restricted. */
function egressAllows(policies: K8sObject[], port: number): boolean | undefined {
  const egress = policies.filter((p) => arr(obj(p.spec).policyTypes).includes('Egress'));
  if (!egress.length) return undefined;
  return egress.some((p) =>
    arr(obj(p.spec).egress).map(obj).some((rule) => {
      const ports = arr(rule.ports).map(obj);
      return ports.length === 0 || ports.some((r) => (str(r.protocol) ?? 'TCP') === 'TCP' && (r.port === undefined || r.port === port || (num(r.port) !== undefined && num(r.endPort) !== undefined && port >= num(r.port)! && port <= num(r.endPort)!)));
    }),
  );
}

function portOf(url: string, fallback: number): number {
  try {
    const u = new URL(url);
    return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  } catch {
    return fallback;
  }
}

export function checkServer(objects: K8sObject[], root: string): { findings: Finding[]; report?: ServerEnvReport } {
  const findings: Finding[] = [];
  const servers = podTemplates(objects).filter((t) => selects(SERVER_SELECTOR, labelsOf(obj(t.template.metadata).labels)) && t.owner.kind === 'Deployment');
  if (servers.length !== 1) {
    findings.push({ check: 'server', object: '(overlay)', message: `expected one Deployment whose pods are labelled ${JSON.stringify(SERVER_SELECTOR)}, found ${servers.length}` });
    return { findings };
  }
  const { owner: deployment, template } = servers[0]!;
  const id = objectId(deployment);
  const add = (p: string, message: string, check = 'server') => findings.push({ check, object: id, path: p, message });
  const spec = obj(template.spec);
  const containers = arr(spec.containers).map(obj);
  const ci = containers.findIndex((c) => c.name === SERVER_CONTAINER);
  if (ci < 0) {
    add('spec.template.spec.containers', `no container named ${SERVER_CONTAINER}`);
    return { findings };
  }
  const container = containers[ci]!;
  const cp = (field: string) => `spec.template.spec.containers[${ci}]${field}`;

  // -- environment: every variable the server reads is set, or its default is fine -------------
  const { env, sources, externalSecrets } = resolveEnv(container, objects, (p, m) => add(cp(`.${p}`), m, 'env'));
  const read = envReadByServer(root);
  const meaning = unsetMeaning();
  for (const [name, where] of read) {
    if (env[name] !== undefined) continue;
    if (name in REQUIRED_ENV) add(cp('.env'), `${name} must be set: ${REQUIRED_ENV[name]}`, 'env');
    else if (!(name in meaning)) {
      add(cp('.env'), `${name} (read in ${where}) is neither set nor listed with its default in scripts/deploy/k8s-checks.ts unsetMeaning()`, 'env');
    }
  }
  for (const name of Object.keys(env)) {
    if (/^(MEMOMETER|S3)_/.test(name) && !read.has(name)) add(cp('.env'), `${name} is set (${sources.get(name)}) but the server never reads it (a typo?)`, 'env');
  }
  const tracing = env.OTEL_SDK_DISABLED?.trim().toLowerCase() !== 'true' && !(env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map((s) => s.trim()).every((s) => s === 'none' || s === 'console');
  if (tracing && !env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    add(cp('.env'), 'tracing is on but OTEL_EXPORTER_OTLP_ENDPOINT is unset (the default, localhost, has no collector in a pod)', 'env');
  }

  // The server's own parsers must accept the values.
  let config: ServerConfig | undefined;
  let s3: S3Config | undefined;
  try {
    config = loadServerConfig(env);
  } catch (error) {
    add(cp('.env'), `the server rejects its settings: ${(error as Error).message}`, 'env');
  }
  try {
    s3 = s3ConfigFromEnv(env);
  } catch (error) {
    add(cp('.env'), `the S3 settings are rejected: ${(error as Error).message}`, 'env');
  }
  let backend: string | undefined;
  try {
    backend = env[BACKEND_ENV] ? parseBackendRequest(env[BACKEND_ENV], BACKEND_ENV) : undefined;
  } catch (error) {
    add(cp('.env'), (error as Error).message, 'env');
  }
  if (config?.stateUri?.startsWith('s3://')) {
    try {
      parseS3Uri(config.stateUri, SERVER_ENV.stateUri);
    } catch (error) {
      add(cp('.env'), `${SERVER_ENV.stateUri}: ${(error as Error).message}`, 'env');
    }
  } else if (config?.stateUri !== undefined) {
    add(cp('.env'), `${SERVER_ENV.stateUri} must be an s3:// URI shared by every replica, got '${config.stateUri}'`, 'env');
  }
  const port = config?.port ?? SERVER_DEFAULTS.port;

  // -- port and probes ---------------------------------------------------------------------
  const ports = arr(container.ports).map(obj);
  const grpcPort = ports.find((p) => p.name === 'grpc');
  if (!grpcPort) add(cp('.ports'), "no container port named 'grpc'", 'probes');
  else if (grpcPort.containerPort !== port) add(cp('.ports'), `port grpc is ${text(grpcPort.containerPort)}, the server listens on ${port} (${SERVER_ENV.port})`, 'probes');
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const p = obj(container[probe]);
    if (!isObject(container[probe])) {
      add(cp(`.${probe}`), 'missing', 'probes');
      continue;
    }
    const grpc = obj(p.grpc);
    if (!isObject(p.grpc)) add(cp(`.${probe}`), 'must be a native gRPC probe (grpc: {port, service}) on the grpc.health.v1 service', 'probes');
    else {
      if (grpc.port !== port) add(cp(`.${probe}.grpc.port`), `is ${text(grpc.port)}, the server listens on ${port}`, 'probes');
      if (grpc.service !== SERVICE_NAME) add(cp(`.${probe}.grpc.service`), `is ${JSON.stringify(grpc.service ?? '')}, the server's health service is '${SERVICE_NAME}' (SERVICE_NAME in src/server/server.ts)`, 'probes');
    }
  }

  // -- shutdown ----------------------------------------------------------------------------
  const tgps = num(spec.terminationGracePeriodSeconds) ?? 30;
  const grace = config?.shutdownGraceSeconds ?? SERVER_DEFAULTS.shutdownGraceSeconds;
  if (tgps < grace + SHUTDOWN_MARGIN_SECONDS) {
    add('spec.template.spec.terminationGracePeriodSeconds', `is ${tgps}; it must be at least ${SERVER_ENV.shutdownGraceSeconds} (${grace}) + ${SHUTDOWN_MARGIN_SECONDS} s, or the kubelet kills measurements the server would still let finish`, 'shutdown');
  }

  // -- pod settings ------------------------------------------------------------------------------
  if (spec.enableServiceLinks !== false) add('spec.template.spec.enableServiceLinks', 'must be false: a Service named memometer would inject MEMOMETER_PORT=tcp://...', 'server');
  const tmpMount = arr(container.volumeMounts).map(obj).find((m) => m.mountPath === '/tmp');
  const tmpVolume = tmpMount && arr(spec.volumes).map(obj).find((v) => v.name === tmpMount.name);
  if (!tmpVolume || !isObject(tmpVolume.emptyDir)) add(cp('.volumeMounts'), '/tmp must be an emptyDir (the root filesystem is read-only; os.tmpdir() scratch and CUDA cache)', 'server');
  if (deployment.spec && obj(deployment.spec).replicas !== undefined && objects.some((o) => o.kind === 'HorizontalPodAutoscaler' && obj(obj(o.spec).scaleTargetRef).name === deployment.metadata.name)) {
    add('spec.replicas', 'is set while a HorizontalPodAutoscaler scales this Deployment (every apply would reset it)', 'server');
  }

  // -- GPU -----------------------------------------------------------------------------------------
  const limits = obj(obj(container.resources).limits);
  const gpus = Number(limits['nvidia.com/gpu'] ?? 0);
  if (backend === 'node-gpu') {
    if (!(gpus >= 1)) add(cp('.resources.limits'), `${BACKEND_ENV}=node-gpu needs nvidia.com/gpu in limits`, 'gpu');
    if (config && gpus >= 1 && config.maxConcurrent > gpus) add(cp('.env'), `${SERVER_ENV.maxConcurrent}=${config.maxConcurrent} measurements would share ${gpus} GPU(s)`, 'gpu');
    const tolerates = arr(spec.tolerations).map(obj).some((t) => t.key === 'nvidia.com/gpu' || (t.operator === 'Exists' && t.key === undefined));
    if (!tolerates) add('spec.template.spec.tolerations', 'GPU pods need a toleration for the GPU pool taint nvidia.com/gpu', 'gpu');
  } else if (gpus > 0) {
    add(cp('.resources.limits'), `asks for ${gpus} GPU(s) but ${BACKEND_ENV} is '${backend ?? 'auto'}'`, 'gpu');
  }

  // -- Service, PDB, HPA, NetworkPolicy around it -----------------------------------------------
  const podLabels = labelsOf(obj(template.metadata).labels);
  const services = objects.filter((o) => o.kind === 'Service' && selects(labelsOf(obj(o.spec).selector), podLabels));
  if (!services.length) add('', 'no Service selects the server pods', 'service');
  for (const svc of services) {
    const s = obj(svc.spec);
    const sp = (m: string) => findings.push({ check: 'service', object: objectId(svc), path: 'spec', message: m });
    if (s.clusterIP !== 'None') sp("clusterIP must be None (headless): clients balance per call over the pods' addresses");
    const p = arr(s.ports).map(obj).find((x) => x.name === 'grpc');
    if (!p) sp("no port named 'grpc'");
    else if (p.port !== port || !(p.targetPort === 'grpc' || p.targetPort === port || p.targetPort === undefined)) sp(`port grpc must be ${port} -> grpc`);
  }
  if (!objects.some((o) => o.kind === 'PodDisruptionBudget' && selects(labelsOf(obj(obj(o.spec).selector).matchLabels), podLabels))) {
    add('', 'no PodDisruptionBudget covers the server pods', 'availability');
  }
  const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && obj(obj(o.spec).scaleTargetRef).name === deployment.metadata.name);
  if (!hpa) add('', 'no HorizontalPodAutoscaler scales the server', 'availability');
  else {
    const h = obj(hpa.spec);
    if (!(num(h.minReplicas) ?? 1) || (num(h.minReplicas) ?? 1) > (num(h.maxReplicas) ?? 0)) {
      findings.push({ check: 'availability', object: objectId(hpa), path: 'spec', message: 'minReplicas must be >= 1 and <= maxReplicas' });
    }
    const cpuMetric = arr(h.metrics).map(obj).some((m) => obj(m.resource).name === 'cpu');
    if (cpuMetric && obj(obj(container.resources).requests).cpu === undefined) add(cp('.resources.requests.cpu'), 'the HPA scales on CPU utilisation, which needs a CPU request', 'availability');
  }
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && selects(labelsOf(obj(obj(o.spec).podSelector).matchLabels), podLabels));
  const ingressOk = policies.some((p) =>
    arr(obj(p.spec).ingress).map(obj).some((rule) => arr(rule.ports).map(obj).some((r) => r.port === port || r.port === 'grpc')),
  );
  if (!ingressOk) add('', `no NetworkPolicy admits gRPC clients on port ${port}`, 'network');
  const needs: [number, string][] = [[53, 'DNS']];
  if (s3) needs.push([s3.port ?? (s3.useSSL ? 443 : 80), `S3 at ${s3.endPoint}`]);
  if (tracing) needs.push([portOf(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '', 4318), 'the OTLP collector']);
  for (const [p, what] of needs) {
    if (egressAllows(policies, p) === false) add('', `the NetworkPolicies allow no egress to TCP port ${p} (${what})`, 'network');
  }

  const report: ServerEnvReport = { sources, env, externalSecrets: [...externalSecrets] };
  if (config) report.config = config;
  if (s3) report.s3 = s3;
  return { findings, report };
}

/** Every namespaced object must have its namespace set (overlays set it). */
export function checkNamespaces(objects: K8sObject[]): Finding[] {
  return objects
    .filter((o) => !o.metadata.namespace)
    .map((o) => ({ check: 'namespace', object: objectId(o), message: 'no namespace (overlays set one)' }));
}

export interface OverlayResult {
  findings: Finding[];
  report?: ServerEnvReport;
}

/** All checks on one rendered overlay. `root` is the repository root. */
export async function checkOverlay(objects: K8sObject[], root: string): Promise<OverlayResult> {
  const fields = checkFieldNames(objects, root).map((f) => ({ check: 'fields', ...f }));
  const server = checkServer(objects, root);
  const findings = [
    ...(await checkSchemas(objects)),
    ...fields,
    ...checkNamespaces(objects),
    ...checkLabels(objects),
    ...checkPodSecurity(objects),
    ...server.findings,
  ];
  return server.report ? { findings, report: server.report } : { findings };
}

export function formatFinding(f: Finding): string {
  return `[${f.check}] ${f.object}${f.path ? ` ${f.path}` : ''}: ${f.message}`;
}
