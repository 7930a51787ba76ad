/**
 * The TypeScript client package entry (`import { MemometerClient } from 'memometer'`): the
 * client, the API's generated message types, and the helpers that map engine options to a
 * request and a result back to the engine's shape.
 */
export { MemometerClient, type MemometerClientOptions, type MeasureOutcome } from './client.js';
export { requestFromOptions } from '../api/request.js';
export { resultFromProto, progressFromProto } from '../api/events.js';
export * from '../gen/memometer/v1/memometer.js';
export type { MeasureOptions, MeasurementEvent } from '../metric/types.js';
