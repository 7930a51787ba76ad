import { requestFromOptions } from '../api/request.js';
import { progressFromProto, resultFromProto } from '../api/events.js';
import type { MeasureOptions, MeasurementEvent } from '../metric/types.js';
import { MemometerClient } from './client.js';

export interface RemoteMeasure {
  server: string;
  token?: string;
  modelUri: string;
  datasetUri: string;
  outputUri?: string;
  /** Compared with this report.json by the service (its result then carries the deltas). */
  baselineReportUri?: string;
  allowDifferentSettings?: boolean;
  options: Partial<MeasureOptions>;
  onEvent?: (event: MeasurementEvent) => void;
  signal?: AbortSignal;
}

/** `memometer measure --server`: the same measurement, run by the service. */
export async function measureRemotely(r: RemoteMeasure) {
  const client = new MemometerClient({ address: r.server, token: r.token });
  try {
    const { modelUri, datasetUri, outputUri, baselineReportUri, allowDifferentSettings } = r;
    const request = requestFromOptions({ modelUri, datasetUri, outputUri, baselineReportUri, allowDifferentSettings }, r.options);
    const outcome = await client.measure(request, (message) => {
      const event = progressFromProto(message);
      if (event) r.onEvent?.(event);
    }, r.signal);
    const { baselineReportUri: baseline, baselineDifferences } = outcome.result;
    // The comparison's fields only when there is one, so uncompared runs print what local ones do.
    return { measurementId: outcome.measurementId, ...resultFromProto(outcome.result), ...(baseline ? { baselineReportUri: baseline, baselineDifferences } : {}) };
  } finally {
    client.close();
  }
}
