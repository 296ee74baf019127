import {
  type Fields,
  HONOURED,
  honouredOnlyAs,
  honouredWhen,
  INERT,
  mapOf,
  OWN_CHECK,
  typed,
} from '../understood.js';
import { ADDRESS, ADS_CONFIG_SOURCE, METADATA, PERCENT, SOCKET_ADDRESS } from './common.js';
import { TRANSPORT_SOCKET } from './tls.js';

/**
 * The fields of a Cluster and a ClusterLoadAssignment this proxy honours.
 * Anything else — health checks, subsets, success-rate and failure-percentage
 * outlier detection, DNS refresh settings… — makes the proxy refuse the
 * resource, naming the field.
 */

export const HTTP_PROTOCOL_OPTIONS_TYPE =
  'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** Http1ProtocolOptions: the proxy speaks plain HTTP/1.1 and takes none of its tuning. */
const HTTP1_OPTIONS: Fields = {};

/** Http2ProtocolOptions: the stream limit per connection is the one setting the upstream side takes. */
export const HTTP2_OPTIONS: Fields = { max_concurrent_streams: HONOURED };

const PROTOCOL_CHOICE: Fields = {
  http_protocol_options: HTTP1_OPTIONS,
  http2_protocol_options: HTTP2_OPTIONS,
};

const HTTP_PROTOCOL_OPTIONS: Fields = {
  common_http_protocol_options: {
    idle_timeout: HONOURED,
    max_requests_per_connection: HONOURED,
    max_connection_duration: HONOURED,
  },
  explicit_http_config: PROTOCOL_CHOICE,
  use_downstream_protocol_config: PROTOCOL_CHOICE,
};

const SLOW_START: Fields = {
  slow_start_window: HONOURED,
  // No runtime in this proxy: the default value always applies.
  aggression: { default_value: HONOURED, runtime_key: INERT },
  min_weight_percent: PERCENT,
};

/**
 * Envoy enforces success-rate ejection at 100% unless told otherwise; the
 * proxy has no success-rate detector, so only 0 (off, as Istio sets it) is
 * honoured. The same for failure-percentage ejection.
 */
const OFF_ONLY = (detector: string) =>
  honouredWhen((v) => (v === 0 ? undefined : `must be 0: ${detector} ejection is not supported`));

const OUTLIER_DETECTION: Fields = {
  consecutive_5xx: HONOURED,
  enforcing_consecutive_5xx: HONOURED,
  consecutive_gateway_failure: HONOURED,
  enforcing_consecutive_gateway_failure: HONOURED,
  interval: HONOURED,
  base_ejection_time: HONOURED,
  max_ejection_time: HONOURED,
  max_ejection_percent: HONOURED,
  split_external_local_origin_errors: HONOURED,
  consecutive_local_origin_failure: HONOURED,
  enforcing_consecutive_local_origin_failure: HONOURED,
  enforcing_success_rate: OFF_ONLY('success-rate'),
  enforcing_local_origin_success_rate: OFF_ONLY('success-rate'),
  enforcing_failure_percentage: OFF_ONLY('failure-percentage'),
  enforcing_failure_percentage_local_origin: OFF_ONLY('failure-percentage'),
};

const CIRCUIT_BREAKER_THRESHOLDS: Fields = {
  // HIGH thresholds govern requests on HIGH-priority routes; routes here cannot be HIGH
  // (a route's priority is refused), so they govern nothing, as in an Envoy without such routes.
  priority: HONOURED,
  max_connections: HONOURED,
  max_pending_requests: HONOURED,
  max_requests: HONOURED,
  max_retries: HONOURED,
  retry_budget: { budget_percent: PERCENT, min_retry_concurrency: HONOURED },
  // Only publishes remaining-capacity gauges (Envoy's stats); the limits are the same either way.
  track_remaining: INERT,
};

const LB_ENDPOINT: Fields = {
  endpoint: { address: ADDRESS },
  health_status: HONOURED,
  load_balancing_weight: HONOURED,
  metadata: METADATA,
};

export const CLUSTER_LOAD_ASSIGNMENT: Fields = {
  cluster_name: HONOURED,
  endpoints: {
    locality: { region: HONOURED, zone: HONOURED, sub_zone: HONOURED },
    lb_endpoints: LB_ENDPOINT,
    load_balancing_weight: HONOURED,
    priority: HONOURED,
    metadata: METADATA,
  },
  policy: { overprovisioning_factor: HONOURED },
};

/** Mizzen's sidecar upgrade marker (metadata pilot writes): the HTTP/2 options of an upgraded connection. */
export const SIDECAR_UPGRADE_MARKER: Fields = { http2_protocol_options: HTTP2_OPTIONS };

/** upstream_proxy_protocol: the PROXY version, around the transport socket it wraps (checked when compiled). */
export const PROXY_PROTOCOL_SOCKET: Fields = {
  ...TRANSPORT_SOCKET,
  typed_config: { config: { version: HONOURED }, transport_socket: OWN_CHECK },
};

/** The transport sockets (TLS, plain, PROXY protocol around them) are checked by compileTransportSocket. */
const TRANSPORT_SOCKET_MATCH: Fields = {
  // Names the match in Envoy's stats only.
  name: INERT,
  match: HONOURED,
  transport_socket: OWN_CHECK,
};

export const CLUSTER: Fields = {
  name: HONOURED,
  // Names the cluster in Envoy's stats; the proxy's metrics are Istio's, labelled by service.
  alt_stat_name: INERT,
  type: HONOURED,
  eds_cluster_config: { service_name: HONOURED, eds_config: ADS_CONFIG_SOURCE },
  connect_timeout: HONOURED,
  // Bounds how much Envoy buffers per connection before pushing back; the proxy's sockets and
  // streams push back by their own high-water marks, and no request is answered differently.
  per_connection_buffer_limit_bytes: INERT,
  lb_policy: HONOURED,
  // Upstream network filters: compileUpstreamFilters runs Istio's metadata exchange and refuses any other.
  filters: HONOURED,
  load_assignment: CLUSTER_LOAD_ASSIGNMENT,
  circuit_breakers: { thresholds: CIRCUIT_BREAKER_THRESHOLDS },
  outlier_detection: OUTLIER_DETECTION,
  common_lb_config: {
    healthy_panic_threshold: PERCENT,
    locality_weighted_lb_config: {},
  },
  round_robin_lb_config: { slow_start_config: SLOW_START },
  least_request_lb_config: {
    slow_start_config: SLOW_START,
    // The proxy picks the less busy of two random hosts, Envoy's default choice count.
    choice_count: honouredOnlyAs([2], 'the proxy compares two random hosts'),
  },
  ring_hash_lb_config: { minimum_ring_size: HONOURED, maximum_ring_size: HONOURED },
  maglev_lb_config: { table_size: HONOURED },
  typed_extension_protocol_options: mapOf(typed({ [HTTP_PROTOCOL_OPTIONS_TYPE]: HTTP_PROTOCOL_OPTIONS })),
  // The deprecated cluster-level form of "HTTP/2 upstream".
  http2_protocol_options: HTTP2_OPTIONS,
  upstream_connection_options: {
    tcp_keepalive: { keepalive_probes: HONOURED, keepalive_time: HONOURED, keepalive_interval: HONOURED },
  },
  upstream_bind_config: {
    source_address: SOCKET_ADDRESS,
    extra_source_addresses: { address: SOCKET_ADDRESS },
  },
  transport_socket: OWN_CHECK,
  transport_socket_matches: TRANSPORT_SOCKET_MATCH,
  /**
   * Names are resolved when a connection is made, by the system resolver
   * trying both families (Node's happy eyeballs): what AUTO, V4_PREFERRED
   * and ALL ask for. Keeping to one family would need filtering it does not do.
   */
  dns_lookup_family: honouredOnlyAs(
    ['AUTO', 'V4_PREFERRED', 'ALL'],
    'names resolve to both address families here',
  ),
  metadata: METADATA,
};
