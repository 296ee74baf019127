import type { ResourceSet } from '@mizzen/xds';
import { grpcListenerName } from '../model/names.js';
import type { ProxyInfo } from '../model/proxy.js';
import { buildOutboundClusters } from './clusters.js';
import { serviceDomains } from './domains.js';
import { resourceSet } from './endpoints.js';
import { ADS_CONFIG_SOURCE, HCM_TYPE, type Json, outboundHttpFilters, RAW_BUFFER } from './envoy.js';
import { defaultRouteFor, translateHttpRoutes } from './http-routes.js';
import type { PushContext } from './push-context.js';

/**
 * Resources for proxyless gRPC clients (`GENERATOR: grpc`): for every service
 * port an API listener named `host:port` whose HTTP connection manager points
 * at a route table of the same name — the names grpc-js-xds asks for when it
 * resolves `xds:///host:port`. The server sends only what each client asks for.
 */
export function buildProxylessResources(push: PushContext, proxy: ProxyInfo): ResourceSet {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  for (const service of push.servicesFor(proxy)) {
    for (const port of service.ports) {
      const name = grpcListenerName(service.hostname, port.port);
      listeners.push({
        name,
        api_listener: {
          api_listener: {
            '@type': HCM_TYPE,
            stat_prefix: name,
            rds: { route_config_name: name, config_source: ADS_CONFIG_SOURCE },
            http_filters: outboundHttpFilters(true),
          },
        },
      });
      const vs = push.virtualServiceFor(proxy, service.hostname);
      const routeList = vs
        ? translateHttpRoutes(vs, {
            push,
            proxy,
            gateway: 'mesh',
            matchPort: port.port,
            listenerPort: port.port,
            proxyless: true,
          })
        : [defaultRouteFor(push, proxy, service, port.port, true)];
      routes.push({
        name,
        virtual_hosts: [
          {
            name,
            domains: serviceDomains(service, port.port, proxy.namespace, push.mesh.domainSuffix),
            routes: routeList.filter((r) => r.route !== undefined).map(grpcRoute),
          },
        ],
      });
    }
  }
  const clusters = buildOutboundClusters(push, proxy).map(grpcCluster);
  return resourceSet(push, proxy, { listeners, routes, clusters });
}

const PROXY_PROTOCOL_SOCKET = 'envoy.transport_sockets.upstream_proxy_protocol';

/** A transport socket without the upstream_proxy_protocol around it (raw buffer: none at all). */
function withoutProxyProtocol(ts: Json | undefined): Json | undefined {
  if (ts?.name !== PROXY_PROTOCOL_SOCKET) return ts;
  const inner = (ts.typed_config as Json).transport_socket as Json | undefined;
  return inner?.name === RAW_BUFFER.name ? undefined : inner;
}

/**
 * A route as gRPC reads it (gRFC A28/A31): gRPC takes the route's timeout
 * from max_stream_duration, as Istio sets it for proxyless clients. Routes
 * that answer without an upstream (redirect, directResponse) were left out
 * above: gRPC rejects a whole route table that has one.
 */
function grpcRoute(route: Json): Json {
  const action = route.route as Json;
  const timeout = action.timeout as string | undefined;
  if (timeout === undefined || timeout === '0s') return route;
  return { ...route, route: { ...action, max_stream_duration: { max_stream_duration: timeout } } };
}

/**
 * A cluster as @grpc/grpc-js-xds accepts it, from the same DestinationRule:
 *
 * - gRPC balances with ROUND_ROBIN or RING_HASH only (anything else makes it
 *   reject the cluster): a consistent hash with Maglev becomes a ring hash,
 *   the other simple policies round robin (Istio warns and does the same);
 * - gRPC's outlier detection (gRFC A50) has no consecutive-error detector,
 *   only success-rate and failure-percentage ones. consecutive5xxErrors (or
 *   consecutiveGatewayErrors) N becomes failure-percentage ejection: a host
 *   with at least N calls in an interval, more than (N−1)/N of them failed,
 *   is ejected — with the same interval, base ejection time (growing with
 *   repeated ejections) and maxEjectionPercent.
 */
function grpcCluster(cluster: Json): Json {
  const out: Json = { ...cluster };
  // gRPC cannot send a PROXY header: it gets the transport inside the upstream_proxy_protocol wrapper.
  const inner = withoutProxyProtocol(out.transport_socket as Json | undefined);
  if (inner === undefined) delete out.transport_socket;
  else out.transport_socket = inner;
  if (out.transport_socket_matches)
    out.transport_socket_matches = (out.transport_socket_matches as Json[]).map((m) => ({
      ...m,
      transport_socket: withoutProxyProtocol(m.transport_socket as Json | undefined),
    }));
  if (out.lb_policy === 'MAGLEV') {
    out.lb_policy = 'RING_HASH';
    const size = (out.maglev_lb_config as Json | undefined)?.table_size;
    delete out.maglev_lb_config;
    if (size) out.ring_hash_lb_config = { minimum_ring_size: size };
  } else if (out.lb_policy !== 'RING_HASH' && out.lb_policy !== 'CLUSTER_PROVIDED') {
    out.lb_policy = 'ROUND_ROBIN';
    delete out.least_request_lb_config;
  }
  const od = out.outlier_detection as Json | undefined;
  if (od) {
    const counts = [
      od.enforcing_consecutive_5xx ? (od.consecutive_5xx as number | undefined) : undefined,
      od.enforcing_consecutive_gateway_failure
        ? (od.consecutive_gateway_failure as number | undefined)
        : undefined,
    ].filter((n): n is number => n !== undefined && n > 0);
    if (counts.length) {
      const n = Math.min(...counts);
      out.outlier_detection = {
        ...od,
        enforcing_failure_percentage: 100,
        failure_percentage_request_volume: n,
        failure_percentage_minimum_hosts: 1,
        failure_percentage_threshold: Math.ceil((100 * (n - 1)) / n),
      };
    }
  }
  return out;
}
