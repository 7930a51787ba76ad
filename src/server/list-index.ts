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
 * What one page may cost. A filter that few records meet ends a page early (with a
 * next_page_token) instead of reading the whole bucket in one call: on state after `reads`
 * records, on model or time after `keys` index keys. Keys are listed `chunk` at a time (S3 returns
 * at most 1000 per LIST), so a page costs what it reads, not the size of the index.
 */
export interface PageLimits {
  reads: number;
  keys: number;
  chunk: number;
}

export const PAGE_LIMITS: PageLimits = { reads: 1000, keys: 10_000, chunk: 1000 };
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

/** The measurement an index key lists, or undefined for a key that is not an index entry. */
export const indexedMeasurementId = (key: string): string | undefined => parseIndexKey(key)?.measurementId;

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

/** Where a listing reads: the index keys, in order, and the records. */
export interface IndexSource {
  /** Up to `limit` index keys after `startAfter` ('' = from the newest), in order. */
  keysAfter(startAfter: string, limit: number): Promise<string[]>;
  /** The record, or undefined when there is none (its creation was cut short). */
  read(measurementId: string): Promise<Measurement | undefined>;
}

function pageSize(requested: number): number {
  if (requested < 0) throw new InvalidArgumentError(`must not be negative, got ${requested}`, 'page_size');
  return Math.min(requested || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
}

/**
 * The index entries after a key, newest first, listed a chunk at a time. It ends at the end of
 * the index, at the first entry older than the filter allows (all later ones are older still), or
 * when it has scanned its budget of keys.
 */
class IndexScan {
  /** The last index key scanned: a page that ends here resumes after it. */
  lastKey: string;
  /** Why next() returned undefined: nothing is left, or the key budget is spent. */
  stopped: 'end' | 'budget' | undefined;
  private chunk: string[] = [];
  private at = 0;
  private cursor: string;
  private scanned = 0;

  constructor(
    private readonly source: IndexSource,
    after: string,
    private readonly oldestMs: number,
    private readonly limits: PageLimits,
  ) {
    this.lastKey = this.cursor = after;
  }

  async next(): Promise<IndexEntry | undefined> {
    while (!this.stopped) {
      if (this.scanned === this.limits.keys) {
        this.stopped = 'budget';
      } else if (this.at < this.chunk.length) {
        this.scanned++;
        const entry = parseIndexKey(this.chunk[this.at++]!);
        if (!entry) continue; // not an index key: nothing to list, and no token may name it
        if (entry.createMs < this.oldestMs) {
          this.stopped = 'end';
        } else {
          this.lastKey = entry.key;
          return entry;
        }
      } else if (this.chunk.length > 0 && this.chunk.length < this.limits.chunk) {
        this.stopped = 'end'; // a short chunk was the last one
      } else {
        this.chunk = await this.source.keysAfter(this.cursor, this.limits.chunk);
        this.at = 0;
        if (this.chunk.length === 0) this.stopped = 'end';
        else this.cursor = this.chunk[this.chunk.length - 1]!;
      }
    }
    return undefined;
  }
}

/**
 * One page of ListMeasurements, newest first. The model and time conditions are checked on the
 * index keys, the whole filter again on each record read. The next_page_token names the last
 * index entry the page consumed, so pages stay stable while measurements are added (they sort
 * before it); it is empty only when no later entry can match.
 */
export async function listPage(source: IndexSource, request: ListMeasurementsRequest, limits: PageLimits = PAGE_LIMITS): Promise<ListMeasurementsResponse> {
  const size = pageSize(request.pageSize);
  const filter = parseFilter(request.filter);
  const after = request.pageToken ? decodeToken(request.pageToken, filter, isIndexKey) : '';
  const tags = new Map<string, string>();
  const tagOf = (uri: string) => tags.get(uri) ?? tags.set(uri, modelTag(uri)).get(uri)!;
  const scan = new IndexScan(source, after, oldestAllowed(filter), limits);
  /** The next entry the key-level conditions admit, or undefined when the scan stops. */
  const nextCandidate = async (): Promise<IndexEntry | undefined> => {
    for (let entry = await scan.next(); entry; entry = await scan.next()) {
      if (matches(filter, { isModel: (uri) => tagOf(uri) === entry.modelTag, createTime: new Date(entry.createMs) })) return entry;
    }
    return undefined;
  };
  /** Whether an entry after those consumed may still match (unknown past the key budget: yes). */
  const laterMayMatch = async () => (await nextCandidate()) !== undefined || scan.stopped === 'budget';

  const measurements: Measurement[] = [];
  let reads = 0;
  let resumeAfter = after;
  for (;;) {
    const batch: IndexEntry[] = [];
    // Each entry gives at most one measurement: never read more than the page still needs.
    while (batch.length < Math.min(READ_BATCH, limits.reads - reads, size - measurements.length)) {
      const entry = await nextCandidate();
      if (!entry) break;
      batch.push(entry);
    }
    const records = await Promise.all(batch.map((e) => source.read(e.measurementId)));
    for (const [i, m] of records.entries()) {
      reads++;
      resumeAfter = batch[i]!.key;
      if (!m || !matches(filter, { isModel: (uri) => uri === m.request?.modelUri, createTime: m.createTime ?? new Date(0), state: m.state })) continue;
      if (measurements.push(m) < size) continue;
      // Full: a token only when a later entry may match (an unread one of the batch, or one further on).
      const more = i < batch.length - 1 || (await laterMayMatch());
      return { measurements, nextPageToken: more ? encodeToken(resumeAfter, filter) : '' };
    }
    if (scan.stopped === 'end') return { measurements, nextPageToken: '' };
    // Out of keys to scan: resume after the last one (every key up to it was read or ruled out).
    if (scan.stopped === 'budget') return { measurements, nextPageToken: encodeToken(scan.lastKey, filter) };
    if (reads === limits.reads) return { measurements, nextPageToken: (await laterMayMatch()) ? encodeToken(resumeAfter, filter) : '' };
  }
}
