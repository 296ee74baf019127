/**
 * Durations as Istio accepts them in YAML: Go-style strings (`1.5s`, `100ms`,
 * `1m`, `1h30m`, `250us`, `0s`), which include protobuf's JSON form (`1.5s`).
 */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** One `<number><unit>` term; the whole string is one or more of these. */
const TERM = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** protobuf's Duration range: ±315,576,000,000 seconds (10,000 years). */
const MAX_MS = 315_576_000_000_000;

const FORMAT_HINT = 'use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m';

/**
 * Parses an Istio duration string to milliseconds (fractions allowed: `250us`
 * is 0.25). Throws an Error naming the input and the reason when it is not a
 * duration.
 */
export function parseDuration(s: string): number {
  if (typeof s !== 'string')
    throw new Error(`invalid duration ${String(s)}: expected a string such as "1.5s"`);
  if (s === '') throw new Error(`invalid duration "": empty; ${FORMAT_HINT}`);
  if (s.startsWith('-')) throw new Error(`invalid duration "${s}": durations cannot be negative`);
  const body = s.startsWith('+') ? s.slice(1) : s;
  if (body === '0') return 0;
  let total = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < body.length) {
    const start = TERM.lastIndex;
    const m = TERM.exec(body);
    if (!m) {
      const rest = body.slice(start);
      const reason =
        /^\d/.test(rest) || /^\.\d/.test(rest)
          ? `missing or unknown unit in "${rest}"`
          : `unexpected "${rest}"`;
      throw new Error(`invalid duration "${s}": ${reason}; ${FORMAT_HINT}`);
    }
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  if (body.length === 0) throw new Error(`invalid duration "${s}": ${FORMAT_HINT}`);
  if (!Number.isFinite(total) || total > MAX_MS)
    throw new Error(`invalid duration "${s}": too large (at most 10000 years)`);
  return total;
}

/** True when `s` is a duration `parseDuration` accepts. */
export function isValidDuration(s: string): boolean {
  try {
    parseDuration(s);
    return true;
  } catch {
    return false;
  }
}
