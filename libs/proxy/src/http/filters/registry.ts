import {
  AuthzChain,
  compileExtAuthzPerRoute,
  EXT_AUTHZ_PER_ROUTE_TYPE,
  type ExtAuthzPerRouteJson,
  type HttpFilterJson,
  isAuthzFilter,
} from '@mizzen/policy';
import { fail } from '../../config/errors.js';
import { AUTHZ_FILTER_FIELDS } from '../../config/fields/authz.js';
import { EXT_AUTHZ_PER_ROUTE } from '../../config/fields/ext-authz.js';
import {
  CORS,
  CORS_POLICY,
  FAULT,
  LOCAL_RATE_LIMIT,
  MIZZEN_RATE_LIMIT,
  ROUTER,
} from '../../config/fields/http-filters.js';
import { compileStatsConfig, isStatsFilter, TYPED_STRUCT_TYPES } from '../../config/telemetry.js';
import { type Fields, HONOURED, OWN_CHECK, refuseUnknownFields } from '../../config/understood.js';
import type { FilterJson } from '../../envoy/types.js';
import type { StatsSettings } from '../../observe/records.js';
import { compileAuthzFilter } from './authz.js';
import { CORS_POLICY_TYPE, CORS_TYPE, CorsFilter, compileCorsPolicy } from './cors.js';
import { compileFault, FAULT_TYPE, FaultFilter } from './fault.js';
import type { HttpFilter } from './filter.js';
import { JWT_AUTHN_TYPE, JwtAuthnFilter } from './jwt-authn.js';
import { CompiledLocalRateLimit, LOCAL_RATE_LIMIT_TYPE, LocalRateLimitFilter } from './local-rate-limit.js';
import { compileRateLimit, MIZZEN_RATE_LIMIT_TYPE, RateLimitFilter } from './rate-limit.js';

export const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

type Json = Record<string, unknown>;

/**
 * How to build one HTTP filter type from its HCM entry, and the fields of
 * its config it honours (every other one is refused); a filter compiled by
 * @mizzen/policy checks its own.
 */
interface FilterKind {
  create(name: string, config: Json, where: string): HttpFilter;
  readonly fields?: Fields;
}

const FILTERS: Record<string, FilterKind> = {
  [FAULT_TYPE]: {
    create: (name, config, where) => new FaultFilter(name, compileFault(config, where)),
    fields: FAULT,
  },
  [CORS_TYPE]: { create: (name) => new CorsFilter(name), fields: CORS },
  [JWT_AUTHN_TYPE]: { create: (name, config, where) => JwtAuthnFilter.compile(name, config, where) },
  [LOCAL_RATE_LIMIT_TYPE]: {
    create: (name, config, where) =>
      new LocalRateLimitFilter(name, new CompiledLocalRateLimit(config, where, false)),
    fields: LOCAL_RATE_LIMIT,
  },
  [MIZZEN_RATE_LIMIT_TYPE]: {
    create: (name, config, where) => new RateLimitFilter(name, compileRateLimit(config, where)),
    fields: MIZZEN_RATE_LIMIT,
  },
};

/** Per-route configs (typed_per_filter_config), by their @type, compiled when the route table is. */
const PER_ROUTE: Record<string, { compile: (config: Json, where: string) => unknown; fields: Fields }> = {
  [FAULT_TYPE]: { compile: (config, where) => compileFault(config, where), fields: FAULT },
  [CORS_POLICY_TYPE]: { compile: (config, where) => compileCorsPolicy(config, where), fields: CORS_POLICY },
  [LOCAL_RATE_LIMIT_TYPE]: {
    compile: (config, where) => new CompiledLocalRateLimit(config, where, true),
    fields: LOCAL_RATE_LIMIT,
  },
  [EXT_AUTHZ_PER_ROUTE_TYPE]: {
    compile: (config, where) => compileExtAuthzPerRoute(config as ExtAuthzPerRouteJson, where),
    fields: EXT_AUTHZ_PER_ROUTE,
  },
};

/** envoy.config.route.v3.FilterConfig around a per-route config (`disabled` is not supported). */
const FILTER_CONFIG_WRAPPER: Fields = { config: OWN_CHECK, is_optional: HONOURED };

/**
 * A config in a `udpa.type.v1.TypedStruct` / `xds.type.v3.TypedStruct` (as
 * Istio's EnvoyFilter examples write the local rate limit, and as pilot sends
 * Mizzen's own filters) read as the type it names.
 */
function unwrapTypedStruct(typed: Json & { '@type'?: string }): { type: string; config: Json } {
  const type = typed['@type'] ?? '';
  if (TYPED_STRUCT_TYPES.has(type)) {
    return { type: String(typed.type_url ?? ''), config: (typed.value as Json | undefined) ?? {} };
  }
  const { '@type': _t, ...config } = typed;
  return { type, config };
}

export interface CompiledHttpFilters {
  /** Every filter before the router, in order. */
  readonly filters: readonly HttpFilter[];
  /** Istio's `istio.stats` filter config: the observers report Istio's metrics with these overrides. */
  readonly stats?: StatsSettings;
}

/**
 * The HCM's http_filters: known filters are built, the router must come last,
 * and anything this proxy cannot run is refused (a skipped auth or fault
 * filter would silently change behaviour), unless Envoy's `is_optional` says
 * it may be skipped.
 */
export function compileHttpFilters(
  list: (FilterJson & { is_optional?: boolean })[],
  where: string,
): CompiledHttpFilters {
  const filters: HttpFilter[] = [];
  let stats: StatsSettings | undefined;
  // Consecutive RBAC/ext_authz filters run as one chain: a later one reads what an earlier one decided.
  let authz: { entries: FilterJson[]; at: string; where: string[] } | undefined;
  const flushAuthz = () => {
    if (!authz) return;
    const { entries, at, where: each } = authz;
    authz = undefined;
    const chain = AuthzChain.compile(entries as HttpFilterJson[], at);
    entries.forEach((e, j) => {
      const fields = AUTHZ_FILTER_FIELDS[e.typed_config?.['@type'] ?? ''];
      if (fields) refuseUnknownFields(e.typed_config, fields, each[j]!);
    });
    filters.push(compileAuthzFilter(entries.map((e) => e.name).join('+'), chain));
  };
  list.forEach((f, i) => {
    const type = f.typed_config ? unwrapTypedStruct(f.typed_config).type || undefined : undefined;
    const at = `${where}.http_filters[${i}]`;
    if (isAuthzFilter(f)) {
      authz ??= { entries: [], at, where: [] };
      authz.entries.push(f);
      authz.where.push(`${at} (${f.name})`);
      return;
    }
    flushAuthz();
    if (type === ROUTER_TYPE) {
      if (i !== list.length - 1) fail(at, 'the router filter must be the last HTTP filter');
      refuseUnknownFields(f.typed_config, ROUTER, `${at} (${f.name})`);
      return;
    }
    if (isStatsFilter(f.typed_config)) {
      // Metrics are recorded by the proxy's observers; the filter only carries their configuration.
      stats = compileStatsConfig(f.typed_config!, `${at} (${f.name})`);
      return;
    }
    const kind = type ? FILTERS[type] : undefined;
    if (!kind) {
      if (f.is_optional) return;
      fail(at, `HTTP filter ${f.name} (${type ?? 'no type'}) is not supported by this proxy`);
    }
    const config = unwrapTypedStruct(f.typed_config!).config;
    filters.push(kind.create(f.name, config, `${at} (${f.name})`));
    if (kind.fields) refuseUnknownFields(config, kind.fields, `${at} (${f.name})`);
  });
  flushAuthz();
  if (list.length === 0 || list[list.length - 1]?.typed_config?.['@type'] !== ROUTER_TYPE) {
    fail(where, 'the HTTP filter chain must end with the router filter');
  }
  return { filters, stats };
}

/** Compiles one typed_per_filter_config entry; unknown types are refused. */
export function compilePerRouteConfig(filterName: string, config: Json, where: string): unknown {
  let typed = config as Json & { '@type'?: string; config?: Json; is_optional?: boolean };
  const at = `${where}.typed_per_filter_config[${filterName}]`;
  // envoy.config.route.v3.FilterConfig wraps the real config and may mark it optional.
  if (typed['@type'] === 'type.googleapis.com/envoy.config.route.v3.FilterConfig') {
    refuseUnknownFields(typed, FILTER_CONFIG_WRAPPER, at);
    const inner = typed.config as (Json & { '@type'?: string }) | undefined;
    if (!inner) return undefined;
    if (!PER_ROUTE[unwrapTypedStruct(inner).type] && typed.is_optional) return undefined;
    typed = inner;
  }
  const { type, config: rest } = unwrapTypedStruct(typed);
  const kind = PER_ROUTE[type];
  if (!kind) fail(at, `per-route config ${type || '(no type)'} is not supported`);
  const compiled = kind.compile(rest, at);
  refuseUnknownFields(rest, kind.fields, at);
  return compiled;
}
