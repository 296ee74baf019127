import { parseIp } from '../common/ip.js';
import type { DynamicMetadata, HeaderLookup } from '../common/matchers.js';
import { FilterNames } from '../envoy/types.js';

/**
 * What the data plane knows about one request or connection, as RBAC reads
 * it. Addresses are IP strings (IPv4-mapped IPv6 is folded to IPv4).
 */
export interface RequestAttributes {
  /** The downstream peer of this hop: `direct_remote_ip` / `source.ip` / `ipBlocks`. */
  source: {
    address: string;
    port?: number;
    /**
     * The peer certificate's URI SAN when the connection is mutual TLS
     * (`spiffe://cluster.local/ns/x/sa/y`; a value without a scheme gets
     * `spiffe://`). Absent on plaintext: `principals`, `namespaces` and
     * `source.principal` then never match.
     */
    principal?: string;
  };
  /** The original client after X-Forwarded-For/proxy protocol (`remote_ip` / `remoteIpBlocks`); default source.address. */
  remoteAddress?: string;
  /** This proxy's local address and port the connection arrived on (`destination.ip/port`, `ports`). */
  destination: { address: string; port: number };
  /** TLS SNI the client asked for (`connection.sni`). */
  sni?: string;
  /** Present for HTTP requests; absent for TCP connections. */
  http?: HttpRequestAttributes;
  /** What RequestAuthentication established (a verified JWT); absent when the request carried no token. */
  auth?: RequestAuth;
  /** Further dynamic metadata by filter namespace, read by `experimental.envoy.filters.*` conditions. */
  metadata?: DynamicMetadata;
}

export interface HttpRequestAttributes {
  /** :authority (the Host header). */
  host: string;
  method: string;
  /** :path, with the query string. */
  path: string;
  scheme?: string;
  /** Request headers; names are matched case-insensitively, repeated values are joined with `,` as Envoy does. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/** The verified JWT of a request (Istio's request.auth.* attributes). */
export interface RequestAuth {
  /** `iss/sub`, when the token has both. */
  principal?: string;
  /** The `aud` claim as a list. */
  audiences: string[];
  /** The `azp` claim. */
  presenter?: string;
  /** The whole JWT payload. */
  claims: Record<string, unknown>;
}

/** Per-request view the compiled RBAC matchers read (built once per evaluation). */
export interface EvalContext {
  headers: HeaderLookup;
  /** :path with query; undefined for TCP. */
  path?: string;
  sni: string;
  /** Peer URI SAN, `spiffe://…`; undefined without mutual TLS. */
  peerPrincipal?: string;
  directRemote?: Uint8Array;
  remote?: Uint8Array;
  destinationIp?: Uint8Array;
  destinationPort: number;
  metadata: DynamicMetadata;
}

/** `spiffe://td/ns/x/sa/y` from either form. */
export function normalizePrincipal(principal: string | undefined): string | undefined {
  if (!principal) return undefined;
  return principal.includes('://') ? principal : `spiffe://${principal}`;
}

function joinValues(v: string | readonly string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

/** Header lookup with the pseudo headers Envoy's matchers see (:authority, :method, :path, :scheme). */
export function headerLookup(http: HttpRequestAttributes | undefined): HeaderLookup {
  if (!http) return () => undefined;
  const lower = new Map<string, string>();
  for (const [k, v] of Object.entries(http.headers)) {
    const joined = joinValues(v);
    if (joined === undefined) continue;
    const key = k.toLowerCase();
    const prev = lower.get(key);
    lower.set(key, prev === undefined ? joined : `${prev},${joined}`);
  }
  return (name) => {
    switch (name) {
      case ':authority':
        return http.host || lower.get(':authority') || lower.get('host');
      case ':method':
        return http.method;
      case ':path':
        return http.path;
      case ':scheme':
        return http.scheme ?? lower.get(':scheme') ?? 'http';
      case 'host':
        return lower.get('host') ?? http.host;
      default:
        return lower.get(name);
    }
  };
}

/**
 * Istio's authn filter's processing of JWT claims into
 * `request.auth.claims`: a string becomes the list of its space-separated
 * words, a list of strings stays a list, an object is processed recursively;
 * other values are left out.
 */
export function istioClaims(payload: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(payload)) {
    if (typeof value === 'string') {
      const words = value.split(' ').filter((w) => w !== '');
      if (words.length) out[key] = words;
    } else if (Array.isArray(value)) {
      if (value.every((v) => typeof v === 'string')) out[key] = [...value];
    } else if (value !== null && typeof value === 'object') {
      out[key] = istioClaims(value as Record<string, unknown>);
    }
  }
  return out;
}

/**
 * The `istio_authn` dynamic metadata Istio's authorization matchers read:
 * source.principal/namespace from the peer certificate, request.auth.* from
 * the verified JWT (`request.auth.audiences` is the first audience, as
 * Istio's filter sets it).
 */
export function istioAuthnMetadata(attrs: RequestAttributes): Record<string, unknown> {
  const md: Record<string, unknown> = {};
  const peer = normalizePrincipal(attrs.source.principal);
  if (peer) {
    const bare = peer.replace(/^spiffe:\/\//, '');
    md['source.principal'] = bare;
    const ns = /\/ns\/([^/]+)\//.exec(bare);
    if (ns) md['source.namespace'] = ns[1];
  }
  const auth = attrs.auth;
  if (auth) {
    if (auth.principal) md['request.auth.principal'] = auth.principal;
    if (auth.audiences.length) md['request.auth.audiences'] = auth.audiences[0];
    if (auth.presenter) md['request.auth.presenter'] = auth.presenter;
    const claims = istioClaims(auth.claims);
    if (Object.keys(claims).length) md['request.auth.claims'] = claims;
    md['request.auth.raw_claims'] = JSON.stringify(auth.claims);
  }
  return md;
}

/** The evaluation context of one request: computed once, read by every RBAC filter. */
export function evalContextOf(attrs: RequestAttributes, metadata?: DynamicMetadata): EvalContext {
  return {
    headers: headerLookup(attrs.http),
    path: attrs.http?.path,
    sni: attrs.sni ?? '',
    peerPrincipal: normalizePrincipal(attrs.source.principal),
    directRemote: parseIp(attrs.source.address),
    remote: parseIp(attrs.remoteAddress ?? attrs.source.address),
    destinationIp: parseIp(attrs.destination.address),
    destinationPort: attrs.destination.port,
    metadata: metadata ?? initialMetadata(attrs),
  };
}

/** The dynamic metadata before any authorization filter ran: the caller's, plus `istio_authn`. */
export function initialMetadata(attrs: RequestAttributes): Record<string, Record<string, unknown>> {
  const md: Record<string, Record<string, unknown>> = {};
  for (const [k, v] of Object.entries(attrs.metadata ?? {})) md[k] = { ...v };
  md[FilterNames.istioAuthn] = { ...istioAuthnMetadata(attrs), ...(md[FilterNames.istioAuthn] ?? {}) };
  return md;
}
