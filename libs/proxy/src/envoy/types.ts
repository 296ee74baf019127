/**
 * The parts of Envoy's v3 API (as decoded by @mizzen/xds: proto field names,
 * Any expanded with `@type`, durations as `"1.5s"`, wrappers as plain values)
 * that the data plane reads. Everything is optional because protobuf omits
 * defaults; the compilers in ../config turn these into checked runtime shapes.
 */

export interface SocketAddressJson {
  address?: string;
  port_value?: number;
  protocol?: string;
}

export interface AddressJson {
  socket_address?: SocketAddressJson;
  /** A Unix domain socket: a filesystem path, or `@name` in Linux's abstract namespace. */
  pipe?: { path?: string; mode?: number };
}

export interface TypedConfig {
  '@type': string;
  [key: string]: unknown;
}

export interface FilterJson {
  name: string;
  typed_config?: TypedConfig;
}

export interface FilterChainJson {
  name?: string;
  filter_chain_match?: Record<string, unknown>;
  filters?: FilterJson[];
  transport_socket?: TypedConfig;
}

export interface ListenerJson {
  name: string;
  address?: AddressJson;
  bind_to_port?: boolean;
  use_original_dst?: boolean;
  traffic_direction?: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  filter_chains?: FilterChainJson[];
  default_filter_chain?: FilterChainJson;
  api_listener?: unknown;
  listener_filters?: FilterJson[];
  listener_filters_timeout?: string;
  continue_on_listener_filters_timeout?: boolean;
  metadata?: { filter_metadata?: Record<string, Record<string, unknown>> };
}

export interface HeaderValueOptionJson {
  header: { key: string; value?: string };
  append_action?:
    | 'APPEND_IF_EXISTS_OR_ADD'
    | 'ADD_IF_ABSENT'
    | 'OVERWRITE_IF_EXISTS_OR_ADD'
    | 'OVERWRITE_IF_EXISTS';
  append?: boolean;
}

export interface StringMatcherJson {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  safe_regex?: { regex: string };
  ignore_case?: boolean;
}

export interface HeaderMatcherJson {
  name: string;
  exact_match?: string;
  prefix_match?: string;
  suffix_match?: string;
  contains_match?: string;
  safe_regex_match?: { regex: string };
  present_match?: boolean;
  string_match?: StringMatcherJson;
  invert_match?: boolean;
  treat_missing_header_as_empty?: boolean;
}

export interface QueryParameterMatcherJson {
  name: string;
  string_match?: StringMatcherJson;
  present_match?: boolean;
}

export interface RouteMatchJson {
  prefix?: string;
  path?: string;
  safe_regex?: { regex: string };
  path_separated_prefix?: string;
  case_sensitive?: boolean;
  headers?: HeaderMatcherJson[];
  query_parameters?: QueryParameterMatcherJson[];
}

export interface RetryPolicyJson {
  retry_on?: string;
  num_retries?: number;
  per_try_timeout?: string;
  retriable_status_codes?: number[];
  retry_back_off?: { base_interval?: string; max_interval?: string };
  retry_host_predicate?: { name?: string; typed_config?: { '@type'?: string } }[];
  host_selection_retry_max_attempts?: number | string;
}

export interface WeightedClusterJson {
  name: string;
  weight?: number;
  request_headers_to_add?: HeaderValueOptionJson[];
  request_headers_to_remove?: string[];
  response_headers_to_add?: HeaderValueOptionJson[];
  response_headers_to_remove?: string[];
  host_rewrite_literal?: string;
}

export interface RouteActionJson {
  cluster?: string;
  weighted_clusters?: { clusters?: WeightedClusterJson[]; total_weight?: number };
  timeout?: string;
  idle_timeout?: string;
  retry_policy?: RetryPolicyJson;
  prefix_rewrite?: string;
  regex_rewrite?: { pattern: { regex: string }; substitution: string };
  host_rewrite_literal?: string;
  auto_host_rewrite?: boolean;
  hash_policy?: HashPolicyJson[];
  request_mirror_policies?: RequestMirrorPolicyJson[];
}

export interface HashPolicyJson {
  header?: { header_name: string };
  cookie?: { name: string; ttl?: string; path?: string; attributes?: { name: string; value?: string }[] };
  connection_properties?: { source_ip?: boolean };
  query_parameter?: { name: string };
  filter_state?: unknown;
  terminal?: boolean;
}

export interface RequestMirrorPolicyJson {
  cluster: string;
  runtime_fraction?: {
    default_value?: { numerator?: number; denominator?: 'HUNDRED' | 'TEN_THOUSAND' | 'MILLION' };
  };
}

export interface RedirectActionJson {
  scheme_redirect?: string;
  https_redirect?: boolean;
  host_redirect?: string;
  port_redirect?: number;
  path_redirect?: string;
  prefix_rewrite?: string;
  response_code?: 'MOVED_PERMANENTLY' | 'FOUND' | 'SEE_OTHER' | 'TEMPORARY_REDIRECT' | 'PERMANENT_REDIRECT';
  strip_query?: boolean;
}

export interface DirectResponseJson {
  status: number;
  body?: { inline_string?: string; inline_bytes?: string; filename?: string };
}

export interface RouteJson {
  name?: string;
  match: RouteMatchJson;
  route?: RouteActionJson;
  redirect?: RedirectActionJson;
  direct_response?: DirectResponseJson;
  request_headers_to_add?: HeaderValueOptionJson[];
  request_headers_to_remove?: string[];
  response_headers_to_add?: HeaderValueOptionJson[];
  response_headers_to_remove?: string[];
  metadata?: unknown;
  decorator?: { operation?: string };
  typed_per_filter_config?: Record<string, TypedConfig>;
}

export interface VirtualHostJson {
  name: string;
  domains?: string[];
  routes?: RouteJson[];
  request_headers_to_add?: HeaderValueOptionJson[];
  request_headers_to_remove?: string[];
  response_headers_to_add?: HeaderValueOptionJson[];
  response_headers_to_remove?: string[];
  include_request_attempt_count?: boolean;
  retry_policy?: RetryPolicyJson;
  typed_per_filter_config?: Record<string, TypedConfig>;
}

export interface RouteConfigurationJson {
  name: string;
  virtual_hosts?: VirtualHostJson[];
  validate_clusters?: boolean;
  request_headers_to_add?: HeaderValueOptionJson[];
  request_headers_to_remove?: string[];
  response_headers_to_add?: HeaderValueOptionJson[];
  response_headers_to_remove?: string[];
}

export interface HttpConnectionManagerJson extends TypedConfig {
  stat_prefix?: string;
  rds?: { route_config_name: string };
  route_config?: RouteConfigurationJson;
  http_filters?: FilterJson[];
  use_remote_address?: boolean;
  xff_num_trusted_hops?: number;
  generate_request_id?: boolean;
  server_name?: string;
  forward_client_cert_details?: string;
  upgrade_configs?: { upgrade_type?: string; enabled?: boolean }[];
  set_current_client_cert_details?: {
    subject?: boolean;
    cert?: boolean;
    chain?: boolean;
    dns?: boolean;
    uri?: boolean;
  };
  stream_idle_timeout?: string;
  request_timeout?: string;
  request_headers_timeout?: string;
  max_request_headers_kb?: number;
}

export interface TcpProxyJson extends TypedConfig {
  stat_prefix?: string;
  cluster?: string;
  weighted_clusters?: { clusters?: { name: string; weight?: number }[] };
  idle_timeout?: string;
  max_downstream_connection_duration?: string;
  tunneling_config?: { hostname?: string; use_post?: boolean; post_path?: string } & Record<string, unknown>;
  hash_policy?: Record<string, unknown>[];
  access_log?: Record<string, unknown>[];
  access_log_options?: {
    access_log_flush_interval?: string;
    flush_access_log_on_connected?: boolean;
  } & Record<string, unknown>;
  /** Deprecated form of access_log_options.access_log_flush_interval. */
  access_log_flush_interval?: string;
}

export interface LbEndpointJson {
  endpoint?: { address?: AddressJson; hostname?: string };
  health_status?: 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';
  load_balancing_weight?: number;
  metadata?: unknown;
}

export interface LocalityLbEndpointsJson {
  locality?: { region?: string; zone?: string; sub_zone?: string };
  lb_endpoints?: LbEndpointJson[];
  load_balancing_weight?: number;
  priority?: number;
}

export interface ClusterLoadAssignmentJson {
  cluster_name: string;
  endpoints?: LocalityLbEndpointsJson[];
}

export type ClusterDiscoveryType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';

export type LbPolicy =
  | 'ROUND_ROBIN'
  | 'LEAST_REQUEST'
  | 'RING_HASH'
  | 'RANDOM'
  | 'MAGLEV'
  | 'CLUSTER_PROVIDED'
  | 'LOAD_BALANCING_POLICY_CONFIG';

export interface ClusterJson {
  name: string;
  type?: ClusterDiscoveryType;
  eds_cluster_config?: { service_name?: string };
  connect_timeout?: string;
  lb_policy?: LbPolicy;
  load_assignment?: ClusterLoadAssignmentJson;
  metadata?: unknown;
  dns_lookup_family?: string;
  transport_socket?: TypedConfig;
  transport_socket_matches?: {
    name?: string;
    match?: Record<string, unknown>;
    transport_socket?: TypedConfig;
  }[];
  circuit_breakers?: { thresholds?: CircuitBreakerThresholdsJson[] };
  outlier_detection?: OutlierDetectionJson;
  common_lb_config?: { healthy_panic_threshold?: { value?: number } };
  ring_hash_lb_config?: { minimum_ring_size?: number; maximum_ring_size?: number; hash_function?: string };
  maglev_lb_config?: { table_size?: number };
  least_request_lb_config?: { choice_count?: number };
  typed_extension_protocol_options?: Record<string, TypedConfig>;
  upstream_connection_options?: {
    tcp_keepalive?: { keepalive_probes?: number; keepalive_time?: number; keepalive_interval?: number };
  };
  /** The local address upstream connections are made from (Istio's inbound clusters: 127.0.0.6). */
  upstream_bind_config?: {
    source_address?: { address?: string; port_value?: number };
    extra_source_addresses?: { address?: { address?: string; port_value?: number } }[];
  };
}

export interface CircuitBreakerThresholdsJson {
  priority?: 'DEFAULT' | 'HIGH';
  max_connections?: number;
  max_pending_requests?: number;
  max_requests?: number;
  max_retries?: number;
  track_remaining?: boolean;
  retry_budget?: { budget_percent?: { value?: number }; min_retry_concurrency?: number };
}

export interface OutlierDetectionJson {
  consecutive_5xx?: number;
  consecutive_gateway_failure?: number;
  enforcing_consecutive_5xx?: number;
  enforcing_consecutive_gateway_failure?: number;
  enforcing_success_rate?: number;
  enforcing_local_origin_success_rate?: number;
  interval?: string;
  base_ejection_time?: string;
  max_ejection_time?: string;
  max_ejection_percent?: number;
  split_external_local_origin_errors?: boolean;
  consecutive_local_origin_failure?: number;
  enforcing_consecutive_local_origin_failure?: number;
}
