import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real processes, Redis and a real browser: generous bounds, still bounded.
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
