import { createServer } from 'node:net';
import { status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { MemometerClient } from '../../src/clients/client.js';
import { startTestService } from '../support/service.js';

/** A port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('MemometerClient', () => {
  it('retries UNAVAILABLE until a replica answers, and fails fast without retries', async () => {
    const port = await freePort();
    const impatient = new MemometerClient({ address: `127.0.0.1:${port}`, retries: 0 });
    expect(await impatient.getMeasurement('x').catch((e: ServiceError) => e.code)).toBe(status.UNAVAILABLE);
    impatient.close();

    const patient = new MemometerClient({ address: `127.0.0.1:${port}`, retries: 6 });
    const late = new Promise<Awaited<ReturnType<typeof startTestService>>>((resolve) =>
      setTimeout(() => resolve(startTestService({ port: String(port) })), 500),
    );
    try {
      // Reaching the server (which knows no such measurement) means the retries got through.
      expect(await patient.getMeasurement('x').catch((e: ServiceError) => e.code)).toBe(status.NOT_FOUND);
    } finally {
      patient.close();
      await (await late).stop();
    }
  });
});
