import { fail } from './errors.js';

/** Milliseconds → Envoy's JSON duration (`1.5s`). */
export function envoyDuration(ms: number): string {
  return `${Number((ms / 1000).toFixed(9))}s`;
}

/** Envoy's JSON duration (`1.5s`, `600s`) → milliseconds. */
export function parseEnvoyDuration(value: string, where: string): number {
  const m = /^(\d+)(?:\.(\d{1,9}))?s$/.exec(value);
  if (!m) fail(where, `invalid duration ${JSON.stringify(value)} (expected e.g. "1.5s")`);
  return Number(m[1]) * 1000 + (m[2] ? Number(`0.${m[2]}`) * 1000 : 0);
}
