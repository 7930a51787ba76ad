import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  MeasureMemorizationRequest,
  type MeasureMemorizationResponse,
  type Measurement,
  type MeasurementResult,
  MemorizationServiceClient,
} from '../gen/memometer/v1/memometer.js';

export interface MemometerClientOptions {
  /** host:port of the service, or dns:///name:port to balance over every replica behind a headless Service. */
  address: string;
  /** Bearer token, when the service requires one. */
  token?: string;
  /** TLS (default: plaintext, e.g. inside a cluster). */
  credentials?: grpc.ChannelCredentials;
  /** Deadline of GetMeasurement/CancelMeasurement calls. Default 30 s. */
  unaryDeadlineMs?: number;
  /** Deadline of a whole measurement stream. Default: none. */
  measureDeadlineMs?: number;
  /** Retries of calls that fail with UNAVAILABLE (a replica going away). Default 4. */
  retries?: number;
}

export interface MeasureOutcome {
  measurementId: string;
  result: MeasurementResult;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const backoffMs = (attempt: number) => Math.min(5000, 200 * 2 ** attempt);
const isUnavailable = (error: unknown) => (error as grpc.ServiceError).code === grpc.status.UNAVAILABLE;

/**
 * A typed client of memometer.v1.MemorizationService with deadlines and retries. A measurement
 * request always carries a request_id (one is generated when missing), so a retried stream
 * re-attaches to the same measurement instead of starting a second one.
 */
export class MemometerClient {
  private readonly stub: InstanceType<typeof MemorizationServiceClient>;

  constructor(private readonly options: MemometerClientOptions) {
    // round_robin over every address the target resolves to: with a headless Service and a
    // dns:/// target, one client spreads its measurements over all replicas.
    this.stub = new MemorizationServiceClient(options.address, options.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    });
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.options.token) metadata.set('authorization', `Bearer ${this.options.token}`);
    return metadata;
  }

  private deadline(ms: number | undefined): grpc.CallOptions {
    return ms === undefined ? {} : { deadline: Date.now() + ms };
  }

  private async withRetries<T>(call: () => Promise<T>): Promise<T> {
    const retries = this.options.retries ?? 4;
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (!isUnavailable(error) || attempt >= retries) throw error;
        await sleep(backoffMs(attempt));
      }
    }
  }

  /** Streams a measurement's messages, re-attaching after UNAVAILABLE. */
  async *stream(request: Partial<MeasureMemorizationRequest>, signal?: AbortSignal): AsyncGenerator<MeasureMemorizationResponse> {
    const full = MeasureMemorizationRequest.fromPartial({ ...request, requestId: request.requestId || randomUUID() });
    const retries = this.options.retries ?? 4;
    for (let attempt = 0; ; attempt++) {
      const call = this.stub.measureMemorization(full, this.metadata(), this.deadline(this.options.measureDeadlineMs));
      const cancel = () => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
      try {
        for await (const message of call as AsyncIterable<MeasureMemorizationResponse>) yield message;
        return;
      } catch (error) {
        if (!isUnavailable(error) || attempt >= retries) throw error;
        await sleep(backoffMs(attempt));
      } finally {
        signal?.removeEventListener('abort', cancel);
        call.cancel();
      }
    }
  }

  /** Runs a measurement to the end; `onMessage` sees every progress message. */
  async measure(
    request: Partial<MeasureMemorizationRequest>,
    onMessage?: (message: MeasureMemorizationResponse) => void,
    signal?: AbortSignal,
  ): Promise<MeasureOutcome> {
    let measurementId = '';
    let result: MeasurementResult | undefined;
    // Read to the end of the stream (its OK status), not just to the result message.
    for await (const message of this.stream(request, signal)) {
      onMessage?.(message);
      if (message.event?.$case === 'started') measurementId = message.event.value.measurementId;
      if (message.event?.$case === 'result') result = message.event.value;
    }
    if (!result) throw new Error('the measurement stream ended without a result');
    return { measurementId, result };
  }

  getMeasurement(measurementId: string): Promise<Measurement> {
    return this.withRetries(
      () => new Promise((resolve, reject) =>
        this.stub.getMeasurement({ measurementId }, this.metadata(), this.deadline(this.options.unaryDeadlineMs ?? 30_000), (e, r) => (e ? reject(e) : resolve(r))),
      ),
    );
  }

  cancelMeasurement(measurementId: string): Promise<Measurement> {
    return this.withRetries(
      () => new Promise((resolve, reject) =>
        this.stub.cancelMeasurement({ measurementId }, this.metadata(), this.deadline(this.options.unaryDeadlineMs ?? 30_000), (e, r) => (e ? reject(e) : resolve(r))),
      ),
    );
  }

  close(): void {
    this.stub.close();
  }
}
