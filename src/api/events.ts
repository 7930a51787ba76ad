/** Engine events and results as API messages, and back (for clients that display them). */
import type {
  DepthResult as EngineDepthResult,
  ImageLayout,
  MeasurementEvent,
  MeasurementResult as EngineResult,
  ModelInfo,
} from '../metric/types.js';
import type { DepthResult, MeasureMemorizationResponse, MeasurementResult } from '../gen/memometer/v1/memometer.js';
import { MODES, nameOf, SHARINGS, toProto } from './request.js';

// The engine's depth result already has the proto's field names and types.
const depthToProto = (d: EngineDepthResult): DepthResult => d;

/** Where the server put the outputs of a measurement. */
export interface Outputs {
  backend: string;
  reportUri: string;
  reportHtmlUri: string;
  fineTunedModelUri: string;
}

export function resultToProto(result: EngineResult, outputs: Outputs): MeasurementResult {
  return {
    mode: toProto(MODES, result.mode),
    headSharing: toProto(SHARINGS, result.heads),
    numRandomLabels: result.numRandomLabels,
    chance: result.chance,
    trainSamples: result.samples.train,
    heldOutSamples: result.samples.heldOut,
    heldOutSource: result.samples.heldOutSource,
    depths: result.depths.map(depthToProto),
    warnings: result.warnings,
    seconds: result.seconds,
    baselineReportUri: '',
    baselineDifferences: [],
    ...outputs,
  };
}

/** The engine-shaped result of an API result, so local and remote runs print the same. */
export function resultFromProto(r: MeasurementResult): EngineResult & Outputs {
  return {
    mode: nameOf(MODES, r.mode),
    heads: nameOf(SHARINGS, r.headSharing),
    numRandomLabels: r.numRandomLabels,
    chance: r.chance,
    samples: { train: r.trainSamples, heldOut: r.heldOutSamples, heldOutSource: r.heldOutSource as 'test' | 'train-split' },
    depths: r.depths,
    warnings: r.warnings,
    seconds: r.seconds,
    backend: r.backend,
    reportUri: r.reportUri,
    reportHtmlUri: r.reportHtmlUri,
    fineTunedModelUri: r.fineTunedModelUri,
  };
}

/** The stream message for an engine progress event ('done' becomes the result, sent by the caller). */
export function progressToProto(event: Exclude<MeasurementEvent, { type: 'done' }>): MeasureMemorizationResponse {
  switch (event.type) {
    case 'planned':
      return {
        event: {
          $case: 'planned',
          value: {
            backend: event.backend,
            mode: toProto(MODES, event.mode),
            headSharing: toProto(SHARINGS, event.heads),
            copyDepths: event.copyDepths,
            headsPerDepth: event.headsPerDepth,
            headParameters: event.headParameters,
            trainSamples: event.samples.train,
            heldOutSamples: event.samples.heldOut,
            heldOutSource: event.samples.heldOutSource,
            numClasses: event.numClasses,
            modelFormat: event.model.format,
            modelNotes: event.model.notes,
            modelInputLayout: event.model.inputLayout,
            datasetLayout: event.datasetLayout,
            estimatedBytes: event.estimatedBytes,
          },
        },
      };
    case 'features':
      return { event: { $case: 'features', value: { seconds: event.seconds, samples: event.samples } } };
    case 'epoch': {
      const { type: _, ...value } = event;
      return { event: { $case: 'epoch', value: { ...value, losses: { ...event.losses } } } };
    }
    case 'depthResult':
      return { event: { $case: 'depthResult', value: depthToProto(event.result) } };
  }
}

/** The engine-shaped progress event of a stream message, for the same progress display. */
export function progressFromProto(message: MeasureMemorizationResponse): MeasurementEvent | undefined {
  const e = message.event;
  if (e?.$case === 'epoch') return { type: 'epoch', ...e.value, losses: e.value.losses ?? { randomLabel: 0 } };
  if (e?.$case === 'features') return { type: 'features', ...e.value };
  if (e?.$case === 'planned') {
    const p = e.value;
    return {
      type: 'planned', backend: p.backend, mode: nameOf(MODES, p.mode), heads: nameOf(SHARINGS, p.headSharing),
      copyDepths: p.copyDepths, headsPerDepth: p.headsPerDepth, headParameters: p.headParameters,
      samples: { train: p.trainSamples, heldOut: p.heldOutSamples, heldOutSource: p.heldOutSource as 'test' | 'train-split' },
      numClasses: p.numClasses, estimatedBytes: p.estimatedBytes,
      model: { format: p.modelFormat as ModelInfo['format'], notes: p.modelNotes, inputLayout: p.modelInputLayout as ImageLayout },
      datasetLayout: p.datasetLayout as ImageLayout,
    };
  }
  return undefined;
}
