import type { Logger } from '@mizzen/runtime';
import type { Registry } from 'prom-client';
import type { CounterStore } from './counter-store.js';
import { MemoryCounterStore } from './memory-store.js';
import { NO_RATE_LIMIT_METRICS, PrometheusRateLimitMetrics, type RateLimitRecorder } from './metrics.js';
import { RedisCounterStore } from './redis-store.js';

/** What a proxy's rate limit filters use: the counters and where decisions are counted. */
export interface RateLimitServices {
  readonly store: CounterStore;
  readonly metrics: RateLimitRecorder;
}

/** One process, counters in memory, nothing counted: the default when a proxy is given nothing. */
export function memoryRateLimitServices(): RateLimitServices {
  return { store: new MemoryCounterStore(), metrics: NO_RATE_LIMIT_METRICS };
}

/**
 * The services of a proxy process: Redis when `REDIS_URL` is set (every
 * replica shares its counters), memory otherwise. `RATELIMIT_TIMEOUT_MS`
 * bounds each Redis call (100 ms by default). Metrics go to `registry` when
 * there is one.
 */
export function rateLimitServicesFromEnv(opts: {
  env: NodeJS.ProcessEnv;
  logger: Logger;
  registry?: Registry;
}): RateLimitServices {
  const url = opts.env.REDIS_URL?.trim();
  const timeout = opts.env.RATELIMIT_TIMEOUT_MS;
  const timeoutMs = timeout === undefined ? undefined : Number(timeout);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0))
    throw new Error(`RATELIMIT_TIMEOUT_MS must be a positive whole number of milliseconds, got "${timeout}"`);
  if (url && !/^rediss?:\/\/[^/]/.test(url))
    throw new Error(`REDIS_URL must look like redis://HOST:PORT (or rediss://), got "${url}"`);
  const metrics = opts.registry ? new PrometheusRateLimitMetrics(opts.registry, !url) : NO_RATE_LIMIT_METRICS;
  if (!url) {
    opts.logger.debug('rate limit counters in memory (no REDIS_URL)');
    return { store: new MemoryCounterStore(), metrics };
  }
  const store = new RedisCounterStore({
    url,
    logger: opts.logger,
    timeoutMs,
    onAvailability: (up) => metrics.storeAvailability(up),
  });
  opts.logger.info({ redis: store.where() }, 'rate limit counters in redis');
  return { store, metrics };
}
