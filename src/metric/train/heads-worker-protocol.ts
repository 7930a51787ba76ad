/** The messages between the main thread (head-workers.ts) and a head worker (heads-worker.ts). */
import type * as tf from '@tensorflow/tfjs';
import * as errors from '../../errors.js';
import type { HeadsOptions } from '../heads/heads.js';
import type { GroupRange } from './batches.js';
import type { Features, HeadTraining, StepResult } from './heads-step.js';

export interface WorkerSetup {
  model: tf.io.ModelArtifacts;
  /** The TF.js backend to initialise, the main thread's. */
  backend: 'wasm';
  /** Int32Array over a SharedArrayBuffer: non-zero asks the worker to stop before its next step. */
  stop: Int32Array;
}

/** One cut and seed: the heads `range` of `headsOptions.groups`; features over shared memory. */
export interface FrozenJob {
  depth: number;
  headsOptions: HeadsOptions;
  range: GroupRange;
  training: Omit<HeadTraining, 'signal'>;
  train: Features;
  heldOut: Features;
}

export type Command =
  | { type: 'begin'; job: FrozenJob }
  | { type: 'epoch'; epoch: number }
  /** Scores the heads on both splits and releases them. */
  | { type: 'finish' };

export type Reply =
  | { type: 'ready' }
  | { type: 'begun' }
  | { type: 'epoch'; steps: StepResult[] }
  | { type: 'finished'; correct: { train: number; heldOut: number } }
  | { type: 'error'; error: WireError };

/** An error as it crosses threads: structured clone keeps neither class nor subject. */
export interface WireError {
  name: string;
  message: string;
  detail?: string;
  subject?: string;
}

export function toWire(error: unknown): WireError {
  if (error instanceof errors.MemometerError) {
    return { name: error.name, message: error.message, detail: error.detail, subject: error.subject };
  }
  return error instanceof Error ? { name: error.name, message: error.message } : { name: 'Error', message: String(error) };
}

type ErrorClass = new (message: string, subject?: string) => errors.MemometerError;

/** The worker's error as the same typed class, with the same message. */
export function fromWire(wire: WireError): Error {
  const Class = (errors as Record<string, unknown>)[wire.name];
  if (wire.detail !== undefined && typeof Class === 'function' && Class.prototype instanceof errors.MemometerError) {
    return new (Class as ErrorClass)(wire.detail, wire.subject);
  }
  return Object.assign(new Error(wire.message), { name: wire.name });
}
