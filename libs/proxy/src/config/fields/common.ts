import { type FieldRule, type Fields, HONOURED, honouredOnlyAs, INERT } from '../understood.js';

/** Envoy messages used by every resource type, as the proxy honours them. */

/**
 * Metadata: the namespaces the proxy reads (`istio`, `envoy.transport_socket_match`,
 * `mizzen.io/…`) are checked by the compilers that read them; any other is
 * data for filters this proxy does not run, which Envoy carries and ignores too.
 */
export const METADATA: FieldRule = INERT;

/** envoy.config.core.v3.ConfigSource: everything comes over the proxy's one ADS stream. */
export const ADS_CONFIG_SOURCE: Fields = {
  ads: {},
  resource_api_version: honouredOnlyAs(['V3', 'AUTO'], 'pilot serves the v3 API'),
};

export const SOCKET_ADDRESS: Fields = {
  address: HONOURED,
  port_value: HONOURED,
  protocol: honouredOnlyAs(['TCP'], 'the proxy carries TCP only'),
};

export const ADDRESS: Fields = { socket_address: SOCKET_ADDRESS, pipe: { path: HONOURED, mode: HONOURED } };

export const HEADER_VALUE_OPTION: Fields = {
  header: { key: HONOURED, value: HONOURED },
  append_action: HONOURED,
  append: HONOURED,
};

export const REGEX_MATCHER: Fields = { regex: HONOURED };

export const STRING_MATCHER: Fields = {
  exact: HONOURED,
  prefix: HONOURED,
  suffix: HONOURED,
  contains: HONOURED,
  safe_regex: REGEX_MATCHER,
  ignore_case: HONOURED,
};

export const HEADER_MATCHER: Fields = {
  name: HONOURED,
  exact_match: HONOURED,
  prefix_match: HONOURED,
  suffix_match: HONOURED,
  contains_match: HONOURED,
  safe_regex_match: REGEX_MATCHER,
  present_match: HONOURED,
  string_match: STRING_MATCHER,
  invert_match: HONOURED,
  treat_missing_header_as_empty: HONOURED,
};

export const QUERY_PARAMETER_MATCHER: Fields = {
  name: HONOURED,
  string_match: STRING_MATCHER,
  present_match: HONOURED,
};

/** envoy.type.matcher.v3.ValueMatcher: list_match and or_match nest it, so it refers to itself. */
const VALUE_MATCHER: Record<string, FieldRule> = {};
Object.assign(VALUE_MATCHER, {
  null_match: {},
  double_match: { range: { start: HONOURED, end: HONOURED }, exact: HONOURED },
  string_match: STRING_MATCHER,
  bool_match: HONOURED,
  present_match: HONOURED,
  list_match: { one_of: VALUE_MATCHER },
  or_match: { value_matchers: VALUE_MATCHER },
});

/** envoy.type.matcher.v3.MetadataMatcher. */
export const METADATA_MATCHER: Fields = {
  filter: HONOURED,
  path: { key: HONOURED },
  value: VALUE_MATCHER,
  invert: HONOURED,
};

export const FRACTIONAL_PERCENT: Fields = { numerator: HONOURED, denominator: HONOURED };

/** envoy.config.core.v3.RuntimeFractionalPercent: this proxy has no runtime, so the default always applies. */
export const RUNTIME_FRACTIONAL_PERCENT: Fields = {
  default_value: FRACTIONAL_PERCENT,
  runtime_key: INERT,
};

/** envoy.type.v3.Percent. */
export const PERCENT: Fields = { value: HONOURED };
