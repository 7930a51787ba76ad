/**
 * npm run check:deploy [-- --overlay NAME] [-- --print NAME] [-- --no-kubectl]
 *
 * Renders every overlay in deploy/k8s/overlays with scripts/deploy/kustomize.ts and checks it
 * (scripts/deploy/k8s-checks.ts: Kubernetes schemas, field names, labels, probes, environment,
 * grace period, security, GPU, Service/PDB/HPA/NetworkPolicy; KEDA ScaledObjects against
 * deploy/k8s/schemas with scripts/deploy/keda.ts, then as the HPA KEDA creates), checks the Dockerfile
 * (scripts/deploy/docker-checks.ts, dockerfilelint), and, where kubectl is on PATH, compares the
 * renderer's output with `kubectl kustomize`. Prints what the server's environment will be in
 * each overlay. Exits 1 when anything is wrong. `--print NAME` prints an overlay's YAML instead.
 * test/deploy/*.test.ts run the same checks under `npm test`.
 */
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkDockerfile, formatDockerFinding, lintDockerfile } from './deploy/docker-checks.js';
import { checkOverlay, envReadByServer, formatFinding, REQUIRED_ENV, unsetMeaning, type ServerEnvReport } from './deploy/k8s-checks.js';
import { asKedaHpas, checkScaledObjects } from './deploy/keda.js';
import { compareRenders, kubectlKustomize, kubectlVersion } from './deploy/kubectl.js';
import { renderKustomization, toYaml } from './deploy/kustomize.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OVERLAYS = path.join(ROOT, 'deploy/k8s/overlays');

function envTable(report: ServerEnvReport): string {
  const meaning = unsetMeaning();
  const rows = [...envReadByServer(ROOT).keys()].sort().map((name) => {
    const source = report.sources.get(name);
    const shown = name in REQUIRED_ENV && source?.startsWith('Secret') ? '(secret)' : report.env[name];
    return source ? `  ${name} = ${JSON.stringify(shown)}  [${source}]` : `  ${name} unset: ${meaning[name] ?? '?'}`;
  });
  return rows.join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { overlay: { type: 'string', multiple: true }, print: { type: 'string' }, 'no-kubectl': { type: 'boolean' } },
    strict: true,
  });
  if (values.print) {
    process.stdout.write(toYaml(renderKustomization(path.join(OVERLAYS, values.print))));
    return 0;
  }
  const overlays = values.overlay ?? readdirSync(OVERLAYS, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const kubectl = values['no-kubectl'] ? undefined : kubectlVersion();
  let problems = 0;
  for (const name of overlays) {
    const dir = path.join(OVERLAYS, name);
    const objects = renderKustomization(dir);
    // KEDA ScaledObjects: checked against the CRD schema, then as the HPA KEDA makes of them.
    const { findings, report } = await checkOverlay(asKedaHpas(objects), ROOT);
    const lines = [...checkScaledObjects(objects, ROOT), ...findings].map(formatFinding);
    if (kubectl) {
      const theirs = kubectlKustomize(dir);
      if (theirs) lines.push(...compareRenders(objects, theirs).map((d) => `[kubectl] ${d}`));
    }
    problems += lines.length;
    process.stdout.write(`overlay ${name}: ${objects.length} objects (${objects.map((o) => o.kind).join(', ')}): ${lines.length ? `${lines.length} problem(s)` : 'ok'}\n`);
    for (const line of lines) process.stdout.write(`  ${line}\n`);
    if (report) {
      process.stdout.write(`  server environment (every variable the server reads):\n${envTable(report).replace(/^/gm, '  ')}\n`);
      if (report.externalSecrets.length) process.stdout.write(`  secrets to create before applying: ${report.externalSecrets.join(', ')}\n`);
    }
  }
  process.stdout.write(kubectl ? `renderer compared with kubectl kustomize (${kubectl})\n` : 'kubectl not found (or --no-kubectl): renderer not compared with kustomize\n');
  const docker = [...checkDockerfile(ROOT), ...lintDockerfile(ROOT)].map(formatDockerFinding);
  problems += docker.length;
  process.stdout.write(`Dockerfile: ${docker.length ? `${docker.length} problem(s)` : 'ok'}\n`);
  for (const line of docker) process.stdout.write(`  ${line}\n`);
  process.stdout.write(problems ? `check:deploy: ${problems} problem(s)\n` : 'check:deploy: ok\n');
  return problems ? 1 : 0;
}

try {
  process.exitCode = await main();
} catch (error) {
  process.stderr.write(`check:deploy: ${(error as Error).message}\n`);
  process.exitCode = 2;
}
