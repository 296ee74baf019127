import { formatDuration, parseDurationJson } from './json.js';

/** Milliseconds from an Envoy JSON duration (`"1.5s"`), or undefined when absent. */
export function durationToMs(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    const d = parseDurationJson(value);
    if (!d) throw new Error(`invalid duration ${JSON.stringify(value)}`);
    return d.seconds * 1000 + d.nanos / 1e6;
  }
  if (typeof value === 'object' && 'seconds' in value) {
    const v = value as { seconds?: number; nanos?: number };
    return (v.seconds ?? 0) * 1000 + (v.nanos ?? 0) / 1e6;
  }
  throw new Error(`invalid duration ${JSON.stringify(value)}`);
}

/** An Envoy JSON duration string for a number of milliseconds. */
export function msToDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return formatDuration(seconds, nanos);
}
