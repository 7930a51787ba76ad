/**
 * The Kubernetes manifests in deploy/k8s: both overlays render and pass every check of
 * scripts/deploy/k8s-checks.ts (what `npm run check:deploy` runs), and deliberately broken
 * manifests are caught.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_ENV } from '../../src/metric/backend/select.js';
import { SERVER_ENV } from '../../src/server/config.js';
import { SERVICE_NAME } from '../../src/server/server.js';
import {
  checkOverlay,
  checkServer,
  envReadByServer,
  formatFinding,
  REQUIRED_ENV,
  SHUTDOWN_MARGIN_SECONDS,
  unsetMeaning,
  type Finding,
} from '../../scripts/deploy/k8s-checks.js';
import { asKedaHpas, checkScaledObjects } from '../../scripts/deploy/keda.js';
import { renderKustomization, type K8sObject } from '../../scripts/deploy/kustomize.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const OVERLAYS = path.join(ROOT, 'deploy/k8s/overlays');
/** An overlay as the cluster runs it: KEDA's HPA in place of the ScaledObject (test/deploy/keda.test.ts checks that). */
const render = (overlay: string) => asKedaHpas(renderKustomization(path.join(OVERLAYS, overlay)));

type Any = Record<string, any>;
const find = (objects: K8sObject[], kind: string, name = 'memometer') => objects.find((o) => o.kind === kind && o.metadata.name === name) as Any;
const server = (objects: K8sObject[]) => find(objects, 'Deployment').spec.template.spec.containers[0] as Any;
const configData = (objects: K8sObject[]) => find(objects, 'ConfigMap', 'memometer-config').data as Record<string, string>;
const summary = (findings: Finding[]) => findings.map(formatFinding).join('\n');

describe.each(['gpu', 'dev'])('overlay %s', (overlay) => {
  let objects: K8sObject[];
  beforeAll(() => {
    objects = render(overlay);
  });

  it('passes every check', async () => {
    const { findings } = await checkOverlay(objects, ROOT);
    expect(summary(findings)).toBe('');
    expect(summary(checkScaledObjects(renderKustomization(path.join(OVERLAYS, overlay)), ROOT))).toBe('');
  });

  it('probes the real health service on the gRPC port, behind a headless Service', () => {
    const c = server(objects);
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      expect(c[probe].grpc).toEqual({ port: 50051, service: SERVICE_NAME });
    }
    // and the Prometheus endpoint the ScaledObject's metrics come from (test/deploy/keda.test.ts).
    expect(c.ports).toEqual([{ name: 'grpc', containerPort: 50051, protocol: 'TCP' }, { name: 'metrics', containerPort: 9464, protocol: 'TCP' }]);
    const svc = find(objects, 'Service');
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.ports[0]).toMatchObject({ name: 'grpc', port: 50051, targetPort: 'grpc' });
  });

  it('gives the kubelet longer than the server drains', () => {
    const grace = Number(configData(objects)[SERVER_ENV.shutdownGraceSeconds]);
    expect(find(objects, 'Deployment').spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(grace + SHUTDOWN_MARGIN_SECONDS);
  });
});

describe('the overlays differ where they should', () => {
  it('gpu: node-gpu backend, one GPU, GPU pool scheduling, state in S3, two to eight replicas', () => {
    const objects = render('gpu');
    const data = configData(objects);
    expect(data[BACKEND_ENV]).toBe('node-gpu');
    expect(data[SERVER_ENV.stateUri]).toMatch(/^s3:\/\//);
    const spec = find(objects, 'Deployment').spec.template.spec;
    expect(spec.containers[0].resources.limits['nvidia.com/gpu']).toBe(1);
    expect(spec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(spec.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
    expect(spec.containers[0].image).toMatch(/:[\w.-]+-gpu$/);
    expect(find(objects, 'HorizontalPodAutoscaler').spec).toMatchObject({ minReplicas: 2, maxReplicas: 8 });
    // The credentials come from a Secret created outside the repository.
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
  });

  it('dev: wasm backend, no GPU, MinIO in the namespace, a dev-only Secret', () => {
    const objects = render('dev');
    const data = configData(objects);
    expect(data[BACKEND_ENV]).toBe('wasm');
    expect(data.S3_ENDPOINT).toBe('http://minio:9000');
    const spec = find(objects, 'Deployment').spec.template.spec;
    expect(spec.containers[0].resources.limits['nvidia.com/gpu']).toBeUndefined();
    expect(spec.nodeSelector).toBeUndefined();
    expect(spec.tolerations).toBeUndefined();
    expect(find(objects, 'Deployment', 'minio')).toBeDefined();
    expect(find(objects, 'Service', 'minio').spec.ports[0].port).toBe(9000);
    expect(find(objects, 'Job', 'minio-make-bucket').spec.template.spec.containers[0].args).toEqual(['mb', '--ignore-existing', 'local/memometer-dev']);
    expect(Object.keys(find(objects, 'Secret', 'memometer-credentials').stringData).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'MEMOMETER_API_TOKEN']);
  });
});

describe('the environment the server reads', () => {
  it('is found in the code: SERVER_ENV, the backend and the S3 and OTel variables', () => {
    const read = envReadByServer(ROOT);
    for (const name of [...Object.values(SERVER_ENV), BACKEND_ENV, 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'S3_ENDPOINT', 'S3_USE_HTTPS', 'S3_VERIFY_SSL', 'AWS_SESSION_TOKEN', 'OTEL_SERVICE_NAME']) {
      expect(read.has(name), name).toBe(true);
    }
  });

  it('is set in each overlay, or has a documented default', () => {
    const meaning = unsetMeaning();
    for (const overlay of ['gpu', 'dev']) {
      const { report } = checkServer(render(overlay), ROOT);
      for (const name of envReadByServer(ROOT).keys()) {
        expect(report!.env[name] !== undefined || (meaning[name] !== undefined && !(name in REQUIRED_ENV)), `${overlay}: ${name}`).toBe(true);
      }
    }
  });

  it('flags a variable the code starts reading that the manifests do not know', () => {
    const fake = mkdtempSync(path.join(tmpdir(), 'memometer-envscan-'));
    try {
      mkdirSync(path.join(fake, 'src'));
      writeFileSync(path.join(fake, 'src/new.ts'), "export const x = process.env.MEMOMETER_NEW_KNOB ?? 'a';\n");
      const { findings } = checkServer(render('gpu'), fake);
      expect(summary(findings)).toMatch(/MEMOMETER_NEW_KNOB \(read in src\/new\.ts\) is neither set nor listed/);
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }
  });
});

/** Renders the gpu overlay, lets `mutate` break it, and returns the findings. */
async function broken(mutate: (objects: K8sObject[]) => void): Promise<string> {
  const objects = render('gpu');
  mutate(objects);
  return summary((await checkOverlay(objects, ROOT)).findings);
}

describe('deliberately broken manifests are caught', () => {
  it('a misspelled field, at any depth (kubernetes-models alone would accept it)', async () => {
    const out = await broken((o) => {
      const c = server(o);
      c.readinesProbe = c.readinessProbe;
      delete c.readinessProbe;
      find(o, 'Service').spec.clusterIp = 'None';
    });
    expect(out).toMatch(/\[fields\] Deployment\/memometer\/memometer spec\.template\.spec\.containers\[0\]\.readinesProbe: .*'"readinesProbe"' does not exist/);
    expect(out).toMatch(/\[fields\] Service\/memometer\/memometer spec\.clusterIp: /);
    expect(out).toMatch(/\[probes\] .*readinessProbe: missing/);
  });

  it('a kind kubernetes-models has no model for: a misspelled kind, an API group it does not export', async () => {
    const out = await broken((o) => {
      find(o, 'PodDisruptionBudget').kind = 'PodDisruptionBudgett';
      find(o, 'Service').apiVersion = 'example.com/v1';
    });
    expect(out).toMatch(/\[schema\] PodDisruptionBudgett\/memometer\/memometer: unknown apiVersion\/kind policy\/v1 PodDisruptionBudgett/);
    expect(out).toMatch(/\[fields\] PodDisruptionBudgett\/memometer\/memometer kind: no Kubernetes model for policy\/v1 PodDisruptionBudgett/);
    expect(out).toMatch(/\[schema\] Service\/memometer\/memometer: unknown apiVersion\/kind example\.com\/v1 Service/);
  });

  it('a wrong type (schema)', async () => {
    const out = await broken((o) => {
      server(o).ports[0].containerPort = '50051';
    });
    expect(out).toMatch(/\[schema\] Deployment\/memometer\/memometer spec\.template\.spec\.containers\.0\.ports\.0\.containerPort: must be integer/);
  });

  it('a missing label', async () => {
    const out = await broken((o) => {
      delete find(o, 'Service').metadata.labels['app.kubernetes.io/component'];
      delete find(o, 'Deployment').spec.template.metadata.labels['app.kubernetes.io/part-of'];
    });
    expect(out).toMatch(/\[labels\] Service\/memometer\/memometer metadata\.labels: missing label app\.kubernetes\.io\/component/);
    expect(out).toMatch(/\[labels\] Deployment\/memometer\/memometer spec\.template\.metadata\.labels: missing label app\.kubernetes\.io\/part-of/);
  });

  it('a probe on the wrong health service or port, or not a gRPC probe', async () => {
    const out = await broken((o) => {
      const c = server(o);
      c.readinessProbe.grpc.service = 'memometer.v1.Memorization';
      c.livenessProbe.grpc.port = 8080;
      c.startupProbe = { tcpSocket: { port: 50051 } };
    });
    expect(out).toMatch(/readinessProbe\.grpc\.service: is "memometer\.v1\.Memorization", the server's health service is 'memometer\.v1\.MemorizationService'/);
    expect(out).toMatch(/livenessProbe\.grpc\.port: is 8080, the server listens on 50051/);
    expect(out).toMatch(/startupProbe: must be a native gRPC probe/);
  });

  it('a grace period the server would outlast', async () => {
    const out = await broken((o) => {
      find(o, 'Deployment').spec.template.spec.terminationGracePeriodSeconds = 300;
    });
    expect(out).toMatch(/\[shutdown\] .*terminationGracePeriodSeconds: is 300; it must be at least MEMOMETER_SHUTDOWN_GRACE_SECONDS \(300\) \+ 15 s/);
  });

  it('missing, misspelled and invalid settings', async () => {
    const out = await broken((o) => {
      const data = configData(o);
      delete data[SERVER_ENV.stateUri];
      data.MEMOMETER_MAX_CONCURENT = '2';
      data[SERVER_ENV.maxQueued] = 'eight';
      data.S3_ENDPOINT = 'https://s3.example.com/bucket';
    });
    expect(out).toMatch(/MEMOMETER_STATE_URI must be set/);
    expect(out).toMatch(/MEMOMETER_MAX_CONCURENT is set \(ConfigMap memometer-config\) but the server never reads it/);
    expect(out).toMatch(/the server rejects its settings: MEMOMETER_MAX_QUEUED: must be an integer/);
    expect(out).toMatch(/the S3 settings are rejected: S3_ENDPOINT: the endpoint must be host\[:port\] without a path/);
  });

  it('a secret reference to a key the dev Secret lacks', async () => {
    const objects = render('dev');
    delete find(objects, 'Secret', 'memometer-credentials').stringData.MEMOMETER_API_TOKEN;
    expect(summary((await checkOverlay(objects, ROOT)).findings)).toMatch(/Secret memometer-credentials has no key MEMOMETER_API_TOKEN/);
  });

  it('GPU settings that do not match the backend', async () => {
    const noGpu = await broken((o) => {
      delete server(o).resources.limits['nvidia.com/gpu'];
      configData(o)[SERVER_ENV.maxConcurrent] = '1';
    });
    expect(noGpu).toMatch(/\[gpu\] .*MEMOMETER_BACKEND=node-gpu needs nvidia\.com\/gpu in limits/);
    const wasted = await broken((o) => {
      configData(o)[BACKEND_ENV] = 'wasm';
    });
    expect(wasted).toMatch(/asks for 1 GPU\(s\) but MEMOMETER_BACKEND is 'wasm'/);
    const shared = await broken((o) => {
      configData(o)[SERVER_ENV.maxConcurrent] = '2';
    });
    expect(shared).toMatch(/MEMOMETER_MAX_CONCURRENT=2 measurements would share 1 GPU/);
  });

  it('a weakened security context, service links, no /tmp emptyDir', async () => {
    const out = await broken((o) => {
      const c = server(o);
      c.securityContext.readOnlyRootFilesystem = false;
      c.securityContext.capabilities = { drop: ['NET_RAW'] };
      const spec = find(o, 'Deployment').spec.template.spec;
      delete spec.securityContext.runAsNonRoot;
      delete c.securityContext.runAsNonRoot;
      spec.enableServiceLinks = true;
      c.volumeMounts = [];
    });
    expect(out).toMatch(/readOnlyRootFilesystem: must be true/);
    expect(out).toMatch(/capabilities\.drop: must drop ALL/);
    expect(out).toMatch(/runAsNonRoot: must be true/);
    expect(out).toMatch(/enableServiceLinks: must be false/);
    expect(out).toMatch(/\/tmp must be an emptyDir/);
  });

  it('a ClusterIP Service, replicas next to an HPA, a NetworkPolicy without S3 egress', async () => {
    const out = await broken((o) => {
      delete find(o, 'Service').spec.clusterIP;
      find(o, 'Deployment').spec.replicas = 3;
      const np = find(o, 'NetworkPolicy');
      np.spec.egress = np.spec.egress.filter((r: Any) => !r.ports?.some((p: Any) => p.port === 443));
    });
    expect(out).toMatch(/clusterIP must be None \(headless\)/);
    expect(out).toMatch(/spec\.replicas: is set while a HorizontalPodAutoscaler scales this Deployment/);
    expect(out).toMatch(/no egress to TCP port 443 \(S3 at s3\.amazonaws\.com\)/);
  });
});

describe('a broken overlay on disk', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'memometer-broken-overlay-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is rendered and rejected: misspelled field, missing label, wrong probe service', async () => {
    writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      `resources: [${JSON.stringify(path.join(ROOT, 'deploy/k8s/overlays/gpu'))}]\npatches: [{path: deployment.yaml}, {path: service.yaml}]\n`,
    );
    writeFileSync(
      path.join(dir, 'deployment.yaml'),
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: memometer}
spec:
  template:
    spec:
      containers:
        - name: memometer
          imagePullPolicyy: Always
          readinessProbe:
            grpc: {port: 50051, service: grpc.health.v1.Health}
`,
    );
    writeFileSync(
      path.join(dir, 'service.yaml'),
      `apiVersion: v1
kind: Service
metadata:
  name: memometer
  labels: {app.kubernetes.io/instance: null}
`,
    );
    const out = summary((await checkOverlay(renderKustomization(dir), ROOT)).findings);
    expect(out).toMatch(/\[fields\] Deployment\/memometer\/memometer spec\.template\.spec\.containers\[0\]\.imagePullPolicyy/);
    expect(out).toMatch(/\[labels\] Service\/memometer\/memometer metadata\.labels: missing label app\.kubernetes\.io\/instance/);
    expect(out).toMatch(/\[probes\] .*readinessProbe\.grpc\.service: is "grpc\.health\.v1\.Health"/);
  });
});
