/** Small builders for the Envoy JSON shapes every generator needs. */

export type Json = Record<string, unknown>;

export const HCM_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

export const ADS_CONFIG_SOURCE = { ads: {}, resource_api_version: 'V3' };

export function socketAddress(address: string, port: number): Json {
  return { socket_address: { address, port_value: port } };
}

/** Envoy's plaintext transport socket. */
export const RAW_BUFFER: Json = {
  name: 'envoy.transport_sockets.raw_buffer',
  typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer' },
};

/** A Unix domain socket address: a path, or `@name` in Linux's abstract namespace. */
export function pipeAddress(path: string): Json {
  return { pipe: { path } };
}

/** An endpoint's Envoy address: a pipe for a Unix socket, else IP and port. */
export function endpointAddress(e: { address: string; port: number; pipe?: boolean }): Json {
  return e.pipe ? pipeAddress(e.address) : socketAddress(e.address, e.port);
}

export const FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
export const CORS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
export const CORS_POLICY_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';
export const FAULT_FILTER = 'envoy.filters.http.fault';
export const CORS_FILTER = 'envoy.filters.http.cors';

export function routerFilter(): Json {
  return { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } };
}

/**
 * The HTTP filters of an outbound or gateway connection manager, in Istio's
 * order: fault injection and CORS (configured per route), then the router.
 * Proxyless gRPC clients get fault injection only (gRPC has no CORS filter).
 */
export function outboundHttpFilters(proxyless = false): Json[] {
  const fault = { name: FAULT_FILTER, typed_config: { '@type': FAULT_TYPE } };
  const cors = { name: CORS_FILTER, typed_config: { '@type': CORS_TYPE } };
  return proxyless ? [fault, routerFilter()] : [cors, fault, routerFilter()];
}

/** An HTTP connection manager network filter using RDS (`routeName`) or an inline route table. */
export function httpConnectionManager(
  statPrefix: string,
  routes: { rds: string } | { inline: Json },
  extra: Json = {},
  httpFilters: Json[] = [routerFilter()],
): Json {
  const routeSpec =
    'rds' in routes
      ? { rds: { route_config_name: routes.rds, config_source: ADS_CONFIG_SOURCE } }
      : { route_config: routes.inline };
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM_TYPE,
      stat_prefix: statPrefix,
      ...routeSpec,
      http_filters: httpFilters,
      // Istio allows WebSocket upgrades on every HTTP connection manager.
      upgrade_configs: [{ upgrade_type: 'websocket' }],
      ...extra,
    },
  };
}

export function tcpProxy(statPrefix: string, cluster: string): Json {
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: statPrefix, cluster },
  };
}
