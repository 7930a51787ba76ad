import * as tf from '@tensorflow/tfjs';
import { simdContext } from '../backend/simd/loader.js';
import { ADAM_UPDATE, MOMENTUM_UPDATE, SGD_UPDATE, UpdateAttrs } from '../backend/simd/updates.js';

export const OPTIMIZERS = ['adam', 'sgd', 'momentum'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

/** Optimizer state tensors per trained parameter, for memory estimates. */
export const OPTIMIZER_SLOTS: Record<OptimizerName, number> = { adam: 2, sgd: 0, momentum: 1 };

const BETA1 = 0.9;
const BETA2 = 0.999;
const MOMENTUM = 0.9;
const KERNELS: Record<OptimizerName, string> = { adam: ADAM_UPDATE, sgd: SGD_UPDATE, momentum: MOMENTUM_UPDATE };

/**
 * tf.train.adam(lr), tf.train.momentum(lr, 0.9) and tf.train.sgd(lr) with coupled L2 weight
 * decay (g + wd * w), the classic form that the papers' SGD runs use. The results match TF.js's
 * optimizers to rounding: the same float32 operations in the same order, Adam's bias
 * corrections from beta^t accumulated in float32. On wasm one fused kernel per variable does a
 * whole update (see src/metric/backend/simd/updates.ts); elsewhere tf ops do.
 */
export class Optimizer {
  /** Adam's m and v or momentum's accumulation, per variable. */
  private readonly slots = new Map<tf.Variable, tf.Tensor[]>();
  private readonly epsilon = tf.backend().epsilon();
  /** beta^t, rounded to float32 like TF.js's accBeta scalars. */
  private accBeta1 = Math.fround(BETA1);
  private accBeta2 = Math.fround(BETA2);

  constructor(
    readonly name: OptimizerName,
    readonly learningRate: number,
  ) {}

  /** Updates each of `variables` that has a gradient in `grads`, then disposes `grads`. */
  applyGradients(grads: tf.NamedTensorMap, variables: tf.Variable[], weightDecay: number): void {
    const attrs: UpdateAttrs = {
      learningRate: this.learningRate,
      decay: weightDecay,
      momentum: MOMENTUM,
      beta1: BETA1,
      beta2: BETA2,
      oneMinusAccBeta1: Math.fround(1 - this.accBeta1),
      oneMinusAccBeta2: Math.fround(1 - this.accBeta2),
      epsilon: this.epsilon,
    };
    const fused = tf.getBackend() === 'wasm' && tf.getKernel(KERNELS[this.name], 'wasm') !== undefined && simdContext(tf.backend()) !== undefined;
    for (const variable of variables) {
      const g = grads[variable.name];
      if (g === undefined) continue;
      const slots = this.slots.get(variable) ?? this.createSlots(variable);
      const [value, ...next] = tf.tidy(() => {
        const out = fused
          ? tf.engine().runKernel<tf.Tensor[]>(KERNELS[this.name], { w: variable, g, ...this.slotInputs(slots) }, attrs as unknown as tf.NamedAttrMap)
          : this.update(variable, g, slots, attrs);
        return out;
      });
      variable.assign(value!);
      value!.dispose();
      tf.dispose(slots);
      // Kept: the caller may run this inside a tidy, which would free the new slots.
      this.slots.set(variable, next.map((t) => tf.keep(t)));
    }
    if (this.name === 'adam') {
      this.accBeta1 = Math.fround(this.accBeta1 * Math.fround(BETA1));
      this.accBeta2 = Math.fround(this.accBeta2 * Math.fround(BETA2));
    }
    tf.dispose(grads);
  }

  dispose(): void {
    for (const slots of this.slots.values()) tf.dispose(slots);
    this.slots.clear();
  }

  private createSlots(variable: tf.Variable): tf.Tensor[] {
    return Array.from({ length: OPTIMIZER_SLOTS[this.name] }, () => tf.keep(tf.zerosLike(variable)));
  }

  private slotInputs(slots: tf.Tensor[]): tf.NamedTensorMap {
    const [first, second] = slots;
    if (this.name === 'adam') return { m: first!, v: second! };
    return this.name === 'momentum' ? { acc: first! } : {};
  }

  /** The update with tf ops, in TF.js's operation order: new weights, then the new slots. */
  private update(w: tf.Tensor, gradient: tf.Tensor, slots: tf.Tensor[], a: UpdateAttrs): tf.Tensor[] {
    const g = a.decay > 0 ? gradient.add(w.mul(a.decay)) : gradient;
    const step = (direction: tf.Tensor): tf.Tensor => direction.mul(tf.scalar(-a.learningRate)).add(w);
    if (this.name === 'sgd') return [step(g)];
    if (this.name === 'momentum') {
      const acc = slots[0]!.mul(MOMENTUM).add(g);
      return [step(acc), acc];
    }
    const m = slots[0]!.mul(BETA1).add(g.mul(1 - BETA1));
    const v = slots[1]!.mul(BETA2).add(g.square().mul(1 - BETA2));
    const corrected = m.div(a.oneMinusAccBeta1!).div(v.div(a.oneMinusAccBeta2!).sqrt().add(this.epsilon));
    return [step(corrected), m, v];
  }
}

export function createOptimizer(name: OptimizerName, learningRate: number): Optimizer {
  return new Optimizer(name, learningRate);
}

/** Applies gradients with coupled L2 weight decay (g + wd * w), then disposes them. */
export function applyGradients(
  optimizer: Optimizer,
  grads: tf.NamedTensorMap,
  variables: tf.Variable[],
  weightDecay: number,
): void {
  optimizer.applyGradients(grads, variables, weightDecay);
}
