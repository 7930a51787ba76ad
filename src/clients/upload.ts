import { readdir, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { writeModelArtifacts } from '../storage/model-reader.js';
import { createS3Client, parseS3Uri, s3ConfigFromEnv } from '../storage/s3-config.js';
import { S3Store } from '../storage/s3-store.js';
import { joinKey } from '../storage/store.js';
import { readLocalModelSource } from './local-files.js';

/**
 * `memometer upload`: puts a local model (checked; TF.js ones re-written as model.json + one shard) and a
 * dataset (an .npz file, or a folder of IDX files) under an s3:// prefix; returns their URIs.
 */
export async function uploadToBucket(to: string, local: { model?: string; dataset?: string }): Promise<{ modelUri?: string; datasetUri?: string }> {
  const { bucket, key: prefix } = parseS3Uri(to, '--to');
  const store = new S3Store(createS3Client(s3ConfigFromEnv()), bucket);
  const uris: { modelUri?: string; datasetUri?: string } = {};
  if (local.model) {
    const source = await readLocalModelSource(local.model);
    // ONNX and Keras files go up as they are (the server converts them and can write a
    // fine-tuned ONNX back); TF.js models as model.json + one shard.
    const modelKey = source.file ? joinKey(prefix, source.file.name) : joinKey(prefix, 'model');
    if (source.file) await store.put(modelKey, source.file.bytes);
    else await writeModelArtifacts(store, modelKey, source.artifacts);
    uris.modelUri = `s3://${bucket}/${modelKey}`;
  }
  if (local.dataset) {
    const info = await stat(local.dataset).catch(() => {
      throw new InvalidArgumentError(`no such file or folder: ${local.dataset}`, '--dataset');
    });
    const name = path.basename(path.resolve(local.dataset));
    const files = info.isDirectory() ? (await readdir(local.dataset)).map((f) => path.join(local.dataset!, f)) : [local.dataset];
    for (const file of files) {
      const key = info.isDirectory() ? joinKey(prefix, name, path.basename(file)) : joinKey(prefix, name);
      await store.put(key, new Uint8Array(await readFile(file)));
    }
    uris.datasetUri = `s3://${bucket}/${joinKey(prefix, name)}`;
  }
  return uris;
}
