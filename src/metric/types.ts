import type * as tf from '@tensorflow/tfjs';
import type { HeadInit } from './heads/heads.js';
import type { InputScaling } from './prepare.js';
import type { OptimizerName } from './train/optimizer.js';

export const MODES = ['frozen', 'joint'] as const;
export type Mode = (typeof MODES)[number];
export const HEAD_SHARING = ['per-class', 'shared'] as const;
export type HeadSharing = (typeof HEAD_SHARING)[number];

export interface MeasureOptions {
  /** Copy depths d: the top is the last d layers. Several give a depth profile. */
  copyDepths: number[];
  /** n, the number of random labels (chance = 1/n). */
  numRandomLabels: number;
  mode: Mode;
  heads: HeadSharing;
  headInit: HeadInit;
  epochs: number;
  /** Samples per training step across all heads (per-class heads get batchSize / C each). */
  batchSize: number;
  learningRate: number;
  optimizer: OptimizerName;
  weightDecay: number;
  /** Weight of L_reg in joint mode (0: the heads are a pure probe). */
  lambda: number;
  /** Label smoothing of L_class in joint mode. */
  labelSmoothing: number;
  /** Joint mode: re-initialise the model instead of fine-tuning the given weights. */
  reinitialize: boolean;
  /** One run per seed; scores report mean and spread. */
  seeds: number[];
  maxSamples?: number;
  /** Held out from training when the dataset has no test arrays. */
  heldOutFraction: number;
  inputScaling?: InputScaling;
  /** Refuse a measurement whose estimated memory exceeds this. */
  memoryBudgetBytes: number;
  /**
   * Threads that train frozen mode's per-class heads on the wasm backend: 'auto' uses two where
   * the heads' work pays for a worker's start, else 1 (the main thread); a number forces it.
   */
  headWorkers: number | 'auto';
  /** Stops the run between steps with CancelledError. */
  signal?: AbortSignal;
}

export interface Losses {
  randomLabel: number;
  classification?: number;
  forget?: number;
}

export interface PlanEvent {
  type: 'planned';
  /** The TF.js backend doing the work. */
  backend: string;
  mode: Mode;
  heads: HeadSharing;
  copyDepths: number[];
  headsPerDepth: number;
  headParameters: number[];
  /** Frozen mode: threads training each depth's heads (1: the main thread). */
  headWorkers?: number[];
  samples: { train: number; heldOut: number; heldOutSource: 'test' | 'train-split' };
  numClasses: number;
  estimatedBytes: number;
  /** Where the model came from, and what its conversion changed or assumed. */
  model: ModelInfo;
  /** How the data set's images were laid out ('NCHW' ones are transposed to the model's NHWC). */
  datasetLayout: ImageLayout;
}

export type ImageLayout = 'NHWC' | 'NCHW';

export interface ModelInfo {
  format: 'tfjs' | 'onnx' | 'keras';
  notes: string[];
  /** The layout the original model takes images in: ONNX models are NCHW. */
  inputLayout: ImageLayout;
}

export interface FeaturesEvent {
  type: 'features';
  seconds: number;
  samples: number;
}

export interface EpochEvent {
  type: 'epoch';
  seed: number;
  copyDepth: number;
  epoch: number;
  epochs: number;
  /** Running accuracy on the epoch's training batches (training mode). */
  randomLabelAccuracy: number;
  classAccuracy?: number;
  losses: Losses;
  samplesPerSecond: number;
}

export interface SeedScore {
  seed: number;
  randomLabelAccuracy: number;
  memorizationScore: number;
  heldOutRandomLabelAccuracy: number;
  classTrainAccuracy: number;
  classTestAccuracy: number;
}

export interface DepthResult {
  copyDepth: number;
  /** Mean over seeds, inference mode, on the training samples. */
  randomLabelAccuracy: number;
  randomLabelAccuracyStd: number;
  chance: number;
  /** Chance-corrected: (acc - 1/n) / (1 - 1/n). */
  memorizationScore: number;
  memorizationScoreStd: number;
  /** On samples the heads never saw: must sit at chance. */
  heldOutRandomLabelAccuracy: number;
  classTrainAccuracy: number;
  classTestAccuracy: number;
  headParameters: number;
  seeds: SeedScore[];
  /** Mean running random-label accuracy per epoch. */
  curve: number[];
}

export interface DepthResultEvent {
  type: 'depthResult';
  result: DepthResult;
}

export interface MeasurementResult {
  mode: Mode;
  heads: HeadSharing;
  numRandomLabels: number;
  chance: number;
  samples: PlanEvent['samples'];
  depths: DepthResult[];
  warnings: string[];
  seconds: number;
}

export interface DoneEvent {
  type: 'done';
  result: MeasurementResult;
  /** Joint mode: the fine-tuned model of the last seed. */
  fineTunedModel?: tf.io.ModelArtifacts;
}

export type MeasurementEvent = PlanEvent | FeaturesEvent | EpochEvent | DepthResultEvent | DoneEvent;
