import { defineConfig } from 'vitest/config';

// These tests start the agent as a process (each start loads the whole proxy, ~1 s on a busy 2-core
// machine) and the iptables test runs it inside a network namespace: one file at a time, with bounds
// that allow for process start-up.
export default defineConfig({
  test: {
    fileParallelism: false,
    testTimeout: 30_000,
  },
});
