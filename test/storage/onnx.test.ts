/**
 * ONNX -> TF.js conversion, checked against the ONNX model itself: onnxruntime is the oracle for
 * every op case (test/fixtures/onnx/ops, made by scripts/fixtures/make_onnx_ops.py), and the
 * PyTorch exports (scripts/fixtures/make_onnx_models.py) must reproduce PyTorch's own outputs.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { readLocalModelSource } from '../../src/clients/local-files.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { ModelProto, TensorProto_DataLocation } from '../../src/gen/onnx/onnx.js';
import { loadModel } from '../../src/metric/model/load.js';
import { parseNpz } from '../../src/storage/formats/npz.js';
import { isOnnxFile, readOnnxModel } from '../../src/storage/formats/onnx/index.js';
import { useWasm } from '../support/engine.js';

const OPS = 'test/fixtures/onnx/ops';
const MODELS = 'test/fixtures/onnx';
const TOLERANCE = 1e-4;

interface OpCase {
  case: string;
  file: string;
  description: string;
  input: { name: string; shape: number[] };
  output: { name: string; shape: number[] };
  ops: string[];
}

const cases = (JSON.parse(readFileSync(`${OPS}/cases.json`, 'utf8')) as { cases: OpCase[] }).cases;
const convertible = cases.filter((c) => c.case !== 'unsupported_ops');

beforeAll(useWasm);

/** NCHW -> NHWC for rank-4 arrays, identity otherwise. */
function toTf(values: Float32Array, shape: number[]): tf.Tensor {
  const t = tf.tensor(values, shape);
  return shape.length === 4 ? tf.tidy(() => t.transpose([0, 2, 3, 1])) : t;
}

async function converted(bytes: Uint8Array, name: string): Promise<tf.LayersModel> {
  const { artifacts } = await readOnnxModel(bytes, name);
  return loadModel(artifacts);
}

function maxDiff(actual: tf.Tensor, expected: tf.Tensor): number {
  return tf.tidy(() => actual.sub(expected).abs().max().dataSync()[0]!);
}

describe('every ONNX op case', () => {
  it.each(convertible.map((c) => [c.case, c] as const))('%s: equals onnxruntime', async (_, spec) => {
    const bytes = readFileSync(`${OPS}/${spec.file}`);
    expect(isOnnxFile(bytes)).toBe(true);
    const model = await converted(bytes, spec.file);
    const size = spec.input.shape.reduce((a, b) => a * b, 1);
    const x = Float32Array.from({ length: size }, (_, i) => Math.sin(i * 12.9898 + 78.233) * 2);
    const session = await ort.InferenceSession.create(bytes);
    const result = await session.run({ [spec.input.name]: new ort.Tensor('float32', x, spec.input.shape) });
    const out = result[spec.output.name]!;
    const expected = toTf(out.data as Float32Array, out.dims as number[]);
    const input = toTf(x, spec.input.shape);
    let actual = model.predict(input) as tf.Tensor;
    if (spec.ops.includes('LogSoftmax')) actual = tf.log(actual);
    expect(actual.shape).toEqual(expected.shape);
    expect(maxDiff(actual, expected), spec.description).toBeLessThan(TOLERANCE);
    tf.dispose([expected, input, actual]);
    model.dispose();
  });

  it('refuses unsupported ops before any work, listing each with a node name', async () => {
    const attempt = converted(readFileSync(`${OPS}/unsupported_ops.onnx`), 'unsupported_ops.onnx');
    await expect(attempt).rejects.toThrow(InvalidArgumentError);
    await expect(attempt).rejects.toThrow(/ops memometer cannot convert: Einsum \(node [^)]+\), CumSum \(node [^)]+\)/);
  });

  it('refuses a corrupt file with INVALID_ARGUMENT', async () => {
    const bytes = readFileSync(`${MODELS}/cnn.onnx`);
    await expect(converted(bytes.subarray(0, 1000), 'cut.onnx')).rejects.toThrow(/model: cut.onnx is not a readable ONNX model/);
    expect(isOnnxFile(new TextEncoder().encode('{"modelTopology": {}}'))).toBe(false);
  });
});

describe('PyTorch exports', () => {
  it.each(['cnn', 'resnet_bn_folded', 'resnet_bn_kept', 'mobilenet', 'view_flatten', 'mlp_ln_gelu', 'pool_variants', 'pad_asym', 'convtranspose'])(
    '%s equals PyTorch and onnxruntime within 1e-4',
    async (name) => {
      const bytes = readFileSync(`${MODELS}/${name}.onnx`);
      const model = await converted(bytes, `${name}.onnx`);
      const arrays = parseNpz(readFileSync(`${MODELS}/${name}.npz`));
      const x = arrays.get('x')!;
      const y = arrays.get('y')!;
      const session = await ort.InferenceSession.create(bytes);
      const ran = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x.data as Float32Array, x.shape) });
      const input = toTf(x.data as Float32Array, x.shape);
      const actual = model.predict(input) as tf.Tensor;
      const torch = tf.tensor(y.data as Float32Array, y.shape);
      const onnxruntime = tf.tensor(ran[session.outputNames[0]!]!.data as Float32Array, y.shape);
      expect(maxDiff(actual, torch)).toBeLessThan(TOLERANCE);
      expect(maxDiff(actual, onnxruntime)).toBeLessThan(TOLERANCE);
      tf.dispose([input, actual, torch, onnxruntime]);
      model.dispose();
    },
  );
});

describe('ONNX external data (models over 2 GB keep their weights in files next to the model)', () => {
  it('reads initializers from a file next to the model, at their offsets', async () => {
    const original = readFileSync(`${MODELS}/cnn.onnx`);
    const model = ModelProto.decode(original);
    const chunks: Buffer[] = [Buffer.alloc(16)];
    let offset = 16;
    model.graph!.initializer = model.graph!.initializer.map((t) => {
      const raw = Buffer.from(t.rawData!);
      chunks.push(raw);
      const entry = { location: 'cnn.weights', offset: String(offset), length: String(raw.length) };
      offset += raw.length;
      return {
        ...t, rawData: Buffer.alloc(0), dataLocation: TensorProto_DataLocation.EXTERNAL,
        externalData: Object.entries(entry).map(([key, value]) => ({ key, value })),
      };
    });
    const dir = await mkdtemp(path.join(tmpdir(), 'memometer-onnx-'));
    try {
      await writeFile(path.join(dir, 'cnn.onnx'), ModelProto.encode(model).finish());
      await writeFile(path.join(dir, 'cnn.weights'), Buffer.concat(chunks));
      const external = await loadModel((await readLocalModelSource(path.join(dir, 'cnn.onnx'))).artifacts);
      const inline = await converted(original, 'cnn.onnx');
      const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 3);
      expect(maxDiff(external.predict(x) as tf.Tensor, inline.predict(x) as tf.Tensor)).toBe(0);
      tf.dispose([x]);
      external.dispose();
      inline.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
