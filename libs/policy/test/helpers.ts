import type {
  AuthorizationPolicySpec,
  ConfigResource,
  PeerAuthenticationSpec,
  RequestAuthenticationSpec,
} from '@mizzen/api';
import { encodeMessage } from '@mizzen/xds';
import { expect } from 'vitest';
import type { Workload } from '../src/common/scope.js';
import type { HttpFilterJson, NetworkFilterJson, RequestAttributes, RequestAuth } from '../src/index.js';

export const NS = 'foo';
export const WORKLOAD: Workload = { namespace: NS, labels: { app: 'httpbin', version: 'v1' } };

interface Meta {
  namespace?: string;
  annotations?: Record<string, string>;
  created?: string;
}

function meta(name: string, m: Meta) {
  return {
    name,
    namespace: m.namespace ?? NS,
    ...(m.annotations ? { annotations: m.annotations } : {}),
    creationTimestamp: m.created ?? '2024-01-01T00:00:00Z',
  };
}

export function ap(name: string, spec: AuthorizationPolicySpec, m: Meta = {}): ConfigResource {
  return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta(name, m), spec };
}

export function pa(name: string, spec: PeerAuthenticationSpec, m: Meta = {}): ConfigResource {
  return { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: meta(name, m), spec };
}

export function ra(name: string, spec: RequestAuthenticationSpec, m: Meta = {}): ConfigResource {
  return { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: meta(name, m), spec };
}

/** Flat overrides for a request; `principal: null` means plaintext (no peer certificate). */
export interface Req {
  principal?: string | null;
  sourceIp?: string;
  remoteIp?: string;
  destIp?: string;
  destPort?: number;
  sni?: string;
  host?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  auth?: RequestAuth;
  metadata?: Record<string, Record<string, unknown>>;
}

export const SLEEP = 'spiffe://cluster.local/ns/foo/sa/sleep';

export function http(r: Req = {}): RequestAttributes {
  return {
    ...tcp(r),
    http: {
      host: r.host ?? 'httpbin.foo.svc.cluster.local',
      method: r.method ?? 'GET',
      path: r.path ?? '/ip',
      headers: r.headers ?? {},
    },
    ...(r.auth ? { auth: r.auth } : {}),
  };
}

export function tcp(r: Req = {}): RequestAttributes {
  return {
    source: {
      address: r.sourceIp ?? '10.0.0.1',
      port: 40000,
      ...(r.principal === null ? {} : { principal: r.principal ?? SLEEP }),
    },
    ...(r.remoteIp ? { remoteAddress: r.remoteIp } : {}),
    destination: { address: r.destIp ?? '10.0.0.2', port: r.destPort ?? 8000 },
    ...(r.sni ? { sni: r.sni } : {}),
    ...(r.metadata ? { metadata: r.metadata } : {}),
  };
}

export function jwtAuth(claims: Record<string, unknown>): RequestAuth {
  const aud = claims.aud;
  return {
    ...(typeof claims.iss === 'string' && typeof claims.sub === 'string'
      ? { principal: `${claims.iss}/${claims.sub}` }
      : {}),
    audiences: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? (aud as string[]) : [],
    ...(typeof claims.azp === 'string' ? { presenter: claims.azp } : {}),
    claims,
  };
}

/** Every filter must be a real Envoy message: as an HCM http filter / listener filter, and its typed config alone. */
export function expectEncodes(filters: { http?: HttpFilterJson[]; tcp?: NetworkFilterJson[] }): void {
  for (const f of filters.http ?? []) {
    expect(() =>
      encodeMessage('envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter', f),
    ).not.toThrow();
    const { '@type': type, ...config } = f.typed_config;
    expect(encodeMessage(type, config).length).toBeGreaterThanOrEqual(0);
  }
  for (const f of filters.tcp ?? []) {
    expect(() => encodeMessage('envoy.config.listener.v3.Filter', f)).not.toThrow();
    const { '@type': type, ...config } = f.typed_config;
    expect(() => encodeMessage(type, config)).not.toThrow();
  }
}
