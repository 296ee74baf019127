import { createHash } from 'node:crypto';
import type { RateLimit } from './units.js';

/**
 * The key of a counter: the rule it belongs to, its limit (a changed limit
 * starts a fresh counter rather than reading the old one's state) and the
 * descriptor values, hashed so header values of any length make short keys.
 * `rule` should already be readable (`namespace/policy/rule`): it stays
 * visible in the key for whoever inspects Redis.
 */
export function counterKey(rule: string, limit: RateLimit, values: readonly string[]): string {
  const hash = createHash('sha256');
  hash.update(`${limit.requests}/${limit.unit}`);
  // A separator that cannot appear in header values keeps ["a,b"] and ["a", "b"] apart.
  for (const v of values) hash.update(`\u0000${v}`);
  return `${rule}:${hash.digest('base64url').slice(0, 22)}`;
}
