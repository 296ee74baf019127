import type {
  CorsPolicy,
  Destination,
  DestinationRuleSpec,
  HTTPFaultInjection,
  HTTPMatchRequest,
  HTTPRoute,
  Percent,
  StringMatch,
  VirtualServiceSpec,
} from '@mizzen/api';
import { parseDuration } from '@mizzen/api';
import { outboundClusterName } from '../model/names.js';
import type { ProxyInfo } from '../model/proxy.js';
import { labelsMatch, resolveShortName, type Service } from '../registry/model.js';
import { envoyDuration } from './durations.js';
import {
  CORS_FILTER,
  CORS_POLICY_TYPE,
  defaultRetryPolicy,
  FAULT_FILTER,
  FAULT_TYPE,
  type Json,
} from './envoy.js';
import type { PushContext, VirtualServiceResource } from './push-context.js';
import { effectivePolicy, hashPolicyFor } from './traffic-policy.js';

export interface RouteContext {
  push: PushContext;
  proxy: ProxyInfo;
  /** `mesh` for sidecars, `ns/name` for a gateway. */
  gateway: string;
  /** The port a match's `port` is compared with: the service port (sidecar) or the Gateway server port. */
  matchPort: number;
  /** Port used for destinations that name no port when their service has several. */
  listenerPort: number;
  /** Proxyless gRPC clients get no default retry policy (gRPC has its own). */
  proxyless?: boolean;
}

/** Istio's default for routes without `timeout`: no timeout. */
const NO_TIMEOUT = '0s';

const REDIRECT_CODES: Record<number, string> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

/** The catch-all route Istio gives a service with no VirtualService. */
export function defaultRoute(cluster: string, proxyless = false, hash?: Json[]): Json {
  const route: Json = { cluster, timeout: NO_TIMEOUT };
  if (!proxyless) route.retry_policy = defaultRetryPolicy();
  if (hash) route.hash_policy = hash;
  return { name: 'default', match: { prefix: '/' }, route };
}

/** The default route of a service port with no VirtualService, carrying its DestinationRule's hash policy. */
export function defaultRouteFor(
  push: PushContext,
  proxy: ProxyInfo,
  service: Service,
  port: number,
  proxyless = false,
): Json {
  const rule = push.destinationRuleFor(proxy, service)?.spec as DestinationRuleSpec | undefined;
  const hash = hashPolicyFor(effectivePolicy(rule, undefined, port).loadBalancer?.consistentHash);
  return defaultRoute(outboundClusterName(port, undefined, service.hostname), proxyless, hash);
}

/** Istio's StringMatch as Envoy's StringMatcher (undefined when it sets nothing). */
export function stringMatcher(m: StringMatch | undefined, ignoreCase = false): Json | undefined {
  if (!m) return undefined;
  const ic = ignoreCase ? { ignore_case: true } : {};
  if (m.exact !== undefined) return { exact: m.exact, ...ic };
  if (m.prefix !== undefined) return { prefix: m.prefix, ...ic };
  if (m.regex !== undefined) return { safe_regex: { regex: m.regex } };
  return undefined;
}

/** A header's StringMatch as Envoy's HeaderMatcher; an empty match means the header is present. */
export function headerMatcher(name: string, m: StringMatch | undefined, invert: boolean): Json {
  const sm = stringMatcher(m);
  const base: Json = { name: name.toLowerCase() };
  if (sm) base.string_match = sm;
  else base.present_match = true;
  if (invert) base.invert_match = true;
  return base;
}

/** One Istio HTTPMatchRequest as an Envoy RouteMatch. */
export function routeMatch(match: HTTPMatchRequest | undefined): Json {
  const out: Json = {};
  const uri = match?.uri;
  if (uri?.exact !== undefined) out.path = uri.exact;
  else if (uri?.prefix !== undefined) out.prefix = uri.prefix;
  else if (uri?.regex !== undefined) out.safe_regex = { regex: uri.regex };
  else out.prefix = '/';
  if (match?.ignoreUriCase) out.case_sensitive = false;

  const headers: Json[] = [];
  for (const [name, m] of Object.entries((match?.headers ?? {}) as Record<string, StringMatch>)) {
    headers.push(headerMatcher(name, m, false));
  }
  for (const [name, m] of Object.entries((match?.withoutHeaders ?? {}) as Record<string, StringMatch>)) {
    headers.push(headerMatcher(name, m, true));
  }
  if (match?.method) headers.push(headerMatcher(':method', match.method, false));
  if (match?.authority) headers.push(headerMatcher(':authority', match.authority, false));
  if (match?.scheme) headers.push(headerMatcher(':scheme', match.scheme, false));
  if (headers.length) out.headers = headers;

  const query: Json[] = [];
  for (const [name, m] of Object.entries((match?.queryParams ?? {}) as Record<string, StringMatch>)) {
    const sm = stringMatcher(m);
    query.push(sm ? { name, string_match: sm } : { name, present_match: true });
  }
  if (query.length) out.query_parameters = query;
  return out;
}

/** gRPC status names as Istio accepts them in `fault.abort.grpcStatus`. */
const GRPC_STATUS: Record<string, number> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** Istio's Percent (a double, 0–100) as an Envoy FractionalPercent per million. */
function percentOf(p: Percent | undefined, legacyPercent?: number): Json {
  if (p?.value !== undefined) return { numerator: Math.round(p.value * 10_000), denominator: 'MILLION' };
  return { numerator: legacyPercent ?? 0, denominator: 'HUNDRED' };
}

/** `fault` as the fault filter's per-route config (Istio's translateFault). */
export function faultConfig(fault: HTTPFaultInjection): Json {
  const out: Json = { '@type': FAULT_TYPE };
  if (fault.delay?.fixedDelay) {
    out.delay = {
      fixed_delay: envoyDuration(fault.delay.fixedDelay),
      percentage: percentOf(fault.delay.percentage, fault.delay.percent),
    };
  }
  if (fault.abort) {
    const abort: Json = { percentage: percentOf(fault.abort.percentage) };
    if (fault.abort.httpStatus !== undefined) abort.http_status = fault.abort.httpStatus;
    else if (fault.abort.grpcStatus !== undefined) {
      abort.grpc_status = GRPC_STATUS[fault.abort.grpcStatus.toUpperCase()] ?? Number(fault.abort.grpcStatus);
    }
    if (abort.http_status !== undefined || abort.grpc_status !== undefined) out.abort = abort;
  }
  return out;
}

/** `corsPolicy` as the CORS filter's per-route config (Istio's translateCORSPolicy). */
export function corsConfig(cors: CorsPolicy): Json {
  const out: Json = {
    '@type': CORS_POLICY_TYPE,
    filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
  };
  if (cors.allowMethods?.length) out.allow_methods = cors.allowMethods.join(',');
  if (cors.allowHeaders?.length) out.allow_headers = cors.allowHeaders.join(',');
  if (cors.exposeHeaders?.length) out.expose_headers = cors.exposeHeaders.join(',');
  if (cors.maxAge) out.max_age = String(Math.floor(parseDuration(cors.maxAge) / 1000));
  if (cors.allowCredentials !== undefined) out.allow_credentials = cors.allowCredentials;
  if (cors.allowOrigins?.length)
    out.allow_origin_string_match = cors.allowOrigins.map((m) => stringMatcher(m));
  else if (cors.allowOrigin?.length) {
    out.allow_origin_string_match = cors.allowOrigin.map((o) =>
      o === '*' ? { safe_regex: { regex: '.*' } } : { exact: o },
    );
  }
  if (cors.unmatchedPreflights === 'IGNORE') out.forward_not_matching_preflights = false;
  return out;
}

/** Does this match apply to the proxy and port being built (Istio filters these at translation time)? */
function matchApplies(match: HTTPMatchRequest, ctx: RouteContext, vsNamespace: string): boolean {
  if (match.port !== undefined && match.port !== ctx.matchPort) return false;
  if (match.sourceLabels && !labelsMatch(match.sourceLabels as Record<string, string>, ctx.proxy.labels))
    return false;
  if (match.sourceNamespace && match.sourceNamespace !== ctx.proxy.namespace) return false;
  if (match.gateways?.length) {
    const resolved = match.gateways.map((g) => (g === 'mesh' || g.includes('/') ? g : `${vsNamespace}/${g}`));
    if (!resolved.includes(ctx.gateway)) return false;
  }
  return true;
}

function headerOps(
  ops: { set?: Record<string, string>; add?: Record<string, string>; remove?: string[] } | undefined,
) {
  const add: Json[] = [];
  for (const [key, value] of Object.entries(ops?.set ?? {})) {
    add.push({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  for (const [key, value] of Object.entries(ops?.add ?? {})) {
    add.push({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' });
  }
  return { add, remove: ops?.remove ?? [] };
}

function applyHeaderOps(target: Json, headers: HTTPRoute['headers']): void {
  const req = headerOps(headers?.request);
  const res = headerOps(headers?.response);
  if (req.add.length) target.request_headers_to_add = req.add;
  if (req.remove.length) target.request_headers_to_remove = req.remove;
  if (res.add.length) target.response_headers_to_add = res.add;
  if (res.remove.length) target.response_headers_to_remove = res.remove;
}

function retryPolicy(route: HTTPRoute, proxyless: boolean): Json | undefined {
  const retries = route.retries;
  if (!retries) return proxyless ? undefined : defaultRetryPolicy();
  if ((retries.attempts ?? 0) === 0) return undefined;
  const conditions: string[] = [];
  const codes: number[] = [];
  const retryOn =
    retries.retryOn ?? 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';
  for (const part of retryOn
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (/^\d{3}$/.test(part)) codes.push(Number(part));
    else conditions.push(part);
  }
  if (codes.length && !conditions.includes('retriable-status-codes'))
    conditions.push('retriable-status-codes');
  if (retries.retryOn === undefined) codes.push(503);
  const policy: Json = { retry_on: conditions.join(','), num_retries: retries.attempts };
  if (codes.length) policy.retriable_status_codes = codes;
  if (retries.perTryTimeout) policy.per_try_timeout = envoyDuration(retries.perTryTimeout);
  // Istio's retryRemoteLocalities: Envoy's previous_priorities, updated every two attempts.
  if (retries.retryRemoteLocalities) {
    policy.retry_priority = {
      name: 'envoy.retry_priorities.previous_priorities',
      typed_config: { '@type': PREVIOUS_PRIORITIES_TYPE, update_frequency: 2 },
    };
  }
  return policy;
}

const PREVIOUS_PRIORITIES_TYPE =
  'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig';

interface ResolvedDestination {
  cluster: string;
  host: string;
  port: number;
  subset?: string;
}

function resolveDestination(
  ctx: RouteContext,
  dest: { host: string; subset?: string; port?: { number?: number } },
  vsNamespace: string,
): ResolvedDestination {
  const host = resolveShortName(dest.host, vsNamespace, ctx.push.mesh.domainSuffix);
  const service = ctx.push.registry.service(host);
  let port = dest.port?.number;
  if (port === undefined) port = service?.ports.length === 1 ? service.ports[0]!.port : ctx.listenerPort;
  if (dest.subset && service) warnUndefinedSubset(ctx, service, host, dest.subset);
  return { cluster: outboundClusterName(port, dest.subset, host), host, port, subset: dest.subset };
}

/**
 * A route to a subset no DestinationRule defines: Istio's analyzer warns
 * (IST0101 ReferencedResourceNotFound) and such requests get 503 with no
 * cluster (`NC`); pilot says so in its log.
 */
function warnUndefinedSubset(ctx: RouteContext, service: Service, host: string, subset: string): void {
  const rule = ctx.push.destinationRuleFor(ctx.proxy, service)?.spec as DestinationRuleSpec | undefined;
  if (rule?.subsets?.some((s) => s.name === subset)) return;
  ctx.push.warnings.add(
    `a VirtualService routes to subset "${subset}" of ${host}, which no DestinationRule defines (IST0101): those requests get 503 (no cluster)`,
  );
}

function destinationCluster(
  ctx: RouteContext,
  dest: { host: string; subset?: string; port?: { number?: number } },
  vsNamespace: string,
): string {
  return resolveDestination(ctx, dest, vsNamespace).cluster;
}

/** The consistent-hash policy of a destination's DestinationRule, for the route (Istio puts it there). */
function hashPolicy(ctx: RouteContext, dest: ResolvedDestination): Json[] | undefined {
  const service = ctx.push.registry.service(dest.host);
  if (!service) return undefined;
  const rule = ctx.push.destinationRuleFor(ctx.proxy, service)?.spec as DestinationRuleSpec | undefined;
  return hashPolicyFor(effectivePolicy(rule, dest.subset, dest.port).loadBalancer?.consistentHash);
}

/** `mirror` + `mirrorPercentage` and `mirrors` as Envoy request mirror policies. */
function mirrorPolicies(route: HTTPRoute, ctx: RouteContext, vsNamespace: string): Json[] {
  const out: Json[] = [];
  const policy = (dest: Destination, percentage: Percent | undefined, legacy?: number) => ({
    cluster: destinationCluster(ctx, dest, vsNamespace),
    runtime_fraction: {
      default_value:
        percentage?.value !== undefined
          ? { numerator: Math.round(percentage.value * 10_000), denominator: 'MILLION' }
          : { numerator: legacy ?? 100, denominator: 'HUNDRED' },
    },
  });
  if (route.mirror)
    out.push(policy(route.mirror, route.mirrorPercentage, route.mirrorPercent ?? route.mirror_percent));
  for (const m of route.mirrors ?? []) out.push(policy(m.destination, m.percentage));
  return out;
}

function routeAction(
  route: HTTPRoute,
  ctx: RouteContext,
  vsNamespace: string,
  uriPrefix: string | undefined,
): Json {
  const action: Json = {};
  const destinations = (route.route ?? []).filter(
    (d) => d.weight === undefined || d.weight > 0 || route.route!.length === 1,
  );
  if (destinations.length === 1) {
    action.cluster = destinationCluster(ctx, destinations[0]!.destination, vsNamespace);
  } else if (destinations.length === 0) {
    return action;
  } else {
    action.weighted_clusters = {
      clusters: destinations.map((d) => {
        const wc: Json = { name: destinationCluster(ctx, d.destination, vsNamespace), weight: d.weight ?? 0 };
        applyHeaderOps(wc, d.headers);
        return wc;
      }),
    };
  }
  action.timeout = route.timeout ? envoyDuration(route.timeout) : NO_TIMEOUT;
  const retry = retryPolicy(route, ctx.proxyless ?? false);
  if (retry) action.retry_policy = retry;
  if (route.rewrite?.uri !== undefined) {
    if (uriPrefix !== undefined) action.prefix_rewrite = route.rewrite.uri;
    else action.regex_rewrite = { pattern: { regex: '^/.*$' }, substitution: route.rewrite.uri };
  }
  if (route.rewrite?.uriRegexRewrite) {
    action.regex_rewrite = {
      pattern: { regex: route.rewrite.uriRegexRewrite.match },
      substitution: route.rewrite.uriRegexRewrite.rewrite,
    };
  }
  if (route.rewrite?.authority) action.host_rewrite_literal = route.rewrite.authority;
  // With several destinations Istio hashes by the first one's policy.
  const hash =
    destinations[0] && hashPolicy(ctx, resolveDestination(ctx, destinations[0].destination, vsNamespace));
  if (hash) action.hash_policy = hash;
  const mirrors = mirrorPolicies(route, ctx, vsNamespace);
  if (mirrors.length) action.request_mirror_policies = mirrors;
  return action;
}

function redirectAction(route: HTTPRoute): Json {
  const r = route.redirect!;
  const out: Json = {};
  if (r.uri !== undefined) out.path_redirect = r.uri;
  if (r.authority !== undefined) out.host_redirect = r.authority;
  if (r.scheme !== undefined) out.scheme_redirect = r.scheme;
  if (r.port !== undefined) out.port_redirect = r.port;
  out.response_code = REDIRECT_CODES[r.redirectCode ?? 301] ?? 'MOVED_PERMANENTLY';
  return out;
}

/**
 * A VirtualService's http routes as Envoy routes for one proxy and port:
 * one Envoy route per (route × applicable match), first match wins, in order.
 */
export function translateHttpRoutes(vs: VirtualServiceResource, ctx: RouteContext): Json[] {
  const spec = vs.spec as VirtualServiceSpec;
  const ns = vs.metadata.namespace;
  const out: Json[] = [];
  for (const route of spec.http ?? []) {
    const matches = route.match?.length ? route.match.filter((m) => matchApplies(m, ctx, ns)) : [undefined];
    if (matches.length === 0) continue;
    for (const match of matches) {
      const envoyMatch = routeMatch(match);
      const envoyRoute: Json = { match: envoyMatch };
      if (route.name) envoyRoute.name = route.name;
      if (route.redirect) envoyRoute.redirect = redirectAction(route);
      else if (route.directResponse) {
        const body = route.directResponse.body;
        envoyRoute.direct_response = {
          status: route.directResponse.status,
          ...(body?.string !== undefined ? { body: { inline_string: body.string } } : {}),
          ...(body?.bytes !== undefined ? { body: { inline_bytes: body.bytes } } : {}),
        };
      } else if (route.route?.length) {
        envoyRoute.route = routeAction(route, ctx, ns, envoyMatch.prefix as string | undefined);
        if (route.route.length === 1) applyHeaderOps(envoyRoute, route.route[0]!.headers);
      } else continue;
      const routeHeaders = headerOps(route.headers?.request);
      const responseHeaders = headerOps(route.headers?.response);
      if (routeHeaders.add.length)
        envoyRoute.request_headers_to_add = [
          ...((envoyRoute.request_headers_to_add as Json[]) ?? []),
          ...routeHeaders.add,
        ];
      if (routeHeaders.remove.length)
        envoyRoute.request_headers_to_remove = [
          ...((envoyRoute.request_headers_to_remove as string[]) ?? []),
          ...routeHeaders.remove,
        ];
      if (responseHeaders.add.length)
        envoyRoute.response_headers_to_add = [
          ...((envoyRoute.response_headers_to_add as Json[]) ?? []),
          ...responseHeaders.add,
        ];
      if (responseHeaders.remove.length)
        envoyRoute.response_headers_to_remove = [
          ...((envoyRoute.response_headers_to_remove as string[]) ?? []),
          ...responseHeaders.remove,
        ];
      const perFilter: Json = {};
      if (route.fault) perFilter[FAULT_FILTER] = faultConfig(route.fault);
      if (route.corsPolicy && !ctx.proxyless) perFilter[CORS_FILTER] = corsConfig(route.corsPolicy);
      if (Object.keys(perFilter).length) envoyRoute.typed_per_filter_config = perFilter;
      envoyRoute.metadata = {
        filter_metadata: {
          istio: {
            config: `/apis/networking.istio.io/v1/namespaces/${ns}/virtual-service/${vs.metadata.name}`,
          },
        },
      };
      out.push(envoyRoute);
    }
  }
  return out;
}
