import { createLogger } from '@mizzen/runtime';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  counterKey,
  MemoryCounterStore,
  PrometheusRateLimitMetrics,
  RedisCounterStore,
  rateLimitServicesFromEnv,
  TokenBucket,
} from '../src/index.js';

const log = createLogger('ratelimit-test', { level: 'silent' });

describe("Envoy's token bucket", () => {
  it('starts full, refills whole intervals from its creation, never above max_tokens', () => {
    let now = 10_000;
    const bucket = new TokenBucket({ maxTokens: 3, tokensPerFill: 2, fillIntervalMs: 1000 }, () => now);
    const take = (n: number) => Array.from({ length: n }, () => bucket.consume());
    expect(take(4)).toEqual([true, true, true, false]);
    expect(bucket.msUntilFill()).toBe(1000);
    now += 999;
    expect(bucket.consume()).toBe(false);
    expect(bucket.msUntilFill()).toBe(1);
    now += 1;
    expect(bucket.remaining()).toBe(2);
    expect(take(3)).toEqual([true, true, false]);
    now += 10_500;
    expect(bucket.remaining()).toBe(3);
    expect(bucket.msUntilFill()).toBe(500);
  });
});

describe('counter keys', () => {
  it('are stable, start with the rule, and tell apart values, value boundaries and limits', () => {
    const limit = { requests: 10, unit: 'MINUTE' as const };
    const key = counterKey('default/api/per-user', limit, ['alice']);
    expect(key).toMatch(/^default\/api\/per-user:[A-Za-z0-9_-]{22}$/);
    expect(counterKey('default/api/per-user', limit, ['alice'])).toBe(key);
    expect(counterKey('default/api/per-user', limit, ['bob'])).not.toBe(key);
    expect(counterKey('r', limit, ['a,b'])).not.toBe(counterKey('r', limit, ['a', 'b']));
    expect(counterKey('r', limit, ['a'])).not.toBe(counterKey('r', { ...limit, requests: 11 }, ['a']));
  });
});

describe('services from the environment', () => {
  it('keeps counters in memory without REDIS_URL and in Redis with it, and refuses bad values in one sentence', async () => {
    const memory = rateLimitServicesFromEnv({ env: {}, logger: log });
    expect(memory.store).toBeInstanceOf(MemoryCounterStore);
    const registry = new Registry();
    const redis = rateLimitServicesFromEnv({
      env: { REDIS_URL: 'redis://127.0.0.1:1', RATELIMIT_TIMEOUT_MS: '50' },
      logger: log,
      registry,
    });
    expect(redis.store).toBeInstanceOf(RedisCounterStore);
    await redis.store.close();
    expect(() => rateLimitServicesFromEnv({ env: { REDIS_URL: 'localhost' }, logger: log })).toThrow(
      'REDIS_URL must look like redis://HOST:PORT (or rediss://), got "localhost"',
    );
    expect(() =>
      rateLimitServicesFromEnv({ env: { REDIS_URL: '', RATELIMIT_TIMEOUT_MS: 'soon' }, logger: log }),
    ).toThrow('RATELIMIT_TIMEOUT_MS must be a positive whole number of milliseconds, got "soon"');
  });

  it('counts every decision and the store state in Prometheus metrics', async () => {
    const registry = new Registry();
    const metrics = new PrometheusRateLimitMetrics(registry, false);
    const labels = { mode: 'global' as const, policy: 'default/api', rule: 'per-user' };
    metrics.decision(labels, 'allowed');
    metrics.decision(labels, 'allowed');
    metrics.decision(labels, 'failure_mode_denied');
    metrics.storeError('timeout');
    metrics.storeAvailability(true);
    const text = await registry.metrics();
    expect(text).toContain(
      'mizzen_ratelimit_decisions_total{mode="global",policy="default/api",rule="per-user",decision="allowed"} 2',
    );
    expect(text).toContain('decision="failure_mode_denied"} 1');
    expect(text).toContain('mizzen_ratelimit_store_errors_total{reason="timeout"} 1');
    expect(text).toContain('mizzen_ratelimit_store_up 1');
  });
});
