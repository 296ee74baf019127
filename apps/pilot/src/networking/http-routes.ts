import type {
  CorsPolicy,
  Destination,
  DestinationRuleSpec,
  HTTPFaultInjection,
  HTTPMatchRequest,
  HTTPRedirect,
  HTTPRoute,
  Percent,
  StringMatch,
  VirtualServiceSpec,
} from '@mizzen/api';
import { parseDuration } from '@mizzen/api';
import { istioConfigPath, outboundClusterName } from '../model/names.js';
import type { ProxyInfo } from '../model/proxy.js';
import { labelsMatch, resolveShortName, type Service } from '../registry/model.js';
import { envoyDuration } from './durations.js';
import { CORS_FILTER, CORS_POLICY_TYPE, FAULT_FILTER, FAULT_TYPE, type Json } from './envoy.js';
import { appendHeaderOperations, translateHeaderOperations } from './header-operations.js';
import { type PushContext, resolveGatewayRef, type VirtualServiceResource } from './push-context.js';
import { defaultRetryPolicy, retryPolicy } from './retries.js';
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
  /** The routes serve a TLS-terminating gateway server (redirects then default to https). */
  tls?: boolean;
}

/** Istio's default for routes without `timeout`: no timeout. */
const NO_TIMEOUT = '0s';

/** The catch-all route Istio gives a service with no VirtualService. */
export function defaultRoute(cluster: string, proxyless = false, hash?: Json[]): Json {
  const route: Json = { cluster, timeout: NO_TIMEOUT };
  if (!proxyless) route.retry_policy = defaultRetryPolicy(hash !== undefined);
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

/** A StringMatch that sets nothing: it only asks for the header or parameter to be present. */
function presenceOnly(m: StringMatch | undefined): boolean {
  return stringMatcher(m) === undefined;
}

/**
 * A header's StringMatch as Envoy's HeaderMatcher; an empty match means the
 * header is present. Inverted (withoutHeaders) value matches treat a missing
 * header as empty, so a request without the header matches them (Istio's).
 */
export function headerMatcher(name: string, m: StringMatch | undefined, invert: boolean): Json {
  const base: Json = { name: name.toLowerCase() };
  if (presenceOnly(m)) base.present_match = true;
  else base.string_match = stringMatcher(m);
  if (invert) {
    base.invert_match = true;
    if (!presenceOnly(m)) base.treat_missing_header_as_empty = true;
  }
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
    query.push(presenceOnly(m) ? { name, present_match: true } : { name, string_match: stringMatcher(m) });
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

/**
 * Does this match apply to the proxy and port being built? Istio filters
 * these at translation time: the port first, then `gateways` if the match
 * names any (source labels and namespace are then not looked at), else the
 * source labels and namespace.
 */
function matchApplies(match: HTTPMatchRequest, ctx: RouteContext, vsNamespace: string): boolean {
  if (match.port !== undefined && match.port !== ctx.matchPort) return false;
  if (match.gateways?.length) {
    return match.gateways.some((g) => resolveGatewayRef(g, vsNamespace) === ctx.gateway);
  }
  if (match.sourceLabels && !labelsMatch(match.sourceLabels as Record<string, string>, ctx.proxy.labels))
    return false;
  return !match.sourceNamespace || match.sourceNamespace === ctx.proxy.namespace;
}

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
  return { cluster: outboundClusterName(port, dest.subset, host), host, port, subset: dest.subset };
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

/** Istio's Percent as Envoy's FractionalPercent; undefined when it is 0 (nothing to mirror). */
function mirrorFraction(percentage: Percent | undefined, legacy: number | undefined): Json | undefined {
  if (percentage !== undefined) {
    const value = percentage.value ?? 0;
    return value > 0 ? { numerator: Math.round(value * 10_000), denominator: 'MILLION' } : undefined;
  }
  if (legacy !== undefined) return legacy > 0 ? { numerator: legacy, denominator: 'HUNDRED' } : undefined;
  return { numerator: 100, denominator: 'HUNDRED' };
}

/** `mirror` + `mirrorPercentage` and `mirrors` as Envoy request mirror policies (an explicit 0% mirrors nothing). */
function mirrorPolicies(route: HTTPRoute, ctx: RouteContext, vsNamespace: string): Json[] {
  const out: Json[] = [];
  const policy = (dest: Destination, fraction: Json | undefined) => {
    if (!fraction) return;
    out.push({
      cluster: destinationCluster(ctx, dest, vsNamespace),
      runtime_fraction: { default_value: fraction },
      trace_sampled: false,
    });
  };
  if (route.mirror)
    policy(route.mirror, mirrorFraction(route.mirrorPercentage, route.mirrorPercent ?? route.mirror_percent));
  for (const m of route.mirrors ?? []) policy(m.destination, mirrorFraction(m.percentage, undefined));
  return out;
}

/** Where a route sends requests: its cluster (or weighted clusters), and what goes with them. */
interface Destinations {
  cluster?: string;
  weighted?: Json;
  /** Header edits of a single destination, for the route (after the route's own). */
  headers?: ReturnType<typeof translateHeaderOperations>;
  authority?: string;
  hash?: Json[];
  /** The route hashes to a host (a single destination with a consistent hash): retries stay on it. */
  consistentHash: boolean;
}

/**
 * Where a route sends requests, as Istio's applyHTTPRouteDestination builds
 * it: one destination is a plain cluster whose `headers` go on the route;
 * several are weighted clusters, each with its own `headers` (and authority),
 * leaving out those of weight 0 — so a "100 to v3" step still applies v3's
 * headers.
 */
function destinations(route: HTTPRoute, ctx: RouteContext, vsNamespace: string): Destinations {
  const all = route.route ?? [];
  if (all.length === 1) {
    const only = all[0]!;
    const resolved = resolveDestination(ctx, only.destination, vsNamespace);
    const headers = translateHeaderOperations(only.headers);
    const hash = hashPolicy(ctx, resolved);
    return { cluster: resolved.cluster, headers, authority: headers.authority, hash, consistentHash: !!hash };
  }
  const weighted = all.filter((d) => (d.weight ?? 0) > 0);
  const clusters = weighted.map((d) => {
    const wc: Json = { name: destinationCluster(ctx, d.destination, vsNamespace), weight: d.weight };
    const ops = translateHeaderOperations(d.headers);
    appendHeaderOperations(wc, ops);
    if (ops.authority !== undefined) wc.host_rewrite_literal = ops.authority;
    return wc;
  });
  // Istio hashes a weighted route by its destinations' policies, in order.
  const hash = weighted.flatMap(
    (d) => hashPolicy(ctx, resolveDestination(ctx, d.destination, vsNamespace)) ?? [],
  );
  return { weighted: { clusters }, hash: hash.length ? hash : undefined, consistentHash: false };
}

function routeAction(envoyRoute: Json, route: HTTPRoute, ctx: RouteContext, vsNamespace: string): Json {
  const dest = destinations(route, ctx, vsNamespace);
  if (dest.headers) appendHeaderOperations(envoyRoute, dest.headers);
  const action: Json =
    dest.cluster !== undefined ? { cluster: dest.cluster } : { weighted_clusters: dest.weighted };
  action.timeout = route.timeout ? envoyDuration(route.timeout) : NO_TIMEOUT;
  if (route.retries || !ctx.proxyless) {
    const retry = retryPolicy(route.retries, dest.consistentHash);
    if (retry) action.retry_policy = retry;
  }
  const rewrite = route.rewrite;
  if (rewrite?.uriRegexRewrite) {
    action.regex_rewrite = {
      pattern: { regex: rewrite.uriRegexRewrite.match },
      substitution: rewrite.uriRegexRewrite.rewrite,
    };
  } else if (rewrite?.uri) {
    // Envoy swaps the matched prefix, or the whole path for exact and regex matches.
    action.prefix_rewrite = rewrite.uri;
  }
  // The route's rewrite (or its own authority header) wins over a single destination's.
  const authority =
    rewrite?.authority || translateHeaderOperations(route.headers).authority || dest.authority;
  if (authority) action.host_rewrite_literal = authority;
  if (dest.hash) action.hash_policy = dest.hash;
  const mirrors = mirrorPolicies(route, ctx, vsNamespace);
  if (mirrors.length) action.request_mirror_policies = mirrors;
  return action;
}

const REDIRECT_CODES: Record<number, string> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

/**
 * `redirect` as Envoy's RedirectAction (Istio's ApplyRedirect). `derivePort:
 * FROM_REQUEST_PORT` is the port the routes are built for (the service or
 * Gateway server port: routes are per port, so that is the request's);
 * FROM_PROTOCOL_DEFAULT sets none, which is Envoy's own behaviour. An
 * explicit port that is the scheme's default is left out of the URL.
 * Undefined for a code Envoy cannot send (validation refuses those).
 */
function redirectAction(r: HTTPRedirect, ctx: RouteContext): Json | undefined {
  const code = REDIRECT_CODES[r.redirectCode ?? 301];
  if (!code) return undefined;
  const out: Json = {};
  if (r.uri) out.path_redirect = r.uri;
  if (r.authority) out.host_redirect = r.authority;
  if (r.scheme) out.scheme_redirect = r.scheme;
  let port = r.port ?? (r.derivePort === 'FROM_REQUEST_PORT' ? ctx.matchPort : undefined);
  const scheme = r.scheme || (ctx.tls ? 'https' : 'http');
  if ((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https')) port = undefined;
  if (port !== undefined) out.port_redirect = port;
  out.response_code = code;
  return out;
}

function directResponseAction(route: HTTPRoute): Json {
  const { status, body } = route.directResponse!;
  return {
    status,
    ...(body?.string !== undefined ? { body: { inline_string: body.string } } : {}),
    ...(body?.bytes !== undefined ? { body: { inline_bytes: body.bytes } } : {}),
  };
}

/**
 * A VirtualService's http routes as Envoy routes for one proxy and port:
 * one Envoy route per (route × applicable match), first match wins, in order.
 */
export function translateHttpRoutes(vs: VirtualServiceResource, ctx: RouteContext): Json[] {
  const spec = vs.spec as VirtualServiceSpec;
  const ns = vs.metadata.namespace;
  const where = `VirtualService ${ns}/${vs.metadata.name}`;
  const out: Json[] = [];
  for (const [index, route] of (spec.http ?? []).entries()) {
    const matches = route.match?.length ? route.match.filter((m) => matchApplies(m, ctx, ns)) : [undefined];
    if (matches.length === 0) continue;
    for (const match of matches) {
      const envoyRoute: Json = { match: routeMatch(match) };
      const name = match?.name ? `${route.name ?? ''}.${match.name}` : route.name;
      if (name) envoyRoute.name = name;
      const routeHeaders = translateHeaderOperations(route.headers);
      if (route.redirect) {
        const redirect = redirectAction(route.redirect, ctx);
        if (!redirect) {
          ctx.push.warnings.add(
            `${where} http[${index}]: redirectCode ${route.redirect.redirectCode} is not one Envoy can send; the route is left out`,
          );
          continue;
        }
        envoyRoute.redirect = redirect;
        appendHeaderOperations(envoyRoute, routeHeaders);
      } else if (route.directResponse) {
        envoyRoute.direct_response = directResponseAction(route);
        appendHeaderOperations(envoyRoute, routeHeaders);
      } else if (route.route?.length) {
        // The route's header edits first, a single destination's after them (Istio's order: the destination wins).
        const action: Json = {};
        envoyRoute.route = action;
        appendHeaderOperations(envoyRoute, routeHeaders);
        Object.assign(action, routeAction(envoyRoute, route, ctx, ns));
      } else continue;
      const perFilter: Json = {};
      if (route.fault) perFilter[FAULT_FILTER] = faultConfig(route.fault);
      if (route.corsPolicy && !ctx.proxyless) perFilter[CORS_FILTER] = corsConfig(route.corsPolicy);
      if (Object.keys(perFilter).length) envoyRoute.typed_per_filter_config = perFilter;
      envoyRoute.metadata = {
        filter_metadata: {
          istio: {
            config: istioConfigPath('virtual-service', ns, vs.metadata.name),
          },
        },
      };
      out.push(envoyRoute);
    }
  }
  return out;
}
