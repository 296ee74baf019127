import { createLogger } from '@mizzen/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CounterStoreError, RedisCounterStore, type RedisServer, startRedisServer } from '../src/index.js';

const log = createLogger('ratelimit-test', { level: 'silent' });
const counter = { key: 'k', limit: { requests: 100, unit: 'SECOND' as const }, enforce: true };

async function failure(p: Promise<unknown>): Promise<CounterStoreError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CounterStoreError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

/** Waits for an event-driven condition, bounded: no sleeps in the assertions themselves. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('Redis unavailable, slow, and back', () => {
  let server: RedisServer;
  let store: RedisCounterStore;
  const availability: boolean[] = [];

  beforeAll(async () => {
    server = await startRedisServer();
    store = new RedisCounterStore({
      url: server.url,
      logger: log,
      timeoutMs: 200,
      onAvailability: (up) => availability.push(up),
    });
    await until('the first answer', async () => (await store.hit([counter])).length === 1);
  });

  afterAll(async () => {
    await store?.close();
    await server?.stop();
  });

  it('fails at once with "unavailable" while Redis is down, and answers again by itself when it returns', async () => {
    await server.kill();
    await until('the client to notice', async () => !store.isUp());
    const err = await failure(store.hit([counter]));
    expect(err.reason).toBe('unavailable');
    expect(err.message).toMatch(/^redis at 127\.0\.0\.1:\d+ is unavailable/);
    expect(availability).toContain(false);

    await server.restart();
    await until('reconnection', async () => (await store.hit([counter]))[0]!.allowed);
    expect(store.isUp()).toBe(true);
    expect(availability.at(-1)).toBe(true);
  });

  it('gives up on a Redis that does not answer after its timeout, and recovers when it answers again', async () => {
    // CLIENT PAUSE holds every client's commands for 1.5 s: to the store, Redis stops answering.
    await server.pause(1500);
    const err = await failure(store.hit([counter]));
    expect(err.reason).toBe('timeout');
    await until('answers after the pause', async () => (await store.hit([counter]))[0]!.allowed);
  });

  it('says it is unavailable when the first connection never comes, within its timeout', async () => {
    const nowhere = new RedisCounterStore({ url: 'redis://127.0.0.1:1', logger: log, timeoutMs: 150 });
    try {
      const err = await failure(nowhere.hit([counter]));
      expect(err.reason).toBe('unavailable');
    } finally {
      await nowhere.close();
    }
  });
});
