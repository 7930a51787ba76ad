import { ResourceExhaustedError } from '../errors.js';
import type { Dataset } from '../metric/dataset.js';
import type { ObjectStore } from '../storage/store.js';

/** A read-only view of a store that refuses to read more than `maxBytes` in total. */
export function byteLimited(store: ObjectStore, maxBytes: number, field: string): ObjectStore {
  let read = 0;
  return {
    get: async (key) => {
      const bytes = await store.get(key);
      read += bytes.length;
      if (read > maxBytes) {
        throw new ResourceExhaustedError(`reading ${key} exceeds the server's limit of ${maxBytes} bytes`, field);
      }
      return bytes;
    },
    list: (prefix) => store.list(prefix),
    exists: (key) => store.exists(key),
    put: (key, body) => store.put(key, body),
  };
}

/** Refuses data sets with more samples than the server measures (after max_samples). */
export function checkSampleLimit(dataset: Dataset, maxSamplesOption: number | undefined, limit: number, field: string): void {
  const count = (n: number) => Math.min(n, maxSamplesOption ?? n);
  const samples = count(dataset.xShape[0]!) + count(dataset.yTest?.length ?? 0);
  if (samples > limit) {
    throw new ResourceExhaustedError(
      `the data set has ${samples} samples to measure; this server measures at most ${limit} (set max_samples)`,
      field,
    );
  }
}
