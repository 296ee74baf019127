import net from 'node:net';
import { nativeSocketOptionsAvailable, type TcpKeepalive } from '@mizzen/original-dst';
import { durationToMs, SIDECAR_H2_UPGRADE_KEY } from '@mizzen/xds';
import type { ClusterJson, ClusterLoadAssignmentJson, LbEndpointJson } from '../envoy/types.js';
import { type EndpointIdentity, endpointIdentity } from '../observe/peer-metadata.js';
import { MAX_RING_SIZE } from '../upstream/consistent-hash.js';
import { DEFAULT_OVERPROVISIONING_FACTOR } from '../upstream/host.js';
import { fail } from './errors.js';
import {
  CLUSTER,
  CLUSTER_LOAD_ASSIGNMENT,
  HTTP_PROTOCOL_OPTIONS_TYPE,
  PROXY_PROTOCOL_SOCKET,
  SIDECAR_UPGRADE_MARKER,
} from './fields/cluster.js';
import { compileMetadataExchange, isMetadataExchangeFilter } from './telemetry.js';
import { compileTransportSocket, type TlsContextSpec } from './tls-context.js';
import { refuseUnknownFields } from './understood.js';

export type LbKind = 'round_robin' | 'least_request' | 'random' | 'ring_hash' | 'maglev';

/** One upstream address as EDS or a static load assignment gives it. */
export interface EndpointSpec {
  /** An IP address, or a Unix socket's path when `pipe`. */
  readonly address: string;
  /** 0 for a pipe. */
  readonly port: number;
  readonly pipe?: boolean;
  readonly weight: number;
  readonly healthy: boolean;
  /** `region/zone/subzone`, empty when unknown. */
  readonly locality: string;
  /** The endpoint runs a sidecar (Istio's `tlsMode: istio` transport-socket-match metadata). */
  readonly sidecar: boolean;
  /** Its `envoy.transport_socket_match` metadata, which picks the cluster's transport socket for it. */
  readonly transportMatch: Readonly<Record<string, string>>;
  /** Its locality group's priority (0 is the highest; lower levels take traffic as higher ones fail). */
  readonly priority: number;
  /** Its locality group's load_balancing_weight (0 when unset). */
  readonly localityWeight: number;
  /** The assignment's policy.overprovisioning_factor, in percent (140 unless set). */
  readonly overprovisioningFactor: number;
  /** The workload behind it and its identity, from Istio's endpoint metadata (telemetry's peer for TCP). */
  readonly identity?: EndpointIdentity;
}

/** Envoy's slow_start_config: hosts that join ramp up their weight over a window. */
export interface SlowStartConfig {
  readonly windowMs: number;
  /** Ramp shape: weight × (time_factor ^ (1 / aggression)); 1 is linear. */
  readonly aggression: number;
  /** The floor of the scaled weight, in percent of the host's weight. */
  readonly minWeightPercent: number;
}

export interface ClusterConfig {
  readonly name: string;
  readonly type: 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
  /** The ClusterLoadAssignment name an EDS cluster subscribes to. */
  readonly edsServiceName?: string;
  readonly connectTimeoutMs: number;
  readonly lb: LbKind;
  /** Endpoints given inline (STATIC and DNS clusters). */
  readonly endpoints?: readonly EndpointSpec[];
  readonly limits: CircuitBreakerLimits;
  readonly outlier?: OutlierConfig;
  /** Below this % of healthy hosts, balance over all hosts anyway (Envoy's panic mode); 0 disables it. */
  readonly panicThresholdPercent: number;
  /** Ring hash: the least points on the ring (minimum_ring_size); Maglev: the table size. */
  readonly hashTableSize: number;
  /** Ring hash: the most points on the ring (maximum_ring_size). */
  readonly maximumRingSize: number;
  /** common_lb_config.locality_weighted_lb_config: pick a locality by weight × availability, then a host in it. */
  readonly localityWeighted: boolean;
  /** ROUND_ROBIN / LEAST_REQUEST slow start (Istio's DestinationRule `warmup`). */
  readonly slowStart?: SlowStartConfig;
  readonly http: {
    /** Close a connection with no request for this long (idle_timeout). */
    idleTimeoutMs?: number;
    maxRequestsPerConnection?: number;
    /** Close a connection this long after it was made, once its requests end (max_connection_duration). */
    maxConnectionDurationMs?: number;
    /** HTTP/2 streams in flight per connection before another opens (max_concurrent_streams). */
    maxConcurrentStreams?: number;
    /** The upstream HTTP protocol: always HTTP/2 (gRPC, `http2-` ports), follow the downstream, or HTTP/1.1. */
    protocol: 'http1' | 'http2' | 'downstream';
    /** HTTP/2 to hosts with a sidecar although the cluster speaks HTTP/1.1 (pilot's mesh upgrade marker). */
    upgradeSidecarsToHttp2: boolean;
  };
  /** upstream_connection_options.tcp_keepalive: seconds idle before probing, seconds between probes, probes. */
  readonly tcpKeepalive?: TcpKeepalive;
  /**
   * Istio's upstream `istio.metadata_exchange` filter (cluster `filters`):
   * when a TCP connection's TLS agrees on this protocol, this proxy and the
   * upstream sidecar exchange their workload metadata first.
   */
  readonly peerExchange?: { readonly protocol: string };
  /**
   * upstream_bind_config.source_address: connections to this cluster's hosts
   * are made from this local address (Istio's inbound clusters bind
   * 127.0.0.6, which the capture rules never redirect), and from
   * extra_source_addresses' entry of the other IP family for hosts of it.
   */
  readonly sourceAddresses?: { readonly ipv4?: string; readonly ipv6?: string };
  /** TLS origination for every host (transport_socket), unless a transport socket match picks another. */
  readonly tls?: TlsContextSpec;
  /** Istio's auto-mTLS: hosts whose metadata matches get that transport (TLS or plain), first match wins. */
  readonly transportMatches: readonly {
    name: string;
    match: Readonly<Record<string, string>>;
    tls?: TlsContextSpec;
  }[];
  /** upstream_proxy_protocol around the transport: each connection starts with a PROXY header of this version. */
  readonly proxyProtocol?: 1 | 2;
  readonly json: ClusterJson;
}

/** Envoy's circuit-breaker thresholds (priority DEFAULT). */
export interface CircuitBreakerLimits {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
  /** retry_budget: retries in flight capped at percent of the active and pending requests (at least the minimum); replaces maxRetries. */
  readonly retryBudget?: { readonly percent: number; readonly minRetryConcurrency: number };
}

export interface OutlierConfig {
  readonly consecutive5xx: number;
  readonly enforcing5xx: number;
  readonly consecutiveGateway: number;
  readonly enforcingGateway: number;
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  /**
   * split_external_local_origin_errors: connect failures, resets and timeouts
   * count apart from the host's answers, toward consecutiveLocalOrigin.
   */
  readonly splitLocalOrigin: boolean;
  readonly consecutiveLocalOrigin: number;
  readonly enforcingLocalOrigin: number;
}

/** Envoy's defaults where a cluster sets no thresholds. */
const DEFAULT_LIMITS: CircuitBreakerLimits = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};

const LB: Partial<Record<string, LbKind>> = {
  ROUND_ROBIN: 'round_robin',
  LEAST_REQUEST: 'least_request',
  RANDOM: 'random',
  RING_HASH: 'ring_hash',
  MAGLEV: 'maglev',
};

function compileLimits(c: ClusterJson, where: string): CircuitBreakerLimits {
  const all = c.circuit_breakers?.thresholds ?? [];
  const t = all.find((x) => (x.priority ?? 'DEFAULT') === 'DEFAULT');
  if (!t) return DEFAULT_LIMITS;
  const at = `${where}.circuit_breakers.thresholds[${all.indexOf(t)}]`;
  const limits = {
    maxConnections: t.max_connections ?? DEFAULT_LIMITS.maxConnections,
    maxPendingRequests: t.max_pending_requests ?? DEFAULT_LIMITS.maxPendingRequests,
    maxRequests: t.max_requests ?? DEFAULT_LIMITS.maxRequests,
    maxRetries: t.max_retries ?? DEFAULT_LIMITS.maxRetries,
  };
  for (const [k, v] of Object.entries(limits))
    if (!(v >= 0)) fail(`${where}.circuit_breakers`, `${k} must not be negative`);
  const budget = t.retry_budget;
  if (!budget) return limits;
  // Envoy's defaults: 20% of the outstanding requests, and at least 3 retries.
  const percent = budget.budget_percent?.value ?? 20;
  if (!(percent >= 0 && percent <= 100))
    fail(`${at}.retry_budget.budget_percent`, `must be between 0 and 100, got ${percent}`);
  const min = budget.min_retry_concurrency ?? 3;
  if (!(Number.isInteger(min) && min >= 0))
    fail(`${at}.retry_budget.min_retry_concurrency`, `must be a whole number, got ${min}`);
  return { ...limits, retryBudget: { percent, minRetryConcurrency: min } };
}

function compileOutlier(c: ClusterJson, where: string): OutlierConfig | undefined {
  const o = c.outlier_detection;
  if (!o) return undefined;
  // Unset, Envoy enforces success-rate ejection at 100%; the proxy has none, so it must be turned off (Istio does).
  for (const [field, applies] of [
    ['enforcing_success_rate', true],
    ['enforcing_local_origin_success_rate', o.split_external_local_origin_errors === true],
  ] as const) {
    if (applies && o[field] === undefined)
      fail(
        where,
        `outlier_detection.${field} is unset, which Envoy enforces at 100%: success-rate ejection is not supported; set it to 0`,
      );
  }
  const ms = (v: string | undefined, fallback: number, field: string) => {
    const n = v === undefined ? fallback : durationToMs(v)!;
    if (!(n > 0)) fail(`${where}.outlier_detection.${field}`, 'must be greater than zero');
    return n;
  };
  const baseEjectionMs = ms(o.base_ejection_time, 30_000, 'base_ejection_time');
  // Envoy's defaults: 5 consecutive 5xx enforced at 100%, gateway failures counted but not enforced.
  return {
    consecutive5xx: o.consecutive_5xx ?? 5,
    enforcing5xx: o.enforcing_consecutive_5xx ?? 100,
    consecutiveGateway: o.consecutive_gateway_failure ?? 5,
    enforcingGateway: o.enforcing_consecutive_gateway_failure ?? 0,
    intervalMs: ms(o.interval, 10_000, 'interval'),
    baseEjectionMs,
    maxEjectionMs: Math.max(baseEjectionMs, ms(o.max_ejection_time, 300_000, 'max_ejection_time')),
    maxEjectionPercent: o.max_ejection_percent ?? 10,
    splitLocalOrigin: o.split_external_local_origin_errors === true,
    consecutiveLocalOrigin: o.consecutive_local_origin_failure ?? 5,
    enforcingLocalOrigin: o.enforcing_consecutive_local_origin_failure ?? 100,
  };
}

type Http2OptionsJson = { max_concurrent_streams?: number } & Record<string, unknown>;

interface HttpProtocolOptionsJson {
  common_http_protocol_options?: {
    idle_timeout?: string;
    max_requests_per_connection?: number;
    max_connection_duration?: string;
  } & Record<string, unknown>;
  explicit_http_config?: { http_protocol_options?: unknown; http2_protocol_options?: Http2OptionsJson };
  use_downstream_protocol_config?: {
    http_protocol_options?: unknown;
    http2_protocol_options?: Http2OptionsJson;
  };
  auto_config?: unknown;
}

/** max_concurrent_streams of an Http2ProtocolOptions, the one HTTP/2 option the proxy's upstream side honours. */
function compileHttp2Options(o: Http2OptionsJson | undefined, at: string): number | undefined {
  if (!o) return undefined;
  const n = o.max_concurrent_streams;
  if (n === undefined || n === 0) return undefined;
  if (!(Number.isInteger(n) && n >= 1 && n <= 2_147_483_647))
    fail(`${at}.max_concurrent_streams`, `must be a whole number from 1 to 2147483647, got ${n}`);
  return n;
}

function positiveMs(value: string | undefined, at: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = durationToMs(value);
  if (ms === undefined || ms < 0) fail(at, `"${value}" is not a duration`);
  return ms === 0 ? undefined : ms;
}

/**
 * HttpProtocolOptions (the upstream protocol and connection limits) and
 * Mizzen's sidecar upgrade marker. Settings the proxy does not implement are
 * refused by name (the CLUSTER declaration) rather than ignored.
 */
function compileHttpOptions(c: ClusterJson, where: string): ClusterConfig['http'] {
  const options = c.typed_extension_protocol_options ?? {};
  const entry = Object.entries(options).find(([, o]) => o['@type'] === HTTP_PROTOCOL_OPTIONS_TYPE);
  const at = `${where}.typed_extension_protocol_options[${entry?.[0] ?? ''}]`;
  const http = entry?.[1] as HttpProtocolOptionsJson | undefined;
  const upgrade = compileSidecarUpgrade(c, where);
  // The older cluster-level field still means "HTTP/2 upstream".
  const legacy = (c as { http2_protocol_options?: Http2OptionsJson }).http2_protocol_options;
  if (!http) {
    return {
      protocol: legacy ? 'http2' : 'http1',
      maxConcurrentStreams: legacy ? compileHttp2Options(legacy, `${where}.http2_protocol_options`) : upgrade,
      upgradeSidecarsToHttp2: !legacy && hasSidecarUpgrade(c),
    };
  }
  if (http.auto_config !== undefined)
    fail(`${at}.auto_config`, 'protocol selection by ALPN is not supported; use explicit_http_config');
  const common = http.common_http_protocol_options ?? {};
  const explicit = http.explicit_http_config;
  const downstream = http.use_downstream_protocol_config;
  const protocol =
    explicit?.http2_protocol_options !== undefined || legacy
      ? 'http2'
      : downstream !== undefined
        ? 'downstream'
        : 'http1';
  const h2 =
    protocol === 'http2'
      ? compileHttp2Options(
          explicit?.http2_protocol_options ?? legacy,
          explicit?.http2_protocol_options
            ? `${at}.explicit_http_config.http2_protocol_options`
            : `${where}.http2_protocol_options`,
        )
      : protocol === 'downstream'
        ? compileHttp2Options(
            downstream?.http2_protocol_options,
            `${at}.use_downstream_protocol_config.http2_protocol_options`,
          )
        : upgrade;
  const max = common.max_requests_per_connection;
  if (max !== undefined && !(Number.isInteger(max) && max >= 0))
    fail(
      `${at}.common_http_protocol_options.max_requests_per_connection`,
      `must be a whole number, got ${max}`,
    );
  return {
    idleTimeoutMs: positiveMs(common.idle_timeout, `${at}.common_http_protocol_options.idle_timeout`),
    maxRequestsPerConnection: max || undefined,
    maxConnectionDurationMs: positiveMs(
      common.max_connection_duration,
      `${at}.common_http_protocol_options.max_connection_duration`,
    ),
    maxConcurrentStreams: h2,
    protocol,
    // Upgrading only makes sense where the cluster would speak HTTP/1.1.
    upgradeSidecarsToHttp2: protocol === 'http1' && hasSidecarUpgrade(c),
  };
}

function sidecarUpgradeOf(c: ClusterJson): Record<string, unknown> | undefined {
  const fm = (c.metadata as { filter_metadata?: Record<string, Record<string, unknown>> } | undefined)
    ?.filter_metadata;
  return fm?.[SIDECAR_H2_UPGRADE_KEY];
}

function hasSidecarUpgrade(c: ClusterJson): boolean {
  return sidecarUpgradeOf(c) !== undefined;
}

/** The sidecar upgrade marker's HTTP/2 options (max_concurrent_streams), validated like the cluster's own. */
function compileSidecarUpgrade(c: ClusterJson, where: string): number | undefined {
  const marker = sidecarUpgradeOf(c);
  if (!marker) return undefined;
  const at = `${where}.metadata.filter_metadata[${SIDECAR_H2_UPGRADE_KEY}]`;
  refuseUnknownFields(
    marker,
    SIDECAR_UPGRADE_MARKER,
    where,
    `metadata.filter_metadata[${SIDECAR_H2_UPGRADE_KEY}]`,
  );
  return compileHttp2Options(
    marker.http2_protocol_options as Http2OptionsJson | undefined,
    `${at}.http2_protocol_options`,
  );
}

/** Envoy's default connect timeout. */
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

function filterMetadata(metadata: unknown, namespace: string): Record<string, unknown> | undefined {
  return (metadata as { filter_metadata?: Record<string, Record<string, unknown>> } | undefined)
    ?.filter_metadata?.[namespace];
}

function transportMatchOf(metadata: unknown): Record<string, string> {
  const m = filterMetadata(metadata, 'envoy.transport_socket_match') ?? {};
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)]));
}

interface GroupPlacement {
  locality: string;
  priority: number;
  localityWeight: number;
  overprovisioningFactor: number;
}

function endpointSpec(e: LbEndpointJson, group: GroupPlacement, where: string): EndpointSpec {
  const address = e.endpoint?.address;
  const pipe = address?.pipe;
  const sa = address?.socket_address;
  if (pipe && !pipe.path) fail(`${where}.endpoint.address.pipe.path`, 'a pipe address needs a path');
  if (!pipe && !sa?.address) fail(where, 'endpoint has no socket address');
  const port = pipe ? 0 : (sa!.port_value ?? 0);
  if (!pipe && !(port > 0 && port < 65536)) fail(where, `endpoint ${sa!.address} has invalid port ${port}`);
  const status = e.health_status ?? 'UNKNOWN';
  const identity = endpointIdentity(filterMetadata(e.metadata, 'istio'));
  return {
    address: pipe ? pipe.path! : sa!.address!,
    port,
    ...(pipe ? { pipe: true } : {}),
    weight: e.load_balancing_weight ?? 1,
    // Envoy routes to UNKNOWN and HEALTHY (and DEGRADED as a last resort); never to UNHEALTHY, DRAINING or TIMEOUT.
    healthy: status === 'UNKNOWN' || status === 'HEALTHY' || status === 'DEGRADED',
    sidecar: transportMatchOf(e.metadata).tlsMode === 'istio',
    transportMatch: transportMatchOf(e.metadata),
    ...group,
    ...(identity ? { identity } : {}),
  };
}

/**
 * The endpoints of a ClusterLoadAssignment, each with its locality group's
 * locality, priority and weight. As Envoy requires, priorities run from 0
 * without gaps.
 */
export function compileLoadAssignment(cla: ClusterLoadAssignmentJson, where: string): EndpointSpec[] {
  const out: EndpointSpec[] = [];
  const policy = (cla as { policy?: { overprovisioning_factor?: number } }).policy;
  const overprovisioningFactor = policy?.overprovisioning_factor ?? DEFAULT_OVERPROVISIONING_FACTOR;
  if (!(overprovisioningFactor > 0))
    fail(`${where}.policy.overprovisioning_factor`, 'must be greater than zero');
  const priorities = new Set<number>();
  (cla.endpoints ?? []).forEach((group, g) => {
    const l = group.locality;
    const locality =
      l && (l.region || l.zone || l.sub_zone) ? `${l.region ?? ''}/${l.zone ?? ''}/${l.sub_zone ?? ''}` : '';
    const priority = group.priority ?? 0;
    priorities.add(priority);
    const placement = {
      locality,
      priority,
      localityWeight: group.load_balancing_weight ?? 0,
      overprovisioningFactor,
    };
    (group.lb_endpoints ?? []).forEach((e, i) => {
      out.push(endpointSpec(e, placement, `${where}.endpoints[${g}].lb_endpoints[${i}]`));
    });
  });
  for (const p of priorities) {
    if (p > 0 && !priorities.has(p - 1))
      fail(
        `${where}.endpoints`,
        `priority ${p} is used but priority ${p - 1} is not (priorities must be contiguous)`,
      );
  }
  refuseUnknownFields(cla, CLUSTER_LOAD_ASSIGNMENT, where);
  return out;
}

type SlowStartJson = {
  slow_start_window?: string;
  aggression?: { default_value?: number; runtime_key?: string };
  min_weight_percent?: { value?: number };
};

/** The slow start config of a ROUND_ROBIN or LEAST_REQUEST cluster (Envoy ignores it for other policies). */
function compileSlowStart(c: ClusterJson, where: string): SlowStartConfig | undefined {
  const configs = c as {
    round_robin_lb_config?: { slow_start_config?: SlowStartJson };
    least_request_lb_config?: { slow_start_config?: SlowStartJson };
  };
  const lbPolicy = c.lb_policy ?? 'ROUND_ROBIN';
  const [field, json] =
    lbPolicy === 'ROUND_ROBIN'
      ? ['round_robin_lb_config', configs.round_robin_lb_config?.slow_start_config]
      : lbPolicy === 'LEAST_REQUEST'
        ? ['least_request_lb_config', configs.least_request_lb_config?.slow_start_config]
        : [undefined, undefined];
  if (!json?.slow_start_window) return undefined;
  const at = `${where}.${field}.slow_start_config`;
  const windowMs = durationToMs(json.slow_start_window) ?? 0;
  if (!(windowMs > 0)) return undefined;
  const aggression = json.aggression?.default_value ?? 1;
  if (!(aggression > 0)) fail(`${at}.aggression`, 'must be greater than zero');
  const minWeightPercent = json.min_weight_percent?.value ?? 10;
  if (!(minWeightPercent >= 0 && minWeightPercent <= 100))
    fail(`${at}.min_weight_percent`, 'must be between 0 and 100');
  return { windowMs, aggression, minWeightPercent };
}

/** The kernel's bounds (Linux): TCP_KEEPIDLE and TCP_KEEPINTVL up to 32767 s, TCP_KEEPCNT up to 127. */
const KEEPALIVE_LIMITS = { time: 32_767, interval: 32_767, probes: 127 } as const;

/**
 * upstream_connection_options.tcp_keepalive, as Envoy applies it: keepalive
 * on, and each of idle time, probe interval and probe count set when given
 * (the kernel's defaults otherwise). Needs the native addon for the interval
 * and count; a proxy without it refuses the cluster instead of ignoring them.
 */
function compileKeepalive(c: ClusterJson, where: string): TcpKeepalive | undefined {
  const ka = c.upstream_connection_options?.tcp_keepalive;
  if (!ka) return undefined;
  const at = `${where}.upstream_connection_options.tcp_keepalive`;
  const out: { time?: number; interval?: number; probes?: number } = {};
  const fields = [
    ['time', 'keepalive_time', ka.keepalive_time],
    ['interval', 'keepalive_interval', ka.keepalive_interval],
    ['probes', 'keepalive_probes', ka.keepalive_probes],
  ] as const;
  for (const [key, field, value] of fields) {
    // 0 is protobuf's "unset" for these UInt32Values once they went through JSON.
    if (value === undefined || value === 0) continue;
    const max = KEEPALIVE_LIMITS[key];
    if (!Number.isInteger(value) || value < 1 || value > max)
      fail(`${at}.${field}`, `must be a whole number from 1 to ${max}, got ${value}`);
    out[key] = value;
  }
  if (!nativeSocketOptionsAvailable())
    fail(at, 'TCP keepalive options need the @mizzen/original-dst native addon, which did not load');
  return out;
}

const PROXY_PROTOCOL_UPSTREAM_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport';

type TransportSocketJson = { name?: string; typed_config?: Record<string, unknown> & { '@type'?: string } };

/**
 * A transport socket with Envoy's upstream_proxy_protocol taken off: the
 * PROXY version it asks for, and the socket it wraps (raw or TLS).
 */
function unwrapProxyProtocol(
  ts: TransportSocketJson | undefined,
  at: string,
): { inner: TransportSocketJson | undefined; version?: 1 | 2 } {
  const typed = ts?.typed_config;
  if (typed?.['@type'] !== PROXY_PROTOCOL_UPSTREAM_TYPE) return { inner: ts };
  refuseUnknownFields(ts, PROXY_PROTOCOL_SOCKET, at);
  const config = (typed.config ?? {}) as { version?: string };
  const version = config.version ?? 'V1';
  if (version !== 'V1' && version !== 'V2')
    fail(`${at}.typed_config.config.version`, `must be V1 or V2, got ${String(version)}`);
  return {
    inner: typed.transport_socket as TransportSocketJson | undefined,
    version: version === 'V2' ? 2 : 1,
  };
}

/**
 * The cluster's transport socket and transport socket matches (TLS or
 * plain per host), and the PROXY protocol version wrapped around them —
 * the same for every transport, as Istio wraps them, or the cluster is refused.
 */
function compileTransports(
  c: ClusterJson,
  where: string,
): Pick<ClusterConfig, 'tls' | 'transportMatches' | 'proxyProtocol'> {
  const versions = new Set<1 | 2 | undefined>();
  const main = unwrapProxyProtocol(c.transport_socket as TransportSocketJson, `${where}.transport_socket`);
  if (c.transport_socket) versions.add(main.version);
  const transportMatches = (c.transport_socket_matches ?? []).map((m, i) => {
    const at = `${where}.transport_socket_matches[${i}]`;
    const unwrapped = unwrapProxyProtocol(
      m.transport_socket as TransportSocketJson,
      `${at}.transport_socket`,
    );
    versions.add(unwrapped.version);
    return {
      name: m.name ?? `match-${i}`,
      match: Object.fromEntries(Object.entries(m.match ?? {}).map(([k, v]) => [k, String(v)])),
      tls: compileTransportSocket(unwrapped.inner as never, 'upstream', at),
    };
  });
  if (versions.size > 1)
    fail(where, 'upstream_proxy_protocol must wrap every transport socket of the cluster alike');
  const version = [...versions][0];
  return {
    tls: compileTransportSocket(main.inner as never, 'upstream', `${where}.transport_socket`),
    transportMatches,
    ...(version ? { proxyProtocol: version } : {}),
  };
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let f = 2; f * f <= n; f++) if (n % f === 0) return false;
  return true;
}

/** Envoy's bounds for Maglev's table (a prime below 5000011) and the ring hash's size. */
function compileHashLb(
  c: ClusterJson,
  lb: LbKind,
  where: string,
): Pick<ClusterConfig, 'hashTableSize' | 'maximumRingSize'> {
  if (lb === 'maglev') {
    const size = c.maglev_lb_config?.table_size || 65537;
    if (!(Number.isInteger(size) && isPrime(size) && size < 5_000_011))
      fail(`${where}.maglev_lb_config.table_size`, `must be a prime number below 5000011, got ${size}`);
    return { hashTableSize: size, maximumRingSize: MAX_RING_SIZE };
  }
  const ring = c.ring_hash_lb_config;
  const min = ring?.minimum_ring_size || 1024;
  const max = ring?.maximum_ring_size || MAX_RING_SIZE;
  if (max > MAX_RING_SIZE)
    fail(`${where}.ring_hash_lb_config.maximum_ring_size`, `must be at most ${MAX_RING_SIZE}, got ${max}`);
  if (min > max)
    fail(
      `${where}.ring_hash_lb_config.minimum_ring_size`,
      `must not exceed maximum_ring_size ${max}, got ${min}`,
    );
  return { hashTableSize: min, maximumRingSize: max };
}

/** upstream_bind_config: the source address per IP family (a port other than 0 is not supported). */
function compileBindConfig(c: ClusterJson, where: string): ClusterConfig['sourceAddresses'] {
  const bind = c.upstream_bind_config;
  if (!bind) return undefined;
  const out: { ipv4?: string; ipv6?: string } = {};
  const add = (a: { address?: string; port_value?: number } | undefined, at: string) => {
    if (!a?.address) fail(at, 'source address has no address');
    if (a.port_value) fail(`${at}.port_value`, 'a fixed source port is not supported; use 0');
    const family = net.isIPv4(a.address) ? 'ipv4' : net.isIPv6(a.address) ? 'ipv6' : undefined;
    if (!family) fail(`${at}.address`, `"${a.address}" is not an IP address`);
    if (out[family]) fail(at, `a second ${family === 'ipv4' ? 'IPv4' : 'IPv6'} source address`);
    out[family] = a.address;
  };
  add(bind.source_address, `${where}.upstream_bind_config.source_address`);
  for (const [i, e] of (bind.extra_source_addresses ?? []).entries())
    add(e.address, `${where}.upstream_bind_config.extra_source_addresses[${i}].address`);
  return out;
}

/**
 * A Cluster as the proxy runs it. Every field is either honoured or refused
 * (fields/cluster.ts): the check runs after the compilers, whose own reasons
 * come first for the fields they refuse.
 */
export function compileCluster(c: ClusterJson): ClusterConfig {
  const where = `cluster ${c.name}`;
  if (!c.name) fail('cluster', 'has no name');
  const type = c.type ?? 'STATIC';
  const lbPolicy = c.lb_policy ?? 'ROUND_ROBIN';
  if (type === 'ORIGINAL_DST') {
    if (lbPolicy !== 'CLUSTER_PROVIDED')
      fail(`${where}.lb_policy`, 'ORIGINAL_DST clusters need lb_policy CLUSTER_PROVIDED');
  } else if (!LB[lbPolicy]) {
    fail(`${where}.lb_policy`, `load balancing policy ${lbPolicy} is not supported`);
  }
  let endpoints: EndpointSpec[] | undefined;
  if (type === 'STATIC' || type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
    endpoints = c.load_assignment ? compileLoadAssignment(c.load_assignment, `${where}.load_assignment`) : [];
  } else if (type !== 'EDS' && type !== 'ORIGINAL_DST') {
    fail(`${where}.type`, `cluster discovery type ${type} is not supported`);
  }
  const timeout =
    c.connect_timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : durationToMs(c.connect_timeout)!;
  const lb = LB[lbPolicy] ?? 'round_robin';
  const config: ClusterConfig = {
    name: c.name,
    type,
    edsServiceName: type === 'EDS' ? c.eds_cluster_config?.service_name || c.name : undefined,
    connectTimeoutMs: timeout > 0 ? timeout : DEFAULT_CONNECT_TIMEOUT_MS,
    lb,
    endpoints,
    limits: compileLimits(c, where),
    outlier: compileOutlier(c, where),
    panicThresholdPercent: c.common_lb_config?.healthy_panic_threshold?.value ?? 50,
    ...compileHashLb(c, lb, where),
    localityWeighted:
      (c.common_lb_config as { locality_weighted_lb_config?: unknown } | undefined)
        ?.locality_weighted_lb_config !== undefined,
    slowStart: compileSlowStart(c, where),
    http: compileHttpOptions(c, where),
    tcpKeepalive: compileKeepalive(c, where),
    ...compileUpstreamFilters(c, where),
    sourceAddresses: compileBindConfig(c, where),
    ...compileTransports(c, where),
    json: c,
  };
  refuseUnknownFields(c, CLUSTER, where);
  return config;
}

/** The cluster's upstream network filters: Istio's `istio.metadata_exchange` is the one this proxy runs. */
function compileUpstreamFilters(c: ClusterJson, where: string): { peerExchange?: { protocol: string } } {
  const filters = (c as { filters?: unknown }).filters;
  if (filters === undefined) return {};
  if (!Array.isArray(filters)) fail(`${where}.filters`, 'must be a list of network filters');
  let exchange: { protocol: string } | undefined;
  filters.forEach((f: unknown, i: number) => {
    const at = `${where}.filters[${i}]`;
    const filter = (f ?? {}) as { name?: unknown; typed_config?: Record<string, unknown> };
    for (const key of Object.keys(filter))
      if (key !== 'name' && key !== 'typed_config') fail(`${at}.${key}`, 'is not supported');
    if (!isMetadataExchangeFilter(filter.typed_config))
      fail(
        at,
        `upstream network filter ${String(filter.name ?? filter.typed_config?.['@type'] ?? '(unnamed)')} is not supported (only istio.metadata_exchange)`,
      );
    if (exchange) fail(at, 'a second istio.metadata_exchange filter; a cluster takes one');
    exchange = compileMetadataExchange(filter.typed_config!, `${at}.typed_config`);
  });
  return exchange ? { peerExchange: exchange } : {};
}
