import { type RateLimitServices, rateLimitServicesFromEnv } from '@mizzen/ratelimit';
import type { Logger } from '@mizzen/runtime';
import { FlagError } from './flags.js';

/** A prom-client registry (the proxy's `/stats/prometheus`), without this lib depending on prom-client. */
export type MetricsRegistry = Parameters<typeof rateLimitServicesFromEnv>[0]['registry'];

/**
 * The rate limit counters of a proxy process, from its environment:
 * `REDIS_URL` (what `mizzen up --redis` passes to every child) shares them
 * with every replica, otherwise they stay in memory; decisions are counted in
 * the proxy's metrics registry. A bad value is a FlagError: one line, exit 2.
 */
export function rateLimitsFromEnvironment(logger: Logger, registry?: MetricsRegistry): RateLimitServices {
  try {
    return rateLimitServicesFromEnv({ env: process.env, logger, registry });
  } catch (err) {
    throw new FlagError((err as Error).message);
  }
}
