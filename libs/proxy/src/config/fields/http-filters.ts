import { type Fields, HONOURED } from '../understood.js';
import {
  FRACTIONAL_PERCENT,
  HEADER_MATCHER,
  HEADER_VALUE_OPTION,
  RUNTIME_FRACTIONAL_PERCENT,
  STRING_MATCHER,
} from './common.js';

/**
 * The configs of the HTTP filters this proxy runs (at the connection
 * manager, or per route), as it honours them. RBAC and ext_authz are
 * declared in rbac.ts and ext-authz.ts; jwt_authn is compiled and checked by
 * @mizzen/policy, istio.stats by config/telemetry.ts.
 */

/** The router takes none of Envoy's settings (child spans, header suppression, its stats…). */
export const ROUTER: Fields = {};

/** The CORS filter takes no settings: each route's CorsPolicy says everything. */
export const CORS: Fields = {};

export const CORS_POLICY: Fields = {
  allow_origin_string_match: STRING_MATCHER,
  allow_methods: HONOURED,
  allow_headers: HONOURED,
  expose_headers: HONOURED,
  max_age: HONOURED,
  allow_credentials: HONOURED,
  filter_enabled: RUNTIME_FRACTIONAL_PERCENT,
  forward_not_matching_preflights: HONOURED,
};

/** HTTPFault; header-controlled delays and aborts are refused by the fault compiler with its own reason. */
export const FAULT: Fields = {
  delay: { fixed_delay: HONOURED, percentage: FRACTIONAL_PERCENT },
  abort: { http_status: HONOURED, grpc_status: HONOURED, percentage: FRACTIONAL_PERCENT },
  headers: HEADER_MATCHER,
};

const TOKEN_BUCKET: Fields = { max_tokens: HONOURED, tokens_per_fill: HONOURED, fill_interval: HONOURED };

export const LOCAL_RATE_LIMIT: Fields = {
  stat_prefix: HONOURED,
  status: { code: HONOURED },
  token_bucket: TOKEN_BUCKET,
  filter_enabled: RUNTIME_FRACTIONAL_PERCENT,
  filter_enforced: RUNTIME_FRACTIONAL_PERCENT,
  request_headers_to_add_when_not_enforced: HEADER_VALUE_OPTION,
  response_headers_to_add: HEADER_VALUE_OPTION,
  descriptors: { entries: { key: HONOURED, value: HONOURED }, token_bucket: TOKEN_BUCKET },
  stage: HONOURED,
  local_rate_limit_per_downstream_connection: HONOURED,
  enable_x_ratelimit_headers: HONOURED,
  vh_rate_limits: HONOURED,
  always_consume_default_token_bucket: HONOURED,
};

/** Mizzen's global rate limit filter (a TypedStruct pilot writes; see http/filters/rate-limit.ts). */
export const MIZZEN_RATE_LIMIT: Fields = {
  rules: {
    policy: HONOURED,
    name: HONOURED,
    match: { path: STRING_MATCHER, method: STRING_MATCHER, headers: HEADER_MATCHER },
    descriptors: {
      request_header: { header_name: HONOURED, skip_if_absent: HONOURED },
      path: {},
      method: {},
      source_principal: {},
      remote_address: {},
      route: {},
    },
    limit: { requests_per_unit: HONOURED, unit: HONOURED },
    shadow: HONOURED,
    failure_mode_deny: HONOURED,
  },
};
