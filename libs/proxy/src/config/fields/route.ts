import { type Fields, HONOURED, honouredWhen, mapOf, OWN_CHECK, typed } from '../understood.js';
import {
  HEADER_MATCHER,
  HEADER_VALUE_OPTION,
  METADATA,
  QUERY_PARAMETER_MATCHER,
  REGEX_MATCHER,
  RUNTIME_FRACTIONAL_PERCENT,
} from './common.js';

/**
 * The fields of a RouteConfiguration this proxy honours, down to its routes'
 * actions. Anything else — virtual clusters, hedging, internal redirects,
 * route priorities, runtime-fraction matches… — makes the proxy refuse the
 * route table, naming the field.
 */

export const PREVIOUS_HOSTS_TYPE =
  'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';
export const PREVIOUS_PRIORITIES_TYPE =
  'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig';

/** Per-filter configs are compiled (and checked) by the filter they configure. */
const TYPED_PER_FILTER_CONFIG = mapOf(OWN_CHECK);

const HEADER_MUTATIONS: Fields = {
  request_headers_to_add: HEADER_VALUE_OPTION,
  request_headers_to_remove: HONOURED,
  response_headers_to_add: HEADER_VALUE_OPTION,
  response_headers_to_remove: HONOURED,
};

export const RETRY_POLICY: Fields = {
  retry_on: HONOURED,
  num_retries: HONOURED,
  per_try_timeout: HONOURED,
  retriable_status_codes: HONOURED,
  retry_back_off: { base_interval: HONOURED, max_interval: HONOURED },
  // Checked by name and type by the retry policy compiler; neither predicate takes settings.
  retry_host_predicate: { name: HONOURED, typed_config: typed({ [PREVIOUS_HOSTS_TYPE]: {} }) },
  // How often a consistent-hash table is re-drawn for a host the predicate rejects (other
  // balancers draw among untried hosts directly, so their first draw satisfies it).
  host_selection_retry_max_attempts: HONOURED,
  retry_priority: {
    name: HONOURED,
    typed_config: typed({ [PREVIOUS_PRIORITIES_TYPE]: { update_frequency: HONOURED } }),
  },
};

const HASH_POLICY: Fields = {
  header: { header_name: HONOURED },
  cookie: { name: HONOURED, ttl: HONOURED, path: HONOURED, attributes: { name: HONOURED, value: HONOURED } },
  connection_properties: { source_ip: HONOURED },
  query_parameter: { name: HONOURED },
  terminal: HONOURED,
};

/** Route-level `rate_limits` (descriptors for the local rate limit filter). */
const RATE_LIMIT: Fields = {
  stage: HONOURED,
  actions: {
    request_headers: { header_name: HONOURED, descriptor_key: HONOURED, skip_if_absent: HONOURED },
    remote_address: {},
    masked_remote_address: { v4_prefix_mask_len: HONOURED, v6_prefix_mask_len: HONOURED },
    generic_key: { descriptor_value: HONOURED, descriptor_key: HONOURED },
    header_value_match: {
      descriptor_key: HONOURED,
      descriptor_value: HONOURED,
      expect_match: HONOURED,
      headers: HEADER_MATCHER,
    },
    query_parameter_value_match: {
      descriptor_key: HONOURED,
      descriptor_value: HONOURED,
      expect_match: HONOURED,
      query_parameters: QUERY_PARAMETER_MATCHER,
    },
    destination_cluster: {},
    source_cluster: {},
  },
};

const ROUTE_ACTION: Fields = {
  cluster: HONOURED,
  weighted_clusters: {
    clusters: { name: HONOURED, weight: HONOURED, host_rewrite_literal: HONOURED, ...HEADER_MUTATIONS },
  },
  timeout: HONOURED,
  retry_policy: RETRY_POLICY,
  prefix_rewrite: HONOURED,
  regex_rewrite: { pattern: REGEX_MATCHER, substitution: HONOURED },
  host_rewrite_literal: HONOURED,
  hash_policy: HASH_POLICY,
  request_mirror_policies: {
    cluster: HONOURED,
    runtime_fraction: RUNTIME_FRACTIONAL_PERCENT,
    // Istio sets false: the proxy makes no span for a shadow, which is what false asks for.
    trace_sampled: honouredWhen((v) =>
      v === false ? undefined : 'must be false: the proxy makes no trace span for a shadow request',
    ),
  },
  rate_limits: RATE_LIMIT,
};

const ROUTE: Fields = {
  name: HONOURED,
  match: {
    prefix: HONOURED,
    path: HONOURED,
    safe_regex: REGEX_MATCHER,
    path_separated_prefix: HONOURED,
    case_sensitive: HONOURED,
    headers: HEADER_MATCHER,
    query_parameters: QUERY_PARAMETER_MATCHER,
  },
  route: ROUTE_ACTION,
  redirect: {
    scheme_redirect: HONOURED,
    https_redirect: HONOURED,
    host_redirect: HONOURED,
    port_redirect: HONOURED,
    path_redirect: HONOURED,
    prefix_rewrite: HONOURED,
    response_code: HONOURED,
    strip_query: HONOURED,
  },
  direct_response: {
    status: HONOURED,
    body: { inline_string: HONOURED, inline_bytes: HONOURED },
  },
  ...HEADER_MUTATIONS,
  typed_per_filter_config: TYPED_PER_FILTER_CONFIG,
  metadata: METADATA,
};

const VIRTUAL_HOST: Fields = {
  name: HONOURED,
  domains: HONOURED,
  routes: ROUTE,
  ...HEADER_MUTATIONS,
  include_request_attempt_count: HONOURED,
  retry_policy: RETRY_POLICY,
  typed_per_filter_config: TYPED_PER_FILTER_CONFIG,
  rate_limits: RATE_LIMIT,
  metadata: METADATA,
};

export const ROUTE_CONFIGURATION: Fields = {
  name: HONOURED,
  virtual_hosts: VIRTUAL_HOST,
  ...HEADER_MUTATIONS,
  /**
   * false, as Istio sends it: a route to a cluster the proxy does not have
   * answers 503 (flagged NC). true (refusing the whole table instead) is not implemented.
   */
  validate_clusters: honouredWhen((v) =>
    v === false ? undefined : 'must be false: route tables naming unknown clusters are not refused',
  ),
};
