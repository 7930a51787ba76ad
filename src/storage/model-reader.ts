/**
 * Reads and writes TF.js LayersModel artifacts (model.json + binary weight shards) through an
 * {@link ObjectStore}. Graph models are rejected: they cannot be cut or trained.
 *
 * Only a type is imported from TF.js, so this module does not load TF.js itself.
 */
import * as posix from 'node:path/posix';

import type { io } from '@tensorflow/tfjs';

import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { joinKey, keyDirname, type ObjectStore } from './store.js';

type ModelArtifacts = io.ModelArtifacts;
type WeightsManifestEntry = io.WeightsManifestEntry;

/** The shard name {@link writeModelArtifacts} writes. */
export const SHARD_NAME = 'group1-shard1of1.bin';

const GRAPH_MODEL_MESSAGE = 'graph models cannot be cut or trained; export a Keras/LayersModel';

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8 };
const QUANTIZED_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof ArrayBuffer);
}

/** The key of model.json for a key that is either a `.json` key or a folder prefix. */
export function modelJsonKeyOf(key: string): string {
  return key.toLowerCase().endsWith('.json') ? key : joinKey(key, 'model.json');
}

/**
 * Bytes one weight occupies in a shard: its element count times the size of its stored dtype
 * (the quantization dtype when quantized). `subject` names the manifest in errors.
 */
export function weightByteSize(spec: WeightsManifestEntry, subject: string): number {
  const where = `weight ${JSON.stringify(spec?.name)}`;
  if (!isObject(spec) || typeof spec.name !== 'string') {
    throw new InvalidArgumentError(`weightsManifest has a weight entry without a name: ${JSON.stringify(spec)}`, subject);
  }
  if (!Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new InvalidArgumentError(`${where} has an invalid shape ${JSON.stringify(spec.shape)}`, subject);
  }
  const count = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.quantization !== undefined) {
    const qd = isObject(spec.quantization) ? spec.quantization.dtype : undefined;
    const size = typeof qd === 'string' ? QUANTIZED_BYTES[qd] : undefined;
    if (size === undefined) {
      throw new InvalidArgumentError(
        `${where} has unsupported quantization dtype ${JSON.stringify(qd)} (supported: uint8, uint16, float16)`,
        subject,
      );
    }
    return count * size;
  }
  if (spec.dtype === 'string') {
    throw new InvalidArgumentError(`${where} has dtype string, which a LayersModel cannot use`, subject);
  }
  const size = DTYPE_BYTES[spec.dtype];
  if (size === undefined) {
    throw new InvalidArgumentError(
      `${where} has unsupported dtype ${JSON.stringify(spec.dtype)} (supported: float32, int32, bool, complex64)`,
      subject,
    );
  }
  return count * size;
}

function totalBytes(specs: WeightsManifestEntry[], subject: string): number {
  return specs.reduce((s, spec) => s + weightByteSize(spec, subject), 0);
}

function describeSpecs(specs: WeightsManifestEntry[]): string {
  return `${specs.length} weight${specs.length === 1 ? '' : 's'}`;
}

function isGraphModel(json: Record<string, unknown>): boolean {
  const topo = json.modelTopology;
  return json.format === 'graph-model' || (isObject(topo) && Array.isArray(topo.node));
}

/** Resolves a shard path relative to model.json's folder, refusing absolute paths, URLs and escapes. */
function shardKey(dir: string, p: unknown, subject: string): string {
  if (typeof p !== 'string' || p === '') {
    throw new InvalidArgumentError(`weightsManifest lists an invalid shard path ${JSON.stringify(p)}`, subject);
  }
  if (p.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(p) || p.includes('\\')) {
    throw new InvalidArgumentError(
      `shard path ${JSON.stringify(p)} must be relative to model.json's folder (no absolute paths or URLs)`,
      subject,
    );
  }
  const joined = posix.normalize(dir ? `${dir}/${p}` : p);
  if (joined === '..' || joined.startsWith('../') || joined.startsWith('/')) {
    throw new InvalidArgumentError(`shard path ${JSON.stringify(p)} points outside the store`, subject);
  }
  return joined.replace(/^\.\//, '');
}

/**
 * Reads a LayersModel from `store`. `key` is a model.json key (any `*.json`) or a folder prefix
 * holding `model.json`. Shards are read from the paths listed in `weightsManifest`, relative to
 * model.json's folder, and concatenated in manifest order into one ArrayBuffer.
 *
 * Errors: missing model.json or shard -> NotFoundError naming it; corrupt JSON, graph models,
 * malformed manifests, shards whose sizes differ from what the weight specs need (expected vs
 * actual bytes) -> InvalidArgumentError naming model.json.
 */
export async function readModelArtifacts(store: ObjectStore, key: string): Promise<ModelArtifacts> {
  const jsonKey = modelJsonKeyOf(key);
  let bytes: Uint8Array;
  try {
    bytes = await store.get(jsonKey);
  } catch (e) {
    if (e instanceof NotFoundError) {
      throw new NotFoundError(
        `no model here: expected a model.json key or a folder holding model.json (looked for '${jsonKey}')`,
        jsonKey,
        { cause: e },
      );
    }
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new InvalidArgumentError(
      `is not valid JSON (${e instanceof Error ? e.message : String(e)}); ${bytes.length} bytes`,
      jsonKey,
      { cause: e },
    );
  }
  if (!isObject(json)) {
    throw new InvalidArgumentError(`must hold a JSON object, got ${Array.isArray(json) ? 'an array' : JSON.stringify(json)}`, jsonKey);
  }
  if (isGraphModel(json)) {
    throw new InvalidArgumentError(`${GRAPH_MODEL_MESSAGE} (format ${JSON.stringify(json.format ?? null)})`, jsonKey);
  }
  const { modelTopology, weightsManifest } = json;
  if (!isObject(modelTopology)) {
    throw new InvalidArgumentError(
      `has no modelTopology object (got ${modelTopology === undefined ? 'none' : JSON.stringify(modelTopology).slice(0, 80)}); is this a TF.js model.json?`,
      jsonKey,
    );
  }
  if (!Array.isArray(weightsManifest)) {
    throw new InvalidArgumentError(
      `weightsManifest must be a list of {paths, weights} groups, got ${JSON.stringify(weightsManifest ?? null).slice(0, 80)}`,
      jsonKey,
    );
  }
  const dir = keyDirname(jsonKey);
  const weightSpecs: WeightsManifestEntry[] = [];
  const groups: { specs: WeightsManifestEntry[]; keys: string[] }[] = [];
  weightsManifest.forEach((group: unknown, g) => {
    if (!isObject(group) || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new InvalidArgumentError(`weightsManifest[${g}] must be {paths: [...], weights: [...]}`, jsonKey);
    }
    const specs = group.weights as WeightsManifestEntry[];
    groups.push({ specs, keys: group.paths.map((p) => shardKey(dir, p, jsonKey)) });
    weightSpecs.push(...specs);
  });
  const shardBytes = await Promise.all(
    groups.map((group) =>
      Promise.all(
        group.keys.map(async (k) => {
          try {
            return await store.get(k);
          } catch (e) {
            if (e instanceof NotFoundError) {
              throw new NotFoundError(`weight shard listed in ${jsonKey} is missing`, k, { cause: e });
            }
            throw e;
          }
        }),
      ),
    ),
  );
  let total = 0;
  groups.forEach((group, g) => {
    const expected = totalBytes(group.specs, jsonKey);
    const actual = (shardBytes[g] ?? []).reduce((s, b) => s + b.length, 0);
    if (expected !== actual) {
      throw new InvalidArgumentError(
        `weight group ${g} (${describeSpecs(group.specs)}) needs ${expected} bytes but its shard${group.keys.length === 1 ? '' : 's'} ` +
          `${group.keys.join(', ')} hold${group.keys.length === 1 ? 's' : ''} ${actual} bytes (expected ${expected}, actual ${actual})`,
        jsonKey,
      );
    }
    total += actual;
  });
  const weightData = new ArrayBuffer(total);
  const out = new Uint8Array(weightData);
  let p = 0;
  for (const shards of shardBytes) {
    for (const b of shards) {
      out.set(b, p);
      p += b.length;
    }
  }
  const artifacts: ModelArtifacts = {
    modelTopology,
    weightSpecs,
    weightData,
    format: typeof json.format === 'string' ? json.format : 'layers-model',
    generatedBy: typeof json.generatedBy === 'string' ? json.generatedBy : undefined,
    convertedBy: typeof json.convertedBy === 'string' ? json.convertedBy : null,
  };
  if (isObject(json.trainingConfig)) artifacts.trainingConfig = json.trainingConfig as unknown as io.TrainingConfig;
  if (isObject(json.signature)) artifacts.signature = json.signature;
  if (isObject(json.userDefinedMetadata)) artifacts.userDefinedMetadata = json.userDefinedMetadata as NonNullable<io.ModelArtifacts['userDefinedMetadata']>;
  if (isObject(json.modelInitializer)) artifacts.modelInitializer = json.modelInitializer;
  return artifacts;
}

/**
 * Writes a LayersModel to `store`: the weights as one shard `group1-shard1of1.bin`, then
 * `model.json` (in that order, so a reader never sees a model.json whose shard is not there yet).
 * `prefix` is a folder prefix (`''` for the store root) or a `*.json` key to write model.json as.
 * Returns the key of model.json. Rejects graph models, binary topologies, streamed weights and
 * weight data whose size differs from what the weight specs need (InvalidArgumentError).
 */
export async function writeModelArtifacts(
  store: ObjectStore,
  prefix: string,
  artifacts: ModelArtifacts,
): Promise<string> {
  const jsonKey = modelJsonKeyOf(prefix);
  const topo = artifacts.modelTopology;
  if (!isObject(topo)) {
    throw new InvalidArgumentError(
      topo instanceof ArrayBuffer
        ? `the model has a binary (GraphDef) topology: ${GRAPH_MODEL_MESSAGE}`
        : 'the artifacts have no modelTopology object',
      jsonKey,
    );
  }
  if (isGraphModel({ format: artifacts.format, modelTopology: topo })) {
    throw new InvalidArgumentError(GRAPH_MODEL_MESSAGE, jsonKey);
  }
  if (artifacts.weightData === undefined && artifacts.getWeightStream !== undefined) {
    throw new InvalidArgumentError('streamed weights (getWeightStream) cannot be written; pass weightData', jsonKey);
  }
  const specs = artifacts.weightSpecs ?? [];
  const buffers = artifacts.weightData === undefined ? [] : Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData];
  const size = buffers.reduce((s, b) => s + b.byteLength, 0);
  const expected = totalBytes(specs, jsonKey);
  if (size !== expected) {
    throw new InvalidArgumentError(
      `${describeSpecs(specs)} need ${expected} bytes but weightData holds ${size} bytes (expected ${expected}, actual ${size})`,
      jsonKey,
    );
  }
  const shard = new Uint8Array(size);
  let p = 0;
  for (const b of buffers) {
    shard.set(new Uint8Array(b), p);
    p += b.byteLength;
  }
  const modelJson: Record<string, unknown> = {
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy ?? null,
    modelTopology: topo,
    weightsManifest: [{ paths: [SHARD_NAME], weights: specs }],
  };
  if (artifacts.trainingConfig !== undefined) modelJson.trainingConfig = artifacts.trainingConfig;
  if (artifacts.signature !== undefined) modelJson.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata !== undefined) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
  if (artifacts.modelInitializer !== undefined) modelJson.modelInitializer = artifacts.modelInitializer;
  await store.put(joinKey(keyDirname(jsonKey), SHARD_NAME), shard);
  await store.put(jsonKey, JSON.stringify(modelJson));
  return jsonKey;
}
