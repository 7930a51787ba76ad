import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';

/** grpc.health.v1.Health/Check, as a Kubernetes gRPC probe calls it. */
export function healthCheck(address: string, service = ''): Promise<string> {
  const Health = grpc.makeGenericClientConstructor(healthService, 'Health');
  const client = new Health(address, grpc.credentials.createInsecure()) as unknown as {
    check(req: { service: string }, cb: (e: grpc.ServiceError | null, r: { status: string }) => void): void;
    close(): void;
  };
  return new Promise((resolve, reject) =>
    client.check({ service }, (error, response) => {
      client.close();
      return error ? reject(error) : resolve(response.status);
    }),
  );
}

/** The services the server lists through grpc.reflection.v1 (what grpcurl would show). */
export function reflectedServices(address: string): Promise<string[]> {
  const definition = loadSync('node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');
  const Reflection = grpc.makeGenericClientConstructor(definition['grpc.reflection.v1.ServerReflection'] as grpc.ServiceDefinition, 'ServerReflection');
  const client = new Reflection(address, grpc.credentials.createInsecure()) as unknown as {
    serverReflectionInfo(): grpc.ClientDuplexStream<object, { listServicesResponse?: { service: { name: string }[] } }>;
    close(): void;
  };
  return new Promise((resolve, reject) => {
    const call = client.serverReflectionInfo();
    call.on('data', (response: { listServicesResponse?: { service: { name: string }[] } }) => {
      resolve(response.listServicesResponse?.service.map((s: { name: string }) => s.name) ?? []);
      call.end();
      client.close();
    });
    call.on('error', reject);
    call.write({ listServices: '*' });
  });
}
