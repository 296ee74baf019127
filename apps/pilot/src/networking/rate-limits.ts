import {
  type ConfigResource,
  type RateLimitDescriptor,
  type RateLimitMatch,
  type RateLimitPolicySpec,
  type RateLimitRule,
  type RateLimitUnit,
  rateLimitRuleName,
} from '@mizzen/api';
import { byCreation } from '../model/ordering.js';
import type { ProxyInfo } from '../model/proxy.js';
import { labelsMatch } from '../registry/model.js';
import type { Json } from './envoy.js';
import { headerMatcher, stringMatcher } from './http-routes.js';
import type { PushContext } from './push-context.js';
import { TYPED_STRUCT_TYPE } from './telemetry.js';

/**
 * RateLimitPolicy in Envoy's terms, for a sidecar's inbound connection
 * managers and a gateway's:
 *
 * - GLOBAL policies become one `mizzen.filters.http.ratelimit` filter (a
 *   TypedStruct `mizzen.ratelimit.v1alpha1.RateLimit` carrying every rule:
 *   Envoy's own ratelimit filter only knows how to call an external service
 *   whose config holds the limits, and its actions cannot name a caller's
 *   mTLS principal). The proxy counts through Redis or memory.
 * - LOCAL policies become Envoy's real local rate limit filter, one per
 *   policy (its shadow mode is `filter_enforced: 0%`), with a token bucket
 *   per rule as a descriptor; the virtual hosts get `rate_limits` actions
 *   that produce each rule's descriptor for the requests it matches.
 */

export type RateLimitPolicyResource = ConfigResource<'RateLimitPolicy'>;

export const MIZZEN_RATE_LIMIT_TYPE = 'type.googleapis.com/mizzen.ratelimit.v1alpha1.RateLimit';
export const MIZZEN_RATE_LIMIT_FILTER = 'mizzen.filters.http.ratelimit';
export const LOCAL_RATE_LIMIT_TYPE =
  'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

const UNIT_SECONDS: Record<RateLimitUnit, number> = { SECOND: 1, MINUTE: 60, HOUR: 3600, DAY: 86_400 };

const policiesByPush = new WeakMap<PushContext, RateLimitPolicyResource[]>();

function allPolicies(push: PushContext): RateLimitPolicyResource[] {
  let list = policiesByPush.get(push);
  if (!list) {
    list = push.resources
      .filter((r): r is RateLimitPolicyResource => r.kind === 'RateLimitPolicy')
      .sort(byCreation);
    policiesByPush.set(push, list);
  }
  return list;
}

/** Where a connection manager sits: which Gateways (`namespace/name`) it serves, for a gateway's listeners. */
export interface RateLimitScope {
  gateways?: readonly string[];
}

/**
 * The policies for one connection manager of a proxy: those in its namespace
 * whose selector matches its labels, and, at a gateway, those targeting a
 * Gateway that has servers on this listener.
 */
export function rateLimitPoliciesFor(
  push: PushContext,
  proxy: ProxyInfo,
  scope: RateLimitScope = {},
): RateLimitPolicyResource[] {
  return allPolicies(push).filter((p) => {
    if (p.metadata.namespace !== proxy.namespace) return false;
    const spec = p.spec as RateLimitPolicySpec;
    if (spec.selector) return labelsMatch(spec.selector.matchLabels ?? {}, proxy.labels);
    if (proxy.type !== 'router') return false;
    return (spec.targetRefs ?? []).some((ref) =>
      scope.gateways?.includes(`${p.metadata.namespace}/${ref.name}`),
    );
  });
}

function policyId(p: RateLimitPolicyResource): string {
  return `${p.metadata.namespace}/${p.metadata.name}`;
}

const PERCENT_ALL = { default_value: { numerator: 100, denominator: 'HUNDRED' } };
const PERCENT_NONE = { default_value: { numerator: 0, denominator: 'HUNDRED' } };

// ---------------------------------------------------------------- GLOBAL

function descriptorJson(d: RateLimitDescriptor): Json {
  if (d.requestHeader) {
    return {
      request_header: {
        header_name: d.requestHeader.name.toLowerCase(),
        ...(d.requestHeader.skipIfAbsent ? { skip_if_absent: true } : {}),
      },
    };
  }
  if (d.path) return { path: {} };
  if (d.method) return { method: {} };
  if (d.sourcePrincipal) return { source_principal: {} };
  if (d.remoteAddress) return { remote_address: {} };
  return { route: {} };
}

function globalMatch(m: RateLimitMatch | undefined): Json | undefined {
  if (!m) return undefined;
  const out: Json = {};
  const path = stringMatcher(m.uri);
  const method = stringMatcher(m.method);
  if (path) out.path = path;
  if (method) out.method = method;
  const headers = Object.entries(m.headers ?? {}).map(([name, sm]) => headerMatcher(name, sm, false));
  if (headers.length) out.headers = headers;
  return Object.keys(out).length ? out : undefined;
}

function globalRule(p: RateLimitPolicyResource, rule: RateLimitRule, index: number): Json {
  const spec = p.spec as RateLimitPolicySpec;
  const match = globalMatch(rule.match);
  return {
    policy: policyId(p),
    name: rateLimitRuleName(rule, index),
    ...(match ? { match } : {}),
    ...(rule.descriptors?.length ? { descriptors: rule.descriptors.map(descriptorJson) } : {}),
    limit: { requests_per_unit: rule.limit.requests, unit: rule.limit.unit },
    ...(spec.shadow ? { shadow: true } : {}),
    ...(spec.failureMode === 'DENY' ? { failure_mode_deny: true } : {}),
  };
}

function globalFilter(policies: RateLimitPolicyResource[]): Json | undefined {
  const rules = policies.flatMap((p) =>
    (p.spec as RateLimitPolicySpec).rules.map((rule, i) => globalRule(p, rule, i)),
  );
  if (rules.length === 0) return undefined;
  return {
    name: MIZZEN_RATE_LIMIT_FILTER,
    typed_config: { '@type': TYPED_STRUCT_TYPE, type_url: MIZZEN_RATE_LIMIT_TYPE, value: { rules } },
  };
}

// ---------------------------------------------------------------- LOCAL

/** The descriptor key of a LOCAL policy's rules: unique per policy, so policies never share a bucket. */
function localDescriptorKey(p: RateLimitPolicyResource): string {
  return `RateLimitPolicy/${policyId(p)}`;
}

/**
 * N per unit as Envoy's token bucket: a burst of N, refilled as smoothly as
 * Envoy's 50ms minimum fill interval and whole-millisecond durations allow
 * (k tokens every unit·k/N, the smallest such k).
 */
export function tokenBucket(requests: number, unit: RateLimitUnit): Json {
  const unitMs = UNIT_SECONDS[unit] * 1000;
  let perFill = requests;
  for (let k = 1; k <= requests; k++) {
    if (requests % k !== 0) continue;
    const interval = (unitMs * k) / requests;
    if (interval >= 50 && Number.isInteger(interval)) {
      perFill = k;
      break;
    }
  }
  const intervalMs = (unitMs * perFill) / requests;
  return {
    max_tokens: requests,
    tokens_per_fill: perFill,
    fill_interval: `${intervalMs / 1000}s`,
  };
}

function localFilter(p: RateLimitPolicyResource): Json {
  const spec = p.spec as RateLimitPolicySpec;
  const key = localDescriptorKey(p);
  return {
    name: `envoy.filters.http.local_ratelimit/${policyId(p)}`,
    typed_config: {
      '@type': LOCAL_RATE_LIMIT_TYPE,
      stat_prefix: policyId(p),
      filter_enabled: PERCENT_ALL,
      // Shadow mode: count (enabled) but never reject (not enforced), and tell clients nothing.
      filter_enforced: spec.shadow ? PERCENT_NONE : PERCENT_ALL,
      ...(spec.shadow ? {} : { enable_x_ratelimit_headers: 'DRAFT_VERSION_03' }),
      descriptors: spec.rules.map((rule, i) => ({
        entries: [{ key, value: rateLimitRuleName(rule, i) }],
        token_bucket: tokenBucket(rule.limit.requests, rule.limit.unit),
      })),
      always_consume_default_token_bucket: false,
    },
  };
}

const RE2_SPECIAL = /[\\^$.|?*+()[\]{}]/g;

/** A uri match as a `:path` header matcher that ignores the query string, as the route's path match does. */
function pathMatcher(uri: RateLimitMatch['uri']): Json | undefined {
  if (!uri) return undefined;
  if (uri.prefix !== undefined) return { name: ':path', string_match: { prefix: uri.prefix } };
  const pattern = uri.exact !== undefined ? uri.exact.replace(RE2_SPECIAL, '\\$&') : uri.regex;
  if (pattern === undefined) return undefined;
  return { name: ':path', string_match: { safe_regex: { regex: `(?:${pattern})(?:\\?.*)?` } } };
}

/** The vhost action that produces a LOCAL rule's descriptor for the requests its match selects. */
function localAction(p: RateLimitPolicyResource, rule: RateLimitRule, index: number): Json {
  const entry = { descriptor_key: localDescriptorKey(p), descriptor_value: rateLimitRuleName(rule, index) };
  const m = rule.match;
  const headers = [
    pathMatcher(m?.uri),
    m?.method ? headerMatcher(':method', m.method, false) : undefined,
    ...Object.entries(m?.headers ?? {}).map(([name, sm]) => headerMatcher(name, sm, false)),
  ].filter((h): h is Json => h !== undefined);
  if (headers.length === 0) return { actions: [{ generic_key: entry }] };
  return { actions: [{ header_value_match: { ...entry, headers } }] };
}

// ---------------------------------------------------------------- both

export interface RateLimitConfig {
  /** HTTP filters to put before the router (local ones first: they cost nothing). */
  readonly filters: Json[];
  /** Fields for every virtual host of the connection manager's route table (`rate_limits`), or none. */
  readonly virtualHost: Json;
}

/** The rate limit filters and virtual host actions of one connection manager. */
export function rateLimitConfig(
  push: PushContext,
  proxy: ProxyInfo,
  scope: RateLimitScope = {},
): RateLimitConfig {
  const policies = rateLimitPoliciesFor(push, proxy, scope);
  const local = policies.filter((p) => (p.spec as RateLimitPolicySpec).mode === 'LOCAL');
  const global = policies.filter((p) => (p.spec as RateLimitPolicySpec).mode !== 'LOCAL');
  const filters = local.map(localFilter);
  const g = globalFilter(global);
  if (g) filters.push(g);
  const actions = local.flatMap((p) =>
    (p.spec as RateLimitPolicySpec).rules.map((rule, i) => localAction(p, rule, i)),
  );
  return { filters, virtualHost: actions.length ? { rate_limits: actions } : {} };
}

/** HTTP filters with the rate limit filters placed right before the router. */
export function withRateLimitFilters(filters: Json[], limits: RateLimitConfig): Json[] {
  if (limits.filters.length === 0) return filters;
  return [...filters.slice(0, -1), ...limits.filters, ...filters.slice(-1)];
}

/** A route configuration whose virtual hosts all carry the rate limit actions. */
export function withRateLimitActions(routeConfig: Json, limits: RateLimitConfig): Json {
  if (Object.keys(limits.virtualHost).length === 0) return routeConfig;
  const vhosts = (routeConfig.virtual_hosts as Json[] | undefined) ?? [];
  return { ...routeConfig, virtual_hosts: vhosts.map((vh) => ({ ...vh, ...limits.virtualHost })) };
}
