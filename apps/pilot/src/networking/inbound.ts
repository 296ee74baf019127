import type { ServerTLSSettings } from '@mizzen/api';
import {
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER,
  inboundClusterName,
  inboundListenerName,
  VIRTUAL_INBOUND,
  VIRTUAL_INBOUND_PORT,
} from '../model/names.js';
import type { ProxyInfo, WorkloadPort } from '../model/proxy.js';
import { httpConnectionManager, type Json, routerFilter, socketAddress, tcpProxy } from './envoy.js';
import { listenerMetadataExchange } from './metadata-exchange.js';
import {
  DOWNSTREAM_TLS_TYPE,
  downstreamMeshTls,
  inboundMtlsMode,
  peerAuthenticationFor,
  SIDECAR_INBOUND_XFCC,
  TLS_INSPECTOR,
} from './mtls.js';
import { HTTP_ALPN, HTTP_INSPECTOR, kindOf, type PortKind, SNIFFING_FILTERS } from './port-kinds.js';
import type { PushContext } from './push-context.js';
import { type RateLimitConfig, rateLimitConfig, withRateLimitFilters } from './rate-limits.js';
import { securityFilters, type WorkloadSecurityFilters } from './security-filters.js';
import { type InboundPort, inboundPorts } from './sidecar-scope.js';
import { hcmTelemetry, statsFilter, withStatsFilter } from './telemetry.js';

/**
 * A sidecar's inbound side, in both of Istio's layouts: local mode (each
 * workload port its own bound listener on the instance IP) and iptables
 * capture (Istio's Kubernetes layout: one `virtualInbound` listener on 15006
 * taking every redirected connection, its filter chains picked by the port
 * the caller dialled, and passthrough chains for every other port). Both
 * build their chains with the same builder: the HTTP connection manager with
 * the workload's security, rate limit and stats filters, the TCP proxy with
 * network RBAC, and the chains PeerAuthentication calls for.
 */

const ORIGINAL_DST_FILTER = {
  name: 'envoy.filters.listener.original_dst',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  },
};

/** Istio's names for the chains that take traffic to ports no service declares. */
const PASSTHROUGH_CHAIN = { http: 'virtualInbound-catchall-http', tcp: VIRTUAL_INBOUND };

/**
 * The proxy with the ports its workload serves. A sidecar in iptables mode
 * declares none: as Istio does, pilot finds them in the registry by the
 * proxy's IP (the Services selecting its pod, ServiceEntry/WorkloadEntry
 * endpoints at its address); the first service to claim a target port wins.
 */
export function withServiceTargets(push: PushContext, proxy: ProxyInfo): ProxyInfo {
  if (proxy.captureMode !== 'iptables' || proxy.ports.length > 0) return proxy;
  const ports: WorkloadPort[] = [];
  for (const t of push.registry.serviceTargets(proxy.ip)) {
    if (ports.some((p) => p.targetPort === t.targetPort)) continue;
    ports.push({
      name: t.name,
      port: t.port,
      targetPort: t.targetPort,
      protocol: t.protocol,
      listenPort: t.targetPort,
    });
  }
  // Istio orders the inbound chains by target port.
  ports.sort((a, b) => a.targetPort - b.targetPort);
  return ports.length ? { ...proxy, ports } : proxy;
}

/** What every inbound chain of one workload shares: its security and rate limit filters. */
interface WorkloadFilters {
  security: WorkloadSecurityFilters;
  limits: RateLimitConfig;
}

/** One set of inbound chains: a workload port, or the passthrough for ports without one. */
interface InboundChainSpec {
  /** The cluster the chains deliver to. */
  cluster: string;
  statPrefix: string;
  routeName: string;
  virtualHost: string;
  kind: PortKind;
  /** PeerAuthentication's mode, or TLS for a Sidecar ingress listener that terminates its own. */
  mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE' | 'TLS';
  tls?: ServerTLSSettings;
  /** Chain names: plaintext HTTP and TCP (mTLS variants get `-mtls`, terminated TLS `-tls`). */
  names: { http: string; tcp: string };
  /** virtualInbound: the port the caller dialled, which picks these chains. */
  destinationPort?: number;
}

/** TLS a Sidecar ingress listener terminates for callers outside the mesh (SIMPLE or MUTUAL, from files). */
function ingressTls(tls: ServerTLSSettings): Json {
  const common: Json = {
    tls_certificates: [
      {
        certificate_chain: { filename: tls.serverCertificate ?? '' },
        private_key: { filename: tls.privateKey ?? '' },
      },
    ],
    alpn_protocols: ['h2', 'http/1.1'],
  };
  const mutual = tls.mode === 'MUTUAL' || tls.mode === 'OPTIONAL_MUTUAL';
  if (mutual && tls.caCertificates)
    common.validation_context = { trusted_ca: { filename: tls.caCertificates } };
  const params: Json = {};
  if (tls.minProtocolVersion) params.tls_minimum_protocol_version = envoyTlsVersion(tls.minProtocolVersion);
  if (tls.maxProtocolVersion) params.tls_maximum_protocol_version = envoyTlsVersion(tls.maxProtocolVersion);
  if (tls.cipherSuites?.length) params.cipher_suites = tls.cipherSuites;
  if (Object.keys(params).length) common.tls_params = params;
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': DOWNSTREAM_TLS_TYPE,
      common_tls_context: common,
      require_client_certificate: tls.mode === 'MUTUAL',
    },
  };
}

/** Istio's TLSV1_2 as Envoy's TLSv1_2 (TLS_AUTO stays). */
function envoyTlsVersion(v: string): string {
  return v.replace(/^TLSV/, 'TLSv');
}

/**
 * The filter chains of one inbound port (or of the passthrough): an HTTP
 * connection manager and/or a TCP proxy by the port's protocol (both, told
 * apart by the first bytes, for a port of unknown protocol), then as
 * PeerAuthentication decides — mTLS only (STRICT), mTLS and plaintext told
 * apart by the first bytes (PERMISSIVE), plaintext only (DISABLE) — or the
 * Sidecar ingress listener's own TLS.
 */
function inboundChains(push: PushContext, proxy: ProxyInfo, spec: InboundChainSpec, w: WorkloadFilters) {
  const hcm = httpConnectionManager(
    spec.statPrefix,
    {
      inline: {
        name: spec.routeName,
        validate_clusters: false,
        virtual_hosts: [
          {
            name: spec.virtualHost,
            domains: ['*'],
            routes: [
              { name: 'default', match: { prefix: '/' }, route: { cluster: spec.cluster, timeout: '0s' } },
            ],
            ...w.limits.virtualHost,
          },
        ],
      },
    },
    { ...SIDECAR_INBOUND_XFCC, ...hcmTelemetry(push, proxy, 'server') },
    withStatsFilter(
      withRateLimitFilters([...w.security.http, routerFilter()], w.limits),
      statsFilter(push, proxy, 'server'),
    ),
  );
  // Istio's TCP metadata exchange first (it acts only when the caller's sidecar agreed on its ALPN).
  const tcp = [listenerMetadataExchange(), ...w.security.tcp, tcpProxy(spec.cluster, spec.cluster)];
  // A port of unknown protocol takes HTTP when the first bytes are HTTP, anything else as opaque TCP.
  const base: { name: string; match?: Json; filters: Json[]; protocol: 'http' | 'tcp' }[] =
    spec.kind === 'http'
      ? [{ name: spec.names.http, filters: [hcm], protocol: 'http' }]
      : spec.kind === 'sniff'
        ? [
            { name: spec.names.http, match: HTTP_ALPN, filters: [hcm], protocol: 'http' },
            { name: spec.names.tcp, filters: tcp, protocol: 'tcp' },
          ]
        : [{ name: spec.names.tcp, filters: tcp, protocol: 'tcp' }];
  const { mode } = spec;
  const port = spec.destinationPort !== undefined ? { destination_port: spec.destinationPort } : {};
  const chains: Json[] = [];
  if (mode !== 'DISABLE') {
    for (const c of base) {
      // Inside TLS the ALPN says whether it is HTTP: h2 or http/1.1.
      const match = {
        ...port,
        transport_protocol: 'tls',
        ...(c.match ? { application_protocols: ['h2', 'http/1.1'] } : {}),
      };
      chains.push({
        name: `${c.name}-${spec.tls ? 'tls' : 'mtls'}`,
        filter_chain_match: match,
        transport_socket: spec.tls ? ingressTls(spec.tls) : downstreamMeshTls(c.protocol),
        filters: c.filters,
      });
    }
  }
  if (mode !== 'STRICT' && mode !== 'TLS') {
    for (const c of base) {
      const match = {
        ...port,
        ...(c.match ?? {}),
        ...(mode === 'PERMISSIVE' ? { transport_protocol: 'raw_buffer' } : {}),
      };
      chains.push({
        name: c.name,
        ...(Object.keys(match).length ? { filter_chain_match: match } : {}),
        filters: c.filters,
      });
    }
  }
  return { chains, inspectTls: mode !== 'DISABLE', inspectHttp: spec.kind === 'sniff' };
}

/** The chain spec of one workload port: its inbound cluster, Istio's names, its mTLS mode. */
function portSpec(push: PushContext, proxy: ProxyInfo, port: InboundPort, destinationPort?: number) {
  const cluster = inboundClusterName(port.port);
  return {
    cluster,
    statPrefix: `inbound_0.0.0.0_${port.port}`,
    routeName: `inbound|${port.port}||`,
    virtualHost: `inbound|http|${port.servicePort}`,
    kind: kindOf(port.protocol),
    mode: port.tls ? 'TLS' : inboundMtlsMode(push, proxy, port.port),
    ...(port.tls ? { tls: port.tls } : {}),
    names:
      kindOf(port.protocol) === 'sniff'
        ? { http: `${cluster}-http`, tcp: `${cluster}-tcp` }
        : { http: cluster, tcp: cluster },
    ...(destinationPort !== undefined ? { destinationPort } : {}),
  } satisfies InboundChainSpec;
}

/** Listener metadata telling the proxy which workload port a local-mode inbound listener stands for. */
function workloadPortMetadata(port: number): Json {
  return { filter_metadata: { 'mizzen.io/listener': { workload_port: port } } };
}

/** A bound listener for one inbound port: local mode's layout, and Sidecar ingress listeners with captureMode NONE. */
function boundListener(push: PushContext, proxy: ProxyInfo, port: InboundPort, w: WorkloadFilters): Json {
  const { chains, inspectTls, inspectHttp } = inboundChains(push, proxy, portSpec(push, proxy, port), w);
  const listenerFilters = [...(inspectTls ? [TLS_INSPECTOR] : []), ...(inspectHttp ? SNIFFING_FILTERS : [])];
  return {
    name: inboundListenerName(port.address, port.listenPort),
    address: socketAddress(port.address, port.listenPort),
    traffic_direction: 'INBOUND',
    ...(listenerFilters.length ? { listener_filters: listenerFilters } : {}),
    filter_chains: chains,
    // Local mode listens on its own port per workload port; policies name the workload's port.
    ...(port.listenPort !== port.port ? { metadata: workloadPortMetadata(port.port) } : {}),
  };
}

/**
 * The passthrough chains: traffic to a port no service declares goes to the
 * original destination (InboundPassthroughCluster), under the workload's
 * PeerAuthentication; each port with a port-level mode of its own (and no
 * chains of its own) gets its own passthrough chains (Istio's ForPassthrough).
 */
function passthroughChains(push: PushContext, proxy: ProxyInfo, taken: Set<number>, w: WorkloadFilters) {
  const spec = (mode: InboundChainSpec['mode'], destinationPort?: number): InboundChainSpec => ({
    cluster: INBOUND_PASSTHROUGH_CLUSTER,
    statPrefix: INBOUND_PASSTHROUGH_CLUSTER,
    routeName: INBOUND_PASSTHROUGH_CLUSTER,
    virtualHost: 'inbound|http|0',
    kind: 'sniff',
    mode,
    names:
      destinationPort === undefined
        ? PASSTHROUGH_CHAIN
        : {
            http: `${PASSTHROUGH_CHAIN.http}_${destinationPort}`,
            tcp: `${PASSTHROUGH_CHAIN.tcp}_${destinationPort}`,
          },
    ...(destinationPort !== undefined ? { destinationPort } : {}),
  });
  const peer = peerAuthenticationFor(push, proxy);
  const out = [inboundChains(push, proxy, spec(peer?.mode ?? 'DISABLE'), w)];
  for (const port of peer?.ports ?? []) {
    if (taken.has(port)) continue;
    out.push(inboundChains(push, proxy, spec(peer!.portLevel.get(port)!, port), w));
  }
  return out;
}

/**
 * Istio's `virtualInbound` (iptables capture): bound on 0.0.0.0:15006, it
 * takes every connection the init container's rules redirect, recovers where
 * it was going (original_dst) and picks the chain by that port — each
 * workload port's chains, the passthrough chains for any other port, and a
 * blackhole for the capture port itself (a loop otherwise).
 */
function virtualInbound(push: PushContext, proxy: ProxyInfo, ports: InboundPort[], w: WorkloadFilters): Json {
  const sets = ports.map((p) => inboundChains(push, proxy, portSpec(push, proxy, p, p.port), w));
  sets.push(...passthroughChains(push, proxy, new Set(ports.map((p) => p.port)), w));
  const blackhole = {
    name: `${VIRTUAL_INBOUND}-blackhole`,
    filter_chain_match: { destination_port: VIRTUAL_INBOUND_PORT },
    filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)],
  };
  return {
    name: VIRTUAL_INBOUND,
    address: socketAddress('0.0.0.0', VIRTUAL_INBOUND_PORT),
    traffic_direction: 'INBOUND',
    listener_filters: [
      ORIGINAL_DST_FILTER,
      ...(sets.some((s) => s.inspectTls) ? [TLS_INSPECTOR] : []),
      ...(sets.some((s) => s.inspectHttp) ? [HTTP_INSPECTOR] : []),
    ],
    continue_on_listener_filters_timeout: true,
    filter_chains: [blackhole, ...sets.flatMap((s) => s.chains)],
  };
}

/**
 * A sidecar's inbound listeners: in iptables capture mode, virtualInbound
 * (plus a bound listener for each Sidecar ingress listener with captureMode
 * NONE); otherwise one bound listener per inbound port.
 */
export function buildInboundListeners(push: PushContext, proxy: ProxyInfo): Json[] {
  const w = { security: securityFilters(push, proxy), limits: rateLimitConfig(push, proxy) };
  const ports = inboundPorts(proxy, push.sidecarScope(proxy));
  if (proxy.captureMode !== 'iptables') return ports.map((p) => boundListener(push, proxy, p, w));
  // One set of chains per target port, the first port listed keeping it (as Istio deconflicts).
  const captured: InboundPort[] = [];
  for (const p of ports) if (!p.bind && !captured.some((c) => c.port === p.port)) captured.push(p);
  return [
    virtualInbound(push, proxy, captured, w),
    ...ports.filter((p) => p.bind).map((p) => boundListener(push, proxy, p, w)),
  ];
}
