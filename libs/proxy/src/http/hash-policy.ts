import { durationToMs } from '@mizzen/xds';
import { fail } from '../config/errors.js';
import type { HashPolicyJson } from '../envoy/types.js';
import { hex64, xxHash64 } from '../upstream/xxhash64.js';

export type HashSource =
  | { kind: 'header'; name: string }
  | {
      kind: 'cookie';
      name: string;
      ttlSeconds?: number;
      path?: string;
      /** Attributes added to a generated cookie (SameSite=Strict, Secure…). */
      attributes: readonly CookieAttribute[];
    }
  | { kind: 'source_ip' }
  | { kind: 'query'; name: string };

export interface CookieAttribute {
  readonly name: string;
  readonly value?: string;
}

export interface CompiledHashPolicy {
  readonly source: HashSource;
  /** Envoy's `terminal`: when this policy produced a hash, ignore the ones after it. */
  readonly terminal: boolean;
}

export function compileHashPolicy(h: HashPolicyJson, where: string): CompiledHashPolicy {
  let source: HashSource;
  if (h.header?.header_name) source = { kind: 'header', name: h.header.header_name.toLowerCase() };
  else if (h.cookie?.name) {
    const ttl = h.cookie.ttl === undefined ? undefined : durationToMs(h.cookie.ttl)! / 1000;
    const attributes = (h.cookie.attributes ?? []).map((a, i) => {
      // A cookie attribute name is an RFC 6265 token; anything else would corrupt the Set-Cookie header.
      if (!a.name || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(a.name))
        fail(`${where}.cookie.attributes[${i}].name`, `"${a.name ?? ''}" is not a cookie attribute name`);
      if (a.value !== undefined && /[;\r\n]/.test(a.value))
        fail(`${where}.cookie.attributes[${i}].value`, 'must not contain ";" or line breaks');
      return a.value ? { name: a.name, value: a.value } : { name: a.name };
    });
    source = { kind: 'cookie', name: h.cookie.name, ttlSeconds: ttl, path: h.cookie.path, attributes };
  } else if (h.connection_properties?.source_ip) source = { kind: 'source_ip' };
  else if (h.query_parameter?.name) source = { kind: 'query', name: h.query_parameter.name };
  else fail(where, 'hash policy names no header, cookie, source IP or query parameter');
  return { source, terminal: h.terminal === true };
}

/** What a hash policy can read from a request, and how it sets a cookie when it generates one. */
export interface HashInput {
  /** Every value of a header, in the order received (none when absent). */
  header(name: string): readonly string[];
  cookie(name: string): string | undefined;
  sourceIp(): string | undefined;
  query(name: string): string | undefined;
  /** The downstream connection's ends as `address:port` (`[v6]:port`), which a generated cookie is made from. */
  connection(): { remote: string; local: string };
  /** Adds a Set-Cookie header (its value) to the response. */
  setCookie(setCookieValue: string): void;
}

const MASK64 = 0xffff_ffff_ffff_ffffn;

/**
 * The request's 64-bit hash for RING_HASH/MAGLEV clusters, computed and
 * combined across policies exactly as Envoy does (xxHash64 of each value; the
 * running hash rotated left by one and XORed with the next), so a request
 * picks the same endpoint as it would through Envoy. A cookie policy with a
 * TTL and no cookie yet makes one up and sets it on the response, so the
 * client sticks to its host from then on.
 */
export function requestHash(policies: readonly CompiledHashPolicy[], input: HashInput): bigint | undefined {
  let hash: bigint | undefined;
  for (const p of policies) {
    const h = policyHash(p.source, input);
    if (h !== undefined) hash = hash === undefined ? h : (((hash << 1n) | (hash >> 63n)) & MASK64) ^ h;
    if (p.terminal && hash !== undefined) break;
  }
  return hash;
}

function policyHash(source: HashSource, input: HashInput): bigint | undefined {
  switch (source.kind) {
    case 'header': {
      const values = input.header(source.name);
      if (values.length === 0) return undefined;
      // Envoy sorts repeated values (so their order does not matter) and hashes them as one stream.
      return xxHash64(values.length === 1 ? values[0]! : [...values].sort().join(''));
    }
    case 'source_ip': {
      const ip = input.sourceIp();
      return ip ? xxHash64(ip) : undefined;
    }
    case 'query': {
      const value = input.query(source.name);
      return value === undefined ? undefined : xxHash64(value);
    }
    case 'cookie': {
      const existing = input.cookie(source.name);
      if (existing) return xxHash64(existing);
      if (source.ttlSeconds === undefined) return undefined;
      const generated = generatedCookie(input.connection());
      input.setCookie(
        setCookieValue(source.name, generated, source.ttlSeconds, source.path, source.attributes),
      );
      return xxHash64(generated);
    }
  }
}

/**
 * Envoy's generated session cookie: the hash of the connection's two ends,
 * so requests racing on one connection all get the same cookie (and the same
 * host) before the first answer comes back.
 */
export function generatedCookie(ends: { remote: string; local: string }): string {
  return hex64(xxHash64(ends.remote + ends.local));
}

/**
 * The Set-Cookie value for a generated session cookie, as Envoy writes it:
 * Max-Age unless the TTL is zero (a session cookie), Path, the configured
 * attributes, HttpOnly.
 */
export function setCookieValue(
  name: string,
  value: string,
  ttlSeconds: number,
  path: string | undefined,
  attributes: readonly CookieAttribute[],
): string {
  let cookie = `${name}="${value}"`;
  if (ttlSeconds > 0) cookie += `; Max-Age=${Math.floor(ttlSeconds)}`;
  if (path) cookie += `; Path=${path}`;
  for (const a of attributes) cookie += a.value ? `; ${a.name}=${a.value}` : `; ${a.name}`;
  return `${cookie}; HttpOnly`;
}

/** One cookie's value from a Cookie header, its surrounding double quotes taken off as Envoy does. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      // The generated cookie goes out quoted: coming back, it must hash like the value that picked the host.
      return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
    }
  }
  return undefined;
}
