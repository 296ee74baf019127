import type { ResourceSet } from '@mizzen/xds';
import {
  BLACKHOLE_CLUSTER,
  inboundClusterName,
  inboundListenerName,
  outboundClusterName,
  outboundListenerName,
  outboundRouteName,
  PASSTHROUGH_CLUSTER,
  VIRTUAL_OUTBOUND,
} from '../model/names.js';
import { isHttpProtocol } from '../model/protocol.js';
import { bindAddress, type ProxyInfo } from '../model/proxy.js';
import { buildInboundClusters, buildOutboundClusters, buildPassthroughClusters } from './clusters.js';
import { serviceDomains } from './domains.js';
import { resourceSet } from './endpoints.js';
import { httpConnectionManager, type Json, outboundHttpFilters, socketAddress, tcpProxy } from './envoy.js';
import { defaultRouteFor, translateHttpRoutes } from './http-routes.js';
import type { PushContext } from './push-context.js';

/** Ports the proxy's outbound side handles, each as HTTP (RDS) or TCP (one destination). */
function outboundPorts(
  push: PushContext,
  proxy: ProxyInfo,
): Map<number, { http: boolean; tcpCluster?: string }> {
  const ports = new Map<number, { http: boolean; tcpCluster?: string }>();
  for (const service of push.servicesFor(proxy)) {
    for (const port of service.ports) {
      const existing = ports.get(port.port);
      if (isHttpProtocol(port.protocol)) ports.set(port.port, { http: true });
      else if (!existing) {
        ports.set(port.port, {
          http: false,
          tcpCluster: outboundClusterName(port.port, undefined, service.hostname),
        });
      }
    }
  }
  return ports;
}

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
    if (!sp || !isHttpProtocol(sp.protocol)) continue;
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

function inboundListeners(proxy: ProxyInfo): Json[] {
  const address = bindAddress(proxy);
  return proxy.ports.map((port) => {
    const cluster = inboundClusterName(port.targetPort);
    const filter = isHttpProtocol(port.protocol)
      ? httpConnectionManager(`inbound_0.0.0.0_${port.targetPort}`, {
          inline: {
            name: `inbound|${port.targetPort}||`,
            validate_clusters: false,
            virtual_hosts: [
              {
                name: `inbound|http|${port.port}`,
                domains: ['*'],
                routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster, timeout: '0s' } }],
              },
            ],
          },
        })
      : tcpProxy(cluster, cluster);
    return {
      name: inboundListenerName(address, port.listenPort),
      address: socketAddress(address, port.listenPort),
      traffic_direction: 'INBOUND',
      filter_chains: [{ name: cluster, filters: [filter] }],
    };
  });
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
  for (const [port, kind] of [...outboundPorts(push, proxy).entries()].sort((a, b) => a[0] - b[0])) {
    const filter = kind.http
      ? httpConnectionManager(
          `outbound_0.0.0.0_${port}`,
          { rds: outboundRouteName(port) },
          {},
          outboundHttpFilters(),
        )
      : tcpProxy(kind.tcpCluster!, kind.tcpCluster!);
    listeners.push({
      name: outboundListenerName(port),
      address: socketAddress('0.0.0.0', port),
      bind_to_port: false,
      traffic_direction: 'OUTBOUND',
      filter_chains: [{ filters: [filter] }],
    });
    if (kind.http) routes.push(buildOutboundRouteConfig(push, proxy, port));
  }
  listeners.push(...inboundListeners(proxy));

  const clusters = [
    ...buildOutboundClusters(push, proxy),
    ...buildInboundClusters(push, proxy),
    ...buildPassthroughClusters(push),
  ];
  return resourceSet(push, proxy, { listeners, routes, clusters });
}
