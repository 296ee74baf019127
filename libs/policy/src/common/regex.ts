import { createRequire } from 'node:module';
import { fail } from './errors.js';

/**
 * Envoy's `safe_regex` is RE2 (linear time, no backreferences). re2-wasm is
 * the same engine, so a pattern Istio generates behaves here as in Envoy.
 */
const require = createRequire(import.meta.url);
const { RE2 } = require('re2-wasm') as typeof import('re2-wasm');

export type FullMatch = (input: string) => boolean;

/** A full-match predicate (Envoy matches the whole string), throwing a PolicyError for a bad pattern. */
export function compileFullMatch(pattern: string, where: string, ignoreCase = false): FullMatch {
  let re: InstanceType<typeof RE2>;
  try {
    re = new RE2(`^(?:${pattern})$`, ignoreCase ? 'iu' : 'u');
  } catch (err) {
    fail(where, `invalid RE2 regex ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
  return (input) => re.test(input);
}
