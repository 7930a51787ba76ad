import { createHash, randomUUID } from 'node:crypto';
import { NotFoundError, quote } from '../errors.js';
import {
  type ListMeasurementsRequest,
  type ListMeasurementsResponse,
  type MeasureMemorizationRequest,
  Measurement,
  MeasurementState,
} from '../gen/memometer/v1/memometer.js';
import type { StateStore } from '../storage/store.js';
import { allowed, applyEvent, isSuperseded, SUPERSEDED, type LifecycleEvent } from './lifecycle.js';
import { INDEX_PREFIX, indexedMeasurementId, indexEntry, listPage } from './list-index.js';

export { isTerminal } from './lifecycle.js';

const RECORD_PREFIX = 'measurements/';
const RECORD_SUFFIX = '.json';
const recordKey = (id: string) => `${RECORD_PREFIX}${id}${RECORD_SUFFIX}`;
/** Records reindex() reads at once. */
const REINDEX_BATCH = 16;
const leaseKey = (id: string) => `leases/${id}.json`;
const claimKey = (id: string, attempt: number) => `claims/${id}/${attempt}.json`;
// request ids are client strings: hash them into safe, fixed-length keys.
const requestKey = (requestId: string) => `requests/${createHash('sha256').update(requestId).digest('hex')}.json`;

/**
 * Measurement records in object storage, so that every replica can answer GetMeasurement and a
 * restart loses no finished result. Records are JSON (the proto's canonical JSON mapping).
 */
/** Who runs a measurement (QUEUED or RUNNING), until when, and in which attempt. */
export interface Lease {
  owner: string;
  /** Epoch milliseconds. */
  expiresAt: number;
  attempt: number;
}

export class MeasurementRegistry {
  constructor(private readonly store: StateStore) {}

  async save(measurement: Measurement): Promise<void> {
    measurement.updateTime = new Date();
    await this.store.put(recordKey(measurement.measurementId), JSON.stringify(Measurement.toJSON(measurement), null, 2));
  }

  async get(measurementId: string): Promise<Measurement> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(measurementId)) {
      throw new NotFoundError(`no measurement ${quote(measurementId)}`, 'measurement_id');
    }
    try {
      const bytes = await this.store.get(recordKey(measurementId));
      return Measurement.fromJSON(JSON.parse(new TextDecoder().decode(bytes)));
    } catch (error) {
      if (error instanceof NotFoundError) throw new NotFoundError(`no measurement ${quote(measurementId)}`, 'measurement_id');
      throw error;
    }
  }

  /**
   * A page of ListMeasurements from the listing index (list-index.ts): index keys listed a chunk
   * at a time from where the page token points, then one read per record examined.
   */
  list(request: ListMeasurementsRequest): Promise<ListMeasurementsResponse> {
    return listPage({
      keysAfter: (startAfter, limit) => this.store.listAfter(INDEX_PREFIX, startAfter, limit),
      read: (id) => this.get(id).catch((error: unknown) => {
        if (error instanceof NotFoundError) return undefined;
        throw error;
      }),
    }, request);
  }

  /**
   * Writes the listing-index entry of every record that lacks one: records from before the index
   * existed, and a measurement whose creator died between claiming its request_id and listing it.
   * Twins stay unlisted: superseded ones, and one whose request_id another measurement claimed
   * before it could supersede itself. Idempotent (an entry has the same key and body whoever
   * writes it), so it may run while servers serve, on any number of processes.
   */
  async reindex(): Promise<{ records: number; added: number }> {
    const records = (await this.store.list(RECORD_PREFIX)).filter((k) => k.endsWith(RECORD_SUFFIX));
    const indexed = new Set((await this.store.list(INDEX_PREFIX)).map(indexedMeasurementId));
    let added = 0;
    for (let i = 0; i < records.length; i += REINDEX_BATCH) {
      await Promise.all(records.slice(i, i + REINDEX_BATCH).map(async (key) => {
        const id = key.slice(RECORD_PREFIX.length, -RECORD_SUFFIX.length);
        if (indexed.has(id)) return;
        const m = await this.get(id);
        if (isSuperseded(m) || (m.requestId && (await this.claimOf(m.requestId)) !== id)) return;
        const entry = indexEntry(m);
        await this.store.put(entry.key, entry.body);
        added++;
      }));
    }
    return { records: records.length, added };
  }

  /** The measurement an earlier request with this request_id created, if any. */
  async findByRequestId(requestId: string): Promise<Measurement | undefined> {
    const measurementId = await this.claimOf(requestId);
    try {
      return measurementId === undefined ? undefined : await this.get(measurementId);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** The id of the measurement that claimed this request_id, if any. */
  private async claimOf(requestId: string): Promise<string | undefined> {
    if (!requestId) return undefined;
    try {
      const bytes = await this.store.get(requestKey(requestId));
      return (JSON.parse(new TextDecoder().decode(bytes)) as { measurementId: string }).measurementId;
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * A new QUEUED measurement, recorded before anything runs, or, when another request with the
   * same request_id got there first (on any replica, at the same instant too), that one:
   * the request index is created exactly once (StateStore.putIfAbsent) and the loser's record is
   * closed as superseded.
   */
  async create(request: MeasureMemorizationRequest): Promise<{ measurement: Measurement; created: boolean }> {
    const now = new Date();
    const measurement: Measurement = {
      measurementId: randomUUID(),
      requestId: request.requestId,
      state: MeasurementState.MEASUREMENT_STATE_QUEUED,
      request,
      result: undefined,
      error: undefined,
      createTime: now,
      updateTime: now,
    };
    await this.save(measurement);
    const won = !request.requestId
      || await this.store.putIfAbsent(requestKey(request.requestId), JSON.stringify({ measurementId: measurement.measurementId }));
    if (won) {
      // Only the winner is listed: a superseded twin is a record nobody was told about.
      const { key, body } = indexEntry(measurement);
      await this.store.put(key, body);
      return { measurement, created: true };
    }
    await this.transition(measurement, 'supersede', { ...SUPERSEDED });
    const existing = await this.findByRequestId(request.requestId);
    if (!existing) throw new NotFoundError('the measurement of this request_id vanished', 'request_id');
    return { measurement: existing, created: false };
  }

  /**
   * Applies a lifecycle event (lifecycle.ts) to the measurement as stored NOW, read again: when
   * the stored state allows it, `m` (with its result or error) is saved in the event's state;
   * otherwise another replica's event came first and `m` takes the stored record. Returns `m`.
   */
  async transition(m: Measurement, event: LifecycleEvent, error?: Measurement['error']): Promise<Measurement> {
    const stored = await this.get(m.measurementId);
    if (!allowed(stored.state, event)) return Object.assign(m, stored);
    const next = applyEvent({ ...m, state: stored.state }, event, error);
    await this.save(next);
    return Object.assign(m, next);
  }

  async lease(measurementId: string): Promise<Lease | undefined> {
    try {
      return JSON.parse(new TextDecoder().decode(await this.store.get(leaseKey(measurementId)))) as Lease;
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  async renewLease(measurementId: string, lease: Lease): Promise<void> {
    await this.store.put(leaseKey(measurementId), JSON.stringify(lease));
  }

  /** Claims attempt `attempt` of a measurement: of replicas taking it over, exactly one wins. */
  claimAttempt(measurementId: string, attempt: number, owner: string): Promise<boolean> {
    return this.store.putIfAbsent(claimKey(measurementId, attempt), JSON.stringify({ owner, nonce: randomUUID() }));
  }
}
