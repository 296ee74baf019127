import type { ResourceSet } from '@mizzen/xds';
import {
  BLACKHOLE_CLUSTER,
  inboundClusterName,
  inboundListenerName,
  outboundListenerName,
  outboundRouteName,
  PASSTHROUGH_CLUSTER,
  VIRTUAL_OUTBOUND,
} from '../model/names.js';
import { isHttpProtocol, type Protocol } from '../model/protocol.js';
import { bindAddress, type ProxyInfo } from '../model/proxy.js';
import type { Service } from '../registry/model.js';
import { buildInboundClusters, buildOutboundClusters, buildPassthroughClusters } from './clusters.js';
import { serviceDomains } from './domains.js';
import { resourceSet } from './endpoints.js';
import {
  httpConnectionManager,
  type Json,
  outboundHttpFilters,
  routerFilter,
  socketAddress,
  tcpProxy,
} from './envoy.js';
import { defaultRouteFor, translateHttpRoutes } from './http-routes.js';
import { type L4Chain, tcpChains, tlsChains } from './l4-routes.js';
import { downstreamMeshTls, inboundMtlsMode, SIDECAR_INBOUND_XFCC, TLS_INSPECTOR } from './mtls.js';
import type { PushContext } from './push-context.js';
import { rateLimitConfig, withRateLimitFilters } from './rate-limits.js';
import { securityFilters } from './security-filters.js';
import { hcmTelemetry, statsFilter, withStatsFilter } from './telemetry.js';

type PortKind = 'http' | 'sniff' | 'tls' | 'tcp';

/** How a port's protocol is served: routed HTTP, sniffed (HTTP or TCP by the first bytes), TLS by SNI, or TCP. */
function kindOf(protocol: Protocol): PortKind {
  if (isHttpProtocol(protocol)) return 'http';
  if (protocol === 'UNKNOWN') return 'sniff';
  if (protocol === 'TLS' || protocol === 'HTTPS') return 'tls';
  return 'tcp';
}

const KIND_PRECEDENCE: PortKind[] = ['http', 'sniff', 'tls', 'tcp'];

/** The outbound ports of a proxy, each with how it is served and the services on it. */
function outboundPorts(
  push: PushContext,
  proxy: ProxyInfo,
): Map<number, { kind: PortKind; services: Service[] }> {
  const ports = new Map<number, { kind: PortKind; services: Service[] }>();
  for (const service of push.servicesFor(proxy)) {
    for (const port of service.ports) {
      const kind = kindOf(port.protocol);
      const existing = ports.get(port.port);
      if (!existing) ports.set(port.port, { kind, services: [service] });
      else {
        existing.services.push(service);
        // Several services on one port: HTTP wins (it routes by host); without VIPs TCP cannot tell them apart.
        if (KIND_PRECEDENCE.indexOf(kind) < KIND_PRECEDENCE.indexOf(existing.kind)) existing.kind = kind;
      }
    }
  }
  return ports;
}

/** Istio's listener filters for a port whose protocol is decided by the first bytes. */
const SNIFFING_FILTERS = [
  {
    name: 'envoy.filters.listener.http_inspector',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
    },
  },
];
const HTTP_ALPN = { application_protocols: ['http/1.1', 'h2c'] };

function catchAllVirtualHost(push: PushContext): Json {
  if (push.mesh.outboundTrafficPolicy === 'REGISTRY_ONLY') {
    return {
      name: 'block_all',
      domains: ['*'],
      routes: [{ name: 'block_all', match: { prefix: '/' }, direct_response: { status: 502 } }],
    };
  }
  return {
    name: 'allow_any',
    domains: ['*'],
    routes: [
      { name: 'allow_any', match: { prefix: '/' }, route: { cluster: PASSTHROUGH_CLUSTER, timeout: '0s' } },
    ],
  };
}

/** The route table a sidecar uses for one outbound port: a virtual host per service on that port. */
export function buildOutboundRouteConfig(push: PushContext, proxy: ProxyInfo, port: number): Json {
  const virtualHosts: Json[] = [];
  const taken = new Set<string>();
  for (const service of push.servicesFor(proxy)) {
    const sp = service.ports.find((p) => p.port === port);
    if (!sp || kindOf(sp.protocol) === 'tcp' || kindOf(sp.protocol) === 'tls') continue;
    const domains = serviceDomains(service, port, proxy.namespace, push.mesh.domainSuffix).filter(
      (d) => !taken.has(d),
    );
    if (domains.length === 0) continue;
    for (const d of domains) taken.add(d);
    const vs = push.virtualServiceFor(proxy, service.hostname);
    const routes = vs
      ? translateHttpRoutes(vs, { push, proxy, gateway: 'mesh', matchPort: port, listenerPort: port })
      : [defaultRouteFor(push, proxy, service, port)];
    virtualHosts.push({
      name: `${service.hostname}:${port}`,
      domains,
      routes,
      include_request_attempt_count: true,
    });
  }
  virtualHosts.push(catchAllVirtualHost(push));
  return { name: outboundRouteName(port), virtual_hosts: virtualHosts, validate_clusters: false };
}

function inboundListeners(push: PushContext, proxy: ProxyInfo): Json[] {
  const address = bindAddress(proxy);
  const security = securityFilters(push, proxy);
  const limits = rateLimitConfig(push, proxy);
  return proxy.ports.map((port) => {
    const cluster = inboundClusterName(port.targetPort);
    const hcm = httpConnectionManager(
      `inbound_0.0.0.0_${port.targetPort}`,
      {
        inline: {
          name: `inbound|${port.targetPort}||`,
          validate_clusters: false,
          virtual_hosts: [
            {
              name: `inbound|http|${port.port}`,
              domains: ['*'],
              routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster, timeout: '0s' } }],
              ...limits.virtualHost,
            },
          ],
        },
      },
      { ...SIDECAR_INBOUND_XFCC, ...hcmTelemetry(push, proxy, 'server') },
      withStatsFilter(
        withRateLimitFilters([...security.http, routerFilter()], limits),
        statsFilter(push, proxy, 'server'),
      ),
    );
    const tcp = [...security.tcp, tcpProxy(cluster, cluster)];
    const kind = kindOf(port.protocol);
    // A port of unknown protocol takes HTTP when the first bytes are HTTP, anything else as opaque TCP.
    const base: { name: string; match?: Json; filters: Json[] }[] =
      kind === 'http'
        ? [{ name: cluster, filters: [hcm] }]
        : kind === 'sniff'
          ? [
              { name: `${cluster}-http`, match: HTTP_ALPN, filters: [hcm] },
              { name: `${cluster}-tcp`, filters: tcp },
            ]
          : [{ name: cluster, filters: tcp }];
    // PeerAuthentication decides which chains exist: mTLS only (STRICT), both told apart by the first bytes (PERMISSIVE), or plaintext.
    const mode = inboundMtlsMode(push, proxy, port.targetPort);
    const chains: Json[] = [];
    if (mode !== 'DISABLE') {
      for (const c of base) {
        // Inside TLS the ALPN says whether it is HTTP: h2 or http/1.1.
        const match = {
          transport_protocol: 'tls',
          ...(c.match ? { application_protocols: ['h2', 'http/1.1'] } : {}),
        };
        chains.push({
          name: `${c.name}-mtls`,
          filter_chain_match: match,
          transport_socket: downstreamMeshTls(),
          filters: c.filters,
        });
      }
    }
    if (mode !== 'STRICT') {
      for (const c of base) {
        const match = {
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
    const listenerFilters = [
      ...(mode !== 'DISABLE' ? [TLS_INSPECTOR] : []),
      ...(kind === 'sniff' ? SNIFFING_FILTERS : []),
    ];
    return {
      name: inboundListenerName(address, port.listenPort),
      address: socketAddress(address, port.listenPort),
      traffic_direction: 'INBOUND',
      ...(listenerFilters.length ? { listener_filters: listenerFilters } : {}),
      filter_chains: chains,
      // Local mode listens on its own port per workload port; policies name the workload's port.
      ...(port.listenPort !== port.targetPort ? { metadata: workloadPortMetadata(port.targetPort) } : {}),
    };
  });
}

/** Listener metadata telling the proxy which workload port a local-mode inbound listener stands for. */
function workloadPortMetadata(port: number): Json {
  return { filter_metadata: { 'mizzen.io/listener': { workload_port: port } } };
}

function toChain(c: L4Chain): Json {
  return c.match ? { filter_chain_match: c.match, filters: [c.filter] } : { filters: [c.filter] };
}

/** Every resource a sidecar gets: Istio's outbound/inbound listener layout, routes per port, clusters, endpoints. */
export function buildSidecarResources(push: PushContext, proxy: ProxyInfo): ResourceSet {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  if (proxy.outboundPort) {
    const catchAll =
      push.mesh.outboundTrafficPolicy === 'REGISTRY_ONLY' ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
    listeners.push({
      name: VIRTUAL_OUTBOUND,
      address: socketAddress(bindAddress(proxy), proxy.outboundPort),
      use_original_dst: true,
      traffic_direction: 'OUTBOUND',
      filter_chains: [{ name: catchAll, filters: [tcpProxy(catchAll, catchAll)] }],
    });
  }
  for (const [port, plan] of [...outboundPorts(push, proxy).entries()].sort((a, b) => a[0] - b[0])) {
    const hcm = () =>
      httpConnectionManager(
        `outbound_0.0.0.0_${port}`,
        { rds: outboundRouteName(port) },
        hcmTelemetry(push, proxy, 'client'),
        withStatsFilter(outboundHttpFilters(), statsFilter(push, proxy, 'client')),
      );
    let chains: Json[];
    switch (plan.kind) {
      case 'http':
        chains = [{ filters: [hcm()] }];
        break;
      case 'sniff':
        chains = [
          { filter_chain_match: HTTP_ALPN, filters: [hcm()] },
          ...tcpChains(push, proxy, plan.services[0]!, port).map(toChain),
        ];
        break;
      case 'tls':
        chains = tlsChains(push, proxy, plan.services, port).map(toChain);
        break;
      case 'tcp':
        chains = tcpChains(push, proxy, plan.services[0]!, port).map(toChain);
        break;
    }
    listeners.push({
      name: outboundListenerName(port),
      address: socketAddress('0.0.0.0', port),
      bind_to_port: false,
      traffic_direction: 'OUTBOUND',
      ...(plan.kind === 'sniff' ? { listener_filters: SNIFFING_FILTERS } : {}),
      filter_chains: chains,
    });
    if (plan.kind === 'http' || plan.kind === 'sniff')
      routes.push(buildOutboundRouteConfig(push, proxy, port));
  }
  listeners.push(...inboundListeners(push, proxy));

  const clusters = [
    ...buildOutboundClusters(push, proxy),
    ...buildInboundClusters(push, proxy),
    ...buildPassthroughClusters(push),
  ];
  return resourceSet(push, proxy, { listeners, routes, clusters });
}
