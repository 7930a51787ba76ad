#!/usr/bin/env node
/**
 * A gRPC health check (grpc.health.v1.Health/Check) for the container's HEALTHCHECK and for
 * people: exits 0 only when the server answers SERVING for the service; 1 when it answers
 * anything else (NOT_SERVING while draining after SIGTERM, NOT_FOUND for an unknown service),
 * cannot be reached, or does not answer within the timeout; 2 on bad arguments.
 *
 *   node docker/healthcheck.mjs [--address HOST:PORT] [--service NAME] [--timeout SECONDS]
 *
 * Defaults: --address 127.0.0.1:$MEMOMETER_PORT (50051), --service memometer.v1.MemorizationService
 * (SERVICE_NAME in src/server/server.ts; '' asks for the server as a whole), --timeout 5.
 * It needs only production dependencies (@grpc/grpc-js, @grpc/proto-loader, grpc-health-check).
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import healthCheck from 'grpc-health-check';

const DEFAULT_SERVICE = 'memometer.v1.MemorizationService';

function usage(message) {
  process.stderr.write(`healthcheck: ${message}\nusage: healthcheck.mjs [--address HOST:PORT] [--service NAME] [--timeout SECONDS]\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: { address: { type: 'string' }, service: { type: 'string' }, timeout: { type: 'string' } },
    strict: true,
  }));
} catch (error) {
  usage(error.message);
}
const address = values.address ?? `127.0.0.1:${process.env.MEMOMETER_PORT || 50051}`;
const service = values.service ?? DEFAULT_SERVICE;
const timeoutSeconds = Number(values.timeout ?? 5);
if (!(timeoutSeconds > 0)) usage(`--timeout must be a positive number of seconds, got '${values.timeout}'`);

const definition = protoLoader.loadSync(healthCheck.protoPath, { keepCase: true, enums: String });
const { Health } = grpc.loadPackageDefinition(definition).grpc.health.v1;
const client = new Health(address, grpc.credentials.createInsecure());
const deadline = new Date(Date.now() + timeoutSeconds * 1000);
const label = `${address} service '${service}'`;

client.check({ service }, { deadline }, (error, response) => {
  client.close();
  if (error) {
    process.stderr.write(`healthcheck: ${label}: ${grpc.status[error.code] ?? error.code}: ${error.details}\n`);
    process.exit(1);
  }
  const status = response?.status ?? 'UNKNOWN';
  const line = `healthcheck: ${label}: ${status}\n`;
  if (status === 'SERVING') {
    process.stdout.write(line);
    process.exit(0);
  }
  process.stderr.write(line);
  process.exit(1);
});
