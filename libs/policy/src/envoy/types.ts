/**
 * The Envoy v3 messages this library builds and runs, as Envoy JSON with proto
 * (snake_case) field names: exactly what libs/xds `encodeMessage` accepts and
 * what pilot serves. Only the fields Mizzen uses are typed.
 */

export const RBAC_HTTP_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
export const RBAC_NETWORK_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
export const EXT_AUTHZ_HTTP_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
export const EXT_AUTHZ_NETWORK_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz';
export const JWT_AUTHN_TYPE =
  'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
export const URI_TEMPLATE_TYPE =
  'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig';

/** Well-known filter names (Istio's `wellknown` package). */
export const FilterNames = {
  httpRbac: 'envoy.filters.http.rbac',
  networkRbac: 'envoy.filters.network.rbac',
  httpExtAuthz: 'envoy.filters.http.ext_authz',
  networkExtAuthz: 'envoy.filters.network.ext_authz',
  jwtAuthn: 'envoy.filters.http.jwt_authn',
  /** The dynamic-metadata namespace Istio's authn filter fills and authorization reads. */
  istioAuthn: 'istio_authn',
} as const;

// ------------------------------------------------------------------ matchers

export interface RegexMatcherJson {
  regex: string;
  google_re2?: Record<string, never>;
}

export interface StringMatcherJson {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  safe_regex?: RegexMatcherJson;
  ignore_case?: boolean;
}

export interface Int64RangeJson {
  start: number;
  end: number;
}

export interface HeaderMatcherJson {
  name: string;
  exact_match?: string;
  prefix_match?: string;
  suffix_match?: string;
  contains_match?: string;
  safe_regex_match?: RegexMatcherJson;
  range_match?: Int64RangeJson;
  present_match?: boolean;
  string_match?: StringMatcherJson;
  invert_match?: boolean;
  treat_missing_header_as_empty?: boolean;
}

export interface PathMatcherJson {
  path: StringMatcherJson;
}

export interface CidrRangeJson {
  address_prefix: string;
  prefix_len?: number;
}

export interface DoubleMatcherJson {
  range?: { start: number; end: number };
  exact?: number;
}

export interface ValueMatcherJson {
  null_match?: Record<string, never>;
  double_match?: DoubleMatcherJson;
  string_match?: StringMatcherJson;
  bool_match?: boolean;
  present_match?: boolean;
  list_match?: { one_of: ValueMatcherJson };
  or_match?: { value_matchers: ValueMatcherJson[] };
}

export interface MetadataMatcherJson {
  filter: string;
  path: { key: string }[];
  value: ValueMatcherJson;
  invert?: boolean;
}

export interface TypedConfigJson {
  '@type': string;
  [field: string]: unknown;
}

export interface TypedExtensionConfigJson {
  name: string;
  typed_config: TypedConfigJson;
}

// ------------------------------------------------------------------ RBAC

export interface PermissionJson {
  and_rules?: { rules: PermissionJson[] };
  or_rules?: { rules: PermissionJson[] };
  any?: boolean;
  header?: HeaderMatcherJson;
  url_path?: PathMatcherJson;
  destination_ip?: CidrRangeJson;
  destination_port?: number;
  destination_port_range?: { start: number; end: number };
  metadata?: MetadataMatcherJson;
  not_rule?: PermissionJson;
  requested_server_name?: StringMatcherJson;
  matcher?: TypedExtensionConfigJson;
  uri_template?: TypedExtensionConfigJson;
}

export interface PrincipalJson {
  and_ids?: { ids: PrincipalJson[] };
  or_ids?: { ids: PrincipalJson[] };
  any?: boolean;
  authenticated?: { principal_name?: StringMatcherJson };
  source_ip?: CidrRangeJson;
  direct_remote_ip?: CidrRangeJson;
  remote_ip?: CidrRangeJson;
  header?: HeaderMatcherJson;
  url_path?: PathMatcherJson;
  metadata?: MetadataMatcherJson;
  filter_state?: unknown;
  not_id?: PrincipalJson;
}

export interface RbacPolicyJson {
  permissions: PermissionJson[];
  principals: PrincipalJson[];
  condition?: unknown;
  checked_condition?: unknown;
}

export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/** envoy.config.rbac.v3.RBAC. A missing action means ALLOW (proto3 default, omitted by Istio). */
export interface RbacRulesJson {
  action?: RbacAction;
  policies?: Record<string, RbacPolicyJson>;
}

/** envoy.extensions.filters.http.rbac.v3.RBAC */
export interface HttpRbacJson {
  rules?: RbacRulesJson;
  rules_stat_prefix?: string;
  shadow_rules?: RbacRulesJson;
  shadow_rules_stat_prefix?: string;
}

/** envoy.extensions.filters.network.rbac.v3.RBAC */
export interface NetworkRbacJson {
  rules?: RbacRulesJson;
  shadow_rules?: RbacRulesJson;
  shadow_rules_stat_prefix?: string;
  stat_prefix: string;
  enforcement_type?: 'ONE_TIME_ON_FIRST_BYTE' | 'CONTINUOUS';
}

// ------------------------------------------------------------------ ext_authz

export interface HttpUriJson {
  uri: string;
  cluster?: string;
  timeout: string;
}

export interface ListStringMatcherJson {
  patterns: StringMatcherJson[];
}

export interface HeaderValueJson {
  key: string;
  value: string;
}

export interface ExtAuthzHttpServiceJson {
  server_uri: HttpUriJson;
  path_prefix?: string;
  authorization_request?: { allowed_headers?: ListStringMatcherJson; headers_to_add?: HeaderValueJson[] };
  authorization_response?: {
    allowed_upstream_headers?: ListStringMatcherJson;
    allowed_upstream_headers_to_append?: ListStringMatcherJson;
    allowed_client_headers?: ListStringMatcherJson;
    allowed_client_headers_on_success?: ListStringMatcherJson;
  };
}

export interface GrpcServiceJson {
  envoy_grpc: { cluster_name: string; authority?: string };
  timeout?: string;
}

export interface BufferSettingsJson {
  max_request_bytes: number;
  allow_partial_message?: boolean;
  pack_as_bytes?: boolean;
}

/** envoy.extensions.filters.http.ext_authz.v3.ExtAuthz */
export interface ExtAuthzJson {
  http_service?: ExtAuthzHttpServiceJson;
  grpc_service?: GrpcServiceJson;
  transport_api_version?: 'AUTO' | 'V2' | 'V3';
  failure_mode_allow?: boolean;
  /** With failure_mode_allow: mark a request let through after an error with x-envoy-auth-failure-mode-allowed. */
  failure_mode_allow_header_add?: boolean;
  with_request_body?: BufferSettingsJson;
  status_on_error?: { code: string | number };
  filter_enabled_metadata?: MetadataMatcherJson;
  allowed_headers?: ListStringMatcherJson;
  /** Dynamic metadata namespaces copied into the check's metadata_context (gRPC authorizers). */
  metadata_context_namespaces?: string[];
  include_peer_certificate?: boolean;
  include_tls_session?: boolean;
  stat_prefix?: string;
}

/** envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute (typed_per_filter_config). */
export interface ExtAuthzPerRouteJson {
  disabled?: boolean;
  check_settings?: {
    context_extensions?: Record<string, string>;
    disable_request_body_buffering?: boolean;
  };
}

/** envoy.extensions.filters.network.ext_authz.v3.ExtAuthz */
export interface NetworkExtAuthzJson {
  stat_prefix: string;
  grpc_service: GrpcServiceJson;
  failure_mode_allow?: boolean;
  include_peer_certificate?: boolean;
  include_tls_session?: boolean;
  transport_api_version?: 'AUTO' | 'V2' | 'V3';
  filter_enabled_metadata?: MetadataMatcherJson;
}

// ------------------------------------------------------------------ envoy.service.auth.v3 (the Check API)

export interface SocketAddressJson {
  socket_address: { address: string; port_value: number };
}

/** AttributeContext.Peer: one end of the request or connection being checked. */
export interface AttributeContextPeerJson {
  address?: SocketAddressJson;
  service?: string;
  labels?: Record<string, string>;
  /** The peer certificate's URI SAN (else DNS SAN, else subject): `spiffe://…` in the mesh. */
  principal?: string;
  /** The URL-encoded PEM of the peer certificate (include_peer_certificate). */
  certificate?: string;
}

/** AttributeContext.HttpRequest. */
export interface AttributeContextHttpRequestJson {
  /** Envoy's stream id, a decimal uint64. */
  id?: string;
  method?: string;
  /** Lower-case names, pseudo-headers included (`:authority`, `:path`…); repeated headers joined with `,`. */
  headers?: Record<string, string>;
  path?: string;
  host?: string;
  scheme?: string;
  query?: string;
  fragment?: string;
  /** Request bytes received so far (Envoy's bytesReceived). */
  size?: number;
  /** `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`. */
  protocol?: string;
  body?: string;
  /** Base64 of the body bytes (pack_as_bytes). */
  raw_body?: string;
}

/** envoy.service.auth.v3.AttributeContext, as Envoy JSON. */
export interface AttributeContextJson {
  source?: AttributeContextPeerJson;
  destination?: AttributeContextPeerJson;
  /** RFC 3339 `time` and the HTTP request; absent for TCP connections. */
  request?: { time?: string; http?: AttributeContextHttpRequestJson };
  context_extensions?: Record<string, string>;
  metadata_context?: { filter_metadata?: Record<string, Record<string, unknown>> };
  tls_session?: { sni?: string };
}

/** envoy.service.auth.v3.CheckRequest. */
export interface CheckRequestJson {
  attributes?: AttributeContextJson;
}

export type HeaderAppendActionJson =
  | 'APPEND_IF_EXISTS_OR_ADD'
  | 'ADD_IF_ABSENT'
  | 'OVERWRITE_IF_EXISTS_OR_ADD'
  | 'OVERWRITE_IF_EXISTS';

/** envoy.config.core.v3.HeaderValueOption. */
export interface HeaderValueOptionJson {
  header?: { key: string; value?: string; raw_value?: string };
  append?: boolean;
  append_action?: HeaderAppendActionJson;
  keep_empty_value?: boolean;
}

/** envoy.service.auth.v3.CheckResponse: `status.code` 0 (OK) allows, anything else denies. */
export interface CheckResponseJson {
  status?: { code?: number; message?: string };
  denied_response?: {
    /** envoy.type.v3.StatusCode: its name (`Forbidden`) or number. */
    status?: { code?: string | number };
    headers?: HeaderValueOptionJson[];
    body?: string;
  };
  ok_response?: {
    headers?: HeaderValueOptionJson[];
    headers_to_remove?: string[];
    /** Deprecated; when present it replaces the response's own dynamic_metadata. */
    dynamic_metadata?: Record<string, unknown>;
    response_headers_to_add?: HeaderValueOptionJson[];
    query_parameters_to_set?: { key: string; value: string }[];
    query_parameters_to_remove?: string[];
  };
  dynamic_metadata?: Record<string, unknown>;
}

// ------------------------------------------------------------------ jwt_authn

export interface JwtHeaderJson {
  name: string;
  value_prefix?: string;
}

export interface JwtClaimToHeaderJson {
  header_name: string;
  claim_name: string;
}

export interface RemoteJwksJson {
  http_uri: HttpUriJson;
  cache_duration?: string;
  async_fetch?: { fast_listener?: boolean; failed_refetch_duration?: string };
}

export interface JwtProviderJson {
  issuer?: string;
  audiences?: string[];
  remote_jwks?: RemoteJwksJson;
  local_jwks?: { inline_string?: string; filename?: string };
  forward?: boolean;
  from_headers?: JwtHeaderJson[];
  from_params?: string[];
  from_cookies?: string[];
  forward_payload_header?: string;
  pad_forward_payload_header?: boolean;
  payload_in_metadata?: string;
  normalize_payload_in_metadata?: { space_delimited_claims?: string[] };
  header_in_metadata?: string;
  failed_status_in_metadata?: string;
  clock_skew_seconds?: number;
  claim_to_headers?: JwtClaimToHeaderJson[];
  clear_route_cache?: boolean;
  require_expiration?: boolean;
}

export interface JwtRequirementJson {
  provider_name?: string;
  provider_and_audiences?: { provider_name: string; audiences?: string[] };
  requires_any?: { requirements: JwtRequirementJson[] };
  requires_all?: { requirements: JwtRequirementJson[] };
  allow_missing_or_failed?: Record<string, never>;
  allow_missing?: Record<string, never>;
}

export interface RouteMatchJson {
  prefix?: string;
  path?: string;
  safe_regex?: RegexMatcherJson;
  path_separated_prefix?: string;
  case_sensitive?: boolean;
  headers?: HeaderMatcherJson[];
}

export interface RequirementRuleJson {
  match: RouteMatchJson;
  requires?: JwtRequirementJson;
  requirement_name?: string;
}

/** envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication */
export interface JwtAuthenticationJson {
  providers?: Record<string, JwtProviderJson>;
  rules?: RequirementRuleJson[];
  bypass_cors_preflight?: boolean;
  requirement_map?: Record<string, JwtRequirementJson>;
  filter_state_rules?: unknown;
  strip_failure_response?: boolean;
}

// ------------------------------------------------------------------ filters

/** An entry of an HTTP connection manager's http_filters. */
export interface HttpFilterJson {
  name: string;
  typed_config: TypedConfigJson;
}

/** An entry of a filter chain's (network) filters. */
export interface NetworkFilterJson {
  name: string;
  typed_config: TypedConfigJson;
}
