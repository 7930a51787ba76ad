/**
 * Vitest globalSetup: starts ONE Swift + s3api server (test/support/s3-server.ts) for the whole
 * run, hands its endpoint and credentials to the tests through `project.provide('s3Server', ...)`
 * (read them with `inject('s3Server')`), and stops it on teardown.
 *
 * When the server cannot start (Swift not installed, start-up timeout), the setup does not abort
 * the run: it provides `{ error }` instead, and every test that needs the server fails with that
 * message (which names the apt packages to install). Tests that do not need S3 run normally.
 */
import type { TestProject } from 'vitest/node';

import { startS3Server, type S3TestServer } from './s3-server.js';

/** What the tests get from `inject('s3Server')`. */
export type ProvidedS3Server =
  | {
      endpoint: string;
      host: string;
      port: number;
      region: string;
      accessKey: string;
      secretKey: string;
      error?: undefined;
    }
  | { error: string };

declare module 'vitest' {
  export interface ProvidedContext {
    s3Server: ProvidedS3Server;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let server: S3TestServer | undefined;
  try {
    server = await startS3Server();
    project.provide('s3Server', {
      endpoint: server.endpoint,
      host: server.host,
      port: server.port,
      region: server.region,
      accessKey: server.accessKey,
      secretKey: server.secretKey,
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    console.error(`[s3-global-setup] the S3 test server did not start; tests that need it will fail:\n${message}`);
    project.provide('s3Server', { error: message });
  }
  return async () => {
    await server?.stop();
  };
}
