import type { ResourceSet } from '@mizzen/xds';
import { BLACKHOLE_CLUSTER, gatewayRouteName, outboundListenerName } from '../model/names.js';
import { bindAddress, type ProxyInfo } from '../model/proxy.js';
import { hostMatches } from '../registry/model.js';
import { buildOutboundClusters, buildPassthroughClusters } from './clusters.js';
import { resourceSet } from './endpoints.js';
import { httpConnectionManager, type Json, outboundHttpFilters, socketAddress, tcpProxy } from './envoy.js';
import { autoPassthroughChains, autoPassthroughClusters } from './gateway-auto-passthrough.js';
import { boundVirtualServices, gatewayPassthroughChains, gatewayTcpChain } from './gateway-l4.js';
import {
  type GatewayPlan,
  type GatewayServer,
  planGateway,
  type ServerNotice,
  splitServerHost,
} from './gateway-servers.js';
import { gatewayDownstreamTls } from './gateway-tls.js';
import { type GatewayTopology, gatewayTopologyFor } from './gateway-topology.js';
import { translateHttpRoutes } from './http-routes.js';
import { GATEWAY_XFCC, TLS_INSPECTOR } from './mtls.js';
import type { PushContext } from './push-context.js';
import {
  type RateLimitConfig,
  rateLimitConfig,
  withRateLimitActions,
  withRateLimitFilters,
} from './rate-limits.js';
import { securityFilters } from './security-filters.js';
import { hcmTelemetry, statsFilter, withStatsFilter, withTcpTelemetry } from './telemetry.js';

const PROXY_PROTOCOL = {
  name: 'envoy.filters.listener.proxy_protocol',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol',
  },
};

/** Where a listener carries pilot's reasons for what it left out (the gateway logs them). */
const GATEWAY_METADATA = 'mizzen.io/gateway';

/**
 * How long a client may take over its request headers at the edge. Istio
 * sets none (Envoy's default is none); Envoy's edge-proxy guidance sets one,
 * and without it a slowloris holds a connection forever.
 */
const EDGE_REQUEST_HEADERS_TIMEOUT = '10s';

/**
 * The largest request header block a gateway accepts (431 beyond it): Envoy's
 * default, 60 KiB, set explicitly so every proxy — whatever its own default —
 * enforces the same bound at the edge.
 */
const EDGE_MAX_REQUEST_HEADERS_KB = 60;

/** How long a client may take to send its ClientHello (or PROXY header) before the gateway gives up. */
const EDGE_LISTENER_FILTERS_TIMEOUT = '5s';

/** `https.443.https.bookinfo-gateway.default`: Istio's route table per terminating server. */
export function httpsRouteName(s: GatewayServer): string {
  return `https.${s.server.port.number}.${s.server.port.name ?? `port-${s.index}`}.${s.gateway.metadata.name}.${s.gateway.metadata.namespace}`;
}

/** The more specific of two matching hosts (`reviews.example.com` over `*.example.com`). */
function intersectHosts(a: string, b: string): string | undefined {
  if (hostMatches(a, b)) return b.includes('*') && !a.includes('*') ? a : b;
  if (hostMatches(b, a)) return a;
  return undefined;
}

/**
 * The domains of a gateway virtual host: the host, and the host with a port
 * (clients send `host:port` when the port is not the scheme's default). For
 * a name Istio adds `host:*`; a wildcard host cannot take a second wildcard
 * (Envoy reads `*.example.com:*` as the literal suffix `.example.com:*`), so
 * it gets the ports a client can name: the server's port and the one the
 * gateway really listens on.
 */
function gatewayDomains(host: string, ports: readonly number[]): string[] {
  if (host === '*') return ['*'];
  if (!host.startsWith('*')) return [host, `${host}:*`];
  return [host, ...[...new Set(ports)].sort((a, b) => a - b).map((p) => `${host}:${p}`)];
}

/**
 * httpsRedirect: every request to the host is sent to HTTPS (Istio sets
 * `require_tls: ALL`). A redirect route says the same, and can also name the
 * port HTTPS really listens on when the gateway maps 443 elsewhere (local mode).
 */
function httpsRedirectRoute(httpsPort: number | undefined): Json {
  return {
    name: 'https_redirect',
    match: { prefix: '/' },
    redirect: {
      https_redirect: true,
      ...(httpsPort && httpsPort !== 443 ? { port_redirect: httpsPort } : {}),
    },
  };
}

/**
 * The virtual hosts of a set of servers: one per (VirtualService host ∩ server
 * host), several VirtualServices for one host merged in creation order, as
 * Istio does at gateways; anything else gets 404.
 */
function virtualHosts(
  push: PushContext,
  proxy: ProxyInfo,
  servers: GatewayServer[],
  plan: GatewayPlan,
): Json[] {
  const vhosts = new Map<
    string,
    { routes: Json[]; port: number; listenPort: number; sources: Set<string>; redirect: boolean }
  >();
  for (const s of servers) {
    const serverHosts = s.server.hosts.map((h) => splitServerHost(h, s.gateway.metadata.namespace));
    for (const { vs } of boundVirtualServices(push, proxy, s)) {
      for (const vsHost of push.vsHosts(vs)) {
        for (const sh of serverHosts) {
          if (sh.namespace !== '*' && sh.namespace !== vs.metadata.namespace) continue;
          const host = intersectHosts(sh.host, vsHost);
          if (!host) continue;
          let vh = vhosts.get(host);
          if (!vh) {
            vh = {
              routes: [],
              port: s.server.port.number,
              listenPort: s.listenPort,
              sources: new Set(),
              redirect: false,
            };
            vhosts.set(host, vh);
          }
          vh.redirect ||= s.server.tls?.httpsRedirect === true;
          const source = `${vs.metadata.namespace}/${vs.metadata.name}`;
          if (vh.sources.has(source)) break;
          vh.sources.add(source);
          vh.routes.push(
            ...translateHttpRoutes(vs, {
              push,
              proxy,
              gateway: s.gatewayName,
              matchPort: s.server.port.number,
              listenerPort: s.server.port.number,
              tls: s.kind === 'https',
            }),
          );
          break;
        }
      }
    }
  }
  return [...vhosts.entries()]
    .sort(([a], [b]) => (a === '*' ? 1 : b === '*' ? -1 : a < b ? -1 : a > b ? 1 : 0))
    .map(([host, vh]) => ({
      name: `${host}:${vh.port}`,
      domains: gatewayDomains(host, [vh.port, vh.listenPort]),
      routes: vh.redirect ? [httpsRedirectRoute(httpsPortFor(plan, host))] : vh.routes,
    }));
}

/** The port a terminating server for `host` listens on, for redirects. */
function httpsPortFor(plan: GatewayPlan, host: string): number | undefined {
  const https = plan.servers.filter((s) => s.kind === 'https');
  const serving = https.find((s) =>
    s.server.hosts.some((h) => {
      const sh = splitServerHost(h, s.gateway.metadata.namespace).host;
      return sh === '*' || hostMatches(sh, host) || hostMatches(host, sh);
    }),
  );
  return serving?.listenPort;
}

/** The HTTP filters of every gateway connection manager. */
function gatewayHttpFilters(push: PushContext, proxy: ProxyInfo): Json[] {
  // Istio's order: authentication, authorization, then CORS, fault and the router.
  const security = securityFilters(push, proxy);
  return withStatsFilter([...security.http, ...outboundHttpFilters()], statsFilter(push, proxy, 'client'));
}

/** x-forwarded-client-cert at the gateway: Istio's SANITIZE_SET unless gatewayTopology says otherwise. */
function gatewayXfcc(topology: GatewayTopology): Json {
  const mode = topology.forwardClientCertDetails;
  if (!mode || mode === 'UNDEFINED' || mode === 'SANITIZE_SET') return GATEWAY_XFCC;
  return {
    forward_client_cert_details: mode,
    ...(mode === 'APPEND_FORWARD'
      ? { set_current_client_cert_details: GATEWAY_XFCC.set_current_client_cert_details }
      : {}),
  };
}

function gatewayHcm(
  push: PushContext,
  proxy: ProxyInfo,
  listenPort: number,
  rds: string,
  topology: GatewayTopology,
  limits: RateLimitConfig,
): Json {
  return httpConnectionManager(
    `outbound_0.0.0.0_${listenPort}`,
    { rds },
    {
      use_remote_address: true,
      ...(topology.numTrustedProxies ? { xff_num_trusted_hops: topology.numTrustedProxies } : {}),
      ...gatewayXfcc(topology),
      request_headers_timeout: EDGE_REQUEST_HEADERS_TIMEOUT,
      max_request_headers_kb: EDGE_MAX_REQUEST_HEADERS_KB,
      ...hcmTelemetry(push, proxy, 'client'),
    },
    withRateLimitFilters(gatewayHttpFilters(push, proxy), limits),
  );
}

function chain(serverNames: string[], rest: Json): Json {
  return serverNames.length ? { filter_chain_match: { server_names: serverNames }, ...rest } : rest;
}

/** The filter chains (and route tables) of one listening port. */
function portChains(
  push: PushContext,
  proxy: ProxyInfo,
  plan: GatewayPlan,
  port: number,
  servers: GatewayServer[],
  topology: GatewayTopology,
): { chains: Json[]; routes: Json[]; notices: string[] } {
  // RateLimitPolicies by the gateway's labels, or targeting a Gateway that has servers here.
  const limitsFor = (on: GatewayServer[]) =>
    rateLimitConfig(push, proxy, { gateways: on.map((s) => s.gatewayName) });
  if (servers[0]!.kind === 'http') {
    const limits = limitsFor(servers);
    const routeConfig = withRateLimitActions(
      {
        name: gatewayRouteName(port),
        virtual_hosts: virtualHosts(push, proxy, servers, plan),
        validate_clusters: false,
      },
      limits,
    );
    return {
      chains: [{ filters: [gatewayHcm(push, proxy, port, gatewayRouteName(port), topology, limits)] }],
      routes: [routeConfig],
      notices: [],
    };
  }
  const chains: Json[] = [];
  const routes: Json[] = [];
  const notices: string[] = [];
  const claimed = new Set<string>();
  for (const s of servers) {
    const where = `Gateway ${s.gatewayName} server ${s.server.port.name ?? `servers[${s.index}]`} (port ${s.server.port.number})`;
    switch (s.kind) {
      case 'https': {
        const name = httpsRouteName(s);
        const limits = limitsFor([s]);
        routes.push(
          withRateLimitActions(
            { name, virtual_hosts: virtualHosts(push, proxy, [s], plan), validate_clusters: false },
            limits,
          ),
        );
        chains.push(
          chain(s.sniHosts, {
            name,
            transport_socket: gatewayDownstreamTls(s.server.tls!, true),
            filters: [gatewayHcm(push, proxy, port, name, topology, limits)],
          }),
        );
        break;
      }
      case 'tls-terminate':
      case 'tcp': {
        const l4 = gatewayTcpChain(push, proxy, s);
        if (!l4) {
          notices.push(`${where} not opened: no VirtualService tcp route is bound to it`);
          break;
        }
        chains.push(
          chain(l4.serverNames, {
            ...(s.kind === 'tls-terminate'
              ? { transport_socket: gatewayDownstreamTls(s.server.tls!, false) }
              : {}),
            filters: [l4.filter],
          }),
        );
        break;
      }
      case 'tls-auto-passthrough': {
        const l4 = autoPassthroughChains(push, proxy, s, claimed);
        if (l4.length === 0) notices.push(`${where} not opened: no service with endpoints matches its hosts`);
        chains.push(...l4);
        break;
      }
      case 'tls-passthrough': {
        const l4 = gatewayPassthroughChains(push, proxy, s, claimed);
        if (l4.length === 0)
          notices.push(`${where} not opened: no VirtualService tls route matches its hosts`);
        for (const c of l4) chains.push(chain(c.serverNames, { filters: [c.filter] }));
        break;
      }
    }
  }
  return { chains, routes, notices };
}

/** A listener for a port whose servers all stayed closed: never bound, it only carries the reasons to the gateway. */
function closedPortListener(proxy: ProxyInfo, port: number, notices: string[]): Json {
  return {
    name: outboundListenerName(port),
    address: socketAddress(bindAddress(proxy), port),
    bind_to_port: false,
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ name: 'not_opened', filters: [tcpProxy(BLACKHOLE_CLUSTER, BLACKHOLE_CLUSTER)] }],
    metadata: { filter_metadata: { [GATEWAY_METADATA]: { notices } } },
  };
}

/** Messages about servers on a port (closed ones, and overlaps Istio's analyzer flags). */
function noticesOn(notices: readonly ServerNotice[], port: number): string[] {
  return notices.filter((n) => n.listenPort === port).map((n) => n.message);
}

/**
 * Every resource a gateway gets: per listening port a listener (plaintext
 * HTTP routed by Host; TLS chains by SNI that terminate — HTTPS, TLS — or
 * pass through; or TCP), its route tables, the outbound clusters, and over
 * SDS the certificates its servers name. A server that cannot be opened is
 * left out, and why travels with the listener for the gateway's log.
 */
export function buildGatewayResources(push: PushContext, proxy: ProxyInfo): ResourceSet {
  const plan = planGateway(push, proxy);
  const topology = gatewayTopologyFor(push.mesh, proxy);
  const byPort = new Map<number, GatewayServer[]>();
  for (const s of plan.servers) byPort.set(s.listenPort, [...(byPort.get(s.listenPort) ?? []), s]);
  const closedPorts = new Set(plan.notices.filter((n) => !n.opened).map((n) => n.listenPort));
  const ports = [...new Set([...byPort.keys(), ...closedPorts])].sort((a, b) => a - b);
  const listeners: Json[] = [];
  const routes: Json[] = [];
  for (const port of ports) {
    const servers = byPort.get(port) ?? [];
    const built = servers.length ? portChains(push, proxy, plan, port, servers, topology) : undefined;
    const notices = [...noticesOn(plan.notices, port), ...(built?.notices ?? [])];
    if (!built || built.chains.length === 0) {
      listeners.push(closedPortListener(proxy, port, notices));
      continue;
    }
    routes.push(...built.routes);
    const tls = servers[0]!.kind !== 'http' && servers[0]!.kind !== 'tcp';
    const listenerFilters = [
      ...(topology.proxyProtocol ? [PROXY_PROTOCOL] : []),
      ...(tls ? [TLS_INSPECTOR] : []),
    ];
    listeners.push({
      name: outboundListenerName(port),
      address: socketAddress(bindAddress(proxy), port),
      traffic_direction: 'OUTBOUND',
      ...(listenerFilters.length
        ? { listener_filters: listenerFilters, listener_filters_timeout: EDGE_LISTENER_FILTERS_TIMEOUT }
        : {}),
      filter_chains: built.chains,
      ...(notices.length ? { metadata: { filter_metadata: { [GATEWAY_METADATA]: { notices } } } } : {}),
    });
  }
  const clusters = [
    ...buildOutboundClusters(push, proxy),
    ...autoPassthroughClusters(push, proxy, plan.servers),
    ...buildPassthroughClusters(push),
  ];
  return resourceSet(push, proxy, {
    listeners: withTcpTelemetry(push, proxy, listeners),
    routes,
    clusters,
  });
}

/** What `mizzen status` and /debug/syncz show for a gateway: the servers left closed or overlapping, and why. */
export function gatewayNotices(push: PushContext, proxy: ProxyInfo): string[] {
  const plan = planGateway(push, proxy);
  const extra: string[] = [];
  const byPort = new Map<number, GatewayServer[]>();
  for (const s of plan.servers) byPort.set(s.listenPort, [...(byPort.get(s.listenPort) ?? []), s]);
  for (const [port, servers] of byPort) {
    if (servers[0]!.kind === 'http') continue;
    extra.push(...portChains(push, proxy, plan, port, servers, gatewayTopologyFor(push.mesh, proxy)).notices);
  }
  return [...plan.notices.map((n) => n.message), ...extra];
}
