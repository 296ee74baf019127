import {
  AuthzChain,
  EXT_AUTHZ_NETWORK_TYPE,
  type NetworkFilterJson,
  RBAC_NETWORK_TYPE,
} from '@mizzen/policy';
import { durationToMs } from '@mizzen/xds';
import type {
  FilterChainJson,
  HttpConnectionManagerJson,
  ListenerJson,
  TcpProxyJson,
} from '../envoy/types.js';
import type { HttpFilter } from '../http/filters/filter.js';
import { compileHttpFilters } from '../http/filters/registry.js';
import type { HttpTelemetryConfig, TcpTelemetryConfig } from '../observe/records.js';
import { type ClientCertPolicy, isForwardClientCertDetails } from '../security/client-cert-details.js';
import { fail } from './errors.js';
import { AUTHZ_FILTER_FIELDS } from './fields/authz.js';
import {
  HTTP_CONNECTION_MANAGER,
  HTTP_INSPECTOR_TYPE,
  LISTENER,
  ORIGINAL_DST_TYPE,
  PROXY_PROTOCOL_TYPE,
  TLS_INSPECTOR_TYPE,
} from './fields/listener.js';
import {
  type CompiledChainMatch,
  compileChainMatch,
  type FilterChainMatchJson,
} from './filter-chain-match.js';
import { RouteTable } from './route-table.js';
import {
  compileAccessLogs,
  compileHcmTelemetry,
  compileMetadataExchange,
  compileStatsConfig,
  isMetadataExchangeFilter,
  isStatsFilter,
} from './telemetry.js';
import { compileTransportSocket, type TlsContextSpec } from './tls-context.js';
import { refuseUnknownFields } from './understood.js';

export const HCM_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

export { PROXY_PROTOCOL_TYPE };

/** Listener filters whose job (finding the original destination, sniffing the protocol, PROXY headers) this proxy does natively. */
const NATIVE_LISTENER_FILTERS = new Set([
  ORIGINAL_DST_TYPE,
  HTTP_INSPECTOR_TYPE,
  TLS_INSPECTOR_TYPE,
  PROXY_PROTOCOL_TYPE,
]);

/**
 * Where pilot puts what it could not turn into this listener (a gateway
 * server left closed, and why; one overlapping another): `filter_metadata['mizzen.io/gateway'].notices`.
 */
export const GATEWAY_METADATA = 'mizzen.io/gateway';

export interface HttpConnectionManagerConfig {
  readonly kind: 'http';
  readonly statPrefix: string;
  /** Route table by RDS name, or inline. */
  readonly rds?: string;
  readonly inlineRoutes?: RouteTable;
  /** Edge mode: trust the peer address, append it to x-forwarded-for. */
  readonly useRemoteAddress: boolean;
  readonly xffNumTrustedHops: number;
  readonly generateRequestId: boolean;
  /** The HTTP filters before the router, in order. */
  readonly filters: readonly HttpFilter[];
  /** What happens to x-forwarded-client-cert (forward_client_cert_details). */
  readonly clientCert: ClientCertPolicy;
  /** Protocols a request may upgrade to (upgrade_configs), lower case: `websocket`. */
  readonly upgradeTypes: ReadonlySet<string>;
  /** Tracing, access logs and Istio's metric overrides, handed to the observers with each request. */
  readonly telemetry: HttpTelemetryConfig;
  /** How long a client may take to send a request's headers (slowloris bound); 0 means no bound. */
  readonly requestHeadersTimeoutMs: number;
  /** The largest request header block accepted (431 beyond it), in bytes. */
  readonly maxRequestHeadersBytes?: number;
}

/** tcp_proxy's tunneling_config: the TCP stream goes to the cluster's host inside an HTTP CONNECT (or POST) request. */
export interface TcpTunnelingConfig {
  /** The request's authority: `host:port` of the final destination, which the proxy at the cluster's host connects to. */
  readonly hostname: string;
  readonly usePost: boolean;
  /** The POST request's path (Envoy's default `/`). */
  readonly postPath: string;
}

export interface TcpProxyConfig {
  readonly kind: 'tcp';
  readonly statPrefix: string;
  readonly clusters: readonly { name: string; weight: number }[];
  /** Close the connection after this long with no bytes either way (Envoy's default: an hour); 0: never. */
  readonly idleTimeoutMs: number;
  /** Close the connection this long after it was accepted (max_downstream_connection_duration); 0: never. */
  readonly maxDurationMs: number;
  readonly tunneling?: TcpTunnelingConfig;
  /** hash_policy source_ip: RING_HASH/MAGLEV clusters pick the host by the client's address. */
  readonly hashBySourceIp: boolean;
  /** Network RBAC and ext_authz filters before the tcp_proxy (AuthorizationPolicy for TCP): a denied connection is closed. */
  readonly authz?: AuthzChain;
  /** Istio's `istio.stats` network filter before it (TCP metrics, with its overrides) and its access logs. */
  readonly telemetry: TcpTelemetryConfig;
  /**
   * Istio's `istio.metadata_exchange` network filter before it: on a
   * connection whose TLS agreed on this ALPN, the two sidecars exchange
   * their workload metadata first.
   */
  readonly peerExchange?: { readonly protocol: string };
}

export type NetworkFilterConfig = HttpConnectionManagerConfig | TcpProxyConfig;

/** One filter chain: what connections it takes, and the network filter that handles them. */
export interface FilterChainConfig {
  readonly name: string;
  readonly match: CompiledChainMatch;
  readonly filter: NetworkFilterConfig;
  /** TLS termination (DownstreamTlsContext), when the chain has a TLS transport socket. */
  readonly tls?: TlsContextSpec;
}

export interface ListenerConfig {
  readonly name: string;
  /** An IP address, or (pipe listeners) the Unix socket's path — `@name` for Linux's abstract namespace. */
  readonly address: string;
  /** The TCP port; 0 for a pipe listener. */
  readonly port: number;
  /** A Unix domain socket listener (Envoy's `pipe` address), with the file mode its socket gets. */
  readonly pipe?: { readonly mode?: number };
  /** False for Istio's per-port outbound listeners that only receive connections handed over by virtualOutbound. */
  readonly bindToPort: boolean;
  /** The capture listener (virtualOutbound): hands each connection to the listener for its original destination. */
  readonly useOriginalDst: boolean;
  readonly direction: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
  readonly chains: readonly FilterChainConfig[];
  /** Where connections no chain matches go; without it they are closed. */
  readonly defaultChain?: FilterChainConfig;
  /** Picking a chain needs the connection's first bytes (SNI, TLS vs plaintext, HTTP detection). */
  readonly needsInspection: boolean;
  /** How long to wait for a client's first bytes (Envoy's listener_filters_timeout) before deciding without them. */
  readonly inspectionTimeoutMs: number;
  /** Connections start with a PROXY protocol header (v1 or v2) naming the real client; read within the timeout. */
  readonly proxyProtocol?: { readonly allowWithout: boolean; readonly timeoutMs: number };
  /** Why parts of this listener were left out by the control plane (logged when the listener is applied). */
  readonly notices: readonly string[];
  /**
   * The workload port this listener stands for, when it is not the port it
   * binds: local mode gives each inbound port its own listener, and Istio's
   * policies (AuthorizationPolicy `ports`) name the workload's port.
   */
  readonly workloadPort?: number;
  readonly json: ListenerJson;
}

/** Listener metadata namespace pilot uses for what only a local-mode listener needs to know. */
export const LISTENER_METADATA_NAMESPACE = 'mizzen.io/listener';

function compileUpgradeTypes(tc: HttpConnectionManagerJson, where: string): ReadonlySet<string> {
  const types = new Set<string>();
  (tc.upgrade_configs ?? []).forEach((u, i) => {
    if (!u.upgrade_type) fail(`${where}.upgrade_configs[${i}]`, 'upgrade_type is required');
    if (u.enabled === false) return;
    types.add(u.upgrade_type.toLowerCase());
  });
  return types;
}

function compileClientCertPolicy(tc: HttpConnectionManagerJson, where: string): ClientCertPolicy {
  const mode = tc.forward_client_cert_details ?? 'SANITIZE';
  if (!isForwardClientCertDetails(mode))
    fail(where, `forward_client_cert_details "${mode}" is not one of Envoy's modes`);
  const set = tc.set_current_client_cert_details ?? {};
  return {
    mode,
    fields: {
      subject: set.subject === true,
      uri: set.uri === true,
      dns: set.dns === true,
      cert: set.cert === true,
    },
  };
}

function compileHcm(tc: HttpConnectionManagerJson, where: string): HttpConnectionManagerConfig {
  const { filters, stats } = compileHttpFilters(tc.http_filters ?? [], where);
  if (!tc.rds && !tc.route_config) fail(where, 'HTTP connection manager has neither rds nor route_config');
  const config: HttpConnectionManagerConfig = {
    kind: 'http',
    statPrefix: tc.stat_prefix ?? '',
    rds: tc.rds?.route_config_name,
    inlineRoutes: tc.route_config ? RouteTable.compile(tc.route_config) : undefined,
    useRemoteAddress: tc.use_remote_address === true,
    xffNumTrustedHops: tc.xff_num_trusted_hops ?? 0,
    generateRequestId: tc.generate_request_id !== false,
    filters,
    clientCert: compileClientCertPolicy(tc, where),
    upgradeTypes: compileUpgradeTypes(tc, where),
    telemetry: compileHcmTelemetry(tc, stats, where),
    requestHeadersTimeoutMs:
      tc.request_headers_timeout === undefined ? 0 : (durationToMs(tc.request_headers_timeout) ?? 0),
    maxRequestHeadersBytes: compileMaxHeaders(tc.max_request_headers_kb, where),
  };
  refuseUnknownFields(tc, HTTP_CONNECTION_MANAGER, where);
  return config;
}

/** Envoy allows 1 KiB to 8 MiB of request headers (60 KiB by default; Node's own default, 16 KiB, when unset). */
function compileMaxHeaders(kb: number | undefined, where: string): number | undefined {
  if (kb === undefined) return undefined;
  if (!Number.isInteger(kb) || kb < 1 || kb > 8192)
    fail(`${where}.max_request_headers_kb`, `must be between 1 and 8192, got ${kb}`);
  return kb * 1024;
}

/** The tcp_proxy fields the proxy implements; anything else is refused rather than ignored. */
const TCP_PROXY_FIELDS = new Set([
  '@type',
  'stat_prefix',
  'cluster',
  'weighted_clusters',
  'idle_timeout',
  'max_downstream_connection_duration',
  'tunneling_config',
  'hash_policy',
  'access_log',
  'access_log_options',
  'access_log_flush_interval',
]);

/** Envoy's tcp_proxy idle_timeout when none is set. */
const DEFAULT_TCP_IDLE_MS = 3_600_000;

function durationField(value: string | undefined, at: string, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = durationToMs(value);
  if (ms === undefined || ms < 0) fail(at, `"${value}" is not a duration`);
  return ms;
}

function compileTunneling(
  t: NonNullable<TcpProxyJson['tunneling_config']>,
  where: string,
): TcpTunnelingConfig {
  const at = `${where}.tunneling_config`;
  for (const key of Object.keys(t))
    if (key !== 'hostname' && key !== 'use_post' && key !== 'post_path')
      fail(`${at}.${key}`, 'is not supported');
  if (!t.hostname) fail(`${at}.hostname`, 'is required');
  if (t.post_path !== undefined && !t.use_post) fail(`${at}.post_path`, 'needs use_post');
  if (t.post_path !== undefined && !t.post_path.startsWith('/'))
    fail(`${at}.post_path`, 'must start with "/"');
  return { hostname: t.hostname, usePost: t.use_post === true, postPath: t.post_path ?? '/' };
}

/** A tcp_proxy hashes by source IP only (Envoy's other key, filter state, is not supported). */
function compileTcpHashPolicy(policies: TcpProxyJson['hash_policy'], where: string): boolean {
  if (!policies?.length) return false;
  policies.forEach((p, i) => {
    for (const key of Object.keys(p))
      if (key !== 'source_ip') fail(`${where}.hash_policy[${i}].${key}`, 'is not supported');
  });
  return true;
}

function compileTcpProxy(tc: TcpProxyJson, where: string): TcpProxyConfig {
  for (const key of Object.keys(tc))
    if (!TCP_PROXY_FIELDS.has(key)) fail(`${where}.${key}`, 'is not supported');
  let clusters: { name: string; weight: number }[];
  if (tc.cluster) clusters = [{ name: tc.cluster, weight: 1 }];
  else if (tc.weighted_clusters?.clusters?.length)
    clusters = tc.weighted_clusters.clusters.map((c) => ({ name: c.name, weight: c.weight ?? 0 }));
  else fail(where, 'tcp_proxy names no cluster');
  return {
    kind: 'tcp',
    statPrefix: tc.stat_prefix ?? '',
    clusters,
    idleTimeoutMs: durationField(tc.idle_timeout, `${where}.idle_timeout`, DEFAULT_TCP_IDLE_MS),
    maxDurationMs: durationField(
      tc.max_downstream_connection_duration,
      `${where}.max_downstream_connection_duration`,
      0,
    ),
    ...(tc.tunneling_config ? { tunneling: compileTunneling(tc.tunneling_config, where) } : {}),
    hashBySourceIp: compileTcpHashPolicy(tc.hash_policy, where),
    telemetry: compileTcpAccessLogs(tc, where),
  };
}

/**
 * tcp_proxy's `access_log` entries and `access_log_options` (or the
 * deprecated `access_log_flush_interval`, never both, as Envoy insists).
 */
function compileTcpAccessLogs(tc: TcpProxyJson, where: string): TcpTelemetryConfig {
  const accessLogs = compileAccessLogs(tc.access_log, where);
  const options = tc.access_log_options;
  if (options && tc.access_log_flush_interval !== undefined)
    fail(where, 'only one of access_log_flush_interval or access_log_options can be specified');
  for (const key of Object.keys(options ?? {}))
    if (key !== 'access_log_flush_interval' && key !== 'flush_access_log_on_connected')
      fail(`${where}.access_log_options.${key}`, 'is not supported');
  const interval = options?.access_log_flush_interval ?? tc.access_log_flush_interval;
  const at = options
    ? `${where}.access_log_options.access_log_flush_interval`
    : `${where}.access_log_flush_interval`;
  const flushMs = interval === undefined ? 0 : durationField(interval, at, 0);
  // Envoy's bound: at least a millisecond.
  if (interval !== undefined && flushMs < 1) fail(at, `must be at least 1ms, got "${interval}"`);
  return {
    ...(accessLogs.length ? { accessLogs } : {}),
    ...(flushMs > 0 ? { accessLogFlushIntervalMs: flushMs } : {}),
    ...(options?.flush_access_log_on_connected === true ? { flushAccessLogOnConnected: true } : {}),
  };
}

/** Authorization for TCP, run before tcp_proxy: Istio's network RBAC and, for CUSTOM policies, ext_authz. */
const NETWORK_AUTHZ_TYPES: ReadonlySet<string> = new Set([RBAC_NETWORK_TYPE, EXT_AUTHZ_NETWORK_TYPE]);

function compileNetworkFilter(chain: FilterChainJson, where: string): NetworkFilterConfig {
  const all = chain.filters ?? [];
  if (all.length === 0) {
    fail(where, 'expected a network filter (http_connection_manager or tcp_proxy), got none');
  }
  // Before the terminal filter: authorization (network RBAC, ext_authz) and Istio's stats filter, as Istio puts them before tcp_proxy.
  const authzFilters: NetworkFilterJson[] = [];
  let stats: { json: Record<string, unknown>; at: number } | undefined;
  let exchange: { protocol: string; at: number } | undefined;
  all.slice(0, -1).forEach((f, i) => {
    const typed = f.typed_config as Record<string, unknown> | undefined;
    if (isStatsFilter(typed)) {
      if (stats) fail(`${where}.filters[${i}]`, 'a second istio.stats filter; a chain takes one');
      stats = { json: typed!, at: i };
    } else if (isMetadataExchangeFilter(typed)) {
      if (exchange)
        fail(`${where}.filters[${i}]`, 'a second istio.metadata_exchange filter; a chain takes one');
      exchange = { ...compileMetadataExchange(typed!, `${where}.filters[${i}].typed_config`), at: i };
    } else if (NETWORK_AUTHZ_TYPES.has(f.typed_config?.['@type'] ?? ''))
      authzFilters.push(f as NetworkFilterJson);
    else
      fail(
        `${where}.filters[${i}]`,
        `network filter ${f.name} is not supported by this proxy before the last filter`,
      );
  });
  const last = all.length - 1;
  const f = all[last]!;
  const tc = f.typed_config;
  if (tc?.['@type'] === HCM_TYPE) {
    if (authzFilters.length)
      fail(
        `${where}.filters[0]`,
        'network authorization (RBAC, ext_authz) before an HTTP connection manager is not supported; use the HTTP filters',
      );
    if (stats)
      fail(
        `${where}.filters[${stats.at}]`,
        'the istio.stats network filter belongs before tcp_proxy; HTTP takes it among its http_filters',
      );
    if (exchange)
      fail(
        `${where}.filters[${exchange.at}]`,
        'the istio.metadata_exchange network filter belongs before tcp_proxy; HTTP exchanges metadata in headers',
      );
    return compileHcm(tc as HttpConnectionManagerJson, `${where}.filters[${last}]`);
  }
  if (tc?.['@type'] === TCP_PROXY_TYPE) {
    const proxy = compileTcpProxy(tc as TcpProxyJson, `${where}.filters[${last}]`);
    const telemetry: TcpTelemetryConfig = stats
      ? {
          ...proxy.telemetry,
          stats: compileStatsConfig(stats.json, `${where}.filters[${stats.at}].typed_config`),
        }
      : proxy.telemetry;
    const authz = authzFilters.length ? AuthzChain.compile(authzFilters, `${where}.filters`) : undefined;
    for (const f of authzFilters) {
      const fields = AUTHZ_FILTER_FIELDS[f.typed_config?.['@type'] ?? ''];
      if (fields) refuseUnknownFields(f.typed_config, fields, `${where}.filters (${f.name})`);
    }
    return {
      ...proxy,
      telemetry,
      ...(exchange ? { peerExchange: { protocol: exchange.protocol } } : {}),
      ...(authz ? { authz } : {}),
    };
  }
  fail(
    `${where}.filters[0]`,
    `network filter ${f.name} (${tc?.['@type'] ?? 'no type'}) is not supported by this proxy`,
  );
}

function compileFilterChain(chain: FilterChainJson, where: string): FilterChainConfig {
  return {
    name: chain.name ?? '',
    match: compileChainMatch(
      chain.filter_chain_match as FilterChainMatchJson | undefined,
      `${where}.filter_chain_match`,
    ),
    filter: compileNetworkFilter(chain, where),
    tls: compileTransportSocket(chain.transport_socket as never, 'downstream', `${where}.transport_socket`),
  };
}

function workloadPortOf(l: ListenerJson, where: string): { workloadPort?: number } {
  const value = l.metadata?.filter_metadata?.[LISTENER_METADATA_NAMESPACE]?.workload_port;
  if (value === undefined) return {};
  const port = Number(value);
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    fail(
      `${where}.metadata.filter_metadata["${LISTENER_METADATA_NAMESPACE}"].workload_port`,
      `invalid port ${value}`,
    );
  return { workloadPort: port };
}

function gatewayNotices(metadata: ListenerJson['metadata']): string[] {
  const list = metadata?.filter_metadata?.[GATEWAY_METADATA]?.notices;
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string') : [];
}

/** A Listener as the proxy runs it: every field honoured or refused (fields/listener.ts), after the compilers' own checks. */
export function compileListener(l: ListenerJson): ListenerConfig {
  if (!l.name) fail('listener', 'has no name');
  const where = `listener ${l.name}`;
  if (l.api_listener) fail(where, 'API listeners are for proxyless gRPC clients, not for this proxy');
  const pipe = l.address?.pipe;
  const sa = l.address?.socket_address;
  if (pipe) {
    if (!pipe.path) fail(`${where}.address.pipe.path`, 'a pipe listener needs a path');
    if (pipe.mode !== undefined && !(Number.isInteger(pipe.mode) && pipe.mode >= 0 && pipe.mode <= 0o777))
      fail(`${where}.address.pipe.mode`, `${pipe.mode} is not a file mode (0 to 0777)`);
  } else if (!sa?.address) fail(`${where}.address`, 'listener has no socket address');
  const port = pipe ? 0 : (sa!.port_value ?? 0);
  if (!(port >= 0 && port < 65536)) fail(`${where}.address`, `invalid port ${port}`);
  for (const [i, f] of (l.listener_filters ?? []).entries()) {
    const type = f.typed_config?.['@type'];
    if (!type || !NATIVE_LISTENER_FILTERS.has(type)) {
      fail(`${where}.listener_filters[${i}]`, `listener filter ${f.name} is not supported by this proxy`);
    }
  }
  const chains = (l.filter_chains ?? []).map((c, i) =>
    compileFilterChain(c, `${where}.filter_chains[${i}]${c.name ? ` (${c.name})` : ''}`),
  );
  const defaultChain = l.default_filter_chain
    ? compileFilterChain(l.default_filter_chain, `${where}.default_filter_chain`)
    : undefined;
  if (chains.length === 0 && !defaultChain) fail(`${where}.filter_chains`, 'listener has no filter chain');
  const timeout = l.listener_filters_timeout;
  const proxyProtocol = (l.listener_filters ?? []).find(
    (f) => f.typed_config?.['@type'] === PROXY_PROTOCOL_TYPE,
  )?.typed_config as { allow_requests_without_proxy_protocol?: boolean } | undefined;
  const config: ListenerConfig = {
    name: l.name,
    address: pipe ? pipe.path! : sa!.address!,
    port,
    ...(pipe ? { pipe: pipe.mode !== undefined ? { mode: pipe.mode } : {} } : {}),
    bindToPort: l.bind_to_port !== false,
    useOriginalDst: l.use_original_dst === true,
    direction: l.traffic_direction ?? 'UNSPECIFIED',
    chains,
    defaultChain,
    needsInspection: chains.some((c) => c.match.needsInspection),
    // Envoy's default listener_filters_timeout is 15s; Istio sets 0.1s with continue_on_listener_filters_timeout.
    inspectionTimeoutMs: timeout === undefined ? 100 : (durationToMs(timeout) ?? 100),
    // Envoy waits listener_filters_timeout (15s unless set) for the PROXY header.
    proxyProtocol: proxyProtocol
      ? {
          allowWithout: proxyProtocol.allow_requests_without_proxy_protocol === true,
          timeoutMs: timeout === undefined ? 15_000 : durationToMs(timeout) || 15_000,
        }
      : undefined,
    notices: gatewayNotices(l.metadata),
    ...workloadPortOf(l, where),
    json: l,
  };
  refuseUnknownFields(l, LISTENER, where);
  return config;
}
