import { createRequire } from 'node:module';
import { fail } from './errors.js';

/**
 * Envoy's `safe_regex` is RE2 (linear time, no backreferences); re2-wasm gives
 * the same engine, so a pattern pilot accepts behaves here as it would in Envoy.
 */
const require = createRequire(import.meta.url);
const { RE2 } = require('re2-wasm') as typeof import('re2-wasm');

export interface CompiledRegex {
  source: string;
  /** True when the whole input matches (Envoy's safe_regex semantics). */
  fullMatch(input: string): boolean;
  /** Replaces every match, Envoy-style substitution (`\1` refers to group 1). */
  replaceAll(input: string, substitution: string): string;
}

export function compileRegex(pattern: string, where: string, ignoreCase = false): CompiledRegex {
  let full: InstanceType<typeof RE2>;
  let global: InstanceType<typeof RE2>;
  try {
    full = new RE2(`^(?:${pattern})$`, ignoreCase ? 'iu' : 'u');
    global = new RE2(pattern, ignoreCase ? 'giu' : 'gu');
  } catch (err) {
    fail(where, `invalid RE2 regex ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
  return {
    source: pattern,
    fullMatch: (input) => full.test(input),
    replaceAll: (input, substitution) => {
      global.lastIndex = 0;
      return global.replace(input, envoySubstitution(substitution));
    },
  };
}

/** `\1` (Envoy/RE2 substitution) → `$1` (JavaScript), with literal `$` escaped. */
function envoySubstitution(sub: string): string {
  return sub.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
}
