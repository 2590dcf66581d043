import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each test file starts its own servers; two cores, so keep files from starving each other.
    maxWorkers: 2,
    pool: 'forks',
  },
});
