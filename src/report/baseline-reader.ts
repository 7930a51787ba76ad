import { InvalidArgumentError, NotFoundError, quote } from '../errors.js';
import { byteLimited } from '../storage/byte-limited.js';
import type { ObjectStore } from '../storage/store.js';
import { BASELINE_SUBJECT, MAX_BASELINE_BYTES, type Baseline } from './baseline.js';
import { parseReportFile } from './report-file.js';

/**
 * Reads a baseline report.json (the server's and the CLI's stores alike): refused before it is
 * read when over MAX_BASELINE_BYTES; every error names the baseline (BASELINE_SUBJECT).
 */
export async function readBaseline(at: { store: ObjectStore; key: string; uri: string }): Promise<Baseline> {
  let bytes: Uint8Array;
  try {
    bytes = await byteLimited(at.store, MAX_BASELINE_BYTES, BASELINE_SUBJECT).get(at.key);
  } catch (error) {
    if (error instanceof NotFoundError) throw new NotFoundError(`no report at ${quote(at.uri)}`, BASELINE_SUBJECT, { cause: error });
    throw error;
  }
  try {
    return { uri: at.uri, report: parseReportFile(new TextDecoder().decode(bytes), at.uri) };
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw new InvalidArgumentError(error.message, BASELINE_SUBJECT, { cause: error });
    throw error;
  }
}
