import type { GatewaySpec, Server } from '@mizzen/api';
import type { ResourceSet } from '@mizzen/xds';
import { gatewayRouteName, outboundListenerName } from '../model/names.js';
import { bindAddress, type ProxyInfo } from '../model/proxy.js';
import { hostMatches } from '../registry/model.js';
import { buildOutboundClusters, buildPassthroughClusters } from './clusters.js';
import { resourceSet } from './endpoints.js';
import { httpConnectionManager, type Json, outboundHttpFilters, socketAddress } from './envoy.js';
import { translateHttpRoutes } from './http-routes.js';
import { GATEWAY_XFCC } from './mtls.js';
import type { GatewayResource, PushContext } from './push-context.js';
import { securityFilters } from './security-filters.js';
import { hcmTelemetry, statsFilter, withStatsFilter } from './telemetry.js';

/** Plaintext HTTP servers are served now; TLS servers arrive with the gateways work. */
const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC']);

export interface GatewayServer {
  gateway: GatewayResource;
  server: Server;
  /** The port the proxy listens on (the Service → container port map applied). */
  listenPort: number;
}

/** Servers of the gateways selecting this proxy, with the container port each one binds. */
export function gatewayServers(push: PushContext, proxy: ProxyInfo): GatewayServer[] {
  const out: GatewayServer[] = [];
  for (const gateway of push.gatewaysFor(proxy)) {
    for (const server of (gateway.spec as GatewaySpec).servers ?? []) {
      const protocol = (server.port.protocol ?? '').toUpperCase();
      if (!HTTP_PROTOCOLS.has(protocol) || server.tls) continue;
      out.push({ gateway, server, listenPort: proxy.gatewayPorts[server.port.number] ?? server.port.number });
    }
  }
  return out;
}

// `ns/host`, `*/host`, `./host` or `host` in a Gateway server → the namespace filter and host.
function splitServerHost(entry: string, gatewayNamespace: string): { namespace: string; host: string } {
  const slash = entry.indexOf('/');
  if (slash < 0) return { namespace: '*', host: entry };
  const ns = entry.slice(0, slash);
  return { namespace: ns === '.' ? gatewayNamespace : ns, host: entry.slice(slash + 1) };
}

/** The more specific of two matching hosts (`reviews.example.com` over `*.example.com`). */
function intersectHosts(a: string, b: string): string | undefined {
  if (hostMatches(a, b)) return b.includes('*') && !a.includes('*') ? a : b;
  if (hostMatches(b, a)) return a;
  return undefined;
}

function gatewayDomains(host: string): string[] {
  return host === '*' ? ['*'] : [host, `${host}:*`];
}

/** The `http.<port>` route table: a virtual host per (VirtualService host ∩ server host); anything else is 404. */
export function buildGatewayRouteConfig(
  push: PushContext,
  proxy: ProxyInfo,
  listenPort: number,
  servers: GatewayServer[],
): Json {
  const vhosts = new Map<string, { domains: string[]; routes: Json[]; port: number; sources: Set<string> }>();
  for (const { gateway, server } of servers.filter((s) => s.listenPort === listenPort)) {
    const gwName = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
    const serverHosts = (server.hosts ?? []).map((h) => splitServerHost(h, gateway.metadata.namespace));
    for (const vs of push.virtualServicesForGateway(gwName)) {
      for (const vsHost of push.vsHosts(vs)) {
        for (const sh of serverHosts) {
          if (sh.namespace !== '*' && sh.namespace !== vs.metadata.namespace) continue;
          const host = intersectHosts(sh.host, vsHost);
          if (!host) continue;
          let vh = vhosts.get(host);
          if (!vh) {
            vh = { domains: gatewayDomains(host), routes: [], port: server.port.number, sources: new Set() };
            vhosts.set(host, vh);
          }
          // Several VirtualServices for one host are merged in creation order, as Istio does at gateways.
          const source = `${vs.metadata.namespace}/${vs.metadata.name}`;
          if (vh.sources.has(source)) break;
          vh.sources.add(source);
          const routes = translateHttpRoutes(vs, {
            push,
            proxy,
            gateway: gwName,
            matchPort: server.port.number,
            listenerPort: server.port.number,
          });
          vh.routes.push(...routes);
          break;
        }
      }
    }
  }
  const virtualHosts = [...vhosts.entries()]
    .sort(([a], [b]) => (a === '*' ? 1 : b === '*' ? -1 : a < b ? -1 : a > b ? 1 : 0))
    .map(([host, vh]) => ({ name: `${host}:${vh.port}`, domains: vh.domains, routes: vh.routes }));
  return { name: gatewayRouteName(listenPort), virtual_hosts: virtualHosts, validate_clusters: false };
}

/** Every resource a gateway gets: a listener and route table per server port, and every outbound cluster. */
export function buildGatewayResources(push: PushContext, proxy: ProxyInfo): ResourceSet {
  const servers = gatewayServers(push, proxy);
  const ports = [...new Set(servers.map((s) => s.listenPort))].sort((a, b) => a - b);
  // Istio's order: authentication, authorization, then CORS, fault and the router.
  const security = securityFilters(push, proxy);
  const listeners = ports.map((port) => ({
    name: outboundListenerName(port),
    address: socketAddress(bindAddress(proxy), port),
    traffic_direction: 'OUTBOUND',
    filter_chains: [
      {
        filters: [
          httpConnectionManager(
            `outbound_0.0.0.0_${port}`,
            { rds: gatewayRouteName(port) },
            { use_remote_address: true, ...GATEWAY_XFCC, ...hcmTelemetry(push, proxy, 'client') },
            withStatsFilter([...security.http, ...outboundHttpFilters()], statsFilter(push, proxy, 'client')),
          ),
        ],
      },
    ],
  }));
  const routes = ports.map((port) => buildGatewayRouteConfig(push, proxy, port, servers));
  const clusters = [...buildOutboundClusters(push, proxy), ...buildPassthroughClusters(push)];
  return resourceSet(push, proxy, { listeners, routes, clusters });
}
