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
  options: Partial<MeasureOptions>;
  onEvent?: (event: MeasurementEvent) => void;
  signal?: AbortSignal;
}

/** `memometer measure --server`: the same measurement, run by the service. */
export async function measureRemotely(r: RemoteMeasure) {
  const client = new MemometerClient({ address: r.server, token: r.token });
  try {
    const request = requestFromOptions({ modelUri: r.modelUri, datasetUri: r.datasetUri, outputUri: r.outputUri }, r.options);
    const outcome = await client.measure(request, (message) => {
      const event = progressFromProto(message);
      if (event) r.onEvent?.(event);
    }, r.signal);
    return { measurementId: outcome.measurementId, ...resultFromProto(outcome.result) };
  } finally {
    client.close();
  }
}
