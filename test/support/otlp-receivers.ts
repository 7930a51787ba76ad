/** OTLP receivers for the telemetry tests: OTLP/HTTP (JSON and protobuf) and OTLP/gRPC, recording raw requests. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';

export interface Received {
  path: string;
  contentType: string;
  body: Buffer;
}

export interface OtlpReceivers {
  /** OTLP/HTTP requests as received. */
  http: Received[];
  /** Raw request bytes of the gRPC Export calls. */
  grpc: Buffer[];
  httpBase: string;
  grpcBase: string;
  close(): Promise<void>;
}

/**
 * Starts both receivers on 127.0.0.1. `exportPath` is the gRPC method to serve, e.g.
 * '/opentelemetry.proto.collector.trace.v1.TraceService/Export'. Start them before telemetry
 * starts: grpc-js is then not patched yet, so the receiver's own calls make no spans.
 */
export async function startOtlpReceivers(exportPath: string): Promise<OtlpReceivers> {
  const receivers = { http: [] as Received[], grpc: [] as Buffer[] };
  const http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receivers.http.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body: Buffer.concat(chunks) });
      // An empty Export response: {} in JSON, zero bytes in protobuf.
      const json = String(req.headers['content-type']).includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : '');
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));

  const server = new grpc.Server();
  const raw = (b: Buffer) => b;
  server.addService(
    { export: { path: exportPath, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    {
      export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        receivers.grpc.push(call.request);
        callback(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    ...receivers,
    httpBase: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    grpcBase: `http://127.0.0.1:${port}`,
    async close() {
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}
