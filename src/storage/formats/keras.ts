/**
 * Keras model files read in-process and turned into TF.js LayersModel artifacts, so that every
 * later stage sees the one format it already knows.
 *
 * - `.keras` (Keras 3, also written by Keras 2.13+): a ZIP with `config.json` (the model's
 *   `serialize_keras_object` output), `metadata.json` and `model.weights.h5`. Weights are not
 *   stored under layer names: keras/src/saving/saving_lib.py walks `model.layers` (Sequential
 *   omits its InputLayer, Functional includes it) and names each layer by the snake_case of its
 *   class with per-class counters in list order (`conv2d`, `conv2d_1`, ...), writing
 *   `layers/<that name>/vars/<i>` for the layer's variables (trainable, then non-trainable, in
 *   creation order) and recursing into nested models (`layers/functional/layers/...`). An RNN
 *   layer (LSTM, GRU, SimpleRNN) owns no variables: its cell does, at `layers/lstm/cell/vars/<i>`;
 *   a Bidirectional wrapper holds its two RNNs at `forward_layer/cell/vars` and
 *   `backward_layer/cell/vars`.
 * - legacy `.h5` (Keras 2 `model.save('m.h5')`): root attribute `model_config` (JSON), group
 *   `model_weights` whose `layer_names` attribute lists the layers with weights groups, each with a
 *   `weight_names` attribute naming its datasets (`conv2d/kernel:0`).
 *
 * The Keras 3 config is normalised to the Keras 2 form TF.js 4.22 reads (tfjs issue #8328); see
 * {@link normalizeModelConfig}.
 */
import type * as tf from '@tensorflow/tfjs';

import { InvalidArgumentError, MemometerError } from '../../errors.js';
import { isHdf5, withHdf5, type Hdf5Reader } from './hdf5.js';
import { listZipEntries, readZipEntry } from './npz.js';

const SUBJECT = 'model';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A layer's or model's class_name for messages (as JSON when the file has something else there). */
const classNameOf = (o: JsonObject): string => (typeof o['class_name'] === 'string' ? o['class_name'] : JSON.stringify(o['class_name'] ?? null));

function fail(message: string, cause?: unknown): never {
  throw new InvalidArgumentError(message, SUBJECT, cause === undefined ? undefined : { cause });
}

/** Whether the bytes look like a Keras model file: a ZIP (`.keras`) or an HDF5 file (`.h5`). */
export function isKerasFile(bytes: Uint8Array): boolean {
  return isZip(bytes) || isHdf5(bytes);
}

function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/**
 * Reads a `.keras` archive or a legacy Keras `.h5` file into TF.js model artifacts (Keras 2 style
 * topology, float32 weights named `<layer>/<weight>` as TF.js names its variables). `name` names
 * the file in errors. Errors are InvalidArgumentError with subject 'model'.
 */
export async function readKerasModel(bytes: Uint8Array, name: string): Promise<tf.io.ModelArtifacts> {
  if (isZip(bytes)) return readKeras3(bytes, name);
  if (isHdf5(bytes)) return readLegacyH5(bytes, name);
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return fail(
    `${name}: not a Keras model file: expected a .keras ZIP archive (PK\\x03\\x04) or a legacy .h5 HDF5 file ` +
      `(\\x89HDF\\r\\n\\x1a\\n); the file starts with ${head || 'nothing (it is empty)'}`,
  );
}

// ------------------------------------------------------------------------------------------------
// .keras (Keras 3)
// ------------------------------------------------------------------------------------------------

async function readKeras3(bytes: Uint8Array, name: string): Promise<tf.io.ModelArtifacts> {
  let entries;
  try {
    entries = listZipEntries(bytes, name);
  } catch (e) {
    if (e instanceof MemometerError) fail(`cannot read the .keras archive: ${e.message.replace('.npz/ZIP', 'ZIP')}`, e);
    throw e;
  }
  const entry = (entryName: string) => entries.find((e) => e.name === entryName);
  const read = (entryName: string): Uint8Array | undefined => {
    const found = entry(entryName);
    if (!found) return undefined;
    try {
      return readZipEntry(bytes, found, name);
    } catch (e) {
      if (e instanceof MemometerError) fail(`cannot read the .keras archive: ${e.message.replace('.npz/ZIP', 'ZIP')}`, e);
      throw e;
    }
  };
  const listing = entries.map((e) => e.name).join(', ') || 'none';
  const configBytes = read('config.json');
  if (!configBytes) fail(`${name}: the .keras archive has no config.json (entries: ${listing}); is it a Keras model?`);
  const config = parseJson(configBytes, `${name}:config.json`);
  if (!isObject(config)) fail(`${name}:config.json is not a JSON object`);
  let kerasVersion = '3';
  const metadata = read('metadata.json');
  if (metadata) {
    const meta = parseJson(metadata, `${name}:metadata.json`);
    if (isObject(meta) && typeof meta['keras_version'] === 'string') kerasVersion = meta['keras_version'];
  }
  const weightsBytes = read('model.weights.h5');
  if (!weightsBytes) {
    if (entry('model.weights.npz')) {
      fail(`${name}: weights saved as model.weights.npz are not supported; re-save with model.save('m.keras') (h5 weights, the default)`);
    }
    fail(`${name}: the .keras archive has no model.weights.h5 (entries: ${listing})`);
  }
  checkModelClass(config, `${name}:config.json`);
  const topology = normalizeModelConfig(config);
  const weights = await withHdf5(weightsBytes, `${name}:model.weights.h5`, SUBJECT, (h5) => {
    const out: NamedWeight[] = [];
    const root = h5.kind('layers') === undefined && h5.kind('_layer_checkpoint_dependencies') === 'group' ? '_layer_checkpoint_dependencies' : 'layers';
    collectKeras3Weights(config, '', root, h5, `${name}:model.weights.h5`, out);
    return out;
  });
  return artifacts(topology, weights, `keras v${kerasVersion}`, kerasVersion);
}

interface NamedWeight {
  name: string;
  shape: number[];
  values: Float32Array;
}

/** keras/src/utils/naming.py to_snake_case. */
export function toSnakeCase(name: string): string {
  let s = name.replace(/\W+/g, '');
  s = s.replace(/(.)([A-Z][a-z]+)/g, '$1_$2');
  return s.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

const MODEL_CLASSES = new Set(['Sequential', 'Functional', 'Model']);

function layerList(model: JsonObject): JsonObject[] {
  const config = model['config'];
  const layers = Array.isArray(config) ? config : isObject(config) ? config['layers'] : undefined;
  if (!Array.isArray(layers)) fail(`the ${classNameOf(model)} config has no layers list`);
  return layers.map((l, i) => {
    if (!isObject(l) || typeof l['class_name'] !== 'string') fail(`layer ${i} of ${classNameOf(model)} is not a {class_name, config} object`);
    return l;
  });
}

function layerName(layer: JsonObject): string {
  const config = layer['config'];
  const fromConfig = isObject(config) ? config['name'] : undefined;
  const n = typeof layer['name'] === 'string' ? layer['name'] : fromConfig;
  return typeof n === 'string' ? n : classNameOf(layer);
}

/**
 * Walks the model as keras/src/saving/saving_lib.py _save_state does (`layers` container names),
 * reading each layer's `vars/<i>` (RNNs: `cell/vars/<i>`) and naming them as TF.js names the layer's variables.
 */
function collectKeras3Weights(model: JsonObject, prefix: string, layersKey: string, h5: Hdf5Reader, file: string, out: NamedWeight[]): void {
  let layers = layerList(model);
  // Sequential.layers omits the InputLayer at the bottom of the stack.
  if (model['class_name'] === 'Sequential' && layers[0]?.['class_name'] === 'InputLayer') layers = layers.slice(1);
  const used = new Map<string, number>();
  for (const layer of layers) {
    const className = layer['class_name'] as string;
    const base = toSnakeCase(className);
    const count = used.get(base);
    const key = count === undefined ? base : `${base}_${count + 1}`;
    used.set(base, count === undefined ? 0 : count + 1);
    const path = `${prefix}${layersKey}/${key}`;
    const lname = layerName(layer);
    if (MODEL_CLASSES.has(className)) {
      collectKeras3Weights(layer, `${path}/`, layersKey, h5, file, out);
      continue;
    }
    const config = isObject(layer['config']) ? layer['config'] : {};
    const groups = keras3WeightGroups(className, config);
    if (!groups) {
      const datasets = countDatasets(h5, path);
      if (datasets > 0) {
        fail(`unsupported class name ${className} (layer ${lname}): it has ${datasets} weights under ${path} and memometer does not know how TF.js names them`);
      }
      continue;
    }
    for (const group of groups) {
      const varsPath = `${path}/${group.vars}`;
      const expected = group.specs;
      const stored = h5.kind(varsPath) === 'group' ? h5.keys(varsPath).filter((k) => /^\d+$/.test(k)).sort((a, b) => Number(a) - Number(b)) : [];
      if (stored.length !== expected.length || stored.some((k, i) => Number(k) !== i)) {
        fail(
          `weights missing for layer ${lname} (${className}): ${file} should hold ${expected.length} variables ` +
            `(${expected.map((w) => w.name).join(', ')}) at ${varsPath}, found ${stored.length === 0 ? 'none' : stored.join(', ')}`,
        );
      }
      expected.forEach((spec, i) => {
        const array = h5.array(`${varsPath}/${i}`);
        checkShape(lname, className, spec, array.shape);
        out.push({ name: `${lname}/${spec.name}`, shape: array.shape, values: array.values });
      });
    }
  }
}

/** How many datasets lie under a group (0 when the path is missing). */
function countDatasets(h5: Hdf5Reader, path: string): number {
  const kind = h5.kind(path);
  if (kind === 'dataset') return 1;
  if (kind !== 'group') return 0;
  return h5.keys(path).reduce((n, k) => n + countDatasets(h5, `${path}/${k}`), 0);
}

/** RNN layer classes whose cell variables memometer maps (TF.js 4.22 has the same three). */
const RNN_CLASSES = new Set(['LSTM', 'GRU', 'SimpleRNN']);

/**
 * Where a Keras 3 layer's variables sit below its `layers/<snake name>` path, with the names TF.js
 * gives them. Most layers save their own variables at `vars`; an RNN layer owns none, its cell
 * does (saving_lib walks the `cell` attribute: `cell/vars`); a Bidirectional wrapper holds two RNN
 * layers in its `forward_layer` and `backward_layer` attributes. undefined: classes memometer does
 * not map.
 */
function keras3WeightGroups(className: string, c: JsonObject): { vars: string; specs: WeightSpecHint[] }[] | undefined {
  if (RNN_CLASSES.has(className)) {
    const specs = expectedWeights(className, c);
    return specs && [{ vars: 'cell/vars', specs }];
  }
  if (className === 'Bidirectional') {
    const specs = expectedWeights(className, c);
    if (!specs) return undefined;
    const half = specs.length / 2;
    return [
      { vars: 'forward_layer/cell/vars', specs: specs.slice(0, half) },
      { vars: 'backward_layer/cell/vars', specs: specs.slice(half) },
    ];
  }
  const specs = expectedWeights(className, c);
  return specs && [{ vars: 'vars', specs }];
}

interface WeightSpecHint {
  /** TF.js's variable name within the layer. */
  name: string;
  /** Known dimensions; null where the config does not tell. undefined: any shape. */
  shape?: (number | null)[];
}

const num = (v: Json | undefined): number | null => (typeof v === 'number' ? v : null);
const dims = (v: Json | undefined, rank: number): (number | null)[] =>
  Array.isArray(v) ? v.map((x) => num(x)) : Array.from({ length: rank }, () => num(v));

/**
 * The variables a layer saves, in Keras' order (trainable then non-trainable, creation order), with
 * the names TF.js gives them; undefined for classes whose weights memometer does not map.
 */
function expectedWeights(className: string, c: JsonObject): WeightSpecHint[] | undefined {
  const bias = (units: number | null): WeightSpecHint[] => (c['use_bias'] === false ? [] : [{ name: 'bias', shape: [units] }]);
  const conv = /^Conv([123])D(Transpose)?$/.exec(className);
  if (conv) {
    const rank = Number(conv[1]);
    const filters = num(c['filters']);
    const ks = dims(c['kernel_size'], rank);
    const kernel = conv[2] ? [...ks, filters, null] : [...ks, null, filters];
    return [{ name: 'kernel', shape: kernel }, ...bias(filters)];
  }
  switch (className) {
    case 'Dense': {
      const units = num(c['units']);
      return [{ name: 'kernel', shape: [null, units] }, ...bias(units)];
    }
    case 'DepthwiseConv1D':
    case 'DepthwiseConv2D': {
      const rank = className === 'DepthwiseConv1D' ? 1 : 2;
      return [{ name: 'depthwise_kernel', shape: [...dims(c['kernel_size'], rank), null, num(c['depth_multiplier'])] }, ...bias(null)];
    }
    case 'SeparableConv1D':
    case 'SeparableConv2D': {
      const rank = className === 'SeparableConv1D' ? 1 : 2;
      const filters = num(c['filters']);
      return [
        { name: 'depthwise_kernel', shape: [...dims(c['kernel_size'], rank), null, num(c['depth_multiplier'])] },
        { name: 'pointwise_kernel', shape: [...Array.from({ length: rank }, () => 1), null, filters] },
        ...bias(filters),
      ];
    }
    case 'BatchNormalization': {
      const v = { shape: [null] };
      return [
        ...(c['scale'] === false ? [] : [{ name: 'gamma', ...v }]),
        ...(c['center'] === false ? [] : [{ name: 'beta', ...v }]),
        { name: 'moving_mean', ...v },
        { name: 'moving_variance', ...v },
      ];
    }
    case 'LayerNormalization':
      return [...(c['scale'] === false ? [] : [{ name: 'gamma' }]), ...(c['center'] === false ? [] : [{ name: 'beta' }])];
    case 'Embedding':
      return [{ name: 'embeddings', shape: [num(c['input_dim']), num(c['output_dim'])] }];
    case 'PReLU':
      return [{ name: 'alpha' }];
    case 'LSTM':
    case 'GRU':
    case 'SimpleRNN': {
      // Keras concatenates the gates along the last axis: LSTM i, f, c, o; GRU z, r, h.
      const units = num(c['units']);
      const gates = className === 'LSTM' ? 4 : className === 'GRU' ? 3 : 1;
      const width = units === null ? null : units * gates;
      // GRU reset_after=True keeps separate input and recurrent biases, [2, 3 * units].
      const biasShape = className === 'GRU' && c['reset_after'] === true ? [2, width] : [width];
      return [
        { name: 'kernel', shape: [null, width] },
        { name: 'recurrent_kernel', shape: [units, width] },
        ...(c['use_bias'] === false ? [] : [{ name: 'bias', shape: biasShape }]),
      ];
    }
    case 'Bidirectional': {
      // TF.js names the two copies of the wrapped RNN forward_<name> and backward_<name> and lists
      // the forward weights first, as Keras 2 saved them.
      const inner = c['layer'];
      if (!isObject(inner) || typeof inner['class_name'] !== 'string' || !RNN_CLASSES.has(inner['class_name'])) return undefined;
      const innerConfig = isObject(inner['config']) ? inner['config'] : {};
      const specs = expectedWeights(inner['class_name'], innerConfig);
      if (!specs) return undefined;
      const innerName = bidirectionalInnerName(innerConfig);
      return ['forward', 'backward'].flatMap((side) => specs.map((s) => ({ ...s, name: `${side}_${innerName}/${s.name}` })));
    }
    default:
      return WEIGHTLESS.has(className) ? [] : undefined;
  }
}

/** Layer classes that TF.js 4.22 knows and that hold no variables. */
const WEIGHTLESS = new Set([
  'InputLayer', 'Activation', 'ReLU', 'LeakyReLU', 'ELU', 'Softmax', 'ThresholdedReLU',
  'Flatten', 'Reshape', 'Permute', 'RepeatVector', 'Dropout', 'SpatialDropout1D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout',
  'MaxPooling1D', 'MaxPooling2D', 'MaxPooling3D', 'AveragePooling1D', 'AveragePooling2D', 'AveragePooling3D',
  'GlobalAveragePooling1D', 'GlobalAveragePooling2D', 'GlobalMaxPooling1D', 'GlobalMaxPooling2D',
  'Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Concatenate', 'Dot',
  'ZeroPadding2D', 'Cropping2D', 'UpSampling2D', 'Masking', 'Rescaling', 'CenterCrop', 'Resizing',
]);

function checkShape(layer: string, className: string, spec: WeightSpecHint, actual: number[]): void {
  const expected = spec.shape;
  if (!expected) return;
  const ok = expected.length === actual.length && expected.every((d, i) => d === null || d === actual[i]);
  if (!ok) {
    const show = (s: (number | null)[]) => `[${s.map((d) => (d === null ? '?' : d)).join(', ')}]`;
    fail(`shape mismatch for weight ${spec.name} of layer ${layer} (${className}): the file holds ${show(actual)}, the layer config implies ${show(expected)}`);
  }
}

// ------------------------------------------------------------------------------------------------
// legacy .h5 (Keras 2)
// ------------------------------------------------------------------------------------------------

async function readLegacyH5(bytes: Uint8Array, name: string): Promise<tf.io.ModelArtifacts> {
  return withHdf5(bytes, name, SUBJECT, (h5) => {
    const rawConfig = h5.attr('', 'model_config');
    if (rawConfig === undefined) {
      const hint = h5.attr('', 'layer_names') !== undefined ? ' (it holds weights only: save the model with model.save(), not save_weights())' : '';
      fail(`${name}: the HDF5 file has no model_config attribute, so it is not a Keras model saved with model.save()${hint}`);
    }
    const config = parseJson(asText(rawConfig), `${name}:model_config`);
    if (!isObject(config)) fail(`${name}: model_config is not a JSON object`);
    checkModelClass(config, `${name}:model_config`);
    const kerasVersion = asText(h5.attr('', 'keras_version') ?? '2');
    const topology = normalizeModelConfig(config);
    const group = h5.kind('model_weights') === 'group' ? 'model_weights' : '';
    const layerNames = stringList(h5, group, 'layer_names');
    if (layerNames === undefined) fail(`${name}: ${group || 'the root group'} has no layer_names attribute`);
    const inFile = new Set(layerNames);
    const out: NamedWeight[] = [];
    const readWeight = (layer: FlatLayer, spec: WeightSpecHint, path: string) => {
      if (h5.kind(path) !== 'dataset') fail(`weights missing for layer ${layer.name}: ${name} has no dataset ${path}`);
      const array = h5.array(path);
      checkShape(layer.name, layer.className, spec, array.shape);
      out.push({ name: `${layer.name}/${spec.name}`, shape: array.shape, values: array.values });
    };
    const storedNames = (group: string): string[] => (h5.kind(group) === 'group' ? (stringList(h5, group, 'weight_names') ?? []) : []);
    for (const top of layerList(config)) {
      const topName = layerName(top);
      const topGroup = `${prefix(group)}${topName}`;
      const stored = inFile.has(topName) ? storedNames(topGroup) : [];
      if (MODEL_CLASSES.has(top['class_name'] as string)) {
        // A nested model's group holds all its weights (trainable first), named `<layer>/<weight>:0`
        // (RNN weights: `lstm/lstm_cell/kernel:0`, `bidirectional/forward_lstm/lstm_cell_1/kernel:0`).
        const cleaned = stored.map((w) => ({ key: `/${w.replace(/:\d+$/, '').split('/').filter((part) => !/_cell(_\d+)?$/.test(part)).join('/')}`, w }));
        const find = (key: string) => cleaned.find((c) => c.key.endsWith(`/${key}`))?.w;
        for (const layer of flatLayers(top)) {
          for (const spec of expectedOrRefuse(layer, 0)) {
            const stored = find(`${layer.name}/${spec.name}`);
            if (!stored) fail(`weights missing for layer ${layer.name} (${layer.className}): ${name} has no ${layer.name}/${spec.name} in ${topGroup}`);
            readWeight(layer, spec, `${topGroup}/${stored}`);
          }
        }
        continue;
      }
      const layer: FlatLayer = { name: topName, className: top['class_name'] as string, config: isObject(top['config']) ? top['config'] : {} };
      const expected = expectedOrRefuse(layer, stored.length);
      if (stored.length !== expected.length) {
        fail(
          `weights missing for layer ${layer.name} (${layer.className}): ${name} should hold ${expected.length} weights ` +
            `(${expected.map((w) => w.name).join(', ')}) in ${topGroup}, found ${stored.length === 0 ? 'none' : stored.join(', ')}`,
        );
      }
      expected.forEach((spec, i) => readWeight(layer, spec, `${topGroup}/${stored[i]!}`));
    }
    return artifacts(topology, out, `keras v${kerasVersion}`, kerasVersion);
  });
}

/** The expected weights of a layer; a class memometer cannot map is refused when it has weights. */
function expectedOrRefuse(layer: FlatLayer, storedCount: number): WeightSpecHint[] {
  const expected = expectedWeights(layer.className, layer.config);
  if (expected) return expected;
  if (storedCount > 0) {
    fail(`unsupported class name ${layer.className} (layer ${layer.name}): it has ${storedCount} weights and memometer does not know how TF.js names them`);
  }
  return [];
}

const prefix = (group: string) => (group ? `${group}/` : '');

function asText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v);
  return String(v);
}

/**
 * A list-of-strings attribute as Keras' save_attributes_to_hdf5_group writes it: one attribute, or
 * chunks `name0`, `name1`, ... when it is over the 64 KiB header limit. An empty list is stored as
 * an empty float array.
 */
function stringList(h5: Hdf5Reader, path: string, attr: string): string[] | undefined {
  const one = h5.attr(path, attr);
  const values: unknown[] = [];
  if (one !== undefined) {
    values.push(one);
  } else {
    for (let i = 0; ; i++) {
      const chunk = h5.attr(path, `${attr}${i}`);
      if (chunk === undefined) break;
      values.push(chunk);
    }
    if (values.length === 0) return undefined;
  }
  const out: string[] = [];
  for (const v of values) {
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) out.push(...v.map(asText));
    else if (ArrayBuffer.isView(v) && (v as unknown as ArrayLike<unknown>).length === 0) continue;
    else fail(`attribute ${attr} of ${path || '/'} is not a list of strings`);
  }
  return out;
}

interface FlatLayer {
  name: string;
  className: string;
  config: JsonObject;
}

/** The non-model layers of a model config, nested models flattened, in config order. */
function flatLayers(model: JsonObject): FlatLayer[] {
  const out: FlatLayer[] = [];
  for (const layer of layerList(model)) {
    const className = layer['class_name'] as string;
    if (MODEL_CLASSES.has(className)) out.push(...flatLayers(layer));
    else out.push({ name: layerName(layer), className, config: isObject(layer['config']) ? layer['config'] : {} });
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Config normalisation: Keras 3 (and Keras 2) -> the Keras 2 form TF.js 4.22 deserialises
// ------------------------------------------------------------------------------------------------

function checkModelClass(config: JsonObject, where: string): void {
  const className = config['class_name'];
  if (typeof className !== 'string') fail(`${where} has no class_name`);
  if (!MODEL_CLASSES.has(className)) {
    fail(
      `unsupported class name ${className} in ${where}: only Sequential and Functional models can be read ` +
        '(a subclassed model has no layer graph in its config)',
    );
  }
}

/** Layer classes TF.js 4.22 registers (tfjs-layers `className` statics), less its KerasNLP extras. */
const TFJS_LAYERS = new Set([
  ...WEIGHTLESS,
  'Dense', 'Conv1D', 'Conv2D', 'Conv3D', 'Conv2DTranspose', 'Conv3DTranspose', 'DepthwiseConv2D', 'SeparableConv2D',
  'BatchNormalization', 'LayerNormalization', 'Embedding', 'PReLU',
  'LSTM', 'GRU', 'SimpleRNN', 'Bidirectional', 'TimeDistributed', 'ConvLSTM2D', 'RNN',
  'CategoryEncoding', 'RandomWidth', 'RandomHeight', 'EinsumDense', 'MultiHeadAttention',
]);

/** Keras 3 initializer class names that TF.js spells differently. */
const CLASS_RENAMES: Record<string, string> = {
  LecunNormal: 'LeCunNormal',
  LecunUniform: 'LeCunUniform',
  IdentityInitializer: 'Identity',
  OrthogonalInitializer: 'Orthogonal',
};

/** Keys of a serialized Keras object that are Keras 3 bookkeeping, not layer arguments. */
const DROPPED_KEYS = ['module', 'registered_name', 'build_config', 'compile_config', 'shared_object_id'];

/** A dtype policy ('float32', 'mixed_float16', ...) as the dtype string TF.js takes. */
function policyDtype(policy: Json): Json {
  const name = isObject(policy) ? (isObject(policy['config']) ? policy['config']['name'] : policy['name']) : policy;
  if (typeof name !== 'string') return 'float32';
  // Mixed and half-precision models keep float32 variables or are read as float32 here.
  if (/float|^mixed/.test(name)) return 'float32';
  return name;
}

/** Turns Keras 3 serialized objects inside a layer config into Keras 2 {class_name, config}. */
function normalizeValue(value: Json): Json {
  if (Array.isArray(value)) return value.map(normalizeValue);
  if (!isObject(value)) return value;
  const className = value['class_name'];
  if (typeof className === 'string' && 'config' in value) {
    if (/DTypePolicy$/.test(className)) return policyDtype(value);
    // A function (activation) serialized by Keras 3: its name.
    if (className === 'function') return value['config'] ?? null;
    const config = value['config'];
    if (className === 'L1' || className === 'L2') {
      const c = isObject(config) ? config : {};
      const l1 = className === 'L1' ? (num(c['l1']) ?? 0.01) : 0;
      const l2 = className === 'L2' ? (num(c['l2']) ?? 0.01) : 0;
      return { class_name: 'L1L2', config: { l1, l2 } };
    }
    return { class_name: CLASS_RENAMES[className] ?? className, config: normalizeValue(config ?? {}) };
  }
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) out[k] = normalizeValue(v);
  return out;
}

/**
 * Normalises a Keras model config (Keras 3 `serialize_keras_object` output or a Keras 2
 * `model_config`) into the Keras 2 form TF.js 4.22 reads:
 *
 * - `module`, `registered_name`, `build_config`, `compile_config`, `shared_object_id` dropped;
 * - DTypePolicy objects -> dtype strings (float policies, mixed ones included, -> 'float32');
 * - initializer / regularizer / constraint objects -> {class_name, config}; Keras 3 L1 / L2 ->
 *   L1L2; LecunNormal / LecunUniform -> LeCunNormal / LeCunUniform; activation functions
 *   serialized as objects -> their names;
 * - `batch_shape` -> `batch_input_shape` (InputLayer and layers built with one); InputLayer
 *   `optional` dropped; Sequential `build_input_shape` becomes the first layer's
 *   `batch_input_shape` when the stack has no InputLayer;
 * - Keras 3 arguments TF.js lacks dropped where they are the defaults (`groups: 1`, `keepdims:
 *   false`, ReLU `negative_slope: 0` / `threshold: 0`, `synchronized`, `lora_rank: null`,
 *   `quantization_config: null`) and refused where they are not;
 * - Keras 3 `inbound_nodes` ({args: [keras tensors], kwargs}) -> [[[layer, node, tensor, kwargs]]],
 *   null kwargs dropped; `input_layers` / `output_layers` given as one [name, node, tensor] are
 *   wrapped in a list;
 * - GRU with reset_after=True (the Keras 3 default) refused: TF.js 4.22's GRU cannot run it;
 * - Bidirectional: the wrapped RNN's `forward_` name prefix (Keras 3) dropped, as TF.js adds it;
 *   `backward_layer` dropped when it mirrors the wrapped layer, refused otherwise;
 * - layer classes TF.js does not know are refused by name.
 */
export function normalizeModelConfig(model: JsonObject): { class_name: string; config: JsonObject } {
  const className = model['class_name'] as string;
  const config = isObject(model['config']) ? model['config'] : {};
  const name = typeof config['name'] === 'string' ? config['name'] : toSnakeCase(className);
  const layers = layerList(model);
  if (className === 'Sequential') {
    const out = layers.map((l) => normalizeLayer(l, false));
    const first = out[0]?.['config'];
    const buildShape = config['build_input_shape'];
    if (out[0]?.['class_name'] !== 'InputLayer' && isObject(first) && !('batch_input_shape' in first) && Array.isArray(buildShape)) {
      first['batch_input_shape'] = buildShape;
    }
    return { class_name: 'Sequential', config: { name, layers: out } };
  }
  return {
    class_name: className === 'Model' ? 'Model' : 'Functional',
    config: {
      name,
      trainable: config['trainable'] ?? true,
      layers: layers.map((l) => normalizeLayer(l, true)),
      input_layers: tensorRefs(config['input_layers'], `${name} input_layers`),
      output_layers: tensorRefs(config['output_layers'], `${name} output_layers`),
    },
  };
}

function tensorRefs(refs: Json | undefined, where: string): Json {
  if (Array.isArray(refs) && typeof refs[0] === 'string') return [refs];
  if (Array.isArray(refs)) return refs;
  if (isObject(refs)) return Object.values(refs);
  return fail(`${where} is missing`);
}

function normalizeLayer(layer: JsonObject, functional: boolean): JsonObject {
  const className = layer['class_name'] as string;
  const name = layerName(layer);
  let out: JsonObject;
  if (MODEL_CLASSES.has(className)) {
    out = { ...normalizeModelConfig(layer) };
  } else {
    if (!TFJS_LAYERS.has(className)) {
      fail(`unsupported class name ${className} (layer ${name}): TF.js 4.22 has no such layer`);
    }
    const config = normalizeValue(isObject(layer['config']) ? layer['config'] : {}) as JsonObject;
    adaptLayerConfig(className, name, config);
    out = { class_name: className, config };
  }
  if (functional) {
    out['name'] = name;
    const nodes = layer['inbound_nodes'];
    out['inbound_nodes'] = Array.isArray(nodes) ? nodes.map((n, i) => inboundNode(n, name, i)) : [];
  }
  return out;
}

function adaptLayerConfig(className: string, name: string, config: JsonObject): void {
  const unsupported = (what: string): never => fail(`unsupported ${className} setting in layer ${name}: ${what} (TF.js 4.22 cannot run it)`);
  if ('batch_shape' in config) {
    if (!('batch_input_shape' in config)) config['batch_input_shape'] = config['batch_shape'];
    delete config['batch_shape'];
  }
  delete config['optional'];
  const dropDefault = (key: string, isDefault: (v: Json | undefined) => boolean) => {
    if (!(key in config)) return;
    if (!isDefault(config[key])) unsupported(`${key} = ${JSON.stringify(config[key])}`);
    delete config[key];
  };
  const isNull = (v: Json | undefined) => v === null || v === undefined;
  if (/^(Conv|SeparableConv|DepthwiseConv)/.test(className)) dropDefault('groups', (v) => v === 1 || isNull(v));
  if (/^Global.*Pooling/.test(className)) dropDefault('keepdims', (v) => v === false || isNull(v));
  if (className === 'ReLU') {
    dropDefault('negative_slope', (v) => v === 0 || isNull(v));
    dropDefault('threshold', (v) => v === 0 || isNull(v));
  }
  if (className === 'BatchNormalization') delete config['synchronized'];
  dropDefault('lora_rank', isNull);
  if ('lora_alpha' in config && isNull(config['lora_rank'])) delete config['lora_alpha'];
  dropDefault('quantization_config', isNull);
  for (const key of DROPPED_KEYS) delete config[key];
  if (className === 'GRU' && config['reset_after'] === true) {
    fail(
      `unsupported GRU setting in layer ${name}: reset_after = true (the Keras 3 default) is not supported by TF.js 4.22's GRU. ` +
        'Build the model with keras.layers.GRU(..., reset_after=False), train it and save it again ' +
        '(reset_after=True weights cannot be converted: the two variants compute different functions)',
    );
  }
  if (className === 'Bidirectional') adaptBidirectional(name, config);
}

/** The name TF.js gives the wrapped RNN before prefixing forward_ / backward_ (Keras 3 stores it already prefixed). */
function bidirectionalInnerName(innerConfig: JsonObject): string {
  const n = typeof innerConfig['name'] === 'string' ? innerConfig['name'] : 'rnn';
  return n.replace(/^forward_/, '');
}

/**
 * TF.js 4.22's Bidirectional takes the wrapped layer only and builds the backward copy itself (the
 * same config, go_backwards flipped). Keras 3 also stores `backward_layer`: accepted when it is
 * that mirror, refused otherwise.
 */
function adaptBidirectional(name: string, config: JsonObject): void {
  const inner = config['layer'];
  const innerClass = isObject(inner) ? inner['class_name'] : undefined;
  if (!isObject(inner) || typeof innerClass !== 'string' || !RNN_CLASSES.has(innerClass)) {
    fail(`unsupported Bidirectional layer ${name}: it wraps ${typeof innerClass === 'string' ? `a ${innerClass}` : 'no layer'}; memometer maps Bidirectional over LSTM, GRU or SimpleRNN only`);
  }
  const innerConfig = isObject(inner['config']) ? inner['config'] : (inner['config'] = {});
  adaptLayerConfig(innerClass, `${name} (wrapped ${innerClass})`, innerConfig);
  const innerName = bidirectionalInnerName(innerConfig);
  innerConfig['name'] = innerName;
  const backward = config['backward_layer'];
  if (backward !== undefined && backward !== null) {
    const backClass = isObject(backward) ? backward['class_name'] : undefined;
    const backConfig = isObject(backward) && isObject(backward['config']) ? backward['config'] : undefined;
    if (backConfig && typeof backClass === 'string' && TFJS_LAYERS.has(backClass)) adaptLayerConfig(backClass, `${name} (backward ${backClass})`, backConfig);
    const rest = (c: JsonObject) => Object.fromEntries(Object.entries(c).filter(([k]) => k !== 'name' && k !== 'go_backwards'));
    const mirror =
      backConfig !== undefined &&
      backClass === innerClass &&
      (backConfig['go_backwards'] === true) !== (innerConfig['go_backwards'] === true) &&
      sameJson(rest(backConfig), rest(innerConfig));
    if (!mirror) {
      fail(
        `unsupported Bidirectional setting in layer ${name}: its backward_layer is not the forward ${innerClass} with go_backwards flipped, ` +
          'and TF.js 4.22 builds the backward layer from the forward one; wrap one RNN layer (Bidirectional(LSTM(...))) without backward_layer',
      );
    }
  }
  delete config['backward_layer'];
}

/** Deep equality of two JSON values, key order ignored. */
function sameJson(a: Json | undefined, b: Json | undefined): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => sameJson(v, b[i]));
  }
  if (isObject(a) || isObject(b)) {
    if (!isObject(a) || !isObject(b)) return false;
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && sameJson(a[k], b[k]));
  }
  return a === b;
}

/** One inbound node, Keras 3 {args, kwargs} or legacy list, as [[layer, node, tensor, kwargs], ...]. */
function inboundNode(node: Json, layer: string, index: number): Json {
  if (Array.isArray(node)) return node;
  if (!isObject(node)) fail(`inbound node ${index} of layer ${layer} is not an object`);
  const tensors: Json[][] = [];
  const visit = (v: Json) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (isObject(v) && v['class_name'] === '__keras_tensor__') {
      const history = isObject(v['config']) ? v['config']['keras_history'] : undefined;
      if (!Array.isArray(history) || typeof history[0] !== 'string') fail(`inbound node ${index} of layer ${layer} holds a tensor without keras_history`);
      tensors.push(history.slice(0, 3));
    } else if (isObject(v)) Object.values(v).forEach(visit);
  };
  visit(node['args'] ?? []);
  const kwargs: JsonObject = {};
  for (const [k, v] of Object.entries(isObject(node['kwargs']) ? node['kwargs'] : {})) {
    if (v === null) continue;
    if (JSON.stringify(v).includes('__keras_tensor__')) {
      fail(`unsupported call of layer ${layer}: tensor keyword argument ${k} (TF.js layers take tensors positionally)`);
    }
    kwargs[k] = normalizeValue(v);
  }
  if (tensors.length === 0) fail(`inbound node ${index} of layer ${layer} has no input tensors`);
  return tensors.map((t) => [...t, kwargs]);
}

// ------------------------------------------------------------------------------------------------

function parseJson(bytes: Uint8Array | string, where: string): Json {
  const text = typeof bytes === 'string' ? bytes : new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    return fail(`${where} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`, e);
  }
}

function artifacts(topology: { class_name: string; config: JsonObject }, weights: NamedWeight[], generatedBy: string, kerasVersion: string): tf.io.ModelArtifacts {
  const total = weights.reduce((s, w) => s + w.values.length, 0);
  const data = new Float32Array(total);
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  let offset = 0;
  for (const w of weights) {
    const size = w.shape.reduce((a, b) => a * b, 1);
    if (size !== w.values.length) fail(`shape mismatch for weight ${w.name}: shape [${w.shape.join(', ')}] but ${w.values.length} values`);
    data.set(w.values, offset);
    offset += size;
    weightSpecs.push({ name: w.name, shape: w.shape, dtype: 'float32' });
  }
  return {
    modelTopology: { ...topology, keras_version: kerasVersion, backend: 'tensorflow' },
    format: 'layers-model',
    generatedBy,
    convertedBy: 'memometer (Keras reader)',
    weightSpecs,
    weightData: data.buffer,
  };
}
