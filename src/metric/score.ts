/** Chance-corrected random-label accuracy: 0 at chance (1/n), 1 when every label is learned. */
export function memorizationScore(accuracy: number, n: number): number {
  return (accuracy - 1 / n) / (1 - 1 / n);
}

export function meanAndStd(values: number[]): { mean: number; std: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance =
    values.length > 1 ? values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

/**
 * Standard errors by which an accuracy over `count` samples exceeds chance 1/n (binomial).
 * Held-out random-label accuracy far above chance means labels leak: a bug, not memorization.
 */
export function zAboveChance(accuracy: number, n: number, count: number): number {
  const p = 1 / n;
  return (accuracy - p) / Math.sqrt((p * (1 - p)) / Math.max(1, count));
}

/** Running totals of one epoch or one evaluation pass. */
export class Tally {
  private sums = new Map<string, number>();
  samples = 0;

  add(samples: number, values: Record<string, number>): void {
    this.samples += samples;
    for (const [k, v] of Object.entries(values)) this.sums.set(k, (this.sums.get(k) ?? 0) + v);
  }

  /** Sum of `key` divided by the samples counted. */
  mean(key: string): number {
    return (this.sums.get(key) ?? 0) / Math.max(1, this.samples);
  }
}
