/**
 * Counter-based pseudo-random numbers: value i of a stream depends only on (seed, stream, i),
 * so a sample's random label is the same whatever order or subset the samples come in, on any
 * backend and Node version (Math.random cannot be seeded; TF.js's RNG is backend-specific).
 */

/** Named streams keep independent uses of one seed from sharing numbers. */
export enum Stream {
  TrainLabels = 1,
  HeldOutLabels = 2,
  Subsample = 3,
  Shuffle = 4,
  HeadInit = 5,
}

// murmur3's 32-bit finaliser: full avalanche, cheap with Math.imul.
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A well-mixed uint32 from up to four uint32 words. */
export function hash32(a: number, b: number, c = 0, d = 0): number {
  let h = fmix32((a ^ 0x9e3779b9) >>> 0);
  h = fmix32((h ^ Math.imul(b + 0x7f4a7c15, 0x27d4eb2f)) >>> 0);
  h = fmix32((h ^ Math.imul(c + 0x165667b1, 0x85ebca77)) >>> 0);
  return fmix32((h ^ Math.imul(d + 0x2545f491, 0xc2b2ae3d)) >>> 0);
}

/** Exactly uniform integer in [0, n) for counter i (rejection, not modulo, so no bias). */
export function uniformInt(seed: number, stream: number, i: number, n: number): number {
  const limit = 2 ** 32 - (2 ** 32 % n);
  for (let attempt = 0; ; attempt++) {
    const h = hash32(seed, stream, i, attempt);
    if (h < limit) return h % n;
  }
}

/** Random labels r_i in {0..n-1} for samples 0..count-1 (ids index the stream). */
export function randomLabels(
  seed: number,
  stream: Stream,
  ids: ArrayLike<number>,
  n: number,
): Int32Array {
  const labels = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) labels[i] = uniformInt(seed, stream, ids[i]!, n);
  return labels;
}

/** In-place Fisher-Yates shuffle driven by (seed, stream, round). */
export function shuffleInPlace(
  values: Int32Array,
  seed: number,
  stream: Stream,
  round: number,
): Int32Array {
  for (let i = values.length - 1; i > 0; i--) {
    // Each round gets its own sub-stream (stream + 256 * round), so rounds never share numbers.
    const j = uniformInt(seed, stream + 256 * round, i, i + 1);
    const t = values[i]!;
    values[i] = values[j]!;
    values[j] = t;
  }
  return values;
}
