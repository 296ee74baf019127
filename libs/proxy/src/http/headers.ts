import type { IncomingHttpHeaders } from 'node:http';
import { HOP_BY_HOP_HEADERS } from '@mizzen/policy';
import type { HeaderMap } from '../config/headers.js';

/**
 * Headers the proxy consumes and never forwards: the hop-by-hop ones (RFC
 * 9110 §7.6.1, the list policy's authorizer replies use too), the
 * proxy-authentication pair, `expect` (the proxy answers 100-continue
 * itself) and `http2-settings`.
 */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP_HEADERS,
  'proxy-authenticate',
  'proxy-authorization',
  'expect',
  'http2-settings',
]);

function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

/** A copy of the headers without hop-by-hop ones (including those the Connection header names). */
export function endToEndHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
): HeaderMap {
  const named = connectionTokens(headers.connection);
  const out: HeaderMap = {};
  for (const [name, value] of Object.entries(headers)) {
    // HTTP/2 pseudo-headers (`:path`, `:authority`…) describe the request line, not end-to-end headers.
    if (value === undefined || named.includes(name) || name.charCodeAt(0) === 58) continue;
    // `te: trailers` is the one TE value that travels end to end (gRPC requires it over HTTP/2).
    if (HOP_BY_HOP.has(name) && !(name === 'te' && value === 'trailers')) continue;
    out[name] = value;
  }
  return out;
}

/** One header as a single string (repeated values joined by commas, as Envoy's matchers see them). */
export function headerValue(headers: HeaderMap, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}
