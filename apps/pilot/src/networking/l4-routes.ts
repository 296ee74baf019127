import type {
  DestinationRuleSpec,
  L4MatchAttributes,
  RouteDestination,
  TLSMatchAttributes,
  VirtualServiceSpec,
} from '@mizzen/api';
import { outboundClusterName } from '../model/names.js';
import type { ProxyInfo } from '../model/proxy.js';
import { labelsMatch, resolveShortName, type Service } from '../registry/model.js';
import { type Json, TCP_PROXY_TYPE } from './envoy.js';
import { MESH_GATEWAY, type PushContext, resolveGatewayRef } from './push-context.js';
import { effectivePolicy, tcpProxyPolicy } from './traffic-policy.js';

/** One filter chain of an outbound TCP or TLS listener: what it matches and the tcp_proxy it runs. */
export interface L4Chain {
  match?: Json;
  filter: Json;
}

/** `10.0.0.0/16` → Envoy CidrRange. */
export function cidr(subnet: string): Json {
  const [address, len] = subnet.split('/');
  return len === undefined
    ? { address_prefix: address }
    : { address_prefix: address, prefix_len: Number(len) };
}

/** Does an L4 match (TCP or TLS route) apply to this proxy and port, as Istio filters them when building? */
function l4Applies(
  m: L4MatchAttributes | TLSMatchAttributes,
  proxy: ProxyInfo,
  port: number,
  vsNamespace: string,
  gateway: string,
): boolean {
  if (m.port !== undefined && m.port !== port) return false;
  if (m.sourceLabels && !labelsMatch(m.sourceLabels, proxy.labels)) return false;
  if (m.sourceNamespace && m.sourceNamespace !== proxy.namespace) return false;
  if (m.gateways?.length && !m.gateways.map((g) => resolveGatewayRef(g, vsNamespace)).includes(gateway))
    return false;
  return true;
}

/** One destination of a TCP route: its cluster and weight, and what its DestinationRule adds to a tcp_proxy. */
export interface TcpDestination {
  name: string;
  weight: number;
  /** idle_timeout, max_downstream_connection_duration, tunneling_config (single destinations only, as Istio). */
  policy?: Json;
}

/**
 * A tcp_proxy to one cluster (with its DestinationRule's idle timeout,
 * maximum duration and tunnel), or split by weight over several.
 */
export function tcpProxyFilter(statPrefix: string, clusters: TcpDestination[]): Json {
  const typed: Json = { '@type': TCP_PROXY_TYPE, stat_prefix: statPrefix };
  if (clusters.length === 1) Object.assign(typed, { cluster: clusters[0]!.name }, clusters[0]!.policy);
  else typed.weighted_clusters = { clusters: clusters.map(({ name, weight }) => ({ name, weight })) };
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: typed };
}

/** What the DestinationRule of a destination (host, subset, port) adds to a tcp_proxy that goes to it alone. */
function destinationTcpPolicy(
  push: PushContext,
  proxy: ProxyInfo | undefined,
  service: Service | undefined,
  subset: string | undefined,
  port: number,
): Json | undefined {
  if (!service || !proxy) return undefined;
  const rule = push.destinationRuleFor(proxy, service)?.spec as DestinationRuleSpec | undefined;
  if (!rule) return undefined;
  const policy = tcpProxyPolicy(effectivePolicy(rule, subset, port));
  return Object.keys(policy).length ? policy : undefined;
}

/** The weighted clusters of an L4 route's destinations (a port named, the service's only port, or the listener's). */
export function destinations(
  push: PushContext,
  routes: RouteDestination[] | undefined,
  vsNamespace: string,
  port: number,
  proxy?: ProxyInfo,
): TcpDestination[] {
  const list = (routes ?? []).filter((d) => d.weight === undefined || d.weight > 0 || routes!.length === 1);
  return list.map((d) => {
    const host = resolveShortName(d.destination.host, vsNamespace, push.mesh.domainSuffix);
    const service = push.registry.service(host);
    const p = d.destination.port?.number ?? (service?.ports.length === 1 ? service.ports[0]!.port : port);
    const policy = destinationTcpPolicy(push, proxy, service, d.destination.subset, p);
    return {
      name: outboundClusterName(p, d.destination.subset, host),
      weight: d.weight ?? (list.length === 1 ? 1 : 0),
      ...(policy ? { policy } : {}),
    };
  });
}

/**
 * The chains of an outbound TCP port for one service: the VirtualService's
 * `tcp` routes in order (a route with destinationSubnets becomes a chain
 * matching those destinations), else straight to the service's cluster.
 */
export function tcpChains(
  push: PushContext,
  proxy: ProxyInfo,
  service: Service,
  port: number,
  gateway = MESH_GATEWAY,
): L4Chain[] {
  const fallbackPolicy = destinationTcpPolicy(push, proxy, service, undefined, port);
  const fallback: TcpDestination[] = [
    {
      name: outboundClusterName(port, undefined, service.hostname),
      weight: 1,
      ...(fallbackPolicy ? { policy: fallbackPolicy } : {}),
    },
  ];
  const vs = push.virtualServiceFor(proxy, service.hostname, gateway);
  const spec = vs?.spec as VirtualServiceSpec | undefined;
  const chains: L4Chain[] = [];
  let catchAll: L4Chain | undefined;
  for (const route of spec?.tcp ?? []) {
    const dests = destinations(push, route.route, vs!.metadata.namespace, port, proxy);
    if (dests.length === 0) continue;
    const matches = route.match?.length
      ? route.match.filter((m) => l4Applies(m, proxy, port, vs!.metadata.namespace, gateway))
      : [{}];
    for (const m of matches as L4MatchAttributes[]) {
      const filter = tcpProxyFilter(dests[0]!.name, dests);
      if (m.destinationSubnets?.length)
        chains.push({ match: { prefix_ranges: m.destinationSubnets.map(cidr) }, filter });
      else catchAll ??= { filter };
    }
  }
  chains.push(catchAll ?? { filter: tcpProxyFilter(fallback[0]!.name, fallback) });
  return chains;
}

/**
 * The chains of an outbound TLS port: TLS is passed through, unterminated,
 * to the cluster the SNI selects — the VirtualService's `tls` routes by
 * `sniHosts`, else the service's own hostname.
 */
export function tlsChains(
  push: PushContext,
  proxy: ProxyInfo,
  services: Service[],
  port: number,
  gateway = MESH_GATEWAY,
): L4Chain[] {
  const chains: L4Chain[] = [];
  const claimed = new Set<string>();
  for (const service of services) {
    const vs = push.virtualServiceFor(proxy, service.hostname, gateway);
    const spec = vs?.spec as VirtualServiceSpec | undefined;
    for (const route of spec?.tls ?? []) {
      const dests = destinations(push, route.route, vs!.metadata.namespace, port);
      if (dests.length === 0) continue;
      for (const m of route.match.filter((x) => l4Applies(x, proxy, port, vs!.metadata.namespace, gateway))) {
        const names = m.sniHosts.filter((h) => !claimed.has(h));
        if (names.length === 0) continue;
        for (const n of names) claimed.add(n);
        const match: Json = { server_names: names };
        if (m.destinationSubnets?.length) match.prefix_ranges = m.destinationSubnets.map(cidr);
        chains.push({ match, filter: tcpProxyFilter(dests[0]!.name, dests) });
      }
    }
    if (!claimed.has(service.hostname)) {
      claimed.add(service.hostname);
      const cluster = outboundClusterName(port, undefined, service.hostname);
      chains.push({
        match: { server_names: [service.hostname] },
        filter: tcpProxyFilter(cluster, [{ name: cluster, weight: 1 }]),
      });
    }
  }
  return chains;
}
