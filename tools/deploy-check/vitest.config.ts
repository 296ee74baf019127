import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The image checks run two at a time (describe.concurrent): two installs keep both cores busy.
    maxConcurrency: 2,
  },
});
