import { ResourceExhaustedError } from '../errors.js';
import type { Dataset } from '../metric/dataset.js';

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
