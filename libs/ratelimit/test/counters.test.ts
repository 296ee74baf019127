import { createLogger } from '@mizzen/runtime';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CounterRequest,
  type CounterResult,
  type CounterStore,
  MemoryCounterStore,
  type RateLimitUnit,
  RedisCounterStore,
  type RedisServer,
  startRedisServer,
} from '../src/index.js';

const log = createLogger('ratelimit-test', { level: 'silent' });
const T0 = 1_700_000_000_000_000; // µs: a fixed "now" so both stores see the same clock

/** One step of a table: at `atMs` after T0, one request against these counters, and what each must answer. */
interface Step {
  atMs: number;
  counters: { key: string; requests: number; unit: RateLimitUnit; enforce?: boolean }[];
  expect: [allowed: boolean, remaining: number, resetMs: number, retryAfterMs: number][];
}

const steps = (
  atMs: number[],
  counter: Step['counters'][number],
  expected: Step['expect'][number][],
): Step[] => atMs.map((t, i) => ({ atMs: t, counters: [counter], expect: [expected[i]!] }));

const TABLE: { name: string; steps: Step[] }[] = [
  {
    name: '3 per second: a burst of 3, then one every 333 ms',
    steps: steps([0, 0, 0, 0, 200, 334, 334, 1000, 5000], { key: 'a', requests: 3, unit: 'SECOND' }, [
      [true, 2, 334, 0],
      [true, 1, 667, 0],
      [true, 0, 1000, 0],
      [false, 0, 1000, 334],
      [false, 0, 800, 134],
      [true, 0, 1000, 0],
      [false, 0, 1000, 333],
      [true, 1, 667, 0],
      [true, 2, 334, 0],
    ]),
  },
  {
    name: '2 per minute: rejected requests do not push the reset further',
    steps: steps([0, 1, 2, 3, 30_000, 30_001, 60_001], { key: 'b', requests: 2, unit: 'MINUTE' }, [
      [true, 1, 30_000, 0],
      [true, 0, 59_999, 0],
      [false, 0, 59_998, 29_998],
      [false, 0, 59_997, 29_997],
      [true, 0, 60_000, 0],
      [false, 0, 59_999, 29_999],
      [true, 0, 59_999, 0],
    ]),
  },
  {
    name: '1 per hour and 1000 per day',
    steps: [
      ...steps([0, 1_000], { key: 'c', requests: 1, unit: 'HOUR' }, [
        [true, 0, 3_600_000, 0],
        [false, 0, 3_599_000, 3_599_000],
      ]),
      ...steps([0, 0], { key: 'd', requests: 1000, unit: 'DAY' }, [
        [true, 999, 86_400, 0],
        [true, 998, 172_800, 0],
      ]),
    ],
  },
  {
    name: 'several counters: all charged together, none when an enforced one rejects',
    steps: [
      {
        atMs: 0,
        counters: [
          { key: 'wide', requests: 10, unit: 'SECOND' },
          { key: 'narrow', requests: 1, unit: 'SECOND' },
        ],
        expect: [
          [true, 9, 100, 0],
          [true, 0, 1000, 0],
        ],
      },
      {
        atMs: 0,
        counters: [
          { key: 'wide', requests: 10, unit: 'SECOND' },
          { key: 'narrow', requests: 1, unit: 'SECOND' },
        ],
        // narrow rejects, so wide is not charged: the next answer still says 8 left after it.
        expect: [
          [true, 8, 200, 0],
          [false, 0, 1000, 1000],
        ],
      },
      {
        atMs: 0,
        counters: [{ key: 'wide', requests: 10, unit: 'SECOND' }],
        expect: [[true, 8, 200, 0]],
      },
    ],
  },
  {
    name: 'shadow counters report over limit but never block, and do not stop the others being charged',
    steps: [
      ...steps([0, 0], { key: 's', requests: 1, unit: 'SECOND', enforce: false }, [
        [true, 0, 1000, 0],
        [false, 0, 1000, 1000],
      ]),
      {
        atMs: 0,
        counters: [
          { key: 's', requests: 1, unit: 'SECOND', enforce: false },
          { key: 'e', requests: 2, unit: 'SECOND' },
        ],
        expect: [
          [false, 0, 1000, 1000],
          [true, 1, 500, 0],
        ],
      },
      ...steps([0], { key: 'e', requests: 2, unit: 'SECOND' }, [[true, 0, 1000, 0]]),
    ],
  },
  {
    name: '1000 per second: fractions of a millisecond add up exactly',
    steps: steps([0, 0, 0, 0, 0], { key: 'f', requests: 1000, unit: 'SECOND' }, [
      [true, 999, 1, 0],
      [true, 998, 2, 0],
      [true, 997, 3, 0],
      [true, 996, 4, 0],
      [true, 995, 5, 0],
    ]),
  },
];

async function run(store: CounterStore, table: Step[], prefix: string): Promise<CounterResult[][]> {
  const out: CounterResult[][] = [];
  for (const step of table) {
    const counters: CounterRequest[] = step.counters.map((c) => ({
      key: `${prefix}${c.key}`,
      limit: { requests: c.requests, unit: c.unit },
      enforce: c.enforce !== false,
    }));
    out.push(await store.hit(counters, T0 + step.atMs * 1000));
  }
  return out;
}

const asTuples = (results: CounterResult[][]) =>
  results.map((r) => r.map((c) => [c.allowed, c.remaining, c.resetMs, c.retryAfterMs]));

describe('GCRA counters: memory and Redis give the same answers', () => {
  let server: RedisServer;
  let redis: RedisCounterStore;

  beforeAll(async () => {
    server = await startRedisServer();
    redis = new RedisCounterStore({ url: server.url, logger: log, timeoutMs: 2000 });
  });

  afterAll(async () => {
    await redis?.close();
    await server?.stop();
  });

  for (const [n, { name, steps: table }] of TABLE.entries()) {
    it(name, async () => {
      const expected = table.map((s) => s.expect);
      const memory = await run(new MemoryCounterStore(), table, '');
      expect(asTuples(memory)).toEqual(expected);
      const shared = await run(redis, table, `table${n}:`);
      expect(asTuples(shared)).toEqual(expected);
      expect(shared.flat().every((r, i) => r.limit === memory.flat()[i]!.limit)).toBe(true);
    });
  }

  it('keeps counters in Redis under the key prefix, with a retention of one period and a second', async () => {
    const probe = new Redis(server.url);
    try {
      await redis.hit([{ key: 'ttl', limit: { requests: 5, unit: 'MINUTE' }, enforce: true }]);
      const ttl = await probe.pttl('mizzen:ratelimit:ttl');
      expect(ttl).toBeGreaterThan(59_000);
      expect(ttl).toBeLessThanOrEqual(61_000);
    } finally {
      probe.disconnect();
    }
  });

  it('uses the Redis clock when none is given, and never lets more than the limit through under concurrency', async () => {
    // 400 requests in flight at once, auto-pipelined onto one connection: exactly the limit is allowed.
    const limit = { requests: 50, unit: 'HOUR' as const };
    const results = await Promise.all(
      Array.from({ length: 400 }, () => redis.hit([{ key: 'burst', limit, enforce: true }])),
    );
    expect(results.filter((r) => r[0]!.allowed)).toHaveLength(50);
    const remaining = results.filter((r) => r[0]!.allowed).map((r) => r[0]!.remaining);
    expect(new Set(remaining).size).toBe(50);
  });

  it('reloads its script after SCRIPT FLUSH (EVALSHA falls back on NOSCRIPT)', async () => {
    const probe = new Redis(server.url);
    try {
      await redis.hit([{ key: 'flush', limit: { requests: 2, unit: 'SECOND' }, enforce: true }], T0);
      await probe.script('FLUSH');
      const [r] = await redis.hit(
        [{ key: 'flush', limit: { requests: 2, unit: 'SECOND' }, enforce: true }],
        T0,
      );
      expect(r).toMatchObject({ allowed: true, remaining: 0 });
    } finally {
      probe.disconnect();
    }
  });

  it('memory keeps at most maxKeys counters, dropping the full ones and then the least recently used', async () => {
    const store = new MemoryCounterStore({ maxKeys: 3 });
    const limit = { requests: 1, unit: 'HOUR' as const };
    for (const key of ['a', 'b', 'c', 'd', 'e']) await store.hit([{ key, limit, enforce: true }], T0);
    expect(store.size()).toBe(3);
    // 'c', 'd', 'e' are the most recent: they still reject; 'a' was dropped and starts afresh.
    expect((await store.hit([{ key: 'e', limit, enforce: true }], T0))[0]!.allowed).toBe(false);
    expect((await store.hit([{ key: 'a', limit, enforce: true }], T0))[0]!.allowed).toBe(true);
  });
});
