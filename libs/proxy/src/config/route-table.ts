import { durationToMs } from '@mizzen/xds';
import type {
  RedirectActionJson,
  RouteActionJson,
  RouteConfigurationJson,
  RouteJson,
  RouteMatchJson,
  VirtualHostJson,
} from '../envoy/types.js';
import { fraction } from '../http/filters/percent.js';
import { compilePerRouteConfig } from '../http/filters/registry.js';
import { type CompiledHashPolicy, compileHashPolicy } from '../http/hash-policy.js';
import { fail } from './errors.js';
import { ROUTE_CONFIGURATION } from './fields/route.js';
import { compileHeaderMutation, type HeaderMutation, NO_MUTATION } from './headers.js';
import { type CompiledRateLimit, compileRateLimits, type RateLimitJson } from './rate-limit-actions.js';
import { type CompiledRegex, compileRegex } from './regex.js';
import { compileRetryPolicy, type RetryPolicy } from './retry-policy.js';
import {
  compileHeaderMatcher,
  compileQueryMatcher,
  type HeaderLookup,
  type HeaderPredicate,
  type QueryPredicate,
} from './string-matcher.js';
import { refuseUnknownFields } from './understood.js';

/** What route matching looks at for one request. */
export interface MatchInput {
  /** `:path` as received, query string included. */
  readonly path: string;
  /** The path without its query string. */
  readonly pathOnly: string;
  readonly header: HeaderLookup;
  readonly query: () => URLSearchParams;
}

export interface WeightedCluster {
  readonly name: string;
  readonly weight: number;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  /** This cluster's own authority rewrite (host_rewrite_literal), used when the route sets none. */
  readonly hostRewrite?: string;
}

export interface ForwardAction {
  readonly kind: 'forward';
  readonly clusters: readonly WeightedCluster[];
  readonly totalWeight: number;
  /** 0 means no timeout. */
  readonly timeoutMs: number;
  readonly retry?: RetryPolicy;
  readonly prefixRewrite?: string;
  readonly regexRewrite?: { pattern: CompiledRegex; substitution: string };
  readonly hostRewrite?: string;
  readonly hashPolicies: readonly CompiledHashPolicy[];
  /** Shadow copies: each cluster gets the request with probability `probability`, answers discarded. */
  readonly mirrors: readonly { cluster: string; probability: number }[];
}

export interface RedirectAction {
  readonly kind: 'redirect';
  readonly status: number;
  readonly scheme?: string;
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  readonly prefixRewrite?: string;
  readonly stripQuery: boolean;
}

export interface DirectResponseAction {
  readonly kind: 'direct';
  readonly status: number;
  readonly body?: Buffer;
}

export type RouteAction = ForwardAction | RedirectAction | DirectResponseAction;

export interface CompiledRoute {
  readonly name: string;
  /** The prefix this route matched on (for prefix_rewrite), if it is a prefix route. */
  readonly prefix?: string;
  readonly caseSensitive: boolean;
  readonly matches: (input: MatchInput) => boolean;
  readonly action: RouteAction;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  /** typed_per_filter_config, compiled, by filter name. */
  readonly perFilterConfig: ReadonlyMap<string, unknown>;
  /** The route action's `rate_limits`: descriptors for the rate limit filters. */
  readonly rateLimits: readonly CompiledRateLimit[];
}

export interface CompiledVirtualHost {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly CompiledRoute[];
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  readonly includeAttemptCount: boolean;
  readonly perFilterConfig: ReadonlyMap<string, unknown>;
  readonly rateLimits: readonly CompiledRateLimit[];
}

const REDIRECT_CODES: Record<string, number> = {
  MOVED_PERMANENTLY: 301,
  FOUND: 302,
  SEE_OTHER: 303,
  TEMPORARY_REDIRECT: 307,
  PERMANENT_REDIRECT: 308,
};

function compilePerFilter(
  configs: Record<string, Record<string, unknown>> | undefined,
  where: string,
): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [name, config] of Object.entries(configs ?? {})) {
    const compiled = compilePerRouteConfig(name, config, where);
    if (compiled !== undefined) out.set(name, compiled);
  }
  return out;
}

/** Envoy's route timeout when a route names none. */
const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

function compilePathMatch(
  m: RouteMatchJson,
  where: string,
): { test: (i: MatchInput) => boolean; prefix?: string } {
  const cs = m.case_sensitive !== false;
  const norm = cs ? (s: string) => s : (s: string) => s.toLowerCase();
  if (m.prefix !== undefined) {
    const p = norm(m.prefix);
    return { test: (i) => norm(i.path).startsWith(p), prefix: m.prefix };
  }
  if (m.path !== undefined) {
    const p = norm(m.path);
    return { test: (i) => norm(i.pathOnly) === p };
  }
  if (m.path_separated_prefix !== undefined) {
    const p = norm(m.path_separated_prefix);
    return {
      test: (i) => norm(i.pathOnly) === p || norm(i.pathOnly).startsWith(`${p}/`),
      prefix: m.path_separated_prefix,
    };
  }
  if (m.safe_regex) {
    const re = compileRegex(m.safe_regex.regex, `${where}.safe_regex`, !cs);
    return { test: (i) => re.fullMatch(i.pathOnly) };
  }
  fail(where, 'route match sets none of prefix, path, safe_regex, path_separated_prefix');
}

function compileForward(a: RouteActionJson, where: string): ForwardAction {
  let clusters: WeightedCluster[];
  if (a.cluster) {
    clusters = [{ name: a.cluster, weight: 1, requestHeaders: NO_MUTATION, responseHeaders: NO_MUTATION }];
  } else if (a.weighted_clusters?.clusters?.length) {
    clusters = a.weighted_clusters.clusters.map((c, i) => {
      const w = `${where}.weighted_clusters.clusters[${i}]`;
      if (!c.name) fail(w, 'cluster name is empty');
      return {
        name: c.name,
        weight: c.weight ?? 0,
        requestHeaders: compileHeaderMutation(
          c.request_headers_to_add,
          c.request_headers_to_remove,
          `${w}.request`,
        ),
        responseHeaders: compileHeaderMutation(
          c.response_headers_to_add,
          c.response_headers_to_remove,
          `${w}.response`,
        ),
        hostRewrite: c.host_rewrite_literal || undefined,
      };
    });
  } else {
    fail(where, 'route action names no cluster (cluster or weighted_clusters)');
  }
  const totalWeight = clusters.reduce((s, c) => s + c.weight, 0);
  if (totalWeight <= 0) fail(`${where}.weighted_clusters`, 'the weights sum to zero');
  const timeout = a.timeout === undefined ? DEFAULT_ROUTE_TIMEOUT_MS : durationToMs(a.timeout)!;
  return {
    kind: 'forward',
    clusters,
    totalWeight,
    timeoutMs: timeout,
    retry: compileRetryPolicy(a.retry_policy, `${where}.retry_policy`),
    prefixRewrite: a.prefix_rewrite,
    regexRewrite: a.regex_rewrite
      ? {
          pattern: compileRegex(a.regex_rewrite.pattern.regex, `${where}.regex_rewrite.pattern`),
          substitution: a.regex_rewrite.substitution,
        }
      : undefined,
    hostRewrite: a.host_rewrite_literal || undefined,
    hashPolicies: (a.hash_policy ?? []).map((h, i) => compileHashPolicy(h, `${where}.hash_policy[${i}]`)),
    mirrors: (a.request_mirror_policies ?? []).map((m, i) => {
      const at = `${where}.request_mirror_policies[${i}]`;
      if (!m.cluster) fail(at, 'mirror policy names no cluster');
      // No runtime_fraction means every request is mirrored.
      return {
        cluster: m.cluster,
        probability: m.runtime_fraction ? fraction(m.runtime_fraction.default_value, at) : 1,
      };
    }),
  };
}

function compileRedirect(r: RedirectActionJson, where: string): RedirectAction {
  const status = REDIRECT_CODES[r.response_code ?? 'MOVED_PERMANENTLY'];
  if (!status) fail(`${where}.response_code`, `unknown redirect code ${r.response_code}`);
  return {
    kind: 'redirect',
    status,
    scheme: r.https_redirect ? 'https' : r.scheme_redirect || undefined,
    host: r.host_redirect || undefined,
    port: r.port_redirect || undefined,
    path: r.path_redirect || undefined,
    prefixRewrite: r.prefix_rewrite,
    stripQuery: r.strip_query === true,
  };
}

function compileRoute(r: RouteJson, where: string, vhostRetry: RetryPolicy | undefined): CompiledRoute {
  if (!r.match) fail(where, 'route has no match');
  const path = compilePathMatch(r.match, `${where}.match`);
  const headers: HeaderPredicate[] = (r.match.headers ?? []).map((h, i) =>
    compileHeaderMatcher(h, `${where}.match.headers[${i}]`),
  );
  const query: QueryPredicate[] = (r.match.query_parameters ?? []).map((q, i) =>
    compileQueryMatcher(q, `${where}.match.query_parameters[${i}]`),
  );
  const matches = (input: MatchInput): boolean => {
    if (!path.test(input)) return false;
    for (const h of headers) if (!h(input.header)) return false;
    if (query.length) {
      const q = input.query();
      for (const p of query) if (!p(q)) return false;
    }
    return true;
  };
  let action: RouteAction;
  if (r.route) {
    const forward = compileForward(r.route, `${where}.route`);
    action = forward.retry || !vhostRetry ? forward : { ...forward, retry: vhostRetry };
  } else if (r.redirect) action = compileRedirect(r.redirect, `${where}.redirect`);
  else if (r.direct_response) {
    const d = r.direct_response;
    if (!(d.status >= 100 && d.status <= 599))
      fail(`${where}.direct_response.status`, `invalid HTTP status ${d.status}`);
    if (d.body?.filename) fail(`${where}.direct_response.body`, 'filename bodies are not supported');
    const body =
      d.body?.inline_string !== undefined
        ? Buffer.from(d.body.inline_string)
        : d.body?.inline_bytes !== undefined
          ? Buffer.from(d.body.inline_bytes, 'base64')
          : undefined;
    action = { kind: 'direct', status: d.status, body };
  } else fail(where, 'route has no action (route, redirect or direct_response)');
  return {
    name: r.name ?? '',
    prefix: path.prefix,
    caseSensitive: r.match.case_sensitive !== false,
    matches,
    action,
    requestHeaders: compileHeaderMutation(
      r.request_headers_to_add,
      r.request_headers_to_remove,
      `${where}.request`,
    ),
    responseHeaders: compileHeaderMutation(
      r.response_headers_to_add,
      r.response_headers_to_remove,
      `${where}.response`,
    ),
    perFilterConfig: compilePerFilter(r.typed_per_filter_config, where),
    rateLimits: compileRateLimits(
      (r.route as { rate_limits?: RateLimitJson[] } | undefined)?.rate_limits,
      `${where}.route`,
    ),
  };
}

function compileVirtualHost(v: VirtualHostJson, where: string): CompiledVirtualHost {
  if (!v.domains?.length) fail(where, 'virtual host has no domains');
  const vhostRetry = compileRetryPolicy(v.retry_policy, `${where}.retry_policy`);
  return {
    name: v.name,
    domains: v.domains.map((d) => d.toLowerCase()),
    routes: (v.routes ?? []).map((r, i) => compileRoute(r, `${where}.routes[${i}]`, vhostRetry)),
    requestHeaders: compileHeaderMutation(
      v.request_headers_to_add,
      v.request_headers_to_remove,
      `${where}.request`,
    ),
    responseHeaders: compileHeaderMutation(
      v.response_headers_to_add,
      v.response_headers_to_remove,
      `${where}.response`,
    ),
    includeAttemptCount: v.include_request_attempt_count === true,
    perFilterConfig: compilePerFilter(v.typed_per_filter_config, where),
    rateLimits: compileRateLimits((v as { rate_limits?: RateLimitJson[] }).rate_limits, where),
  };
}

/**
 * A compiled RouteConfiguration: virtual hosts found by `:authority` with
 * Envoy's search order (exact, then `*.suffix` longest first, then `prefix*`
 * longest first, then `*`), routes tried in order, first match wins.
 */
export class RouteTable {
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
  private readonly exact = new Map<string, CompiledVirtualHost>();
  private readonly suffixes: { suffix: string; vhost: CompiledVirtualHost }[] = [];
  private readonly prefixes: { prefix: string; vhost: CompiledVirtualHost }[] = [];
  private catchAll?: CompiledVirtualHost;

  private constructor(
    readonly name: string,
    readonly virtualHosts: readonly CompiledVirtualHost[],
    config: RouteConfigurationJson,
  ) {
    const where = `route configuration ${name}`;
    this.requestHeaders = compileHeaderMutation(
      config.request_headers_to_add,
      config.request_headers_to_remove,
      `${where}.request`,
    );
    this.responseHeaders = compileHeaderMutation(
      config.response_headers_to_add,
      config.response_headers_to_remove,
      `${where}.response`,
    );
    const seen = new Map<string, string>();
    for (const vh of virtualHosts) {
      for (const d of vh.domains) {
        const other = seen.get(d);
        if (other !== undefined) {
          fail(
            where,
            `domain "${d}" appears in virtual hosts ${other} and ${vh.name}; domains must be unique`,
          );
        }
        seen.set(d, vh.name);
        if (d === '*') this.catchAll = vh;
        else if (d.startsWith('*')) this.suffixes.push({ suffix: d.slice(1), vhost: vh });
        else if (d.endsWith('*')) this.prefixes.push({ prefix: d.slice(0, -1), vhost: vh });
        else this.exact.set(d, vh);
      }
    }
    this.suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Every field is either honoured or refused (fields/route.ts), after the compilers' own checks. */
  static compile(config: RouteConfigurationJson): RouteTable {
    if (!config.name) fail('route configuration', 'has no name');
    const vhosts = (config.virtual_hosts ?? []).map((v, i) =>
      compileVirtualHost(v, `route configuration ${config.name}.virtual_hosts[${i}] (${v.name})`),
    );
    const table = new RouteTable(config.name, vhosts, config);
    refuseUnknownFields(config, ROUTE_CONFIGURATION, `route configuration ${config.name}`);
    return table;
  }

  findVirtualHost(authority: string): CompiledVirtualHost | undefined {
    const host = authority.toLowerCase();
    const exact = this.exact.get(host);
    if (exact) return exact;
    for (const s of this.suffixes)
      if (host.length > s.suffix.length && host.endsWith(s.suffix)) return s.vhost;
    for (const p of this.prefixes)
      if (host.length > p.prefix.length && host.startsWith(p.prefix)) return p.vhost;
    return this.catchAll;
  }

  /** Every cluster a route may send to (to validate or warm). */
  clusterNames(): Set<string> {
    const out = new Set<string>();
    for (const vh of this.virtualHosts)
      for (const r of vh.routes)
        if (r.action.kind === 'forward') for (const c of r.action.clusters) out.add(c.name);
    return out;
  }
}

export function findRoute(vhost: CompiledVirtualHost, input: MatchInput): CompiledRoute | undefined {
  for (const r of vhost.routes) if (r.matches(input)) return r;
  return undefined;
}
