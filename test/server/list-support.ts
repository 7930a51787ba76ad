/** Seeding and paging helpers of the ListMeasurements tests (registry, RPC, CLI). */
import { expect } from 'vitest';
import {
  type ListMeasurementsRequest,
  type ListMeasurementsResponse,
  MeasureMemorizationRequest,
  type Measurement,
  MeasurementResult,
  MeasurementState,
} from '../../src/gen/memometer/v1/memometer.js';
import type { MeasurementRegistry } from '../../src/server/registry.js';

export type StateName = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Creates one measurement per spec, in order, a few milliseconds apart (distinct create times),
 * and moves each to its state as the service would. Returns them newest first.
 */
export async function seed(registry: MeasurementRegistry, specs: { model: string; state: StateName }[]): Promise<Measurement[]> {
  const made: Measurement[] = [];
  for (const { model, state } of specs) {
    await sleep(3);
    const { measurement: m } = await registry.create(MeasureMemorizationRequest.fromPartial({ modelUri: model, datasetUri: 'data.npz' }));
    if (state === 'RUNNING' || state === 'SUCCEEDED') await registry.transition(m, 'start');
    if (state === 'SUCCEEDED') {
      m.result = MeasurementResult.fromPartial({ depths: [{ copyDepth: 1, memorizationScore: 0.25 }, { copyDepth: 2, memorizationScore: 0.5 }] });
      await registry.transition(m, 'succeed');
    }
    if (state === 'FAILED') await registry.transition(m, 'fail', { code: 'NOT_FOUND', message: 'model_uri: no such model' });
    if (state === 'CANCELLED') await registry.transition(m, 'cancel', { code: 'CANCELLED', message: 'cancelled by CancelMeasurement' });
    expect(m.state).toBe(MeasurementState[`MEASUREMENT_STATE_${state}`]);
    made.push(m);
  }
  return made.reverse();
}

/** Follows next_page_token to the end; the ids of each page. */
export async function pages(
  list: (request: ListMeasurementsRequest) => Promise<ListMeasurementsResponse>,
  filter: string,
  pageSize: number,
): Promise<string[][]> {
  const out: string[][] = [];
  let pageToken = '';
  do {
    const page = await list({ filter, pageSize, pageToken });
    out.push(page.measurements.map((m) => m.measurementId));
    pageToken = page.nextPageToken;
  } while (pageToken && out.length < 100);
  return out;
}

export const ids = (ms: Measurement[]) => ms.map((m) => m.measurementId);
