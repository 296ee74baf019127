import type { Json } from './config-dump.js';

/**
 * A repeated message field as the admin API prints it. Proto3 JSON leaves an
 * empty list out, so a missing (or malformed) field reads as an empty one.
 */
export function list(v: unknown): Json[] {
  return Array.isArray(v) ? (v as Json[]) : [];
}

/** A repeated string field (`domains`, `server_names`…), empty when absent. */
export function strings(v: unknown): string[] {
  return Array.isArray(v) ? (v as string[]) : [];
}
