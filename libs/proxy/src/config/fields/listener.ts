import { type Fields, HONOURED, honouredWhen, INERT, OWN_CHECK, typed } from '../understood.js';
import { ADDRESS, ADS_CONFIG_SOURCE, METADATA } from './common.js';

/**
 * The fields of a Listener this proxy honours, with its filter chains and
 * the HTTP connection manager. The network filters' and HTTP filters'
 * configs are checked by their own compilers (tcp_proxy, RBAC, istio.stats,
 * the HTTP filter registry), the route table by RouteTable, the TLS contexts
 * by compileTransportSocket. Anything else — socket options, connection
 * balancing, listener access logs… — makes the proxy refuse the listener,
 * naming the field.
 */

export const ORIGINAL_DST_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst';
export const HTTP_INSPECTOR_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';
export const TLS_INSPECTOR_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
export const PROXY_PROTOCOL_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol';

/**
 * Listener filters whose job (the original destination, sniffing the
 * protocol, PROXY headers) the proxy does natively when a listener names them.
 */
export const LISTENER_FILTERS: Fields = {
  // Names the filter's extension; the typed config says what it is.
  name: INERT,
  typed_config: typed({
    [ORIGINAL_DST_TYPE]: {},
    [HTTP_INSPECTOR_TYPE]: {},
    [TLS_INSPECTOR_TYPE]: {},
    [PROXY_PROTOCOL_TYPE]: { allow_requests_without_proxy_protocol: HONOURED },
  }),
};

const FILTER_CHAIN_MATCH: Fields = {
  destination_port: HONOURED,
  prefix_ranges: { address_prefix: HONOURED, prefix_len: HONOURED },
  direct_source_prefix_ranges: { address_prefix: HONOURED, prefix_len: HONOURED },
  server_names: HONOURED,
  transport_protocol: HONOURED,
  application_protocols: HONOURED,
  source_type: HONOURED,
  source_prefix_ranges: { address_prefix: HONOURED, prefix_len: HONOURED },
  source_ports: HONOURED,
};

const FILTER_CHAIN: Fields = {
  // Names the chain in logs and NACK reasons.
  name: INERT,
  filter_chain_match: FILTER_CHAIN_MATCH,
  // The network filters' configs: compileNetworkFilter runs (or refuses) each type, which checks its own.
  filters: { name: HONOURED, typed_config: OWN_CHECK },
  transport_socket: OWN_CHECK,
  metadata: METADATA,
};

export const LISTENER: Fields = {
  name: HONOURED,
  address: ADDRESS,
  bind_to_port: HONOURED,
  use_original_dst: HONOURED,
  traffic_direction: HONOURED,
  filter_chains: FILTER_CHAIN,
  default_filter_chain: FILTER_CHAIN,
  listener_filters: LISTENER_FILTERS,
  listener_filters_timeout: HONOURED,
  // A connection whose first bytes are late is handled without them (true, as Istio sets it);
  // closing it instead (false) is not implemented.
  continue_on_listener_filters_timeout: honouredWhen((v) =>
    v === true ? undefined : 'must be true: connections whose first bytes are late are never closed for it',
  ),
  // Bounds how much Envoy buffers per connection before pushing back; the proxy's sockets and
  // streams push back by their own high-water marks, and no request is answered differently.
  per_connection_buffer_limit_bytes: INERT,
  metadata: METADATA,
};

/** envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager. */
export const HTTP_CONNECTION_MANAGER: Fields = {
  stat_prefix: HONOURED,
  rds: { route_config_name: HONOURED, config_source: ADS_CONFIG_SOURCE },
  route_config: OWN_CHECK,
  http_filters: { name: HONOURED, typed_config: OWN_CHECK, is_optional: HONOURED },
  use_remote_address: HONOURED,
  xff_num_trusted_hops: HONOURED,
  generate_request_id: HONOURED,
  forward_client_cert_details: HONOURED,
  set_current_client_cert_details: {
    subject: HONOURED,
    uri: HONOURED,
    dns: HONOURED,
    cert: HONOURED,
    chain: honouredWhen((v) =>
      v === false ? undefined : 'must be false: the client certificate chain is not forwarded',
    ),
  },
  upgrade_configs: { upgrade_type: HONOURED, enabled: HONOURED },
  // compileTracing and compileAccessLogs check these.
  tracing: OWN_CHECK,
  access_log: OWN_CHECK,
  request_headers_timeout: HONOURED,
  max_request_headers_kb: HONOURED,
};
