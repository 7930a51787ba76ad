import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real S3-compatible server (OpenStack Swift + s3api) for the whole run.
    globalSetup: ['test/support/s3-global-setup.ts'],
    // TF.js training is CPU-bound and one wasm instance uses one core: two forks use both.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
