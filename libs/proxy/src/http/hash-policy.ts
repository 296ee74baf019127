import { randomBytes } from 'node:crypto';
import { durationToMs } from '@mizzen/xds';
import { fail } from '../config/errors.js';
import type { HashPolicyJson } from '../envoy/types.js';
import { hash32 } from '../upstream/consistent-hash.js';

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
  header(name: string): string | undefined;
  cookie(name: string): string | undefined;
  sourceIp(): string | undefined;
  query(name: string): string | undefined;
  /** Adds a Set-Cookie header (its value) to the response. */
  setCookie(setCookieValue: string): void;
}

/**
 * The request's hash for RING_HASH/MAGLEV clusters, combined across policies
 * as Envoy does. A cookie policy with a TTL and no cookie yet makes one up and
 * sets it on the response, so the client sticks to its host from then on.
 */
export function requestHash(policies: readonly CompiledHashPolicy[], input: HashInput): number | undefined {
  let hash: number | undefined;
  for (const p of policies) {
    const value = hashInputValue(p.source, input);
    if (value === undefined) continue;
    const h = hash32(value);
    hash = hash === undefined ? h : (((hash << 1) | (hash >>> 31)) ^ h) >>> 0;
    if (p.terminal) break;
  }
  return hash;
}

function hashInputValue(source: HashSource, input: HashInput): string | undefined {
  switch (source.kind) {
    case 'header':
      return input.header(source.name);
    case 'source_ip':
      return input.sourceIp();
    case 'query':
      return input.query(source.name);
    case 'cookie': {
      const existing = input.cookie(source.name);
      if (existing !== undefined || source.ttlSeconds === undefined) return existing;
      const generated = randomBytes(8).toString('hex');
      input.setCookie(
        setCookieValue(source.name, generated, source.ttlSeconds, source.path, source.attributes),
      );
      return generated;
    }
  }
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
