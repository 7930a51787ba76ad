// SIMD kernels that run inside the TF.js wasm backend's own memory (imported, never owned):
// every pointer is a byte offset into that heap. Nothing here may allocate, keep globals or
// static data; scripts/build-kernels.ts checks the compiled module for that.

// A C tile is 4 x 8 floats: 4 splatted A values times two 4-lane B vectors per step, which
// keeps 8 accumulators, 2 B vectors and a splat in registers (16 on x64).
const KC: i32 = 256; // inner-dimension block: a packed B panel (KC x 8 floats) stays in L1

/** Bytes of the `scratch` area that `matmul` needs for `n` columns: packed B and an edge tile. */
export function scratchBytes(n: i32): i32 {
  return (KC * ((n + 7) & ~7) + 32) << 2;
}

/**
 * C[m, n] = op(A)[m, k] x op(B)[k, n] for one batch, row-major, op = transpose when `transA`
 * / `transB`. `scratch` is scratchBytes(n) of free heap.
 */
export function matmul(
  a: usize, b: usize, c: usize, scratch: usize,
  m: i32, n: i32, k: i32, transA: bool, transB: bool,
): void {
  // Byte strides of A's rows and of A's inner dimension; A is read in place.
  const aRow: usize = transA ? 4 : <usize>k << 2;
  const aInner: usize = transA ? <usize>m << 2 : 4;
  const ldc: usize = <usize>n << 2;
  const panels = (n + 7) >> 3;
  const tile = scratch + (<usize>(KC * panels) << 5);
  for (let k0 = 0; k0 < k; k0 += KC) {
    const kc = min(KC, k - k0);
    const accumulate = k0 > 0;
    packB(b, scratch, n, k, k0, kc, transB);
    for (let j0 = 0; j0 < n; j0 += 8) {
      const cols = min(8, n - j0);
      const panel = scratch + (<usize>(j0 * kc) << 2);
      for (let i0 = 0; i0 < m; i0 += 4) {
        const rows = min(4, m - i0);
        const a0 = a + <usize>i0 * aRow + (<usize>k0 * aInner);
        // Missing edge rows repeat the last row; their results are dropped.
        const a1 = a0 + <usize>min(1, rows - 1) * aRow;
        const a2 = a0 + <usize>min(2, rows - 1) * aRow;
        const a3 = a0 + <usize>min(3, rows - 1) * aRow;
        const out = c + ((<usize>i0 * <usize>n + <usize>j0) << 2);
        if (rows == 4 && cols == 8) {
          kernel4x8(a0, a1, a2, a3, aInner, panel, kc, out, ldc, accumulate);
        } else {
          kernel4x8(a0, a1, a2, a3, aInner, panel, kc, tile, 32, false);
          for (let r = 0; r < rows; r++) {
            for (let j = 0; j < cols; j++) {
              const dst = out + <usize>r * ldc + (<usize>j << 2);
              const value = load<f32>(tile + (<usize>(r * 8 + j) << 2));
              store<f32>(dst, accumulate ? load<f32>(dst) + value : value);
            }
          }
        }
      }
    }
  }
}

/**
 * Packs op(B)[k0 : k0 + kc, :] as panels of 8 columns (kc x 8 each, the last zero-padded),
 * reading B sequentially: strided reads straight from B defeat the prefetcher when each
 * B value is used by few rows of A.
 */
// @ts-ignore: decorator
@inline
function packB(b: usize, dst: usize, n: i32, k: i32, k0: i32, kc: i32, transB: bool): void {
  const full = n & ~7;
  if (transB) {
    // B is [n, k]: column j of op(B) is row j of B, contiguous in the inner dimension.
    for (let j = 0; j < ((n + 7) & ~7); j++) {
      const to = dst + (<usize>((j >> 3) * kc * 8 + (j & 7)) << 2);
      if (j < n) {
        const src = b + ((<usize>j * <usize>k + <usize>k0) << 2);
        for (let p = 0; p < kc; p++) store<f32>(to + (<usize>p << 5), load<f32>(src + (<usize>p << 2)));
      } else {
        for (let p = 0; p < kc; p++) store<f32>(to + (<usize>p << 5), 0);
      }
    }
  } else {
    for (let p = 0; p < kc; p++) {
      const src = b + ((<usize>(k0 + p) * <usize>n) << 2);
      const to = dst + (<usize>p << 5);
      for (let j = 0; j < full; j += 8) {
        const panel = to + (<usize>(j * kc) << 2);
        v128.store(panel, v128.load(src + (<usize>j << 2)));
        v128.store(panel, v128.load(src + (<usize>j << 2), 16), 16);
      }
      if (full < n) {
        const panel = to + (<usize>(full * kc) << 2);
        for (let j = 0; j < 8; j++) store<f32>(panel + (<usize>j << 2), full + j < n ? load<f32>(src + (<usize>(full + j) << 2)) : 0);
      }
    }
  }
}

/**
 * A 4 x 8 tile over `kc` inner steps of a packed B panel, stored to (or added into) `out` with
 * row stride `ldo`.
 */
// @ts-ignore: decorator
@inline
function kernel4x8(
  a0: usize, a1: usize, a2: usize, a3: usize, aInner: usize,
  bp: usize, kc: i32, out: usize, ldo: usize, accumulate: bool,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let x = v128.load32_splat(a0);
    c00 = f32x4.add(c00, f32x4.mul(x, b0));
    c01 = f32x4.add(c01, f32x4.mul(x, b1));
    x = v128.load32_splat(a1);
    c10 = f32x4.add(c10, f32x4.mul(x, b0));
    c11 = f32x4.add(c11, f32x4.mul(x, b1));
    x = v128.load32_splat(a2);
    c20 = f32x4.add(c20, f32x4.mul(x, b0));
    c21 = f32x4.add(c21, f32x4.mul(x, b1));
    x = v128.load32_splat(a3);
    c30 = f32x4.add(c30, f32x4.mul(x, b0));
    c31 = f32x4.add(c31, f32x4.mul(x, b1));
    a0 += aInner;
    a1 += aInner;
    a2 += aInner;
    a3 += aInner;
    bp += 32;
  }
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(out));
    c01 = f32x4.add(c01, v128.load(out, 16));
    c10 = f32x4.add(c10, v128.load(out + ldo));
    c11 = f32x4.add(c11, v128.load(out + ldo, 16));
    c20 = f32x4.add(c20, v128.load(out + 2 * ldo));
    c21 = f32x4.add(c21, v128.load(out + 2 * ldo, 16));
    c30 = f32x4.add(c30, v128.load(out + 3 * ldo));
    c31 = f32x4.add(c31, v128.load(out + 3 * ldo, 16));
  }
  v128.store(out, c00);
  v128.store(out, c01, 16);
  v128.store(out + ldo, c10);
  v128.store(out + ldo, c11, 16);
  v128.store(out + 2 * ldo, c20);
  v128.store(out + 2 * ldo, c21, 16);
  v128.store(out + 3 * ldo, c30);
  v128.store(out + 3 * ldo, c31, 16);
}

// Optimizer updates: one pass over n floats, in the operation order of TF.js's optimizers so
// that results match tf.train.* to rounding. The gradient first gets coupled L2 weight decay.

/** Adam: m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g², w' = w - lr m̂ / (√v̂ + eps). */
export function adam(
  n: i32, w: usize, m: usize, v: usize, g: usize, wOut: usize, mOut: usize, vOut: usize,
  lr: f32, beta1: f32, beta2: f32, oneMinusBeta1: f32, oneMinusBeta2: f32,
  oneMinusAccBeta1: f32, oneMinusAccBeta2: f32, epsilon: f32, decay: f32,
): void {
  const vb1 = f32x4.splat(beta1), vb2 = f32x4.splat(beta2);
  const vc1 = f32x4.splat(oneMinusBeta1), vc2 = f32x4.splat(oneMinusBeta2);
  const va1 = f32x4.splat(oneMinusAccBeta1), va2 = f32x4.splat(oneMinusAccBeta2);
  const veps = f32x4.splat(epsilon), vlr = f32x4.splat(-lr), vwd = f32x4.splat(decay);
  const vectors = n & ~3;
  for (let i = 0; i < vectors; i += 4) {
    const o = <usize>i << 2;
    const wi = v128.load(w + o);
    const gi = f32x4.add(v128.load(g + o), f32x4.mul(wi, vwd));
    const mi = f32x4.add(f32x4.mul(v128.load(m + o), vb1), f32x4.mul(gi, vc1));
    const vi = f32x4.add(f32x4.mul(v128.load(v + o), vb2), f32x4.mul(f32x4.mul(gi, gi), vc2));
    const step = f32x4.div(f32x4.div(mi, va1), f32x4.add(f32x4.sqrt(f32x4.div(vi, va2)), veps));
    v128.store(mOut + o, mi);
    v128.store(vOut + o, vi);
    v128.store(wOut + o, f32x4.add(f32x4.mul(step, vlr), wi));
  }
  for (let i = vectors; i < n; i++) {
    const o = <usize>i << 2;
    const wi = load<f32>(w + o);
    const gi = load<f32>(g + o) + wi * decay;
    const mi = load<f32>(m + o) * beta1 + gi * oneMinusBeta1;
    const vi = load<f32>(v + o) * beta2 + gi * gi * oneMinusBeta2;
    const step = mi / oneMinusAccBeta1 / (Mathf.sqrt(vi / oneMinusAccBeta2) + epsilon);
    store<f32>(mOut + o, mi);
    store<f32>(vOut + o, vi);
    store<f32>(wOut + o, step * -lr + wi);
  }
}

/** Momentum (not Nesterov): a' = mu a + g, w' = w - lr a'. */
export function momentum(
  n: i32, w: usize, acc: usize, g: usize, wOut: usize, accOut: usize, lr: f32, mu: f32, decay: f32,
): void {
  const vmu = f32x4.splat(mu), vlr = f32x4.splat(-lr), vwd = f32x4.splat(decay);
  const vectors = n & ~3;
  for (let i = 0; i < vectors; i += 4) {
    const o = <usize>i << 2;
    const wi = v128.load(w + o);
    const gi = f32x4.add(v128.load(g + o), f32x4.mul(wi, vwd));
    const ai = f32x4.add(f32x4.mul(v128.load(acc + o), vmu), gi);
    v128.store(accOut + o, ai);
    v128.store(wOut + o, f32x4.add(f32x4.mul(ai, vlr), wi));
  }
  for (let i = vectors; i < n; i++) {
    const o = <usize>i << 2;
    const wi = load<f32>(w + o);
    const ai = load<f32>(acc + o) * mu + (load<f32>(g + o) + wi * decay);
    store<f32>(accOut + o, ai);
    store<f32>(wOut + o, ai * -lr + wi);
  }
}

/** Plain SGD: w' = w - lr g. */
export function sgd(n: i32, w: usize, g: usize, wOut: usize, lr: f32, decay: f32): void {
  const vlr = f32x4.splat(-lr), vwd = f32x4.splat(decay);
  const vectors = n & ~3;
  for (let i = 0; i < vectors; i += 4) {
    const o = <usize>i << 2;
    const wi = v128.load(w + o);
    const gi = f32x4.add(v128.load(g + o), f32x4.mul(wi, vwd));
    v128.store(wOut + o, f32x4.add(f32x4.mul(gi, vlr), wi));
  }
  for (let i = vectors; i < n; i++) {
    const o = <usize>i << 2;
    const wi = load<f32>(w + o);
    store<f32>(wOut + o, (load<f32>(g + o) + wi * decay) * -lr + wi);
  }
}
