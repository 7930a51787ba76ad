import * as path from 'node:path';
import { BASELINE_SUBJECT, type Baseline } from '../report/baseline.js';
import { readBaseline } from '../report/baseline-reader.js';
import { FileStore } from '../storage/file-store.js';
import { createS3Client, parseS3Uri, s3ConfigFromEnv } from '../storage/s3-config.js';
import { S3Store } from '../storage/s3-store.js';

/** `--baseline`: a local report.json, or an s3:// one (S3 settings from the environment, as for upload). */
export function readCliBaseline(uri: string): Promise<Baseline> {
  if (/^s3:\/\//i.test(uri)) {
    const { bucket, key } = parseS3Uri(uri, BASELINE_SUBJECT);
    return readBaseline({ store: new S3Store(createS3Client(s3ConfigFromEnv()), bucket), key, uri });
  }
  const absolute = path.resolve(uri);
  return readBaseline({ store: new FileStore(path.dirname(absolute)), key: path.basename(absolute), uri: absolute });
}
