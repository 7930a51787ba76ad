/**
 * The gradient kernels registered for TF.js's wasm backend must agree with the cpu backend's
 * reference kernels, kernel by kernel over a table of geometries and for whole small models,
 * and must not leak backend memory.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerWasmGradientKernels } from '../../src/metric/backend/wasm-gradients.js';
import { seededFloats } from '../support/seeded.js';

type Backend = 'cpu' | 'wasm';
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
type Pair = number | [number, number];
type Shape4 = [number, number, number, number];

/** Plain host data, so that each backend builds its own tensors from identical values. */
interface Host {
  values: Float32Array | Int32Array;
  shape: number[];
  dtype: 'float32' | 'int32';
}

const KERNEL_TOLERANCE = 1e-5;

/** max |actual - expected| relative to the largest |expected| (floored at 1e-6). */
function relativeError(actual: Host, expected: Host): number {
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.values.length).toBe(expected.values.length);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < expected.values.length; i++) {
    const e = expected.values[i] ?? Number.NaN;
    const a = actual.values[i] ?? Number.NaN;
    const d = Math.abs(a - e);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d); // a NaN anywhere fails the comparison
    scale = Math.max(scale, Math.abs(e));
  }
  return diff / scale;
}

/** Deterministic uniform values in [-1, 1). */
function random(shape: number[], seed: number): Host {
  return { values: seededFloats(shape.reduce((a, b) => a * b, 1), seed), shape, dtype: 'float32' };
}

function ints(values: number[], shape = [values.length]): Host {
  return { values: Int32Array.from(values), shape, dtype: 'int32' };
}

function toTensor(h: Host): tf.Tensor {
  return tf.tensor(h.values, h.shape, h.dtype);
}

async function toHost(t: tf.Tensor): Promise<Host> {
  const values = await t.data();
  return {
    values: values instanceof Int32Array ? values : Float32Array.from(values),
    shape: t.shape.slice(),
    dtype: t.dtype === 'int32' ? 'int32' : 'float32',
  };
}

/** Switches backends; a failed switch would silently compare cpu with itself. */
async function use(backend: Backend): Promise<void> {
  if (!(await tf.setBackend(backend)) || tf.getBackend() !== backend) {
    throw new Error(`could not switch to the ${backend} backend`);
  }
}

/** Runs `kernel` on `backend` with fresh tensors built from `inputs`; disposes everything. */
async function runKernel(
  backend: Backend,
  kernel: string,
  inputs: Record<string, Host>,
  attrs: Record<string, unknown>,
): Promise<Host> {
  await use(backend);
  const tensors = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, toTensor(v)]));
  try {
    const out = tf.engine().runKernel<tf.Tensor>(kernel, tensors, attrs as tf.NamedAttrMap);
    const host = await toHost(out);
    out.dispose();
    return host;
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

function pair(p: Pair): [number, number] {
  return typeof p === 'number' ? [p, p] : p;
}

function convInfo(
  x: Shape4,
  filter: Shape4,
  strides: Pair,
  dilations: Pair,
  pad: Pad,
  depthwise: boolean,
  round: 'floor' | 'ceil' | undefined,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(x, filter, strides, dilations, pad, round, depthwise);
}

/** Inserts (d - 1) zero taps between filter taps: a dilated filter as an undilated one. */
function dilateFilter(f: Host, dilations: [number, number]): Host {
  const [kh, kw, c, m] = f.shape as Shape4;
  const [dh, dw] = dilations;
  const [eh, ew] = [(kh - 1) * dh + 1, (kw - 1) * dw + 1];
  const values = new Float32Array(eh * ew * c * m);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      for (let k = 0; k < c * m; k++) {
        values[((i * dh) * ew + j * dw) * c * m + k] = f.values[(i * kw + j) * c * m + k] ?? 0;
      }
    }
  }
  return { values, shape: [eh, ew, c, m], dtype: 'float32' };
}

/** The taps of a dilated filter's gradient, taken from its undilated (zero-inserted) form. */
function undilateFilter(f: Host, dilations: [number, number], kernel: [number, number]): Host {
  const [, ew, c, m] = f.shape as Shape4;
  const [dh, dw] = dilations;
  const [kh, kw] = kernel;
  const values = new Float32Array(kh * kw * c * m);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      for (let k = 0; k < c * m; k++) {
        values[(i * kw + j) * c * m + k] = f.values[((i * dh) * ew + j * dw) * c * m + k] ?? 0;
      }
    }
  }
  return { values, shape: [kh, kw, c, m], dtype: 'float32' };
}

interface ConvCase {
  name: string;
  x: Shape4;
  kernel: Pair;
  /** Output channels for conv2d, channel multiplier for depthwise. */
  channels: number;
  strides: Pair;
  dilations?: Pair;
  pad: Pad;
  round?: 'floor' | 'ceil';
}

function describeCase(c: Omit<ConvCase, 'name'>): ConvCase {
  const parts = [
    `x ${c.x.join('x')}`,
    `k ${pair(c.kernel).join('x')}`,
    `ch ${c.channels}`,
    `s ${pair(c.strides).join('x')}`,
    `d ${pair(c.dilations ?? 1).join('x')}`,
    `pad ${JSON.stringify(c.pad)}`,
  ];
  if (c.round) parts.push(`round ${c.round}`);
  return { ...c, name: parts.join(', ') };
}

const CONV_CASES: ConvCase[] = [
  ...[1, 3, 5].flatMap((kernel) =>
    ([1, 2, [2, 1]] as Pair[]).flatMap((strides) =>
      (['same', 'valid'] as const).map((pad) =>
        describeCase({ x: [2, 7, 9, 3], kernel, channels: 4, strides, pad }),
      ),
    ),
  ),
  describeCase({ x: [2, 8, 8, 2], kernel: 3, channels: 3, strides: 2, pad: 'valid' }), // unused last row
  describeCase({ x: [1, 11, 10, 2], kernel: 5, channels: 2, strides: 3, pad: 'same' }),
  describeCase({ x: [2, 6, 7, 3], kernel: [3, 2], channels: 2, strides: [1, 2], pad: 'same' }),
  describeCase({ x: [3, 1, 1, 4], kernel: 1, channels: 5, strides: 1, pad: 'valid' }),
  describeCase({ x: [2, 7, 6, 2], kernel: 3, channels: 3, strides: 1, pad: 1 }),
  describeCase({ x: [2, 7, 6, 2], kernel: 3, channels: 3, strides: 2, pad: 2, round: 'ceil' }),
  describeCase({ x: [2, 7, 6, 2], kernel: 3, channels: 3, strides: 2, pad: 1, round: 'floor' }),
  describeCase({ x: [1, 6, 6, 2], kernel: 3, channels: 2, strides: 1, pad: 3 }), // pad beyond the filter
  describeCase({ x: [2, 7, 8, 2], kernel: 3, channels: 3, strides: 2, pad: [[0, 0], [1, 2], [0, 3], [0, 0]] }),
];

const DEPTHWISE_CASES: ConvCase[] = [
  ...[1, 3, 5].flatMap((kernel) =>
    [1, 2].flatMap((strides) =>
      (['same', 'valid'] as const).flatMap((pad) =>
        [1, 2].map((channels) => describeCase({ x: [2, 7, 9, 3], kernel, channels, strides, pad })),
      ),
    ),
  ),
  ...([2, [2, 1]] as Pair[]).flatMap((dilations) =>
    (['same', 'valid'] as const).flatMap((pad) =>
      [1, 2].map((channels) => describeCase({ x: [2, 8, 9, 2], kernel: 3, channels, strides: 1, dilations, pad })),
    ),
  ),
  describeCase({ x: [2, 8, 8, 2], kernel: 3, channels: 2, strides: 2, pad: 'valid' }),
  describeCase({ x: [1, 11, 10, 3], kernel: 5, channels: 3, strides: 3, pad: 'same' }),
  describeCase({ x: [2, 7, 6, 2], kernel: [3, 2], channels: 2, strides: [2, 1], pad: 2, round: 'ceil' }),
  describeCase({ x: [1, 6, 6, 2], kernel: 3, channels: 1, strides: 1, pad: 3 }),
  describeCase({ x: [3, 1, 1, 4], kernel: 1, channels: 2, strides: 1, pad: 'valid' }),
];

/** Each case draws different data; the seed is derived from the case's position. */
function seeds(index: number): [number, number] {
  return [1000 + 2 * index, 1001 + 2 * index];
}

let wasmOwnBackpropInput: tf.KernelConfig | undefined;

beforeAll(async () => {
  await use('cpu');
  await use('wasm');
  wasmOwnBackpropInput = tf.getKernel('Conv2DBackpropInput', 'wasm');
  registerWasmGradientKernels();
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('Conv2D gradient kernels on wasm match cpu', () => {
  CONV_CASES.forEach((c, index) =>
    it(`Conv2DBackpropFilter: ${c.name}`, async () => {
      const [kh, kw] = pair(c.kernel);
      const filterShape: Shape4 = [kh, kw, c.x[3], c.channels];
      const info = convInfo(c.x, filterShape, c.strides, 1, c.pad, false, c.round);
      const [s1, s2] = seeds(index);
      const inputs = { x: random(c.x, s1), dy: random(info.outShape, s2) };
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: c.round, filterShape };
      const expected = await runKernel('cpu', 'Conv2DBackpropFilter', inputs, attrs);
      const actual = await runKernel('wasm', 'Conv2DBackpropFilter', inputs, attrs);
      expect(relativeError(actual, expected)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
    }),
  );

  CONV_CASES.forEach((c, index) =>
    it(`Conv2DBackpropInput: ${c.name}`, async () => {
      const [kh, kw] = pair(c.kernel);
      const filterShape: Shape4 = [kh, kw, c.x[3], c.channels];
      const info = convInfo(c.x, filterShape, c.strides, 1, c.pad, false, c.round);
      const [s1, s2] = seeds(index);
      const inputs = { dy: random(info.outShape, s1), filter: random(filterShape, s2) };
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: c.round, inputShape: c.x };
      const expected = await runKernel('cpu', 'Conv2DBackpropInput', inputs, attrs);
      const actual = await runKernel('wasm', 'Conv2DBackpropInput', inputs, attrs);
      expect(relativeError(actual, expected)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
    }),
  );
});

describe('DepthwiseConv2dNative gradient kernels on wasm match cpu', () => {
  // cpu's depthwise backprop kernels ignore dilations (TF.js's depthwise gradient never passes
  // dilations > 1), so for dilated cases the reference runs cpu undilated on the equivalent
  // zero-inserted filter.
  DEPTHWISE_CASES.forEach((c, index) =>
    it(`DepthwiseConv2dNativeBackpropFilter: ${c.name}`, async () => {
      const [kh, kw] = pair(c.kernel);
      const dilations = pair(c.dilations ?? 1);
      const filterShape: Shape4 = [kh, kw, c.x[3], c.channels];
      const info = convInfo(c.x, filterShape, c.strides, dilations, c.pad, true, c.round);
      const [s1, s2] = seeds(index);
      const inputs = { x: random(c.x, s1), dy: random(info.outShape, s2) };
      const attrs = { strides: c.strides, dilations, pad: c.pad, dimRoundingMode: c.round, filterShape };
      const effective: Shape4 = [info.effectiveFilterHeight, info.effectiveFilterWidth, c.x[3], c.channels];
      const reference = await runKernel('cpu', 'DepthwiseConv2dNativeBackpropFilter', inputs, {
        ...attrs,
        dilations: 1,
        filterShape: effective,
      });
      const expected = undilateFilter(reference, dilations, [kh, kw]);
      const actual = await runKernel('wasm', 'DepthwiseConv2dNativeBackpropFilter', inputs, attrs);
      expect(relativeError(actual, expected)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
    }),
  );

  DEPTHWISE_CASES.forEach((c, index) =>
    it(`DepthwiseConv2dNativeBackpropInput: ${c.name}`, async () => {
      const [kh, kw] = pair(c.kernel);
      const dilations = pair(c.dilations ?? 1);
      const filterShape: Shape4 = [kh, kw, c.x[3], c.channels];
      const info = convInfo(c.x, filterShape, c.strides, dilations, c.pad, true, c.round);
      const [s1, s2] = seeds(index);
      const dy = random(info.outShape, s1);
      const filter = random(filterShape, s2);
      const attrs = { strides: c.strides, dilations, pad: c.pad, dimRoundingMode: c.round, inputShape: c.x };
      const expected = await runKernel(
        'cpu',
        'DepthwiseConv2dNativeBackpropInput',
        { dy, filter: dilateFilter(filter, dilations) },
        { ...attrs, dilations: 1 },
      );
      const actual = await runKernel('wasm', 'DepthwiseConv2dNativeBackpropInput', { dy, filter }, attrs);
      expect(relativeError(actual, expected)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
    }),
  );

  it('the zero-inserted filter reference is the dilated convolution (forward check on cpu)', async () => {
    await use('cpu');
    const x = toTensor(random([2, 8, 9, 2], 7)) as tf.Tensor4D;
    const f = random([3, 3, 2, 2], 8);
    const dilated = tf.depthwiseConv2d(x, toTensor(f) as tf.Tensor4D, 1, 'same', 'NHWC', [2, 1]);
    const inserted = tf.depthwiseConv2d(x, toTensor(dilateFilter(f, [2, 1])) as tf.Tensor4D, 1, 'same');
    expect(relativeError(await toHost(inserted), await toHost(dilated))).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, dilated, inserted]);
  });
});

describe('UnsortedSegmentSum on wasm matches cpu', () => {
  const cases: { name: string; x: Host; ids: Host; numSegments: number }[] = [
    { name: 'rank 1, repeated ids', x: random([6], 1), ids: ints([0, 2, 2, 1, 0, 2]), numSegments: 3 },
    { name: 'rank 3, empty segments', x: random([7, 3, 2], 2), ids: ints([4, 0, 4, 1, 1, 4, 0]), numSegments: 6 },
    { name: 'out-of-range ids are dropped', x: random([5, 2], 3), ids: ints([-1, 0, 3, 1, 7]), numSegments: 3 },
    { name: 'one row', x: random([1, 4], 4), ids: ints([2]), numSegments: 3 },
    { name: 'no rows', x: random([0, 3], 5), ids: ints([]), numSegments: 2 },
  ];
  it.each(cases)('$name', async (c) => {
    const inputs = { x: c.x, segmentIds: c.ids };
    const attrs = { numSegments: c.numSegments };
    const expected = await runKernel('cpu', 'UnsortedSegmentSum', inputs, attrs);
    const actual = await runKernel('wasm', 'UnsortedSegmentSum', inputs, attrs);
    expect(relativeError(actual, expected)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
  });

  it.each([
    { name: 'axis 0', x: [10, 4], indices: [3, 7, 3, 0, 9, 7], axis: 0 },
    { name: 'axis 1', x: [3, 6, 2], indices: [5, 0, 5], axis: 1 },
  ])('gather gradient, $name', async (c) => {
    const table = random(c.x, 11);
    const gradient = async (backend: Backend): Promise<Host> => {
      await use(backend);
      const x = toTensor(table);
      const indices = toTensor(ints(c.indices));
      const dx = tf.grad((t: tf.Tensor) => {
        const g = tf.gather(t, indices, c.axis);
        return g.mul(toTensor(random(g.shape, 12))).sum();
      })(x);
      const host = await toHost(dx);
      tf.dispose([x, indices, dx]);
      return host;
    };
    expect(relativeError(await gradient('wasm'), await gradient('cpu'))).toBeLessThanOrEqual(KERNEL_TOLERANCE);
  });
});

/** Deterministic weights for a model: positive scales and variances for batch norm. */
function weightValues(model: tf.LayersModel): Host[] {
  return model.weights.map((w, i) => {
    const h = random(w.shape.map((d) => d ?? 1), 500 + i);
    if (/gamma|moving_variance/.test(w.originalName)) h.values = h.values.map((v) => 1 + 0.5 * v);
    else if (/kernel|embeddings/.test(w.originalName)) h.values = h.values.map((v) => 0.5 * v);
    return h;
  });
}

function sequentialConvNet(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [10, 10, 3], filters: 6, kernelSize: 3, padding: 'same', useBias: false }),
      tf.layers.batchNormalization(),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same' }),
      tf.layers.conv2d({ filters: 4, kernelSize: 1 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5 }),
    ],
  });
}

function functionalConvNet(): tf.LayersModel {
  const input = tf.input({ shape: [11, 9, 2] });
  const a = tf.layers
    .conv2d({ filters: 5, kernelSize: 5, strides: 2, padding: 'valid', activation: 'relu' })
    .apply(input);
  const b = tf.layers
    .separableConv2d({ filters: 4, kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: false })
    .apply(a);
  const c = tf.layers.batchNormalization().apply(b);
  const d = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'valid' }).apply(c);
  const e = tf.layers.globalAveragePooling2d({}).apply(d);
  const output = tf.layers.dense({ units: 5 }).apply(e) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: output });
}

function embeddingNet(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.embedding({ inputDim: 20, outputDim: 4, inputLength: 6 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5 }),
    ],
  });
}

interface ModelCase {
  name: string;
  build: () => tf.LayersModel;
  x: Host;
}

const BATCH = 4;
const MODEL_CASES: ModelCase[] = [
  {
    name: 'sequential conv + batch norm + max pool + depthwise + dense',
    build: sequentialConvNet,
    x: random([BATCH, 10, 10, 3], 21),
  },
  {
    name: 'functional strided conv + separable + batch norm + depthwise',
    build: functionalConvNet,
    x: random([BATCH, 11, 9, 2], 22),
  },
  {
    name: 'embedding + dense',
    build: embeddingNet,
    x: ints([1, 5, 5, 19, 0, 3, 2, 2, 7, 7, 7, 1, 0, 0, 12, 19, 4, 4, 9, 5, 8, 3, 1, 16], [BATCH, 6]),
  },
];
const LABELS = ints([0, 3, 1, 4]);

function loss(model: tf.LayersModel, x: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const logits = model.apply(x, { training: true }) as tf.Tensor;
  return tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(tf.oneHot(labels, 5), logits);
}

/** Builds the model on `backend` with the given weights; returns d(loss)/d(weight) per trainable weight. */
async function modelGradients(
  backend: Backend,
  c: ModelCase,
  weights: Host[] | undefined,
): Promise<{ weights: Host[]; grads: Host[] }> {
  await use(backend);
  const model = c.build();
  const values = weights ?? weightValues(model);
  tf.tidy(() => model.setWeights(values.map(toTensor)));
  const x = toTensor(c.x);
  const labels = toTensor(LABELS);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => loss(model, x, labels), vars);
  const hosts = await Promise.all(vars.map((v) => toHost(grads[v.name] as tf.Tensor)));
  tf.dispose([value, x, labels, ...Object.values(grads)]);
  model.dispose();
  return { weights: values, grads: hosts };
}

describe('whole models: variableGrads on wasm match cpu (training mode)', () => {
  // Same 1e-5 bound as the kernels: it holds for whole models (observed ~1e-6 at most). Layers
  // that feed batch norm have no bias (as in real nets): that gradient is zero in theory, so
  // both backends would return float32 noise (~1e-8) whose relative comparison means nothing.
  MODEL_CASES.forEach((c) =>
    it(c.name, async () => {
      const cpu = await modelGradients('cpu', c, undefined);
      const wasm = await modelGradients('wasm', c, cpu.weights);
      expect(wasm.grads.length).toBe(cpu.grads.length);
      expect(wasm.grads.length).toBeGreaterThan(0);
      wasm.grads.forEach((g, i) => {
        const expected = cpu.grads[i];
        if (expected === undefined) throw new Error(`missing cpu gradient ${i}`);
        expect(relativeError(g, expected), `gradient ${i}`).toBeLessThanOrEqual(KERNEL_TOLERANCE);
      });
    }),
  );
});

describe('memory', () => {
  it('training steps on wasm keep tensor and backend data counts flat', async () => {
    await use('wasm');
    const model = sequentialConvNet();
    tf.tidy(() => model.setWeights(weightValues(model).map(toTensor)));
    const x = toTensor(random([BATCH, 10, 10, 3], 31));
    const labels = toTensor(LABELS);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const optimizer = tf.train.sgd(0.01);
    const step = (): void => {
      optimizer.minimize(() => loss(model, x, labels), false, vars);
    };
    step();
    // numTensors counts engine tensors; our kernels' intermediates live only in the backend,
    // so numDataIds is what would catch a leak inside them.
    const tensors = tf.memory().numTensors;
    const dataIds = tf.engine().backend.numDataIds();
    for (let i = 0; i < 4; i++) step();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(dataIds);
    tf.dispose([x, labels]);
    optimizer.dispose();
    model.dispose();
  });

  it('each kernel leaves only its output behind, also on the cropping and out-of-range paths', async () => {
    const calls: [string, Record<string, Host>, Record<string, unknown>][] = [
      [
        'Conv2DBackpropFilter', // crops x: stride 2 'valid' leaves the last row unused
        { x: random([2, 8, 8, 2], 1), dy: random([2, 3, 3, 3], 2) },
        { strides: 2, pad: 'valid', dataFormat: 'NHWC', filterShape: [3, 3, 2, 3] },
      ],
      [
        'Conv2DBackpropInput', // crops dy: padding beyond the filter
        { dy: random([1, 10, 10, 2], 3), filter: random([3, 3, 2, 2], 4) },
        { strides: 1, pad: 3, dataFormat: 'NHWC', inputShape: [1, 6, 6, 2] },
      ],
      [
        'DepthwiseConv2dNativeBackpropFilter',
        { x: random([2, 7, 9, 3], 5), dy: random([2, 4, 5, 6], 6) },
        { strides: 2, dilations: 1, pad: 'same', filterShape: [3, 3, 3, 2] },
      ],
      [
        'DepthwiseConv2dNativeBackpropInput',
        { dy: random([2, 4, 5, 6], 7), filter: random([3, 3, 3, 2], 8) },
        { strides: 2, dilations: 1, pad: 'same', inputShape: [2, 7, 9, 3] },
      ],
      ['UnsortedSegmentSum', { x: random([5, 2], 9), segmentIds: ints([-1, 0, 3, 1, 7]) }, { numSegments: 3 }],
    ];
    await use('wasm');
    for (const [kernel, inputs, attrs] of calls) {
      await runKernel('wasm', kernel, inputs, attrs);
      const dataIds = tf.engine().backend.numDataIds();
      const tensors = tf.memory().numTensors;
      await runKernel('wasm', kernel, inputs, attrs);
      expect(tf.engine().backend.numDataIds(), kernel).toBe(dataIds);
      expect(tf.memory().numTensors, kernel).toBe(tensors);
    }
  });
});

describe('registration and unsupported attributes', () => {
  it('replaces wasm’s own Conv2DBackpropInput and registers every kernel', () => {
    for (const name of [
      'Conv2DBackpropFilter',
      'Conv2DBackpropInput',
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
      'UnsortedSegmentSum',
    ]) {
      expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
    }
    expect(wasmOwnBackpropInput).toBeDefined();
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc).not.toBe(wasmOwnBackpropInput?.kernelFunc);
  });

  it('registering twice is a no-op: no warnings, same kernels, still correct', async () => {
    const warn = vi.spyOn(console, 'warn');
    const before = tf.getKernel('Conv2DBackpropFilter', 'wasm')?.kernelFunc;
    registerWasmGradientKernels();
    registerWasmGradientKernels();
    expect(warn).not.toHaveBeenCalled();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')?.kernelFunc).toBe(before);
    const inputs = { x: random([1, 5, 5, 2], 41), dy: random([1, 5, 5, 3], 42) };
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 2, 3] };
    const expected = await runKernel('cpu', 'Conv2DBackpropFilter', inputs, attrs);
    const actual = await runKernel('wasm', 'Conv2DBackpropFilter', inputs, attrs);
    expect(relativeError(actual, expected)).toBeLessThanOrEqual(KERNEL_TOLERANCE);
  });

  it.each<{ kernel: string; inputs: Record<string, Host>; attrs: Record<string, unknown>; error: RegExp }>([
    {
      kernel: 'Conv2DBackpropFilter',
      inputs: { x: random([1, 2, 5, 5], 1), dy: random([1, 3, 5, 5], 2) },
      attrs: { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] },
      error: /Conv2DBackpropFilter attribute 'dataFormat'.*NCHW/,
    },
    {
      kernel: 'Conv2DBackpropInput',
      inputs: { dy: random([1, 3, 5, 5], 1), filter: random([3, 3, 2, 3], 2) },
      attrs: { strides: 1, pad: 'same', dataFormat: 'NCHW', inputShape: [1, 2, 5, 5] },
      error: /Conv2DBackpropInput attribute 'dataFormat'.*NCHW/,
    },
    {
      kernel: 'DepthwiseConv2dNativeBackpropFilter',
      inputs: { x: random([1, 9, 9, 2], 1), dy: random([1, 5, 5, 2], 2) },
      attrs: { strides: 2, dilations: 2, pad: 'same', filterShape: [3, 3, 2, 1] },
      error: /DepthwiseConv2dNativeBackpropFilter attribute 'dilations'/,
    },
    {
      kernel: 'DepthwiseConv2dNativeBackpropInput',
      inputs: { dy: random([1, 5, 5, 2], 1), filter: random([3, 3, 2, 1], 2) },
      attrs: { strides: 2, dilations: 2, pad: 'same', inputShape: [1, 9, 9, 2] },
      error: /DepthwiseConv2dNativeBackpropInput attribute 'dilations'/,
    },
    {
      kernel: 'UnsortedSegmentSum',
      inputs: { x: random([2, 3], 1), segmentIds: ints([0, 1, 1, 0, 0, 1], [2, 3]) },
      attrs: { numSegments: 2 },
      error: /UnsortedSegmentSum input 'segmentIds'.*rank 1/,
    },
  ])('$kernel rejects an unsupported combination with a clear error', async (c) => {
    await use('wasm');
    const dataIds = tf.engine().backend.numDataIds();
    await expect(runKernel('wasm', c.kernel, c.inputs, c.attrs)).rejects.toThrow(c.error);
    expect(tf.engine().backend.numDataIds()).toBe(dataIds);
  });
});
