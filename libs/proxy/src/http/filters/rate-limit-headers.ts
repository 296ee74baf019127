import type { CounterResult } from '@mizzen/ratelimit';

/**
 * The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers)
 * for one counter: the limit, what is left, and seconds until it is full
 * again; with Retry-After when the request was rejected.
 */
export function rateLimitHeaders(result: CounterResult, rejected: boolean): Record<string, string> {
  const headers: Record<string, string> = {
    'ratelimit-limit': String(result.limit),
    'ratelimit-remaining': String(result.remaining),
    'ratelimit-reset': String(Math.ceil(result.resetMs / 1000)),
  };
  // Retry-After is in whole seconds; never 0, which would invite an immediate retry that fails too.
  if (rejected) headers['retry-after'] = String(Math.max(1, Math.ceil(result.retryAfterMs / 1000)));
  return headers;
}

/** The counter the client should hear about: the one that rejected (longest wait), else the one with least left. */
export function mostRestrictive(results: readonly CounterResult[]): CounterResult | undefined {
  let pick: CounterResult | undefined;
  for (const r of results) {
    if (!pick) pick = r;
    else if (!r.allowed && (pick.allowed || r.retryAfterMs > pick.retryAfterMs)) pick = r;
    else if (r.allowed && pick.allowed && r.remaining < pick.remaining) pick = r;
  }
  return pick;
}
