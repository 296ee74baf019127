import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  ConsistentHashLB,
  DestinationRuleSpec,
  LoadBalancerSettings,
  LocalityLoadBalancerSetting,
  OutlierDetection,
  ProxyProtocol,
  RetryBudget,
  TCPKeepalive,
  TrafficPolicy,
  TunnelSettings,
  WarmupConfiguration,
} from '@mizzen/api';
import { parseDuration } from '@mizzen/api';
import { SIDECAR_H2_UPGRADE_KEY } from '@mizzen/xds';
import type { Protocol } from '../model/protocol.js';
import { envoyDuration } from './durations.js';
import { type Json, RAW_BUFFER } from './envoy.js';
import { applyLocalityLbToCluster } from './locality-lb.js';

/** The parts of a TrafficPolicy that apply to one cluster. */
export interface EffectivePolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
  /** Not port-level settings in Istio: the rule's, or its subset's. */
  tunnel?: TunnelSettings;
  proxyProtocol?: ProxyProtocol;
  retryBudget?: RetryBudget;
}

/**
 * Istio's precedence: a subset's policy replaces the rule's field by field,
 * then the port-level settings for the cluster's port replace those fields
 * again.
 */
export function effectivePolicy(
  rule: DestinationRuleSpec | undefined,
  subsetName: string | undefined,
  port: number,
): EffectivePolicy {
  const base = rule?.trafficPolicy;
  const subset = subsetName ? rule?.subsets?.find((s) => s.name === subsetName)?.trafficPolicy : undefined;
  const merged: TrafficPolicy = { ...base, ...definedFields(subset) };
  const portLevel = merged.portLevelSettings?.find((p) => p.port?.number === port);
  return {
    loadBalancer: portLevel?.loadBalancer ?? merged.loadBalancer,
    connectionPool: portLevel?.connectionPool ?? merged.connectionPool,
    outlierDetection: portLevel?.outlierDetection ?? merged.outlierDetection,
    tls: portLevel?.tls ?? merged.tls,
    tunnel: merged.tunnel,
    proxyProtocol: merged.proxyProtocol,
    retryBudget: merged.retryBudget,
  };
}

function definedFields<T extends object>(o: T | undefined): Partial<T> {
  if (!o) return {};
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const SIMPLE_LB: Record<string, string> = {
  ROUND_ROBIN: 'ROUND_ROBIN',
  LEAST_REQUEST: 'LEAST_REQUEST',
  LEAST_CONN: 'LEAST_REQUEST',
  RANDOM: 'RANDOM',
};

/** Istio leaves every circuit breaker open unless a DestinationRule closes it. */
const UNLIMITED = 4_294_967_295;

const HTTP_OPTIONS_TYPE = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** What a cluster's policy depends on besides the DestinationRule. */
export interface ClusterContext {
  /** The service port's protocol: HTTP/2 for gRPC and HTTP2 ports, the downstream's for sniffed ones. */
  readonly portProtocol: Protocol;
  /**
   * MeshConfig h2UpgradePolicy. Unset is Mizzen's default: HTTP ports speak
   * HTTP/2 to hosts that run a sidecar (and HTTP/1.1 to others); UPGRADE
   * upgrades the whole cluster as Istio does; DO_NOT_UPGRADE never upgrades.
   */
  readonly meshH2Upgrade?: 'UPGRADE' | 'DO_NOT_UPGRADE';
  readonly meshLocalityLb?: LocalityLoadBalancerSetting;
  /** MeshConfig tcpKeepalive, under the rule's own. */
  readonly meshTcpKeepalive?: TCPKeepalive;
  /** Inbound clusters (to the workload's own app) speak the port's protocol: no upgrade, as in Istio. */
  readonly inbound?: boolean;
  /** For a proxyless gRPC client, which has no original destination: PASSTHROUGH balances round robin instead. */
  readonly proxyless?: boolean;
}

/** Applies load balancing, connection pool and outlier detection to an outbound cluster, as Istio's cluster builder does. */
export function applyPolicyToCluster(cluster: Json, policy: EffectivePolicy, ctx: ClusterContext): void {
  applyLoadBalancer(cluster, policy.loadBalancer, ctx.proxyless === true);
  applyUpstreamProtocol(cluster, ctx, policy.connectionPool?.http);
  applyConnectionPool(cluster, policy.connectionPool, policy.retryBudget);
  applyTcpKeepalive(cluster, ctx.meshTcpKeepalive, policy.connectionPool?.tcp?.tcpKeepalive);
  applyOutlierDetection(cluster, policy.outlierDetection);
  applyLocalityLbToCluster(cluster, policy, ctx.meshLocalityLb);
}

/** gRPC and HTTP/2 ports are spoken over HTTP/2 upstream; ports of unknown protocol follow the downstream. */
export function portUpstreamProtocol(p: Protocol): 'http1' | 'http2' | 'downstream' {
  if (p === 'GRPC' || p === 'HTTP2' || p === 'GRPC-WEB') return 'http2';
  return p === 'UNKNOWN' ? 'downstream' : 'http1';
}

/**
 * The protocol a cluster speaks upstream, as Istio's shouldH2Upgrade decides
 * it: the port's protocol, then a DestinationRule h2UpgradePolicy (UPGRADE:
 * HTTP/2 whatever the port, DO_NOT_UPGRADE: never), else the mesh's policy
 * for HTTP ports; useClientProtocol follows the downstream over all of it.
 * Mizzen's default (mesh policy unset) marks HTTP clusters so that hosts
 * with a sidecar get HTTP/2 and plain hosts HTTP/1.1.
 */
function applyUpstreamProtocol(
  cluster: Json,
  ctx: ClusterContext,
  http: ConnectionPoolSettings['http'] | undefined,
): void {
  const p = ctx.portProtocol;
  let protocol = portUpstreamProtocol(p);
  let sidecarUpgrade = false;
  const override = ctx.inbound ? 'DO_NOT_UPGRADE' : (http?.h2UpgradePolicy ?? 'DEFAULT');
  if (override === 'UPGRADE') protocol = 'http2';
  else if (override === 'DEFAULT' && p === 'HTTP') {
    if (ctx.meshH2Upgrade === 'UPGRADE') protocol = 'http2';
    else if (ctx.meshH2Upgrade === undefined) sidecarUpgrade = true;
  }
  if (http?.useClientProtocol) {
    protocol = 'downstream';
    sidecarUpgrade = false;
  }
  if (protocol !== 'http1') setUpstreamProtocol(cluster, protocol);
  if (sidecarUpgrade) {
    const metadata = (cluster.metadata ?? {}) as Json;
    metadata.filter_metadata = {
      ...(metadata.filter_metadata as Json | undefined),
      [SIDECAR_H2_UPGRADE_KEY]: { http2_protocol_options: {} },
    };
    cluster.metadata = metadata;
  }
}

function applyLoadBalancer(cluster: Json, lb: LoadBalancerSettings | undefined, proxyless: boolean): void {
  if (!lb) return;
  if (lb.simple === 'PASSTHROUGH' && !proxyless) {
    // Send straight to the address the caller used, with no balancing.
    cluster.type = 'ORIGINAL_DST';
    cluster.lb_policy = 'CLUSTER_PROVIDED';
    delete cluster.eds_cluster_config;
    delete cluster.load_assignment;
    return;
  }
  if (lb.simple && SIMPLE_LB[lb.simple]) cluster.lb_policy = SIMPLE_LB[lb.simple];
  const ch = lb.consistentHash;
  if (ch) {
    if (ch.maglev) {
      cluster.lb_policy = 'MAGLEV';
      if (ch.maglev.tableSize) cluster.maglev_lb_config = { table_size: ch.maglev.tableSize };
    } else {
      cluster.lb_policy = 'RING_HASH';
      const size = ch.ringHash?.minimumRingSize ?? ch.minimumRingSize;
      if (size) cluster.ring_hash_lb_config = { minimum_ring_size: size };
    }
  }
  // Slow start exists for ROUND_ROBIN and LEAST_REQUEST only (Istio sets it on those and nowhere else).
  const slowStart = lb.warmup
    ? warmupConfig(lb.warmup)
    : lb.warmupDurationSecs
      ? { slow_start_window: envoyDuration(lb.warmupDurationSecs) }
      : undefined;
  if (slowStart && cluster.lb_policy === 'ROUND_ROBIN')
    cluster.round_robin_lb_config = { slow_start_config: slowStart };
  if (slowStart && cluster.lb_policy === 'LEAST_REQUEST')
    cluster.least_request_lb_config = { slow_start_config: slowStart };
}

/**
 * `warmup` as Envoy's slow_start_config, with Istio's defaults (linear ramp,
 * 10% minimum) and its runtime key that no runtime defines.
 */
function warmupConfig(w: WarmupConfiguration): Json {
  return {
    slow_start_window: envoyDuration(w.duration),
    aggression: { default_value: w.aggression ?? 1, runtime_key: '(' },
    min_weight_percent: { value: w.minimumPercent ?? 10 },
  };
}

/** A limit as Istio reads it: 0 is protobuf's "unset", so it leaves the limit open. */
const limit = (n: number | undefined) => (n && n > 0 ? n : UNLIMITED);

function applyConnectionPool(
  cluster: Json,
  pool: ConnectionPoolSettings | undefined,
  retryBudget?: RetryBudget,
): void {
  const thresholds: Json = {
    max_connections: limit(pool?.tcp?.maxConnections),
    max_pending_requests: limit(pool?.http?.http1MaxPendingRequests),
    max_requests: limit(pool?.http?.http2MaxRequests),
    max_retries: limit(pool?.http?.maxRetries),
    track_remaining: true,
  };
  if (retryBudget) {
    // Envoy's defaults, as Istio fills them: 20% of the outstanding requests, at least 3 retries.
    thresholds.retry_budget = {
      budget_percent: { value: retryBudget.percent ?? 20 },
      min_retry_concurrency: retryBudget.minRetryConcurrency ?? 3,
    };
  }
  cluster.circuit_breakers = { thresholds: [thresholds] };
  if (!pool) return;
  if (pool.tcp?.connectTimeout) cluster.connect_timeout = envoyDuration(pool.tcp.connectTimeout);
  const common: Json = {};
  // As Istio: the HTTP idle timeout, else the TCP one, closes idle upstream connections.
  const idle = pool.http?.idleTimeout ?? pool.tcp?.idleTimeout;
  if (idle) common.idle_timeout = envoyDuration(idle);
  if (pool.http?.maxRequestsPerConnection)
    common.max_requests_per_connection = pool.http.maxRequestsPerConnection;
  if (pool.tcp?.maxConnectionDuration)
    common.max_connection_duration = envoyDuration(pool.tcp.maxConnectionDuration);
  if (Object.keys(common).length) httpProtocolOptions(cluster).common_http_protocol_options = common;
  const streams = pool.http?.maxConcurrentStreams;
  if (streams) for (const h2 of http2Options(cluster)) h2.max_concurrent_streams = streams;
}

/**
 * upstream_connection_options.tcp_keepalive as Istio's applyTCPKeepalive
 * builds it: MeshConfig `tcpKeepalive` first, then each field the
 * DestinationRule's (or Sidecar's) own sets replaces the mesh's; nothing when
 * neither is set. Times are whole seconds, as the socket options take them.
 */
export function applyTcpKeepalive(
  cluster: Json,
  mesh: TCPKeepalive | undefined,
  own: TCPKeepalive | undefined,
): void {
  if (!mesh && !own) return;
  const keepalive: Json = {};
  for (const ka of [mesh, own]) {
    if (ka?.probes) keepalive.keepalive_probes = ka.probes;
    if (ka?.time) keepalive.keepalive_time = Math.floor(parseDuration(ka.time) / 1000);
    if (ka?.interval) keepalive.keepalive_interval = Math.floor(parseDuration(ka.interval) / 1000);
  }
  cluster.upstream_connection_options = { tcp_keepalive: keepalive };
}

/**
 * Every HTTP/2 option block of a cluster: the explicit or downstream-following
 * protocol's, and the sidecar upgrade's (maxConcurrentStreams applies to each).
 */
function http2Options(cluster: Json): Json[] {
  const out: Json[] = [];
  const options = (cluster.typed_extension_protocol_options as Json | undefined)?.[
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions'
  ] as Json | undefined;
  for (const holder of [options?.explicit_http_config, options?.use_downstream_protocol_config]) {
    const h2 = (holder as Json | undefined)?.http2_protocol_options as Json | undefined;
    if (h2) out.push(h2);
  }
  const upgrade = ((cluster.metadata as Json | undefined)?.filter_metadata as Json | undefined)?.[
    SIDECAR_H2_UPGRADE_KEY
  ] as Json | undefined;
  if (upgrade) out.push(upgrade.http2_protocol_options as Json);
  return out;
}

/** The cluster's HttpProtocolOptions, created on first use (HTTP/1.1 unless something says otherwise). */
function httpProtocolOptions(cluster: Json): Json {
  cluster.typed_extension_protocol_options ??= {};
  const all = cluster.typed_extension_protocol_options as Json;
  const key = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
  all[key] ??= { '@type': HTTP_OPTIONS_TYPE, explicit_http_config: { http_protocol_options: {} } };
  return all[key] as Json;
}

/**
 * The protocol a cluster speaks upstream, from its service port's protocol
 * (Istio: gRPC and HTTP/2 ports get HTTP/2; ports of unknown protocol follow
 * whatever the downstream spoke).
 */
export function setUpstreamProtocol(cluster: Json, protocol: 'http1' | 'http2' | 'downstream'): void {
  const options = httpProtocolOptions(cluster);
  delete options.explicit_http_config;
  delete options.use_downstream_protocol_config;
  if (protocol === 'http2') options.explicit_http_config = { http2_protocol_options: {} };
  else if (protocol === 'downstream') {
    options.use_downstream_protocol_config = { http_protocol_options: {}, http2_protocol_options: {} };
  } else options.explicit_http_config = { http_protocol_options: {} };
}

function applyOutlierDetection(cluster: Json, od: OutlierDetection | undefined): void {
  if (!od) return;
  // Istio's translation: success-rate ejection off, each consecutive-error rule enforced at 100% when set.
  const out: Json = { enforcing_success_rate: 0 };
  // The deprecated consecutiveErrors means gateway errors only (istio/api#617).
  if (od.consecutiveErrors !== undefined && od.consecutiveErrors > 0) {
    out.consecutive_gateway_failure = od.consecutiveErrors;
    out.enforcing_consecutive_gateway_failure = 100;
    out.enforcing_consecutive_5xx = 0;
  }
  if (od.consecutive5xxErrors !== undefined) {
    out.consecutive_5xx = od.consecutive5xxErrors;
    out.enforcing_consecutive_5xx = od.consecutive5xxErrors > 0 ? 100 : 0;
  }
  if (od.consecutiveGatewayErrors !== undefined) {
    out.consecutive_gateway_failure = od.consecutiveGatewayErrors;
    out.enforcing_consecutive_gateway_failure = od.consecutiveGatewayErrors > 0 ? 100 : 0;
  }
  if (od.interval) out.interval = envoyDuration(od.interval);
  if (od.baseEjectionTime) out.base_ejection_time = envoyDuration(od.baseEjectionTime);
  if (od.maxEjectionPercent !== undefined && od.maxEjectionPercent > 0)
    out.max_ejection_percent = od.maxEjectionPercent;
  if (od.splitExternalLocalOriginErrors) {
    out.split_external_local_origin_errors = true;
    // As Istio: success-rate ejection of local-origin failures off too.
    out.enforcing_local_origin_success_rate = 0;
    if (od.consecutiveLocalOriginFailures !== undefined && od.consecutiveLocalOriginFailures > 0) {
      out.consecutive_local_origin_failure = od.consecutiveLocalOriginFailures;
      out.enforcing_consecutive_local_origin_failure = 100;
    }
  }
  cluster.outlier_detection = out;
  // minHealthPercent (default 0) becomes Envoy's panic threshold: by default, ejected hosts really get nothing.
  cluster.common_lb_config = { healthy_panic_threshold: { value: od.minHealthPercent ?? 0 } };
}

function proxyProtocolSocket(version: 'V1' | 'V2', inner: Json | undefined): Json {
  return {
    name: 'envoy.transport_sockets.upstream_proxy_protocol',
    typed_config: {
      '@type':
        'type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport',
      config: { version },
      transport_socket: inner ?? RAW_BUFFER,
    },
  };
}

/**
 * DestinationRule `proxyProtocol`, as Istio's cluster builder applies it:
 * every transport socket of the cluster (plain, TLS, each auto-mTLS match)
 * wrapped in Envoy's upstream_proxy_protocol, so each upstream connection
 * starts with a PROXY header naming the downstream connection's ends.
 * Call it once the cluster's TLS is in place.
 */
export function applyProxyProtocol(cluster: Json, proxyProtocol: ProxyProtocol | undefined): void {
  if (!proxyProtocol) return;
  const version = proxyProtocol.version ?? 'V1';
  const matches = cluster.transport_socket_matches as Json[] | undefined;
  if (matches?.length) {
    for (const m of matches) m.transport_socket = proxyProtocolSocket(version, m.transport_socket as Json);
    if (cluster.transport_socket)
      cluster.transport_socket = proxyProtocolSocket(version, cluster.transport_socket as Json);
    return;
  }
  cluster.transport_socket = proxyProtocolSocket(version, cluster.transport_socket as Json | undefined);
}

/**
 * What a DestinationRule adds to the tcp_proxy of a TCP route with one
 * destination, as Istio builds it: the connection pool's idleTimeout and
 * maxConnectionDuration, a source-IP hash for consistentHash.useSourceIp, and `tunnel` (the TCP stream sent inside an HTTP
 * CONNECT or POST to the destination, a proxy, for targetHost:targetPort).
 */
export function tcpProxyPolicy(policy: EffectivePolicy): Json {
  const out: Json = {};
  const tcp = policy.connectionPool?.tcp;
  if (tcp?.idleTimeout) out.idle_timeout = envoyDuration(tcp.idleTimeout);
  if (tcp?.maxConnectionDuration)
    out.max_downstream_connection_duration = envoyDuration(tcp.maxConnectionDuration);
  // Istio's maybeSetHashPolicy: a consistent hash by source IP is the one a TCP proxy can apply.
  if (policy.loadBalancer?.consistentHash?.useSourceIp) out.hash_policy = [{ source_ip: {} }];
  const t = policy.tunnel;
  if (t) {
    const host = t.targetHost.includes(':') ? `[${t.targetHost}]` : t.targetHost;
    out.tunneling_config = {
      hostname: `${host}:${t.targetPort}`,
      ...(t.protocol === 'POST' ? { use_post: true } : {}),
    };
  }
  return out;
}

/** A DestinationRule's consistentHash as the route's hash_policy (Istio puts it on routes to that destination). */
export function hashPolicyFor(ch: ConsistentHashLB | undefined): Json[] | undefined {
  if (!ch) return undefined;
  if (ch.httpHeaderName) return [{ header: { header_name: ch.httpHeaderName } }];
  if (ch.httpCookie) {
    const cookie: Json = { name: ch.httpCookie.name };
    if (ch.httpCookie.path) cookie.path = ch.httpCookie.path;
    if (ch.httpCookie.ttl) cookie.ttl = envoyDuration(ch.httpCookie.ttl);
    if (ch.httpCookie.attributes?.length)
      cookie.attributes = ch.httpCookie.attributes.map((a) =>
        a.value ? { name: a.name, value: a.value } : { name: a.name },
      );
    return [{ cookie }];
  }
  if (ch.useSourceIp) return [{ connection_properties: { source_ip: true } }];
  if (ch.httpQueryParameterName) return [{ query_parameter: { name: ch.httpQueryParameterName } }];
  return undefined;
}
