import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../errors.js';

let copies = 0;

type Config = Record<string, unknown>;

/** Sets `seed` in every initializer config that has one, so copies initialise reproducibly. */
function seedInitializers(config: Config, seed: number): Config {
  const out: Config = { ...config };
  let salt = 0;
  for (const [key, value] of Object.entries(config)) {
    const inner = (value as { config?: Config } | null)?.config;
    if (key.endsWith('Initializer') && inner && 'seed' in inner) {
      out[key] = { ...(value as Config), config: { ...inner, seed: (seed + salt++) >>> 0 } };
    }
  }
  return out;
}

/**
 * A new, unbuilt layer of the same class and hyper-parameters as `layer` (its own weights,
 * fresh from its initializers), with `overrides` applied to the config.
 */
export function copyLayer(
  layer: tf.layers.Layer,
  overrides: Config = {},
  seed?: number,
): tf.layers.Layer {
  const className = layer.getClassName();
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
  if (!entry) throw new InvalidArgumentError(`unknown layer class ${className}`, 'model');
  const [cls, fromConfig] = entry;
  let config: Config = { ...(layer.getConfig() as Config), ...overrides };
  delete config.batchInputShape;
  delete config.inputShape;
  config.name = `${layer.name}_copy${++copies}`;
  if (seed !== undefined) config = seedInitializers(config, seed);
  return fromConfig(cls, config as tf.serialization.ConfigDict) as tf.layers.Layer;
}
