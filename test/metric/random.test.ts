import { describe, expect, it } from 'vitest';
import { randomLabels, shuffleInPlace, Stream, uniformInt } from '../../src/metric/random.js';

const ids = (count: number) => Int32Array.from({ length: count }, (_, i) => i);

describe('random labels', () => {
  it('are the same for the same seed and differ for another seed', () => {
    const a = randomLabels(7, Stream.TrainLabels, ids(10_000), 10);
    const b = randomLabels(7, Stream.TrainLabels, ids(10_000), 10);
    const c = randomLabels(8, Stream.TrainLabels, ids(10_000), 10);
    expect(b).toEqual(a);
    const agreement = a.filter((v, i) => v === c[i]).length / a.length;
    // Independent labels agree 10% of the time (SE 0.3%).
    expect(Math.abs(agreement - 0.1)).toBeLessThan(0.015);
  });

  it("depend only on the sample's id, not on which other samples are drawn", () => {
    const all = randomLabels(3, Stream.TrainLabels, ids(1000), 7);
    const subset = randomLabels(3, Stream.TrainLabels, Int32Array.from([999, 5, 123]), 7);
    expect(Array.from(subset)).toEqual([all[999], all[5], all[123]]);
  });

  it('use separate streams for training and held-out samples', () => {
    const train = randomLabels(1, Stream.TrainLabels, ids(5000), 2);
    const held = randomLabels(1, Stream.HeldOutLabels, ids(5000), 2);
    const agreement = train.filter((v, i) => v === held[i]).length / train.length;
    expect(Math.abs(agreement - 0.5)).toBeLessThan(0.04);
  });

  it.each([2, 3, 10, 1000])('are uniform over {0..%i-1} (chi-square)', (n) => {
    const draws = 200 * n;
    const counts = new Float64Array(n);
    randomLabels(11, Stream.TrainLabels, ids(draws), n).forEach((v) => counts[v]!++);
    const expected = draws / n;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    // Mean df = n-1, sd sqrt(2(n-1)); 6 sd above the mean has p < 1e-6.
    expect(chi2).toBeLessThan(n - 1 + 6 * Math.sqrt(2 * (n - 1)) + 10);
    expect(Math.min(...counts)).toBeGreaterThan(0);
  });

  it('never leave [0, n)', () => {
    for (let i = 0; i < 5000; i++) {
      const v = uniformInt(i, Stream.TrainLabels, i, 3);
      expect(v >= 0 && v < 3).toBe(true);
    }
  });
});

describe('shuffle', () => {
  it('is a seeded permutation that differs by round', () => {
    const a = shuffleInPlace(ids(100), 5, Stream.Shuffle, 0);
    const b = shuffleInPlace(ids(100), 5, Stream.Shuffle, 0);
    const c = shuffleInPlace(ids(100), 5, Stream.Shuffle, 1);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from(ids(100)));
  });
});
