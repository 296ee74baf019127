import type { L4MatchAttributes, TLSMatchAttributes, VirtualServiceSpec } from '@mizzen/api';
import type { ProxyInfo } from '../model/proxy.js';
import { isVisible } from '../registry/model.js';
import type { Json } from './envoy.js';
import { type GatewayServer, hostsOverlap, splitServerHost } from './gateway-servers.js';
import { destinations, tcpProxyFilter } from './l4-routes.js';
import { type PushContext, resolveGatewayRef, type VirtualServiceResource } from './push-context.js';

/** One L4 filter chain of a gateway listener: the SNI names it matches (none: any) and its tcp_proxy. */
export interface GatewayL4Chain {
  serverNames: string[];
  filter: Json;
}

/**
 * VirtualServices bound to a server's Gateway that this gateway may see
 * (exportTo, relative to the gateway's namespace) and whose hosts one of the
 * server's hosts admits (`ns/host` limits the VirtualService's namespace).
 */
export function boundVirtualServices(
  push: PushContext,
  proxy: ProxyInfo,
  s: GatewayServer,
): { vs: VirtualServiceResource; hosts: string[] }[] {
  const serverHosts = s.server.hosts.map((h) => splitServerHost(h, s.gateway.metadata.namespace));
  const out: { vs: VirtualServiceResource; hosts: string[] }[] = [];
  for (const vs of push.virtualServicesForGateway(s.gatewayName)) {
    const spec = vs.spec as VirtualServiceSpec;
    // exportTo, else the mesh's defaultVirtualServiceExportTo.
    if (!isVisible(push.exportTo('VirtualService', spec.exportTo), vs.metadata.namespace, proxy.namespace))
      continue;
    const hosts = push
      .vsHosts(vs)
      .filter((h) =>
        serverHosts.some(
          (sh) =>
            (sh.namespace === '*' || sh.namespace === vs.metadata.namespace) && hostsOverlap(sh.host, h),
        ),
      );
    if (hosts.length) out.push({ vs, hosts });
  }
  return out;
}

/** Istio's L4 match rules at a gateway: the server's port, and this gateway among the match's gateways. */
function applies(m: L4MatchAttributes | TLSMatchAttributes, s: GatewayServer, vsNamespace: string): boolean {
  if (m.port !== undefined && m.port !== s.server.port.number) return false;
  if (m.gateways?.length && !m.gateways.map((g) => resolveGatewayRef(g, vsNamespace)).includes(s.gatewayName))
    return false;
  return true;
}

/**
 * A TCP server (or a TLS server that terminates): the first `tcp` route of
 * the VirtualServices bound to it that applies, as a tcp_proxy. None: the
 * server has nowhere to send connections.
 */
export function gatewayTcpChain(
  push: PushContext,
  proxy: ProxyInfo,
  s: GatewayServer,
): GatewayL4Chain | undefined {
  for (const { vs } of boundVirtualServices(push, proxy, s)) {
    for (const route of (vs.spec as VirtualServiceSpec).tcp ?? []) {
      const matches = route.match?.length ? route.match : [{}];
      if (!matches.some((m) => applies(m, s, vs.metadata.namespace))) continue;
      const dests = destinations(push, route.route, vs.metadata.namespace, s.server.port.number, proxy);
      if (dests.length === 0) continue;
      return { serverNames: s.sniHosts, filter: tcpProxyFilter(dests[0]!.name, dests) };
    }
  }
  return undefined;
}

/**
 * A PASSTHROUGH server: one chain per `tls` route match, by the SNI names
 * both the match and the server admit, to that route's destinations — the
 * TLS is never opened, the client talks to the backend end to end.
 */
export function gatewayPassthroughChains(
  push: PushContext,
  proxy: ProxyInfo,
  s: GatewayServer,
  claimed: Set<string>,
): GatewayL4Chain[] {
  const serverHosts = s.server.hosts.map((h) => splitServerHost(h, s.gateway.metadata.namespace).host);
  const chains: GatewayL4Chain[] = [];
  for (const { vs } of boundVirtualServices(push, proxy, s)) {
    for (const route of (vs.spec as VirtualServiceSpec).tls ?? []) {
      const dests = destinations(push, route.route, vs.metadata.namespace, s.server.port.number);
      if (dests.length === 0) continue;
      for (const m of route.match.filter((x) => applies(x, s, vs.metadata.namespace))) {
        const names = m.sniHosts.filter(
          (sni) => !claimed.has(sni) && serverHosts.some((h) => h === '*' || hostsOverlap(h, sni)),
        );
        if (names.length === 0) continue;
        for (const n of names) claimed.add(n);
        chains.push({ serverNames: names, filter: tcpProxyFilter(dests[0]!.name, dests) });
      }
    }
  }
  return chains;
}
