import net from 'node:net';
import { durationToMs } from '@mizzen/xds';
import type { ClusterJson, ClusterLoadAssignmentJson, LbEndpointJson } from '../envoy/types.js';
import { type EndpointIdentity, endpointIdentity } from '../observe/peer-metadata.js';
import { DEFAULT_OVERPROVISIONING_FACTOR } from '../upstream/host.js';
import { fail } from './errors.js';
import { compileTransportSocket, type TlsContextSpec } from './tls-context.js';

export type LbKind = 'round_robin' | 'least_request' | 'random' | 'ring_hash' | 'maglev';

/** One upstream address as EDS or a static load assignment gives it. */
export interface EndpointSpec {
  readonly address: string;
  readonly port: number;
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
  /** Ring hash: points on the ring; Maglev: table size. */
  readonly hashTableSize: number;
  /** common_lb_config.locality_weighted_lb_config: pick a locality by weight × availability, then a host in it. */
  readonly localityWeighted: boolean;
  /** ROUND_ROBIN / LEAST_REQUEST slow start (Istio's DestinationRule `warmup`). */
  readonly slowStart?: SlowStartConfig;
  readonly http: {
    idleTimeoutMs?: number;
    maxRequestsPerConnection?: number;
    /** The upstream HTTP protocol: always HTTP/2 (gRPC, `http2-` ports), follow the downstream, or HTTP/1.1. */
    protocol: 'http1' | 'http2' | 'downstream';
  };
  readonly tcpKeepalive?: { initialDelayMs: number };
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
  readonly json: ClusterJson;
}

/** Envoy's circuit-breaker thresholds (priority DEFAULT). */
export interface CircuitBreakerLimits {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
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
}

/** Envoy's defaults where a cluster sets no thresholds. */
const DEFAULT_LIMITS: CircuitBreakerLimits = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};

const HTTP_OPTIONS_TYPE = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

const LB: Partial<Record<string, LbKind>> = {
  ROUND_ROBIN: 'round_robin',
  LEAST_REQUEST: 'least_request',
  RANDOM: 'random',
  RING_HASH: 'ring_hash',
  MAGLEV: 'maglev',
};

function compileLimits(c: ClusterJson, where: string): CircuitBreakerLimits {
  const t = (c.circuit_breakers?.thresholds ?? []).find((x) => (x.priority ?? 'DEFAULT') === 'DEFAULT');
  if (!t) return DEFAULT_LIMITS;
  const limits = {
    maxConnections: t.max_connections ?? DEFAULT_LIMITS.maxConnections,
    maxPendingRequests: t.max_pending_requests ?? DEFAULT_LIMITS.maxPendingRequests,
    maxRequests: t.max_requests ?? DEFAULT_LIMITS.maxRequests,
    maxRetries: t.max_retries ?? DEFAULT_LIMITS.maxRetries,
  };
  for (const [k, v] of Object.entries(limits))
    if (!(v >= 0)) fail(`${where}.circuit_breakers`, `${k} must not be negative`);
  return limits;
}

function compileOutlier(c: ClusterJson, where: string): OutlierConfig | undefined {
  const o = c.outlier_detection;
  if (!o) return undefined;
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
  };
}

function compileHttpOptions(c: ClusterJson, where: string): ClusterConfig['http'] {
  const options = c.typed_extension_protocol_options ?? {};
  for (const [name, config] of Object.entries(options)) {
    if (config['@type'] !== HTTP_OPTIONS_TYPE)
      fail(`${where}.typed_extension_protocol_options[${name}]`, `${config['@type']} is not supported`);
  }
  const http = Object.values(options).find((o) => o['@type'] === HTTP_OPTIONS_TYPE) as
    | {
        common_http_protocol_options?: { idle_timeout?: string; max_requests_per_connection?: number };
        explicit_http_config?: Record<string, unknown>;
      }
    | undefined;
  // The older cluster-level field still means "HTTP/2 upstream".
  const legacyH2 = (c as { http2_protocol_options?: unknown }).http2_protocol_options !== undefined;
  if (!http) return { protocol: legacyH2 ? 'http2' : 'http1' };
  const explicit = http.explicit_http_config;
  const protocol =
    explicit?.http2_protocol_options !== undefined || legacyH2
      ? 'http2'
      : (http as { use_downstream_protocol_config?: unknown }).use_downstream_protocol_config !== undefined
        ? 'downstream'
        : 'http1';
  const idle = http.common_http_protocol_options?.idle_timeout;
  return {
    idleTimeoutMs: idle === undefined ? undefined : durationToMs(idle),
    maxRequestsPerConnection: http.common_http_protocol_options?.max_requests_per_connection || undefined,
    protocol,
  };
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
  const sa = e.endpoint?.address?.socket_address;
  if (!sa?.address) fail(where, 'endpoint has no socket address');
  const port = sa.port_value ?? 0;
  if (!(port > 0 && port < 65536)) fail(where, `endpoint ${sa.address} has invalid port ${port}`);
  const status = e.health_status ?? 'UNKNOWN';
  const identity = endpointIdentity(filterMetadata(e.metadata, 'istio'));
  return {
    address: sa.address,
    port,
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
  const keepalive = c.upstream_connection_options?.tcp_keepalive;
  return {
    name: c.name,
    type,
    edsServiceName: type === 'EDS' ? c.eds_cluster_config?.service_name || c.name : undefined,
    connectTimeoutMs: timeout > 0 ? timeout : DEFAULT_CONNECT_TIMEOUT_MS,
    lb,
    endpoints,
    limits: compileLimits(c, where),
    outlier: compileOutlier(c, where),
    panicThresholdPercent: c.common_lb_config?.healthy_panic_threshold?.value ?? 50,
    hashTableSize:
      lb === 'maglev'
        ? (c.maglev_lb_config?.table_size ?? 65537)
        : (c.ring_hash_lb_config?.minimum_ring_size ?? 1024),
    localityWeighted:
      (c.common_lb_config as { locality_weighted_lb_config?: unknown } | undefined)
        ?.locality_weighted_lb_config !== undefined,
    slowStart: compileSlowStart(c, where),
    http: compileHttpOptions(c, where),
    tcpKeepalive: keepalive ? { initialDelayMs: (keepalive.keepalive_time ?? 7200) * 1000 } : undefined,
    sourceAddresses: compileBindConfig(c, where),
    tls: compileTransportSocket(c.transport_socket as never, 'upstream', `${where}.transport_socket`),
    transportMatches: (c.transport_socket_matches ?? []).map((m, i) => ({
      name: m.name ?? `match-${i}`,
      match: Object.fromEntries(Object.entries(m.match ?? {}).map(([k, v]) => [k, String(v)])),
      tls: compileTransportSocket(
        m.transport_socket as never,
        'upstream',
        `${where}.transport_socket_matches[${i}]`,
      ),
    })),
    json: c,
  };
}
