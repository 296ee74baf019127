import { parseQuery } from '../common/query.js';
import type { JwtProviderJson } from '../envoy/types.js';

/**
 * Where a JWT travels (Envoy's jwt_authn Extractor): headers with an
 * optional value prefix, query parameters, cookies. Without any configured
 * location a provider reads `Authorization: Bearer <token>` and the
 * `access_token` query parameter.
 */

/** Mutable request headers: lower-case name → value(s). */
export type HeaderBag = Record<string, string | string[]>;

export interface TokenLocation {
  kind: 'header' | 'param' | 'cookie';
  name: string;
  token: string;
  /** Issuers of the providers that read this location; '' means any issuer. */
  issuers: ReadonlySet<string>;
}

interface LocationSpec {
  kind: 'header' | 'param' | 'cookie';
  name: string;
  prefix: string;
  issuers: Set<string>;
}

const JWT_CHARS = /[A-Za-z0-9\-_.]/;

/** The JWT in a header value after its prefix: the first run of base64url characters and dots. */
function tokenAfter(value: string, start: number): string {
  let i = start;
  while (i < value.length && !JWT_CHARS.test(value[i]!)) i++;
  let j = i;
  while (j < value.length && JWT_CHARS.test(value[j]!)) j++;
  return i < value.length ? value.slice(i, j) : value.slice(start);
}

export function headerValue(headers: HeaderBag, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

/** Cookie pairs from every Cookie header, in order. */
export function parseCookies(headers: HeaderBag): Map<string, string> {
  const out = new Map<string, string>();
  const raw = headers.cookie;
  const lines = raw === undefined ? [] : typeof raw === 'string' ? [raw] : raw;
  for (const line of lines) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const name = part.slice(0, eq).trim();
      let value = part.slice(eq + 1).trim();
      if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
      if (name && !out.has(name)) out.set(name, value);
    }
  }
  return out;
}

/** The first value of a query parameter in a :path, decoded. */
export function queryParam(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  const end = path.indexOf('#', q);
  const params = new URLSearchParams(path.slice(q + 1, end < 0 ? undefined : end));
  return params.get(name) ?? undefined;
}

/** :path without every occurrence of one query parameter. */
export function removeQueryParam(path: string, name: string): string {
  const q = path.indexOf('?');
  if (q < 0) return path;
  const hash = path.indexOf('#', q);
  const query = path.slice(q + 1, hash < 0 ? undefined : hash);
  const fragment = hash < 0 ? '' : path.slice(hash);
  const kept = parseQuery(query)
    .filter((p) => p.key !== name)
    .map((p) => p.raw);
  return `${path.slice(0, q)}${kept.length ? `?${kept.join('&')}` : ''}${fragment}`;
}

export class Extractor {
  private readonly specs: LocationSpec[] = [];
  /** Headers no client may send: the payload and claim headers these providers write. */
  readonly sanitize: ReadonlySet<string>;

  constructor(providers: readonly JwtProviderJson[]) {
    const sanitize = new Set<string>();
    for (const p of providers) {
      const issuer = p.issuer ?? '';
      const headers = p.from_headers ?? [];
      const params = p.from_params ?? [];
      const cookies = p.from_cookies ?? [];
      for (const h of headers) this.add('header', h.name.toLowerCase(), h.value_prefix ?? '', issuer);
      for (const name of params) this.add('param', name, '', issuer);
      for (const name of cookies) this.add('cookie', name, '', issuer);
      if (!headers.length && !params.length && !cookies.length) {
        this.add('header', 'authorization', 'Bearer ', issuer);
        this.add('param', 'access_token', '', issuer);
      }
      if (p.forward_payload_header) sanitize.add(p.forward_payload_header.toLowerCase());
      for (const c of p.claim_to_headers ?? []) sanitize.add(c.header_name.toLowerCase());
    }
    this.sanitize = sanitize;
    // Envoy reads header locations, then query parameters, then cookies.
    const order = { header: 0, param: 1, cookie: 2 } as const;
    this.specs.sort((a, b) => order[a.kind] - order[b.kind]);
  }

  private add(kind: LocationSpec['kind'], name: string, prefix: string, issuer: string): void {
    const existing = this.specs.find((s) => s.kind === kind && s.name === name && s.prefix === prefix);
    if (existing) existing.issuers.add(issuer);
    else this.specs.push({ kind, name, prefix, issuers: new Set([issuer]) });
  }

  /** Removes the headers these providers write, so a client cannot forge them. */
  sanitizeHeaders(headers: HeaderBag): void {
    for (const h of this.sanitize) delete headers[h];
  }

  extract(headers: HeaderBag, path: string): TokenLocation[] {
    const out: TokenLocation[] = [];
    let cookies: Map<string, string> | undefined;
    for (const spec of this.specs) {
      if (spec.kind === 'header') {
        const value = headerValue(headers, spec.name);
        if (value === undefined) continue;
        if (spec.prefix === '') {
          out.push({ kind: 'header', name: spec.name, token: value, issuers: spec.issuers });
          continue;
        }
        if (!value.toLowerCase().startsWith(spec.prefix.toLowerCase())) continue;
        out.push({
          kind: 'header',
          name: spec.name,
          token: tokenAfter(value, spec.prefix.length),
          issuers: spec.issuers,
        });
      } else if (spec.kind === 'param') {
        const token = queryParam(path, spec.name);
        if (token !== undefined) out.push({ kind: 'param', name: spec.name, token, issuers: spec.issuers });
      } else {
        cookies ??= parseCookies(headers);
        const token = cookies.get(spec.name);
        if (token !== undefined) out.push({ kind: 'cookie', name: spec.name, token, issuers: spec.issuers });
      }
    }
    return out;
  }
}

/** Whether a token found at `loc` may be verified for `issuer`. */
export function issuerAllowed(loc: TokenLocation, issuer: string): boolean {
  return loc.issuers.has('') || loc.issuers.has(issuer);
}
