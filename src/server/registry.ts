import { createHash, randomUUID } from 'node:crypto';
import { NotFoundError } from '../errors.js';
import {
  type MeasureMemorizationRequest,
  Measurement,
  MeasurementState,
} from '../gen/memometer/v1/memometer.js';
import type { ObjectStore } from '../storage/store.js';

const TERMINAL = new Set([
  MeasurementState.MEASUREMENT_STATE_SUCCEEDED,
  MeasurementState.MEASUREMENT_STATE_FAILED,
  MeasurementState.MEASUREMENT_STATE_CANCELLED,
]);

export const isTerminal = (m: Measurement) => TERMINAL.has(m.state);

const recordKey = (id: string) => `measurements/${id}.json`;
// request ids are client strings: hash them into safe, fixed-length keys.
const requestKey = (requestId: string) => `requests/${createHash('sha256').update(requestId).digest('hex')}.json`;

/**
 * Measurement records in object storage, so that every replica can answer GetMeasurement and a
 * restart loses no finished result. Records are JSON (the proto's canonical JSON mapping).
 */
export class MeasurementRegistry {
  constructor(private readonly store: ObjectStore) {}

  async save(measurement: Measurement): Promise<void> {
    measurement.updateTime = new Date();
    await this.store.put(recordKey(measurement.measurementId), JSON.stringify(Measurement.toJSON(measurement), null, 2));
  }

  async get(measurementId: string): Promise<Measurement> {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(measurementId)) {
      throw new NotFoundError(`no measurement '${measurementId}'`, 'measurement_id');
    }
    try {
      const bytes = await this.store.get(recordKey(measurementId));
      return Measurement.fromJSON(JSON.parse(new TextDecoder().decode(bytes)));
    } catch (error) {
      if (error instanceof NotFoundError) throw new NotFoundError(`no measurement '${measurementId}'`, 'measurement_id');
      throw error;
    }
  }

  /** The measurement an earlier request with this request_id created, if any. */
  async findByRequestId(requestId: string): Promise<Measurement | undefined> {
    if (!requestId) return undefined;
    try {
      const bytes = await this.store.get(requestKey(requestId));
      const { measurementId } = JSON.parse(new TextDecoder().decode(bytes)) as { measurementId: string };
      return await this.get(measurementId);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  /** A new QUEUED measurement, recorded (with its request_id index) before anything runs. */
  async create(request: MeasureMemorizationRequest): Promise<Measurement> {
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
    if (request.requestId) {
      await this.store.put(requestKey(request.requestId), JSON.stringify({ measurementId: measurement.measurementId }));
    }
    return measurement;
  }
}
