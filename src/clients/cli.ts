import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { FailedPreconditionError, InvalidArgumentError, MemometerError } from '../errors.js';
import { initBackend, parseBackendRequest } from '../metric/backend/index.js';
import { measure } from '../metric/measure.js';
import { resolveOptions } from '../metric/options.js';
import type { MeasurementResult } from '../metric/types.js';
import { loadServerConfig } from '../server/config.js';
import { openRegistry, startServer } from '../server/server.js';
import { Locations } from '../server/locations.js';
import { readLocalDataset, readLocalModelSource } from './local-files.js';
import { describeForCli, measureOptionsFrom, parseMeasureArgs, type MeasureValues } from './measure-flags.js';
import { measureRemotely } from './remote.js';
import { formatResult, Progress } from './report.js';
import { uploadToBucket } from './upload.js';
import { readCliBaseline } from './baseline-file.js';
import { BASELINE_SUBJECT, checkBaseline, increasesAbove, withBaseline, type Baseline } from '../report/baseline.js';
import { localReportFiles, writeLocalReport } from '../report/write.js';
import { requestFromOptions } from '../api/request.js';
import { MemometerClient } from './client.js';
import { Measurement, MeasurementState } from '../gen/memometer/v1/memometer.js';
import { parseState, parseTimestamp } from '../server/list-filter.js';

const USAGE = `usage:
  memometer measure [--model PATH|URI] [--dataset PATH|URI] [--depth 1,2,3] [--labels N]
         [--mode frozen|joint] [--heads per-class|shared] [--head-init fresh|top]
         [--epochs E] [--batch-size B] [--lr X] [--optimizer adam|sgd|momentum]
         [--weight-decay X] [--lambda X] [--label-smoothing X] [--reinit]
         [--seed S[,S...]] [--max-samples M] [--held-out-fraction F]
         [--scale X] [--offset X] [--mean M[,M...]] [--std S[,S...]]
         [--memory-budget-mb MB] [--backend auto|node-gpu|node|wasm|cpu] [--head-workers auto|N]
         [--server HOST:PORT [--output URI]] [--fail-above SCORE] [--report FILE.html] [--json] [--quiet]
         [--baseline REPORT.json|URI [--fail-above-increase X] [--allow-different-settings]]
  memometer serve [--host H] [--port P] [--data-root DIR] [--state-uri URI]
         [--max-concurrent N] [--max-queued N] [--shutdown-grace-seconds S]
  memometer upload --to s3://BUCKET/PREFIX [--model PATH] [--dataset PATH]
  memometer list --server HOST:PORT [--model URI] [--state STATE] [--since RFC3339] [--limit N] [--json]
  memometer reindex [--state-uri URI]

measure runs in-process on local files, or with --server on a memometer service (model and
dataset are then s3:// URIs or paths under the server's data root; MEMOMETER_API_TOKEN is sent
as the bearer token). Without --model/--dataset it measures the example CNN on the Fashion-MNIST
subset shipped in examples/ (inputs scaled by 1/255). --report writes a self-contained HTML
report (charts, no network needed) and its report.json as FILE.json. --fail-above makes it a pipeline gate:
exit 3 when the chance-corrected memorization score at any depth exceeds SCORE. --baseline
compares with an earlier report.json (local, s3://, or under the server's data root with
--server) measured with the same settings (exit 2 listing the differences, unless
--allow-different-settings); --fail-above-increase exits 3 when a depth's score rose by more
than X over it. serve reads MEMOMETER_* variables (flags
win); upload and serve read S3 settings from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
S3_ENDPOINT, S3_USE_HTTPS, AWS_REGION. reindex (same state settings as serve) lists in
ListMeasurements the recorded measurements that are not listed: those recorded before the
listing index existed (run it once after upgrading; it is safe while servers run).`;

/** Exit codes: 0 ok, 1 the measurement failed, 2 bad arguments or input, 3 a gate (--fail-above, --fail-above-increase). */
const EXIT = { ok: 0, failed: 1, usage: 2, gate: 3 } as const;

/** The pipeline gate: depths whose chance-corrected score exceeds the limit. */
function gateFailures(result: Pick<MeasurementResult, 'depths'>, limit: number): string[] {
  return result.depths
    .filter((d) => d.memorizationScore > limit)
    .map((d) => `memorization score ${d.memorizationScore.toFixed(4)} at copy depth ${d.copyDepth} exceeds --fail-above ${limit}`);
}

/** A score flag: absent, or a number in [0, 1]. */
function scoreFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const score = Number(value);
  if (!(score >= 0 && score <= 1)) throw new InvalidArgumentError(`expects a score in [0, 1], got '${value}'`, flag);
  return score;
}

const EXAMPLES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples');
export const EXAMPLE_MODEL = path.join(EXAMPLES, 'fashion-cnn');
export const EXAMPLE_DATASET = path.join(EXAMPLES, 'fashion-mnist-2k.npz');

function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort(new Error('interrupted (SIGINT)')));
  return controller.signal;
}

async function measureLocally(values: MeasureValues, options: ReturnType<typeof measureOptionsFrom>, progress?: Progress) {
  const backend = await initBackend(values.backend ? parseBackendRequest(values.backend, '--backend') : undefined);
  const model = await readLocalModelSource(values.model ?? EXAMPLE_MODEL);
  const dataset = await readLocalDataset(values.dataset ?? EXAMPLE_DATASET);
  let result: MeasurementResult | undefined;
  const input = { model: model.artifacts, dataset, source: model.info };
  for await (const event of measure(input, { ...options, signal: interruptSignal() })) {
    progress?.show(event);
    if (event.type === 'done') result = event.result;
  }
  return { backend: backend.name, ...result! };
}

async function runMeasure(args: string[]): Promise<number> {
  const { values } = parseMeasureArgs(args);
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  const options = measureOptionsFrom(values);
  const failAbove = scoreFlag(values['fail-above'], '--fail-above');
  const failAboveIncrease = scoreFlag(values['fail-above-increase'], '--fail-above-increase');
  const allowDifferent = values['allow-different-settings'] ?? false;
  if (!values.baseline && (failAboveIncrease !== undefined || allowDifferent)) {
    throw new InvalidArgumentError('needs --baseline', failAboveIncrease !== undefined ? '--fail-above-increase' : '--allow-different-settings');
  }
  const reportFiles = values.report === undefined ? undefined : localReportFiles(values.report, '--report');
  const usingExample = values.model === undefined && values.dataset === undefined;
  if (usingExample && !options.inputScaling) options.inputScaling = { scale: 1 / 255 };
  const progress = values.quiet ? undefined : new Progress(process.stderr);
  const model = values.model ?? EXAMPLE_MODEL;
  const dataset = values.dataset ?? EXAMPLE_DATASET;
  const request = requestFromOptions({
    modelUri: model, datasetUri: dataset, outputUri: values.output, baselineReportUri: values.baseline, allowDifferentSettings: allowDifferent,
  }, options);
  let result;
  let baseline: Baseline | undefined;
  if (values.server) {
    if (!values.model || !values.dataset) throw new InvalidArgumentError('--model and --dataset are required with --server', '--server');
    result = await measureRemotely({
      server: values.server, token: process.env.MEMOMETER_API_TOKEN, modelUri: values.model, datasetUri: values.dataset,
      outputUri: values.output, baselineReportUri: values.baseline, allowDifferentSettings: allowDifferent,
      options, onEvent: (e) => progress?.show(e), signal: interruptSignal(),
    });
    // A gate must not pass because a service ignored the baseline (one older than the field).
    if (values.baseline && !result.baselineReportUri) throw new FailedPreconditionError('the service returned no comparison with it', '--baseline');
  } else {
    if (values.output) throw new InvalidArgumentError('needs --server (local runs print their report)', '--output');
    if (values.baseline) {
      // Read and compared before the work; bad flags fail as themselves first.
      resolveOptions(options);
      baseline = await readCliBaseline(values.baseline);
      checkBaseline(baseline, request, allowDifferent);
    }
    const measured = await measureLocally(values, options, progress);
    result = baseline ? withBaseline(measured, request, baseline, allowDifferent) : measured;
  }
  process.stdout.write(values.json ? `${JSON.stringify({ model, dataset, ...result })}\n` : `${formatResult(result)}\n`);
  if (reportFiles) await writeLocalReport(reportFiles, request, result, baseline?.report);
  const failures = [
    ...(failAbove === undefined ? [] : gateFailures(result, failAbove)),
    ...(failAboveIncrease === undefined ? [] : increasesAbove(result, failAboveIncrease).map((line) => `${line} (--fail-above-increase)`)),
  ];
  failures.forEach((line) => process.stderr.write(`memometer: ${line}\n`));
  return failures.length ? EXIT.gate : EXIT.ok;
}

async function runServe(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      host: { type: 'string' }, port: { type: 'string' }, 'data-root': { type: 'string' }, 'state-uri': { type: 'string' },
      'max-concurrent': { type: 'string' }, 'max-queued': { type: 'string' }, 'shutdown-grace-seconds': { type: 'string' },
    },
  });
  const config = loadServerConfig(process.env, {
    host: values.host, port: values.port, dataRoot: values['data-root'], stateUri: values['state-uri'],
    maxConcurrent: values['max-concurrent'], maxQueued: values['max-queued'], shutdownGraceSeconds: values['shutdown-grace-seconds'],
  });
  const server = await startServer(config);
  process.stderr.write(`memometer: serving on ${config.host}:${server.port} (backend ${server.backend.name}; data root ${config.dataRoot ?? 'none'})\n`);
  await new Promise<void>((resolve) => {
    const stop = () => void server.shutdown().then(resolve);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  process.stderr.write('memometer: stopped\n');
  return EXIT.ok;
}

/** `memometer reindex`: writes the ListMeasurements index entries that records lack (after an upgrade). */
async function runReindex(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { 'state-uri': { type: 'string' } } });
  const config = loadServerConfig(process.env, { stateUri: values['state-uri'] });
  const { records, added } = await openRegistry(config, new Locations(config, process.env), process.env).reindex();
  process.stdout.write(`memometer: ${records} measurement record(s), ${added} index entr${added === 1 ? 'y' : 'ies'} written\n`);
  return EXIT.ok;
}

async function runUpload(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { to: { type: 'string' }, model: { type: 'string' }, dataset: { type: 'string' } } });
  if (!values.to) throw new InvalidArgumentError('is required (s3://bucket/prefix)', '--to');
  if (!values.model && !values.dataset) throw new InvalidArgumentError('give --model and/or --dataset', '--to');
  const uris = await uploadToBucket(values.to, { model: values.model, dataset: values.dataset });
  process.stdout.write(`${JSON.stringify(uris)}\n`);
  return EXIT.ok;
}

/** One line per measurement: state, creation, model, and the best score or the error. */
function formatMeasurements(measurements: Measurement[]): string {
  const outcome = (m: Measurement) => {
    const best = m.result?.depths.reduce((a, b) => (b.memorizationScore > a.memorizationScore ? b : a), m.result.depths[0]!);
    if (best) return `best score ${best.memorizationScore.toFixed(4)} at depth ${best.copyDepth}`;
    return m.error ? `${m.error.code}: ${m.error.message}` : '';
  };
  const rows = [['ID', 'STATE', 'CREATED', 'MODEL', 'RESULT'], ...measurements.map((m) => [
    m.measurementId, MeasurementState[m.state].replace(/^MEASUREMENT_STATE_/, ''),
    m.createTime?.toISOString().replace(/\.\d{3}Z$/, 'Z') ?? '', m.request?.modelUri ?? '', outcome(m),
  ])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(i < r.length - 1 ? widths[i]! : 0)).join('  ').trimEnd() + '\n').join('');
}

/** `memometer list`: the service's measurements, newest first; --model/--state/--since build the filter. */
async function runList(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      server: { type: 'string' }, model: { type: 'string' }, state: { type: 'string' }, since: { type: 'string' },
      limit: { type: 'string', default: '50' }, json: { type: 'boolean' },
    },
  });
  if (!values.server) throw new InvalidArgumentError('is required (HOST:PORT of a memometer service)', '--server');
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new InvalidArgumentError(`expects a positive integer, got '${values.limit}'`, '--limit');
  const filter = [
    values.model === undefined ? '' : `model_uri = ${JSON.stringify(values.model)}`,
    values.state === undefined ? '' : `state = ${MeasurementState[parseState(values.state, '--state')]}`,
    values.since === undefined ? '' : `create_time >= "${parseTimestamp(values.since, '--since').toISOString()}"`,
  ].filter(Boolean).join(' AND ');
  const client = new MemometerClient({ address: values.server, token: process.env.MEMOMETER_API_TOKEN });
  const measurements: Measurement[] = [];
  try {
    for await (const m of client.listAll({ filter, pageSize: limit })) {
      if (measurements.push(m) === limit) break;
    }
  } finally {
    client.close();
  }
  process.stdout.write(values.json ? measurements.map((m) => `${JSON.stringify(Measurement.toJSON(m))}\n`).join('') : formatMeasurements(measurements));
  return EXIT.ok;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { measure: runMeasure, serve: runServe, upload: runUpload, list: runList, reindex: runReindex };

/** A gRPC status from the service, as the CLI reports it. */
function isServiceError(error: unknown): error is ServiceError {
  return typeof (error as ServiceError)?.code === 'number' && 'details' in (error as object);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    const run = command ? COMMANDS[command] : undefined;
    if (run) return await run(rest);
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? EXIT.usage : EXIT.ok;
    }
    throw new InvalidArgumentError(`unknown command '${command}'; expected ${Object.keys(COMMANDS).join(', ')}`, 'command');
  } catch (error) {
    if (error instanceof MemometerError) {
      process.stderr.write(`memometer: ${describeForCli(error)}\n`);
      // A baseline measured with other settings is bad input, like an invalid flag (here and below).
      const refusedBaseline = error.kind === 'FAILED_PRECONDITION' && error.subject === BASELINE_SUBJECT;
      return error.kind === 'INVALID_ARGUMENT' || refusedBaseline ? EXIT.usage : EXIT.failed;
    }
    if (isServiceError(error)) {
      process.stderr.write(`memometer: ${grpcStatus[error.code]}: ${error.details}\n`);
      const refusedBaseline = error.code === grpcStatus.FAILED_PRECONDITION && error.details.startsWith('baseline_report_uri:');
      return error.code === grpcStatus.INVALID_ARGUMENT || refusedBaseline ? EXIT.usage : EXIT.failed;
    }
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`memometer: ${(error as Error).message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`memometer: internal error: ${(error as Error).stack ?? String(error)}\n`);
    return EXIT.failed;
  }
}
