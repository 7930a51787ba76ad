/**
 * Ops whose inputs are all constants are computed at conversion time: the shape arithmetic
 * exporters write (Shape -> Gather -> Unsqueeze -> Concat for `x.view(x.size(0), -1)`, the pads
 * chain of F.pad), with the batch size kept symbolic.
 */
import { attributes, BATCH, fail, type Fold, intsAttr, out0 } from './graph.js';
import { transpose } from './tensors.js';


const scalarOp = (f: (x: number, y: number) => number): Fold => (c, node) => {
  const [a, b] = [c.constant(node.input[0]!, node), c.constant(node.input[1]!, node)];
  if (a.values.some((v) => v === BATCH) || b.values.some((v) => v === BATCH)) fail(node, 'arithmetic on the batch size is not supported');
  const [x, y] = [Array.from(a.values as ArrayLike<number>), Array.from(b.values as ArrayLike<number>)];
  const n = Math.max(x.length, y.length);
  const values = Array.from({ length: n }, (_, i) => f(x[x.length === 1 ? 0 : i]!, y[y.length === 1 ? 0 : i]!));
  const floats = a.values instanceof Float32Array || b.values instanceof Float32Array;
  c.setConstant(out0(node), x.length >= y.length ? a.dims : b.dims, floats ? Float32Array.from(values) : values);
};

export const FOLD: Record<string, Fold> = {
  Gather: (c, node) => {
    const data = c.ints(node.input[0]!, node);
    const index = c.ints(node.input[1]!, node) as number[];
    const indices = c.constant(node.input[1]!, node);
    const picked = index.map((i) => data[(i + data.length) % data.length]!);
    c.setConstant(out0(node), indices.dims, picked);
  },
  Unsqueeze: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims.length === 0 ? [1] : [...v.dims, 1], v.values);
  },
  Squeeze: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims.filter((d) => d !== 1), v.values);
  },
  Concat: (c, node) => {
    const parts = node.input.map((i) => c.ints(i, node));
    const values = parts.flat();
    c.setConstant(out0(node), [values.length], values);
  },
  Cast: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims, v.values);
  },
  Identity: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    c.setConstant(out0(node), v.dims, v.values);
  },
  Slice: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    const data = c.ints(node.input[0]!, node);
    const list = (i: number) => (node.input[i] ? (c.ints(node.input[i], node) as number[]) : undefined);
    const starts = list(1)!;
    const axes = (list(3) ?? starts.map((_, i) => i)).map((ax) => (ax + v.dims.length) % v.dims.length);
    const steps = list(4) ?? starts.map(() => 1);
    // Per axis, the source indices kept (numpy slicing with clamping).
    const kept = v.dims.map((n, axis) => {
      const k = axes.indexOf(axis);
      if (k < 0) return Array.from({ length: n }, (_, i) => i);
      const step = steps[k]!;
      const norm = (i: number) => (i < 0 ? i + n : i);
      const start = step > 0 ? Math.min(Math.max(norm(starts[k]!), 0), n) : Math.min(Math.max(norm(starts[k]!), -1), n - 1);
      const end = step > 0 ? Math.min(Math.max(norm(list(2)![k]!), 0), n) : Math.min(Math.max(norm(list(2)![k]!), -1), n - 1);
      const out: number[] = [];
      for (let i = start; step > 0 ? i < end : i > end; i += step) out.push(i);
      return out;
    });
    const strides = v.dims.map((_, i) => v.dims.slice(i + 1).reduce((a, b) => a * b, 1));
    let flat = [0];
    kept.forEach((indices, axis) => {
      flat = flat.flatMap((offset) => indices.map((i) => offset + i * strides[axis]!));
    });
    const values = flat.map((i) => data[i]!);
    c.setConstant(out0(node), kept.map((k) => k.length), v.values instanceof Float32Array ? Float32Array.from(values as number[]) : values);
  },
  ConstantOfShape: (c, node) => {
    const dims = c.ints(node.input[0]!, node) as number[];
    const fill = attributes(node).get('value')?.t;
    const value = fill ? Number(fill.floatData[0] ?? fill.int64Data[0] ?? (fill.rawData?.length ? new DataView(fill.rawData.buffer, fill.rawData.byteOffset).getInt32(0, true) : 0)) : 0;
    c.setConstant(out0(node), dims, new Array<number>(dims.reduce((a, b) => a * b, 1)).fill(value));
  },
  Reshape: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    const target = c.ints(node.input[1]!, node) as number[];
    const size = v.values.length;
    const known = target.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    c.setConstant(out0(node), target.map((d) => (d === -1 ? size / known : d)), v.values);
  },
  Transpose: (c, node) => {
    const v = c.constant(node.input[0]!, node);
    const perm = intsAttr(attributes(node), 'perm') ?? v.dims.map((_, i) => v.dims.length - 1 - i);
    const moved = transpose(Float32Array.from(v.values as ArrayLike<number>), v.dims, perm);
    const values = v.values instanceof Float32Array ? moved : Array.from(moved);
    c.setConstant(out0(node), perm.map((p) => v.dims[p]!), values);
  },
  Add: scalarOp((x, y) => x + y),
  Sub: scalarOp((x, y) => x - y),
  Mul: scalarOp((x, y) => x * y),
  Div: scalarOp((x, y) => x / y),
};
