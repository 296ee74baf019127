import { defineConfig } from 'vitest/config';

// These tests start real processes and servers: bounds that allow for a busy 2-core machine
// (vitest's 5 s default is a speed assertion in disguise). Speed is measured in tools/bench.
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
