import type { Context } from '@opentelemetry/api';
import { CancelledError, DeadlineExceededError, ResourceExhaustedError } from '../errors.js';
import { measure } from '../metric/measure.js';
import type { MeasureOptions } from '../metric/types.js';
import {
  MeasureMemorizationRequest,
  type MeasureMemorizationResponse,
  Measurement,
  MeasurementState,
} from '../gen/memometer/v1/memometer.js';
import { readDataset } from '../storage/dataset-reader.js';
import { writeModelArtifacts } from '../storage/model-reader.js';
import { readModel } from '../storage/model-source.js';
import { joinKey } from '../storage/store.js';
import { MeasurementMetrics } from '../telemetry/metrics.js';
import { MeasurementTracing, withSpan } from '../telemetry/spans.js';
import type { ServerConfig } from './config.js';
import { progressToProto, resultToProto } from '../api/events.js';
import { checkSampleLimit } from './limits.js';
import { byteLimited } from '../storage/byte-limited.js';
import type { Locations } from './locations.js';
import type { MeasurementRegistry } from './registry.js';
import { FIELD_OF_OPTION } from '../api/request.js';
import { reportError } from './status.js';
import { reportKeys, writeReport } from '../report/write.js';
import { checkBaseline, withBaseline, type Baseline } from '../report/baseline.js';
import { readBaseline } from '../report/baseline-reader.js';

export interface RunContext {
  measurement: Measurement;
  options: Partial<MeasureOptions>;
  config: ServerConfig;
  locations: Locations;
  registry: MeasurementRegistry;
  signal: AbortSignal;
  /** The RPC span's context, captured in the handler: spans of the run are its children. */
  traceContext: Context;
  /** Sends a message to every stream attached to the measurement. */
  emit(response: MeasureMemorizationResponse): void;
}

/** How often a run looks at its stored record for a cancel that reached another replica. */
const REMOTE_CANCEL_CHECK_MS = 2000;

/**
 * A CancelMeasurement that reached another replica marks the stored record; the runner looks
 * at it between epochs, at most every REMOTE_CANCEL_CHECK_MS (a storage read each time).
 */
function remoteCancelWatch(registry: MeasurementRegistry, id: string): () => Promise<boolean> {
  let next = Date.now() + REMOTE_CANCEL_CHECK_MS;
  return async () => {
    if (Date.now() < next) return false;
    next = Date.now() + REMOTE_CANCEL_CHECK_MS;
    return (await registry.get(id)).state === MeasurementState.MEASUREMENT_STATE_CANCELLED;
  };
}

/**
 * The request's baseline report, read and checked against the request's settings (errors name
 * baseline_report_uri); none without one. The service calls it when a request arrives, so a
 * wrong baseline fails before the measurement is recorded, and the run again before training.
 */
export async function loadBaseline(locations: Locations, request: MeasureMemorizationRequest): Promise<Baseline | undefined> {
  if (!request.baselineReportUri) return undefined;
  const baseline = await readBaseline(locations.resolve(request.baselineReportUri, 'baseline_report_uri'));
  checkBaseline(baseline, request, request.allowDifferentSettings);
  return baseline;
}

/**
 * Runs one admitted measurement: reads model and data, drives the engine, streams its events,
 * writes the report (before the final event), and keeps the stored record's state current.
 * Throws the measurement's error after recording it.
 */
export async function runMeasurement(ctx: RunContext): Promise<Measurement> {
  const { measurement: m, config, locations, registry, signal } = ctx;
  const request = m.request!;
  let tracing: MeasurementTracing | undefined;
  const metered = new MeasurementMetrics(ctx.options.mode ?? 'frozen');
  const started = await registry.transition(m, 'start');
  try {
    // A CancelMeasurement on another replica may have landed while this one was queued.
    if (started.state !== MeasurementState.MEASUREMENT_STATE_RUNNING) throw new CancelledError('cancelled by CancelMeasurement');
    const baseline = await loadBaseline(locations, request);
    const model = locations.resolve(request.modelUri, 'model_uri');
    const data = locations.resolve(request.datasetUri, 'dataset_uri');
    const output = request.outputUri ? locations.resolve(request.outputUri, 'output_uri') : undefined;
    const source = await withSpan('memometer.model.download', { model_uri: model.uri }, () =>
      readModel(byteLimited(model.store, config.maxModelBytes, 'model_uri'), model.key), ctx.traceContext,
    );
    const dataset = await withSpan('memometer.dataset.download', { dataset_uri: data.uri }, () =>
      readDataset(data.store, data.key, {
        subject: 'dataset_uri',
        // Array headers are checked before anything is allocated; with max_samples the data set
        // may hold more samples than the server measures (they are trimmed after reading).
        maxBytes: config.maxDatasetBytes,
        maxSamples: ctx.options.maxSamples === undefined ? config.maxSamples : undefined,
      }).catch((error: unknown) => {
        // Limits are the server's: name the request field, keep the array's details.
        const rename = error instanceof ResourceExhaustedError && error.subject !== 'dataset_uri';
        throw rename ? new ResourceExhaustedError(error.message, 'dataset_uri', { cause: error }) : error;
      }), ctx.traceContext,
    );
    checkSampleLimit(dataset, ctx.options.maxSamples, config.maxSamples, 'dataset_uri');
    let backend = '';
    const cancelledElsewhere = remoteCancelWatch(registry, m.measurementId);
    tracing = new MeasurementTracing(ctx.traceContext, {
      measurement_id: m.measurementId,
      model_uri: model.uri,
      dataset_uri: data.uri,
      mode: ctx.options.mode ?? 'frozen',
      n: ctx.options.numRandomLabels,
    });
    for await (const event of measure({ model: source.artifacts, dataset, source: source.info }, { ...ctx.options, memoryBudgetBytes: config.memoryBudgetBytes, signal })) {
      tracing.onEvent(event);
      metered.onEvent(event);
      if (event.type === 'planned') backend = event.backend;
      if (event.type === 'epoch' && (await cancelledElsewhere())) {
        throw new CancelledError('cancelled by CancelMeasurement');
      }
      if (event.type !== 'done') {
        ctx.emit(progressToProto(event));
        continue;
      }
      const reportKey = reportKeys(output?.key ?? '');
      const modelKey = output && event.fineTunedModel ? joinKey(output.key, 'model') : '';
      // An ONNX model is also written back as ONNX; its URI is the one the result names.
      const file = event.fineTunedModel && source.fineTunedFile?.(event.fineTunedModel);
      const fileKey = output && file ? joinKey(output.key, file.name) : '';
      const measured = resultToProto(event.result, {
        backend,
        reportUri: output ? output.uriOf(reportKey.json) : '',
        reportHtmlUri: output ? output.uriOf(reportKey.html) : '',
        fineTunedModelUri: output && (fileKey || modelKey) ? output.uriOf(fileKey || modelKey) : '',
      });
      const result = baseline ? withBaseline(measured, request, baseline, request.allowDifferentSettings) : measured;
      if (output) {
        if (event.fineTunedModel) await writeModelArtifacts(output.store, modelKey, event.fineTunedModel);
        if (file) await output.store.put(fileKey, file.bytes);
        const report = { measurementId: m.measurementId, request, result };
        await withSpan('memometer.report.write', { report_uri: result.reportUri }, () =>
          writeReport(output.store, reportKey, report, baseline?.report), ctx.traceContext,
        );
      }
      m.result = result;
      const finished = await registry.transition(m, 'succeed');
      if (finished.state !== MeasurementState.MEASUREMENT_STATE_SUCCEEDED) throw new CancelledError('cancelled by CancelMeasurement');
      ctx.emit({ event: { $case: 'result', value: result } });
    }
    tracing.end();
    metered.end('succeeded');
    return m;
  } catch (error) {
    const report = reportError(error, FIELD_OF_OPTION);
    tracing?.fail(error);
    const cancelled = error instanceof CancelledError || error instanceof DeadlineExceededError;
    metered.end(cancelled ? 'cancelled' : 'failed');
    await registry
      .transition(m, cancelled ? 'cancel' : 'fail', { code: report.codeName, message: report.message })
      .catch((e: unknown) => console.error('[memometer] could not record the failure:', e));
    throw error;
  }
}
