import { URI_TEMPLATE_TYPE } from '@mizzen/policy';
import { type FieldRule, type Fields, HONOURED, honouredOnlyAs, INERT, mapOf, typed } from '../understood.js';
import { HEADER_MATCHER, METADATA_MATCHER, STRING_MATCHER } from './common.js';

/**
 * Envoy's RBAC filter configs (HTTP and network), as @mizzen/policy runs
 * them. Its compiler refuses matcher kinds it has no engine for (CEL
 * conditions, filter_state, matcher extensions); this declaration refuses
 * every other field it would not read.
 */

const CIDR_RANGE: Fields = { address_prefix: HONOURED, prefix_len: HONOURED };

const RBAC_HEADER_MATCHER: Fields = { ...HEADER_MATCHER, range_match: { start: HONOURED, end: HONOURED } };

const PATH_MATCHER: Fields = { path: STRING_MATCHER };

/** Permission and Principal nest (and_rules, not_id…): each refers to itself. */
const PERMISSION: Record<string, FieldRule> = {};
Object.assign(PERMISSION, {
  and_rules: { rules: PERMISSION },
  or_rules: { rules: PERMISSION },
  any: HONOURED,
  header: RBAC_HEADER_MATCHER,
  url_path: PATH_MATCHER,
  destination_ip: CIDR_RANGE,
  destination_port: HONOURED,
  destination_port_range: { start: HONOURED, end: HONOURED },
  metadata: METADATA_MATCHER,
  not_rule: PERMISSION,
  requested_server_name: STRING_MATCHER,
  uri_template: {
    // Names the extension; the typed config says what it is.
    name: INERT,
    typed_config: typed({ [URI_TEMPLATE_TYPE]: { path_template: HONOURED } }),
  },
});

const PRINCIPAL: Record<string, FieldRule> = {};
Object.assign(PRINCIPAL, {
  and_ids: { ids: PRINCIPAL },
  or_ids: { ids: PRINCIPAL },
  any: HONOURED,
  authenticated: { principal_name: STRING_MATCHER },
  source_ip: CIDR_RANGE,
  direct_remote_ip: CIDR_RANGE,
  remote_ip: CIDR_RANGE,
  header: RBAC_HEADER_MATCHER,
  url_path: PATH_MATCHER,
  metadata: METADATA_MATCHER,
  not_id: PRINCIPAL,
});

const RULES: Fields = {
  action: HONOURED,
  policies: mapOf({ permissions: PERMISSION, principals: PRINCIPAL }),
};

export const RBAC_HTTP: Fields = {
  rules: RULES,
  // Name Envoy's stats only; the proxy reports authorization in Istio's metrics and access logs.
  rules_stat_prefix: INERT,
  shadow_rules: RULES,
  shadow_rules_stat_prefix: HONOURED,
};

export const RBAC_NETWORK: Fields = {
  rules: RULES,
  shadow_rules: RULES,
  shadow_rules_stat_prefix: HONOURED,
  // Names Envoy's stats only, as above.
  stat_prefix: INERT,
  // A connection is authorized once, when it starts (Envoy's default); CONTINUOUS is not implemented.
  enforcement_type: honouredOnlyAs(['ONE_TIME_ON_FIRST_BYTE'], 'connections are authorized once'),
};
