import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import { UnavailableError } from '../errors.js';
import { initBackend, type BackendChoice } from '../metric/backend/index.js';
import { checkEngineEnvironment } from '../metric/options.js';
import { MemorizationServiceService } from '../gen/memometer/v1/memometer.js';
import { Admission } from './admission.js';
import { defaultStateUri, type ServerConfig } from './config.js';
import { Locations } from './locations.js';
import { MeasurementRegistry } from './registry.js';
import { MemorizationService } from './service.js';

/** The service name health checks and reflection report. */
export const SERVICE_NAME = 'memometer.v1.MemorizationService';

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../proto');

export interface RunningServer {
  port: number;
  backend: BackendChoice;
  service: MemorizationService;
  /** Graceful stop: NOT_SERVING, no new work, running measurements get the grace period. */
  shutdown(): Promise<void>;
}

/** The registry of the measurement records in the configured state location. */
export function openRegistry(config: ServerConfig, locations: Locations, env: NodeJS.ProcessEnv): MeasurementRegistry {
  return new MeasurementRegistry(locations.stateStore(config.stateUri ?? defaultStateUri(env)));
}

/** Starts the gRPC server: the service, grpc.health.v1 and server reflection. `env` holds S3 settings. */
export async function startServer(config: ServerConfig, env: NodeJS.ProcessEnv = process.env): Promise<RunningServer> {
  const backend = await initBackend();
  checkEngineEnvironment();
  const locations = new Locations(config, env);
  const service = new MemorizationService({
    config,
    locations,
    registry: openRegistry(config, locations, env),
    admission: new Admission(config.maxConcurrent, config.maxQueued),
  });
  // Connections are recycled every few minutes (streams in flight finish undisturbed), so
  // clients balancing over a headless Service notice replicas added by the autoscaler.
  const server = new grpc.Server({ 'grpc.max_connection_age_ms': 5 * 60_000 });
  server.addService(MemorizationServiceService, service.handlers);
  const health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
  health.addToServer(server);
  // Reflection describes both services, so grpcurl and friends can call the health check too.
  const definition = loadSync([path.join(PROTO_ROOT, 'memometer/v1/memometer.proto'), healthProtoPath], { includeDirs: [PROTO_ROOT] });
  new ReflectionService(definition).addToServer(server);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.host}:${config.port}`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(new UnavailableError(`cannot listen on ${config.host}:${config.port}: ${error.message}`)) : resolve(bound),
    ),
  );
  let stopping: Promise<void> | undefined;
  return {
    port,
    backend,
    service,
    shutdown: () =>
      (stopping ??= (async () => {
        health.setStatus('', 'NOT_SERVING');
        health.setStatus(SERVICE_NAME, 'NOT_SERVING');
        await service.drain(config.shutdownGraceSeconds * 1000);
        // Health Watch streams never end on their own: give calls a moment, then force.
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => server.forceShutdown(), 2000).unref();
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
      })()),
  };
}
