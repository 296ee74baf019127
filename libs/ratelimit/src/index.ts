/**
 * @mizzen/ratelimit — the counters behind RateLimitPolicy: GCRA limits
 * shared by every replica through Redis (one atomic Lua call per request) or
 * kept in memory with the same answers, Envoy's token bucket for local
 * limits, and the metrics every decision is counted in.
 */

export { counterKey } from './counter-key.js';
export {
  type CounterRequest,
  type CounterResult,
  type CounterStore,
  CounterStoreError,
} from './counter-store.js';
export { type GcraStep, gcraStep } from './gcra.js';
export { MemoryCounterStore, type MemoryCounterStoreOptions } from './memory-store.js';
export {
  NO_RATE_LIMIT_METRICS,
  PrometheusRateLimitMetrics,
  type RateLimitDecision,
  type RateLimitDecisionLabels,
  type RateLimitRecorder,
} from './metrics.js';
export { REDIS_SERVER, type RedisServer, startRedisServer } from './redis-server.js';
export { RedisCounterStore, type RedisCounterStoreOptions } from './redis-store.js';
export { memoryRateLimitServices, type RateLimitServices, rateLimitServicesFromEnv } from './services.js';
export { TokenBucket, type TokenBucketSpec } from './token-bucket.js';
export { isRateLimitUnit, type RateLimit, type RateLimitUnit, unitMs } from './units.js';
