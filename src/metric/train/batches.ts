import type { InputValues } from '../dataset.js';
import { shuffleInPlace, Stream } from '../random.js';

/** One step's samples, laid out [G, k]: row g holds head g's k samples. */
export interface GroupedBatch {
  /** Sample indices, G * k. */
  index: Int32Array;
  /** 1 for a real sample, 0 for padding (a repeated sample of the same group, ignored by losses). */
  mask: Float32Array;
  /** Number of real samples. */
  real: number;
}

/**
 * Class-grouped batches: every step gives each of the G heads k samples of its own group (its
 * class, or everything for a shared head), so all heads run together as one stacked
 * computation. A group that runs out early is padded with its own samples, masked out; a
 * group with no samples at all is padded with sample 0, masked out.
 */
export class GroupedBatches {
  private readonly members: Int32Array[];
  readonly steps: number;

  constructor(
    groupOf: Int32Array,
    readonly groups: number,
    readonly perGroup: number,
  ) {
    const counts = new Int32Array(groups);
    groupOf.forEach((g) => counts[g]!++);
    this.members = Array.from(counts, (c) => new Int32Array(c));
    const fill = new Int32Array(groups);
    groupOf.forEach((g, i) => (this.members[g]![fill[g]!++] = i));
    this.steps = Math.ceil(Math.max(...counts) / perGroup);
  }

  /** One pass over every sample; shuffled within groups when `shuffleSeed` is given. */
  *epoch(shuffle?: { seed: number; round: number }): Generator<GroupedBatch> {
    const order = this.members.map((m, g) =>
      shuffle ? shuffleInPlace(m.slice(), shuffle.seed, Stream.Shuffle + 16 * g, shuffle.round) : m,
    );
    const k = this.perGroup;
    for (let step = 0; step < this.steps; step++) {
      const index = new Int32Array(this.groups * k);
      const mask = new Float32Array(this.groups * k);
      let real = 0;
      order.forEach((members, g) => {
        for (let j = 0; j < k; j++) {
          const position = step * k + j;
          const isReal = position < members.length;
          index[g * k + j] = members.length ? members[position % members.length]! : 0;
          mask[g * k + j] = isReal ? 1 : 0;
          if (isReal) real++;
        }
      });
      yield { index, mask, real };
    }
  }
}

/** Heads [first, end) of G: the share of the heads one worker trains. */
export interface GroupRange {
  first: number;
  end: number;
}

/** The rows of `range`'s heads in a [G, k] batch (views, not copies). */
export function groupRows(batch: GroupedBatch, range: GroupRange, perGroup: number): { index: Int32Array; mask: Float32Array } {
  const [start, end] = [range.first * perGroup, range.end * perGroup];
  return { index: batch.index.subarray(start, end), mask: batch.mask.subarray(start, end) };
}

/** Copies rows `index` of a row-major array into a new array of the same type. */
export function gatherRows<T extends InputValues>(source: T, rowSize: number, index: Int32Array): T {
  const out = (source instanceof Int32Array ? new Int32Array(index.length * rowSize) : new Float32Array(index.length * rowSize)) as T;
  index.forEach((r, i) => out.set(source.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
  return out;
}

export function gatherValues(source: Int32Array, index: Int32Array): Int32Array {
  return Int32Array.from(index, (i) => source[i]!);
}
