/**
 * The listing index of measurement records: one object per measurement, written when it is
 * created, whose KEY holds everything the model and time conditions need, so that a listing
 * filters on one LIST of the index and reads only records that may match:
 *
 *     index/<9999999999999 - create-time ms, 13 digits>-<16 hex of sha256(model_uri)>-<measurement id>
 *
 * Keys sort newest first. The state changes, so it is not indexed: the record is read for it
 * (the record is read anyway, to be returned). The object's body repeats the fields as JSON, for
 * people looking at the bucket.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import type { ListMeasurementsRequest, ListMeasurementsResponse, Measurement } from '../gen/memometer/v1/memometer.js';
import { matches, oldestAllowed, parseFilter } from './list-filter.js';
import { decodeToken, encodeToken } from './list-token.js';

export const INDEX_PREFIX = 'index/';
const NEWEST_MS = 9_999_999_999_999; // 13 digits: year 2286
const INDEX_KEY = /^index\/(\d{13})-([0-9a-f]{16})-([A-Za-z0-9-]{1,64})$/;

/** Page sizes (AIP-158): 0 means the default, more than the maximum is the maximum. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;
/**
 * The most records one page reads: a filter on state that few records meet ends a page early
 * (with a next_page_token) rather than reading the whole bucket in one call.
 */
export const MAX_READS_PER_PAGE = 1000;
/** Records read at once. */
const READ_BATCH = 32;

const modelTag = (uri: string) => createHash('sha256').update(uri).digest('hex').slice(0, 16);

interface IndexEntry {
  key: string;
  createMs: number;
  modelTag: string;
  measurementId: string;
}

function parseIndexKey(key: string): IndexEntry | undefined {
  const m = INDEX_KEY.exec(key);
  return m ? { key, createMs: NEWEST_MS - Number(m[1]), modelTag: m[2]!, measurementId: m[3]! } : undefined;
}

const isIndexKey = (key: string) => parseIndexKey(key) !== undefined;

/** The index object of a new measurement. */
export function indexEntry(m: Measurement): { key: string; body: string } {
  const createTime = m.createTime ?? new Date();
  const modelUri = m.request?.modelUri ?? '';
  const inverted = String(NEWEST_MS - createTime.getTime()).padStart(13, '0');
  return {
    key: `${INDEX_PREFIX}${inverted}-${modelTag(modelUri)}-${m.measurementId}`,
    body: JSON.stringify({ measurementId: m.measurementId, modelUri, createTime: createTime.toISOString() }),
  };
}

/** Where a listing reads: the index keys (sorted) and the records. */
export interface IndexSource {
  keys(): Promise<string[]>;
  /** The record, or undefined when there is none (its creation was cut short). */
  read(measurementId: string): Promise<Measurement | undefined>;
}

function pageSize(requested: number): number {
  if (requested < 0) throw new InvalidArgumentError(`must not be negative, got ${requested}`, 'page_size');
  return Math.min(requested || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
}

/**
 * One page of ListMeasurements, newest first. The model and time conditions are checked on the
 * index keys, the whole filter again on each record read. The next_page_token names the last
 * index entry examined, so pages stay stable while measurements are added (they sort before it).
 */
export async function listPage(source: IndexSource, request: ListMeasurementsRequest, maxReads = MAX_READS_PER_PAGE): Promise<ListMeasurementsResponse> {
  const size = pageSize(request.pageSize);
  const filter = parseFilter(request.filter);
  const after = request.pageToken ? decodeToken(request.pageToken, filter, isIndexKey) : undefined;
  const oldest = oldestAllowed(filter);
  const tags = new Map<string, string>();
  const tagOf = (uri: string) => tags.get(uri) ?? tags.set(uri, modelTag(uri)).get(uri)!;

  const candidates: IndexEntry[] = [];
  for (const key of await source.keys()) {
    const entry = after !== undefined && key <= after ? undefined : parseIndexKey(key);
    if (!entry) continue;
    if (entry.createMs < oldest) break; // all later keys are older still
    if (matches(filter, { isModel: (uri) => tagOf(uri) === entry.modelTag, createTime: new Date(entry.createMs) })) candidates.push(entry);
  }

  const measurements: Measurement[] = [];
  let examined = 0;
  while (examined < candidates.length && examined < maxReads && measurements.length < size) {
    const batch = candidates.slice(examined, examined + Math.min(READ_BATCH, maxReads - examined));
    const records = await Promise.all(batch.map((e) => source.read(e.measurementId)));
    for (const m of records) {
      examined++;
      if (m && matches(filter, { isModel: (uri) => uri === m.request?.modelUri, createTime: m.createTime ?? new Date(0), state: m.state })) {
        measurements.push(m);
        if (measurements.length === size) break;
      }
    }
  }
  const nextPageToken = examined < candidates.length ? encodeToken(candidates[examined - 1]!.key, filter) : '';
  return { measurements, nextPageToken };
}
