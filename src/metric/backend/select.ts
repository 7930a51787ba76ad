import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { FailedPreconditionError, InvalidArgumentError } from '../../errors.js';
import { registerDilatedConvGradients } from './dilated-gradients.js';
import { registerSimdKernels } from './simd/index.js';
import { registerWasmGradientKernels } from './wasm-gradients.js';

/** Backends in order of preference. `node-gpu` and `node` are libtensorflow bindings. */
export const BACKEND_NAMES = ['node-gpu', 'node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendRequest = BackendName | 'auto';

/** The environment variable that forces a backend (an explicit option wins over it). */
export const BACKEND_ENV = 'MEMOMETER_BACKEND';

/**
 * `off` keeps TF.js's own wasm matmul kernels and tf-op optimizer updates instead of
 * memometer's SIMD kernels: for before/after benchmarks, and as an escape hatch.
 */
export const SIMD_KERNELS_ENV = 'MEMOMETER_SIMD_KERNELS';

function simdKernelsWanted(): boolean {
  const value = process.env[SIMD_KERNELS_ENV] ?? 'on';
  if (value !== 'on' && value !== 'off') {
    throw new InvalidArgumentError(`must be 'on' or 'off', got '${value}'`, SIMD_KERNELS_ENV);
  }
  return value === 'on';
}

export interface BackendChoice {
  name: BackendName;
  /** The name TF.js registered the backend under (`tensorflow` for both node bindings). */
  tfName: string;
  /** Why the more preferred backends were skipped, in order; empty when the first one worked. */
  skipped: { name: BackendName; reason: string }[];
}

interface Candidate {
  tfName: string;
  /** Loads the package that registers the backend; throws when it is not installed. */
  load(): Promise<void>;
}

// Node bindings are optional packages: a string-valued specifier keeps bundlers and tsc from
// resolving them at build time, so an image without them still builds and runs.
async function importOptional(specifier: string): Promise<void> {
  await import(specifier);
}

/**
 * @tensorflow/tfjs-node(-gpu) 4.22 call util.isNullOrUndefined, which Node 23 removed (the
 * upstream fix, tensorflow/tfjs#8425, is unreleased). The CommonJS `util` object is mutable
 * (the ESM namespace is not): put the function back before a binding loads.
 */
export function restoreUtilIsNullOrUndefined(): void {
  const util = createRequire(import.meta.url)('util') as { isNullOrUndefined?: (value: unknown) => boolean };
  util.isNullOrUndefined ??= (value) => value === null || value === undefined;
}

async function importBinding(specifier: string): Promise<void> {
  restoreUtilIsNullOrUndefined();
  await importOptional(specifier);
}

const CANDIDATES: Record<BackendName, Candidate> = {
  'node-gpu': { tfName: 'tensorflow', load: () => importBinding('@tensorflow/tfjs-node-gpu') },
  node: { tfName: 'tensorflow', load: () => importBinding('@tensorflow/tfjs-node') },
  wasm: {
    tfName: 'wasm',
    load: async () => {
      await import('@tensorflow/tfjs-backend-wasm');
      registerWasmGradientKernels();
    },
  },
  cpu: { tfName: 'cpu', load: () => Promise.resolve() },
};

export function parseBackendRequest(value: string, subject: string): BackendRequest {
  if (value === 'auto' || (BACKEND_NAMES as readonly string[]).includes(value)) {
    return value as BackendRequest;
  }
  throw new InvalidArgumentError(
    `unknown backend '${value}'; expected one of auto, ${BACKEND_NAMES.join(', ')}`,
    subject,
  );
}

async function activate(name: BackendName, simdKernels: boolean): Promise<void> {
  const candidate = CANDIDATES[name];
  await candidate.load();
  if (name === 'wasm' && simdKernels) registerSimdKernels();
  if (!(await tf.setBackend(candidate.tfName))) {
    throw new Error(`TF.js could not initialise backend '${candidate.tfName}'`);
  }
  await tf.ready();
  registerDilatedConvGradients();
}

function describe(error: unknown): string {
  const code = (error as { code?: string }).code;
  if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return 'not installed';
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

/**
 * Initialises the best available TF.js backend (node-gpu, node, wasm, cpu) and says which one
 * it chose. `request` (or MEMOMETER_BACKEND) forces one; a forced backend that cannot load is
 * a FailedPreconditionError rather than a silent fallback, so a GPU pod never trains on CPU by
 * accident.
 */
export async function initBackend(request?: BackendRequest): Promise<BackendChoice> {
  const env = process.env[BACKEND_ENV];
  const wanted = request ?? (env ? parseBackendRequest(env, BACKEND_ENV) : 'auto');
  const simdKernels = simdKernelsWanted();
  if (wanted !== 'auto') {
    try {
      await activate(wanted, simdKernels);
    } catch (error) {
      throw new FailedPreconditionError(
        `backend '${wanted}' is unavailable (${describe(error)})`,
        request ? 'backend' : BACKEND_ENV,
        { cause: error },
      );
    }
    return { name: wanted, tfName: CANDIDATES[wanted].tfName, skipped: [] };
  }
  const skipped: BackendChoice['skipped'] = [];
  for (const name of BACKEND_NAMES) {
    try {
      await activate(name, simdKernels);
      return { name, tfName: CANDIDATES[name].tfName, skipped };
    } catch (error) {
      skipped.push({ name, reason: describe(error) });
    }
  }
  throw new FailedPreconditionError(
    `no TF.js backend could be initialised: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`,
    'backend',
  );
}
