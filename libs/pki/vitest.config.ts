import { defineConfig } from 'vitest/config';

// Key generation (RSA especially) and real sockets can take seconds on a busy 2-core CI machine.
export default defineConfig({
  test: { testTimeout: 20_000, hookTimeout: 20_000 },
});
