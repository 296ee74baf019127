import { type Fields, HONOURED, INERT, mapOf } from '../understood.js';
import { METADATA_MATCHER, STRING_MATCHER } from './common.js';

/**
 * Envoy's ext_authz filter configs (HTTP and network) and the HTTP filter's
 * per-route ExtAuthzPerRoute, as @mizzen/policy runs them. Its compiler
 * refuses values it cannot run (a V2 transport, a google_grpc service, a
 * body limit Envoy refuses…); this declaration refuses every field it would
 * not read.
 */

const LIST_STRING_MATCHER: Fields = { patterns: STRING_MATCHER };

/** The authorizer is called through one of the proxy's clusters, with the authority given. */
const GRPC_SERVICE: Fields = {
  envoy_grpc: { cluster_name: HONOURED, authority: HONOURED },
  timeout: HONOURED,
};

const HTTP_SERVICE: Fields = {
  server_uri: {
    // The check goes to the cluster, as Envoy sends it; the uri only names the authorizer.
    uri: INERT,
    cluster: HONOURED,
    timeout: HONOURED,
  },
  path_prefix: HONOURED,
  authorization_request: {
    allowed_headers: LIST_STRING_MATCHER,
    headers_to_add: { key: HONOURED, value: HONOURED },
  },
  authorization_response: {
    allowed_upstream_headers: LIST_STRING_MATCHER,
    allowed_upstream_headers_to_append: LIST_STRING_MATCHER,
    allowed_client_headers: LIST_STRING_MATCHER,
    allowed_client_headers_on_success: LIST_STRING_MATCHER,
  },
};

/** envoy.extensions.filters.http.ext_authz.v3.ExtAuthz. */
export const EXT_AUTHZ: Fields = {
  http_service: HTTP_SERVICE,
  grpc_service: GRPC_SERVICE,
  transport_api_version: HONOURED,
  failure_mode_allow: HONOURED,
  failure_mode_allow_header_add: HONOURED,
  with_request_body: {
    max_request_bytes: HONOURED,
    allow_partial_message: HONOURED,
    pack_as_bytes: HONOURED,
  },
  status_on_error: { code: HONOURED },
  filter_enabled_metadata: METADATA_MATCHER,
  allowed_headers: LIST_STRING_MATCHER,
  metadata_context_namespaces: HONOURED,
  include_peer_certificate: HONOURED,
  include_tls_session: HONOURED,
  // Names Envoy's stats only; the proxy reports denials in Istio's metrics and access logs (UAEX).
  stat_prefix: INERT,
};

/** envoy.extensions.filters.network.ext_authz.v3.ExtAuthz: a gRPC authorizer checks each connection. */
export const NETWORK_EXT_AUTHZ: Fields = {
  grpc_service: GRPC_SERVICE,
  transport_api_version: HONOURED,
  failure_mode_allow: HONOURED,
  filter_enabled_metadata: METADATA_MATCHER,
  include_peer_certificate: HONOURED,
  include_tls_session: HONOURED,
  // Names Envoy's stats only, as above.
  stat_prefix: INERT,
};

/** ExtAuthzPerRoute: a route turning the external authorizer off, or passing it context extensions. */
export const EXT_AUTHZ_PER_ROUTE: Fields = {
  disabled: HONOURED,
  check_settings: { context_extensions: mapOf(HONOURED), disable_request_body_buffering: HONOURED },
};
