import { createLogger } from '@mizzen/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IntervalRecord } from '../src/mesh/model.js';
import { MemoryStore } from '../src/store/memory.js';
import { RedisStore } from '../src/store/redis.js';
import type {
  LogRecord,
  MetricPoint,
  RetentionLimits,
  SpanRecord,
  TelemetryStore,
} from '../src/store/types.js';
import { eventually } from './helpers/collector.js';
import { type RedisProcess, startRedis } from './helpers/redis.js';

/** Retention is bounded by age and by size, in memory and in Redis alike. */
const limits: RetentionLimits = {
  retentionMs: 60_000,
  maxSpans: 6,
  maxLogs: 3,
  maxMetricPoints: 3,
  maxIntervals: 2,
};

function spans(traceId: string, n: number, startUs: number): SpanRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    traceId,
    spanId: (i + 1).toString(16).padStart(16, '0'),
    name: `op${i}`,
    kind: 'server',
    service: `svc${i % 2}`,
    startUs: startUs + i,
    durationUs: 10,
    status: { code: 'unset' },
    attributes: {},
    resource: {},
    events: [],
    links: [],
  }));
}

const trace = (i: number) => i.toString(16).padStart(32, 'a');

async function exercise(store: TelemetryStore, clock: { now: number }) {
  const t0 = clock.now * 1000;
  await store.addSpans(spans(trace(1), 2, t0));
  await store.addSpans(spans(trace(2), 2, t0 + 10));
  await store.addSpans(spans(trace(3), 2, t0 + 20));
  await store.addSpans(spans(trace(4), 2, t0 + 30)); // 8 spans > 6: the oldest trace goes
  expect(await store.getTrace(trace(1))).toEqual([]);
  expect(await store.getTrace(trace(4))).toHaveLength(2);
  const found = await store.findTraces({ fromUs: 0, toUs: Number.MAX_SAFE_INTEGER, limit: 10 });
  expect(found.map((t) => t.traceId)).toEqual([trace(4), trace(3), trace(2)]);

  clock.now += 61_000; // past the retention
  await store.addSpans(spans(trace(5), 1, clock.now * 1000));
  expect(await store.getTrace(trace(2))).toEqual([]);
  expect(
    (await store.findTraces({ fromUs: 0, toUs: Number.MAX_SAFE_INTEGER, limit: 10 })).map((t) => t.traceId),
  ).toEqual([trace(5)]);
  expect(await store.traceServices()).toEqual(['svc0']);

  const logs: LogRecord[] = Array.from({ length: 5 }, (_, i) => ({
    timeUs: clock.now * 1000 + i,
    service: 'reviews',
    severityNumber: 9,
    severityText: 'INFO',
    body: `line ${i}`,
    attributes: {},
  }));
  await store.addLogs(logs);
  const kept = await store.queryLogs({ fromUs: 0, toUs: Number.MAX_SAFE_INTEGER, limit: 10 });
  expect(kept.map((l) => l.body)).toEqual(['line 4', 'line 3', 'line 2']);

  // OTLP metric points: the newest `maxMetricPoints` are kept, and none older than the retention.
  const point = (value: number, timeUs: number): MetricPoint => ({
    name: 'queue.depth',
    service: 'reviews',
    kind: 'gauge',
    unit: '1',
    attributes: {},
    timeUs,
    value,
  });
  const allPoints = async () =>
    (await store.queryMetricPoints({ fromUs: 0, toUs: Number.MAX_SAFE_INTEGER, limit: 10 })).map(
      (p) => p.value,
    );
  await store.addMetricPoints([0, 1, 2, 3, 4].map((v) => point(v, clock.now * 1000 + v)));
  expect(await allPoints()).toEqual([4, 3, 2]);
  clock.now += 61_000;
  await store.addMetricPoints([point(9, clock.now * 1000)]);
  expect(await allPoints()).toEqual([9]);

  const record = (target: string, t1: number, t2: number): IntervalRecord => ({
    target,
    t1,
    t2,
    entries: [],
  });
  await store.addIntervals([record('a', clock.now - 3000, clock.now - 2000)]);
  await store.addIntervals([record('a', clock.now - 2000, clock.now - 1000)]);
  await store.addIntervals([record('a', clock.now - 1000, clock.now)]);
  expect((await store.intervals(0, clock.now)).map((r) => r.t2)).toEqual([clock.now - 1000, clock.now]);
}

describe('retention limits', () => {
  let redis: RedisProcess;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('bounds memory by age and size', async () => {
    const clock = { now: 1_800_000_000_000 };
    await exercise(new MemoryStore(limits, () => clock.now), clock);
  });

  it('bounds Redis by age and size, and refuses scrape intervals to a collector without the lease', async () => {
    const clock = { now: 1_800_000_000_000 };
    const logger = createLogger('test', { level: 'silent' });
    const store = new RedisStore({
      url: redis.url,
      limits,
      logger,
      clock: () => clock.now,
      leaseMs: 5000,
      prefix: 'limits:',
    });
    const other = new RedisStore({
      url: redis.url,
      limits,
      logger,
      clock: () => clock.now,
      leaseMs: 5000,
      prefix: 'limits:',
    });
    store.connect();
    other.connect();
    try {
      await eventually(
        () => (store.connected && other.connected ? true : undefined),
        5000,
        'redis connection',
      );
      await exercise(store, clock);
      // `store` holds the lease now; the other collector's intervals are refused.
      expect(
        await other.addIntervals([{ target: 'a', t1: clock.now, t2: clock.now + 1000, entries: [] }]),
      ).toBe(-1);
      expect(await store.leaseHolder()).toBe(store.token);
      // An interval overlapping what is stored for the same proxy is skipped, not double counted.
      expect(
        await store.addIntervals([{ target: 'a', t1: clock.now - 500, t2: clock.now + 500, entries: [] }]),
      ).toBe(0);
      expect(await store.redis.get('limits:spancount')).toBe('1');
    } finally {
      await store.close();
      await other.close();
    }
  });
});
