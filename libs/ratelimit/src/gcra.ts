import { type RateLimit, unitMs } from './units.js';

/**
 * The Generic Cell Rate Algorithm, the counting rule of every global limit.
 *
 * A limit of N requests per period P lets a request through every T = P/N
 * on average, with bursts of up to N. The whole state of a counter is one
 * number, the theoretical arrival time (TAT): when the counter would be
 * empty again if no more requests came. A request is allowed when, after
 * adding its T, the TAT is at most P ahead of now; a rejected request leaves
 * the TAT unchanged. One number per counter makes the Redis version a single
 * GET and SET in one Lua script (gcra-script.ts), which must do exactly what
 * `gcraStep` does; the table tests hold both to the same answers.
 *
 * Times are microseconds as doubles (exact to a quarter of a microsecond at
 * today's epoch), so a thousand requests per second still has a whole T.
 */

/** Slack for floating-point error when comparing times (a nanosecond). */
export const EPSILON_US = 0.001;

export interface GcraStep {
  allowed: boolean;
  /** The TAT to store when the request is let through. */
  newTat: number;
  /** Requests still allowed right after this one (0 when rejected). */
  remaining: number;
  /** Milliseconds until the counter is full again (RateLimit-Reset). */
  resetMs: number;
  /** Milliseconds until one more request would be allowed; 0 when allowed (Retry-After). */
  retryAfterMs: number;
}

export function periodUs(limit: RateLimit): number {
  return unitMs(limit.unit) * 1000;
}

/** One request against one counter whose stored TAT is `storedTat` (undefined: never used, or expired). */
export function gcraStep(storedTat: number | undefined, nowUs: number, limit: RateLimit): GcraStep {
  const period = periodUs(limit);
  const interval = period / limit.requests;
  const tat = storedTat === undefined || storedTat < nowUs ? nowUs : storedTat;
  const newTat = tat + interval;
  const ahead = newTat - nowUs;
  if (ahead <= period + EPSILON_US) {
    return {
      allowed: true,
      newTat,
      remaining: Math.floor((period - ahead) / interval + 1e-9),
      resetMs: Math.ceil(ahead / 1000),
      retryAfterMs: 0,
    };
  }
  return {
    allowed: false,
    newTat: tat,
    remaining: 0,
    resetMs: Math.ceil((tat - nowUs) / 1000),
    retryAfterMs: Math.ceil((ahead - period) / 1000),
  };
}

/**
 * How long a stored TAT is worth keeping: until the counter is full again,
 * at most one period ahead, plus a second so clocks a little apart never
 * drop a TAT that still counts. Garbage collection only: an expired TAT and
 * a TAT in the past mean the same thing.
 */
export function retentionMs(limit: RateLimit): number {
  return unitMs(limit.unit) + 1000;
}
