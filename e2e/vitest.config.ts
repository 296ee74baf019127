import { defineConfig } from 'vitest/config';

// End-to-end suites start real processes; they run one file at a time with generous bounds.
export default defineConfig({
  test: {
    testTimeout: 240_000,
    hookTimeout: 240_000,
    fileParallelism: false,
    include: ['test/**/*.test.ts'],
  },
});
