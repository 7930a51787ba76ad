import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import {
  type ListMeasurementsResponse,
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
  /** Deadline of GetMeasurement/CancelMeasurement/ListMeasurements calls (each page). Default 30 s. */
  unaryDeadlineMs?: number;
  /** Deadline of a whole measurement stream. Default: none. */
  measureDeadlineMs?: number;
  /** Retries of calls that fail with UNAVAILABLE (a replica going away). Default 4. */
  retries?: number;
}

/** ListMeasurements' parameters (see the proto): a filter such as `state = SUCCEEDED AND model_uri = "s3://b/m"`. */
export interface ListOptions {
  filter?: string;
  /** Per page; 0 or absent: the server's default (50); at most 1000. */
  pageSize?: number;
  /** The nextPageToken of the previous page. */
  pageToken?: string;
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

  /** A unary call with the unary deadline, retried after UNAVAILABLE (every one of them is idempotent). */
  private unary<Req, Res>(
    method: (request: Req, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: Res) => void) => unknown,
    request: Req,
  ): Promise<Res> {
    return this.withRetries(
      () => new Promise((resolve, reject) =>
        method.call(this.stub, request, this.metadata(), this.deadline(this.options.unaryDeadlineMs ?? 30_000), (e, r) => (e ? reject(e) : resolve(r))),
      ),
    );
  }

  getMeasurement(measurementId: string): Promise<Measurement> {
    return this.unary(this.stub.getMeasurement.bind(this.stub), { measurementId });
  }

  cancelMeasurement(measurementId: string): Promise<Measurement> {
    return this.unary(this.stub.cancelMeasurement.bind(this.stub), { measurementId });
  }

  /** One page of measurements, newest first. */
  list(options: ListOptions = {}): Promise<ListMeasurementsResponse> {
    return this.unary(this.stub.listMeasurements.bind(this.stub), { filter: options.filter ?? '', pageSize: options.pageSize ?? 0, pageToken: options.pageToken ?? '' });
  }

  /** Every measurement the filter matches, newest first, fetching page after page as they are read. */
  async *listAll(options: Omit<ListOptions, 'pageToken'> = {}): AsyncGenerator<Measurement> {
    let pageToken = '';
    do {
      const page = await this.list({ ...options, pageToken });
      yield* page.measurements;
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  close(): void {
    this.stub.close();
  }
}
