import type { ResourceSet } from '@mizzen/xds';
import {
  BLACKHOLE_CLUSTER,
  outboundClusterName,
  outboundListenerName,
  outboundRouteName,
  PASSTHROUGH_CLUSTER,
  VIRTUAL_OUTBOUND,
} from '../model/names.js';
import { resolveProtocol } from '../model/protocol.js';
import { bindAddress, type ProxyInfo } from '../model/proxy.js';
import type { Service } from '../registry/model.js';
import { buildInboundClusters, buildOutboundClusters, buildPassthroughClusters } from './clusters.js';
import { serviceDomains } from './domains.js';
import { resourceSet } from './endpoints.js';
import {
  httpConnectionManager,
  type Json,
  outboundHttpFilters,
  pipeAddress,
  socketAddress,
  tcpProxy,
} from './envoy.js';
import { defaultRouteFor, translateHttpRoutes } from './http-routes.js';
import { buildInboundListeners, withServiceTargets } from './inbound.js';
import { cidr, type L4Chain, tcpChains, tlsChains } from './l4-routes.js';
import { HTTP_ALPN, KIND_PRECEDENCE, kindOf, type PortKind, SNIFFING_FILTERS } from './port-kinds.js';
import type { PushContext } from './push-context.js';
import type { EgressListenerScope, SidecarScope } from './sidecar-scope.js';
import { hcmTelemetry, statsFilter, withStatsFilter, withTcpTelemetry } from './telemetry.js';

/** One outbound port of a sidecar: how it is served, the services on it, and the egress listener it comes from. */
interface OutboundPlan {
  kind: PortKind;
  services: Service[];
  /** A Sidecar egress listener with `captureMode: NONE`: a real listener on `bind` (default 127.0.0.1). */
  bind?: string;
}

/**
 * The outbound ports of a sidecar, each with how it is served and the
 * services on it, from its scope's egress listeners in order: a listener
 * with a port claims that port for the services it imports; the catch-all
 * listener (no port) serves every port of its services that no listener
 * with a port claimed (Istio's rule).
 */
function outboundPorts(scope: SidecarScope): Map<number, OutboundPlan> {
  const ports = new Map<number, OutboundPlan>();
  const claimed = new Set<number>();
  for (const listener of scope.egress) {
    // Unix socket listeners claim no port: they are built on their own (unixSocketListeners).
    if (listener.unixSocket !== undefined) continue;
    if (listener.port) {
      const n = listener.port.number;
      if (claimed.has(n)) continue;
      claimed.add(n);
      ports.set(n, explicitPortPlan(listener, n));
      continue;
    }
    for (const service of listener.services) {
      for (const port of service.ports) {
        if (claimed.has(port.port)) continue;
        const kind = kindOf(port.protocol);
        const existing = ports.get(port.port);
        if (!existing) ports.set(port.port, { kind, services: [service] });
        else if (!existing.services.includes(service)) {
          existing.services.push(service);
          // Several services on one port: HTTP wins (it routes by host); without VIPs TCP cannot tell them apart.
          if (KIND_PRECEDENCE.indexOf(kind) < KIND_PRECEDENCE.indexOf(existing.kind)) existing.kind = kind;
        }
      }
    }
  }
  return ports;
}

/** The service port a listener port reaches: the same number, else a single-port service's only port (Istio's alias). */
function servicePortFor(service: Service, port: number) {
  return (
    service.ports.find((p) => p.port === port) ?? (service.ports.length === 1 ? service.ports[0] : undefined)
  );
}

function explicitPortPlan(listener: EgressListenerScope, n: number): OutboundPlan {
  const services = listener.services.filter((s) => servicePortFor(s, n) !== undefined);
  let kind: PortKind;
  if (listener.port?.protocol) kind = kindOf(resolveProtocol(listener.port.protocol, listener.port.name));
  else {
    const kinds = services.map((s) => kindOf(servicePortFor(s, n)!.protocol));
    kind = KIND_PRECEDENCE.find((k) => kinds.includes(k)) ?? 'sniff';
  }
  const bound = listener.captureMode === 'NONE';
  return { kind, services, ...(bound ? { bind: listener.bind ?? '127.0.0.1' } : {}) };
}

/** Where traffic to destinations the scope does not know goes: nowhere (REGISTRY_ONLY), the egress proxy, or through. */
function catchAllCluster(scope: SidecarScope): string {
  if (scope.outboundTrafficPolicy === 'REGISTRY_ONLY') return BLACKHOLE_CLUSTER;
  const proxy = scope.egressProxy;
  if (proxy?.port?.number) return outboundClusterName(proxy.port.number, proxy.subset, proxy.host);
  return PASSTHROUGH_CLUSTER;
}

function catchAllVirtualHost(scope: SidecarScope): Json {
  if (scope.outboundTrafficPolicy === 'REGISTRY_ONLY') {
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
      {
        name: 'allow_any',
        match: { prefix: '/' },
        route: { cluster: catchAllCluster(scope), timeout: '0s' },
      },
    ],
  };
}

/**
 * The route table of a `bind: unix://…` HTTP listener: one socket serves
 * every HTTP port of the services it imports, a virtual host per service
 * port (`host:port`; a bare name goes to the first port that claims it).
 */
function unixSocketRouteConfig(
  push: PushContext,
  proxy: ProxyInfo,
  scope: SidecarScope,
  listener: EgressListenerScope,
): Json {
  const taken = new Set<string>();
  const virtualHosts = listener.services.flatMap((service) =>
    service.ports.flatMap((sp) => serviceVirtualHost(push, proxy, service, sp, sp.port, taken) ?? []),
  );
  virtualHosts.push(catchAllVirtualHost(scope));
  return { name: listener.bind!, virtual_hosts: virtualHosts, validate_clusters: false };
}

/**
 * Sidecar egress listeners on Unix sockets (`port.number: 0`, `bind:
 * unix:///path` or `unix://@name`): the app connects to the socket instead of
 * a port. HTTP routes by Host to the services imported; TCP goes to the
 * first imported service's (only) port, as Istio requires of it.
 */
function unixSocketListeners(
  push: PushContext,
  proxy: ProxyInfo,
  scope: SidecarScope,
): { listeners: Json[]; routes: Json[] } {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  for (const l of scope.egress) {
    if (l.unixSocket === undefined || !l.bind) continue;
    const kind = l.port?.protocol ? kindOf(resolveProtocol(l.port.protocol, l.port.name)) : 'http';
    const http = kind === 'http' || kind === 'sniff';
    const chains = http
      ? [
          {
            filters: [
              httpConnectionManager(
                `outbound_${l.bind}`,
                { rds: l.bind },
                hcmTelemetry(push, proxy, 'client'),
                withStatsFilter(outboundHttpFilters(), statsFilter(push, proxy, 'client')),
              ),
            ],
          },
        ]
      : outboundTcpChains(push, proxy, { kind, services: l.services }, 0);
    listeners.push({
      name: `${l.bind}_0`,
      address: pipeAddress(l.unixSocket),
      traffic_direction: 'OUTBOUND',
      filter_chains: chains,
    });
    if (http) routes.push(unixSocketRouteConfig(push, proxy, scope, l));
  }
  return { listeners, routes };
}

/**
 * A service port's virtual host on an outbound listener port: its domains
 * not `taken` yet (they are taken now), and its VirtualService's routes or
 * the default route; none for a TCP or TLS port or when every domain is taken.
 */
function serviceVirtualHost(
  push: PushContext,
  proxy: ProxyInfo,
  service: Service,
  sp: Service['ports'][number],
  port: number,
  taken: Set<string>,
): Json | undefined {
  if (kindOf(sp.protocol) === 'tcp' || kindOf(sp.protocol) === 'tls') return undefined;
  const domains = serviceDomains(service, port, proxy.namespace, push.mesh.domainSuffix).filter(
    (d) => !taken.has(d),
  );
  if (domains.length === 0) return undefined;
  for (const d of domains) taken.add(d);
  const vs = push.virtualServiceFor(proxy, service.hostname);
  const routes = vs
    ? translateHttpRoutes(vs, { push, proxy, gateway: 'mesh', matchPort: port, listenerPort: sp.port })
    : [defaultRouteFor(push, proxy, service, sp.port)];
  return { name: `${service.hostname}:${port}`, domains, routes, include_request_attempt_count: true };
}

/** The route table a sidecar uses for one outbound port: a virtual host per service on that port. */
export function buildOutboundRouteConfig(
  push: PushContext,
  proxy: ProxyInfo,
  port: number,
  services: readonly Service[] = push.servicesFor(proxy),
): Json {
  const scope = push.sidecarScope(proxy);
  const taken = new Set<string>();
  const virtualHosts = services.flatMap((service) => {
    const sp = servicePortFor(service, port);
    return (sp && serviceVirtualHost(push, proxy, service, sp, port, taken)) ?? [];
  });
  virtualHosts.push(catchAllVirtualHost(scope));
  return { name: outboundRouteName(port), virtual_hosts: virtualHosts, validate_clusters: false };
}

function toChain(c: L4Chain): Json {
  return c.match ? { filter_chain_match: c.match, filters: [c.filter] } : { filters: [c.filter] };
}

/**
 * The TCP chains of an outbound port: the first service's VirtualService tcp
 * routes (an aliased single-port service routes to its own port), else the
 * catch-all when the port's egress listener imports nothing.
 */
function outboundTcpChains(push: PushContext, proxy: ProxyInfo, plan: OutboundPlan, port: number): Json[] {
  const service = plan.services[0];
  if (!service) {
    const cluster = catchAllCluster(push.sidecarScope(proxy));
    return [{ filters: [tcpProxy(cluster, cluster)] }];
  }
  const chainsOf = (s: Service) => tcpChains(push, proxy, s, servicePortFor(s, port)?.port ?? port);
  // Opaque TCP has no Host or SNI: services with `addresses` (ServiceEntry VIPs and CIDRs) are told apart
  // by where the connection was going; the first service without addresses takes the rest.
  const byAddress = plan.services
    .filter((s) => s.addresses.length > 0)
    .flatMap((s) =>
      chainsOf(s).map((c) =>
        c.match ? c : { match: { prefix_ranges: s.addresses.map(cidr) }, filter: c.filter },
      ),
    );
  const rest = plan.services.find((s) => s.addresses.length === 0);
  return [...byAddress, ...(rest || byAddress.length === 0 ? chainsOf(rest ?? service) : [])].map(toChain);
}

/** Every resource a sidecar gets: Istio's outbound/inbound listener layout, routes per port, clusters, endpoints. */
export function buildSidecarResources(push: PushContext, node: ProxyInfo): ResourceSet {
  const proxy = withServiceTargets(push, node);
  const scope = push.sidecarScope(proxy);
  const listeners: Json[] = [];
  const routes: Json[] = [];
  if (proxy.outboundPort) {
    const catchAll = catchAllCluster(scope);
    listeners.push({
      name: VIRTUAL_OUTBOUND,
      address: socketAddress(bindAddress(proxy), proxy.outboundPort),
      use_original_dst: true,
      traffic_direction: 'OUTBOUND',
      filter_chains: [{ name: catchAll, filters: [tcpProxy(catchAll, catchAll)] }],
    });
  }
  for (const [port, plan] of [...outboundPorts(scope).entries()].sort((a, b) => a[0] - b[0])) {
    const hcm = () =>
      httpConnectionManager(
        `outbound_${plan.bind ?? '0.0.0.0'}_${port}`,
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
          ...outboundTcpChains(push, proxy, plan, port),
        ];
        break;
      case 'tls':
        chains = plan.services.length
          ? tlsChains(push, proxy, plan.services, port).map(toChain)
          : outboundTcpChains(push, proxy, plan, port);
        break;
      case 'tcp':
        chains = outboundTcpChains(push, proxy, plan, port);
        break;
    }
    // A Sidecar egress listener with captureMode NONE is a real socket the app connects to; the others
    // only take connections the capture listener hands over.
    const address = plan.bind ?? '0.0.0.0';
    listeners.push({
      name: plan.bind ? `${plan.bind}_${port}` : outboundListenerName(port),
      address: socketAddress(address, port),
      ...(plan.bind ? {} : { bind_to_port: false }),
      traffic_direction: 'OUTBOUND',
      ...(plan.kind === 'sniff' ? { listener_filters: SNIFFING_FILTERS } : {}),
      filter_chains: chains,
    });
    if (plan.kind === 'http' || plan.kind === 'sniff')
      routes.push(buildOutboundRouteConfig(push, proxy, port, plan.services));
  }
  const unix = unixSocketListeners(push, proxy, scope);
  listeners.push(...unix.listeners);
  routes.push(...unix.routes);
  listeners.push(...buildInboundListeners(push, proxy));

  const clusters = [
    ...buildOutboundClusters(push, proxy),
    ...buildInboundClusters(push, proxy),
    ...buildPassthroughClusters(push, proxy),
  ];
  return resourceSet(push, proxy, {
    listeners: withTcpTelemetry(push, proxy, listeners),
    routes,
    clusters,
  });
}
