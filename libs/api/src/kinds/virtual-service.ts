import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import {
  checkDestination,
  checkExportTo,
  checkGatewayRefs,
  checkSourceNamespace,
  checkSubnets,
  checkWeights,
} from '../validation/common.js';
import {
  hostSubsetOf,
  hostsOverlap,
  isIP,
  namespaceName,
  resourceName,
  wildcardHost,
} from '../validation/names.js';
import {
  bool,
  duration,
  headerMatches,
  int,
  labels,
  obj,
  percent,
  percentInt,
  port,
  queryMatches,
  regex,
  str,
  stringMap,
  stringMatch,
  strings,
} from '../validation/schema.js';
import type { KindValidation } from './context.js';

// ---------------------------------------------------------------------------
// Types: networking.istio.io VirtualService (v1 == v1beta1 == v1alpha3).
// ---------------------------------------------------------------------------

/** Match a string exactly, by prefix, or by RE2 regex (none set: the header/param is present). */
export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}

export interface PortSelector {
  number?: number;
}

/** A service (and optionally subset and port) traffic is sent to. */
export interface Destination {
  host: string;
  subset?: string;
  port?: PortSelector;
}

/** A percentage, 0.0-100.0. */
export interface Percent {
  value?: number;
}

export interface HeaderOperations {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

export interface Headers {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: Record<string, StringMatch>;
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  queryParams?: Record<string, StringMatch>;
  ignoreUriCase?: boolean;
  withoutHeaders?: Record<string, StringMatch>;
  sourceNamespace?: string;
  statPrefix?: string;
}

export interface HTTPRouteDestination {
  destination: Destination;
  weight?: number;
  headers?: Headers;
}

export interface RouteDestination {
  destination: Destination;
  weight?: number;
}

/** Delegates a route to another VirtualService (one without hosts). */
export interface Delegate {
  name?: string;
  namespace?: string;
}

export interface HTTPRedirect {
  uri?: string;
  authority?: string;
  port?: number;
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  scheme?: string;
  redirectCode?: number;
}

export interface HTTPBody {
  string?: string;
  /** Base64. */
  bytes?: string;
}

export interface HTTPDirectResponse {
  status: number;
  body?: HTTPBody;
}

export interface RegexRewrite {
  match?: string;
  rewrite?: string;
}

export interface HTTPRewrite {
  uri?: string;
  authority?: string;
  uriRegexRewrite?: RegexRewrite;
}

export interface HTTPRetry {
  attempts?: number;
  perTryTimeout?: string;
  retryOn?: string;
  retryRemoteLocalities?: boolean;
  retryIgnorePreviousHosts?: boolean;
  backoff?: string;
}

export interface HTTPFaultDelay {
  fixedDelay?: string;
  exponentialDelay?: string;
  percentage?: Percent;
  /** @deprecated use percentage */
  percent?: number;
}

export interface HTTPFaultAbort {
  httpStatus?: number;
  grpcStatus?: string;
  http2Error?: string;
  percentage?: Percent;
}

export interface HTTPFaultInjection {
  delay?: HTTPFaultDelay;
  abort?: HTTPFaultAbort;
}

export interface HTTPMirrorPolicy {
  destination: Destination;
  percentage?: Percent;
}

export interface CorsPolicy {
  allowOrigins?: StringMatch[];
  /** @deprecated use allowOrigins */
  allowOrigin?: string[];
  allowMethods?: string[];
  allowHeaders?: string[];
  exposeHeaders?: string[];
  maxAge?: string;
  allowCredentials?: boolean;
  unmatchedPreflights?: 'UNSPECIFIED' | 'FORWARD' | 'IGNORE';
}

export interface HTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: HTTPRouteDestination[];
  redirect?: HTTPRedirect;
  directResponse?: HTTPDirectResponse;
  delegate?: Delegate;
  rewrite?: HTTPRewrite;
  timeout?: string;
  retries?: HTTPRetry;
  fault?: HTTPFaultInjection;
  mirror?: Destination;
  mirrors?: HTTPMirrorPolicy[];
  /** @deprecated use mirrorPercentage */
  mirrorPercent?: number;
  /** @deprecated use mirrorPercentage */
  mirror_percent?: number;
  mirrorPercentage?: Percent;
  corsPolicy?: CorsPolicy;
  headers?: Headers;
}

export interface L4MatchAttributes {
  destinationSubnets?: string[];
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  sourceNamespace?: string;
  /** @deprecated */
  sourceSubnet?: string;
}

export interface TLSMatchAttributes {
  sniHosts: string[];
  destinationSubnets?: string[];
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  sourceNamespace?: string;
}

export interface TCPRoute {
  match?: L4MatchAttributes[];
  route?: RouteDestination[];
}

export interface TLSRoute {
  match: TLSMatchAttributes[];
  route?: RouteDestination[];
}

export interface VirtualServiceSpec {
  hosts?: string[];
  gateways?: string[];
  http?: HTTPRoute[];
  tls?: TLSRoute[];
  tcp?: TCPRoute[];
  exportTo?: string[];
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

export const destinationSchema = () =>
  obj({ host: str(), subset: str().optional(), port: obj({ number: port().optional() }).optional() });

const headerOperations = () =>
  obj({ set: stringMap().optional(), add: stringMap().optional(), remove: strings().optional() });
const headersSchema = () =>
  obj({ request: headerOperations().optional(), response: headerOperations().optional() });

const httpMatch = obj({
  name: str().optional(),
  uri: stringMatch().optional(),
  scheme: stringMatch().optional(),
  method: stringMatch().optional(),
  authority: stringMatch().optional(),
  headers: headerMatches().optional(),
  port: port().optional(),
  sourceLabels: labels().optional(),
  gateways: strings().optional(),
  queryParams: queryMatches().optional(),
  ignoreUriCase: bool().optional(),
  withoutHeaders: headerMatches().optional(),
  sourceNamespace: str().optional(),
  statPrefix: str().optional(),
});

const httpRoute = obj({
  name: str().optional(),
  match: z.array(httpMatch).optional(),
  route: z
    .array(
      obj({
        destination: destinationSchema(),
        weight: percentInt().optional(),
        headers: headersSchema().optional(),
      }),
    )
    .optional(),
  redirect: obj({
    uri: str().optional(),
    authority: str().optional(),
    port: port().optional(),
    derivePort: z.enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']).optional(),
    scheme: str().optional(),
    redirectCode: int(300, 399).optional(),
  }).optional(),
  directResponse: obj({
    status: int(200, 599),
    body: obj({ string: str().optional(), bytes: str().optional() }).optional(),
  }).optional(),
  delegate: obj({ name: str().optional(), namespace: str().optional() }).optional(),
  rewrite: obj({
    uri: str().optional(),
    authority: str().optional(),
    uriRegexRewrite: obj({ match: regex().optional(), rewrite: str().optional() }).optional(),
  }).optional(),
  timeout: duration().optional(),
  retries: obj({
    attempts: int(0, 2_147_483_647).optional(),
    perTryTimeout: duration().optional(),
    retryOn: str().optional(),
    retryRemoteLocalities: bool().optional(),
    retryIgnorePreviousHosts: bool().optional(),
    backoff: duration().optional(),
  }).optional(),
  fault: obj({
    delay: obj({
      fixedDelay: duration().optional(),
      exponentialDelay: duration().optional(),
      percentage: percent().optional(),
      percent: percentInt().optional(),
    }).optional(),
    abort: obj({
      httpStatus: int(200, 599).optional(),
      grpcStatus: str().optional(),
      http2Error: str().optional(),
      percentage: percent().optional(),
    }).optional(),
  }).optional(),
  mirror: destinationSchema().optional(),
  mirrors: z.array(obj({ destination: destinationSchema(), percentage: percent().optional() })).optional(),
  mirrorPercent: percentInt().optional(),
  mirror_percent: percentInt().optional(),
  mirrorPercentage: percent().optional(),
  corsPolicy: obj({
    allowOrigins: z.array(stringMatch()).optional(),
    allowOrigin: strings().optional(),
    allowMethods: strings().optional(),
    allowHeaders: strings().optional(),
    exposeHeaders: strings().optional(),
    maxAge: duration({ secondsPrecision: true }).optional(),
    allowCredentials: bool().optional(),
    unmatchedPreflights: z.enum(['UNSPECIFIED', 'FORWARD', 'IGNORE']).optional(),
  }).optional(),
  headers: headersSchema().optional(),
});

const routeDestination = obj({ destination: destinationSchema(), weight: percentInt().optional() });

const l4Match = obj({
  destinationSubnets: strings().optional(),
  port: port().optional(),
  sourceLabels: labels().optional(),
  gateways: strings().optional(),
  sourceNamespace: str().optional(),
  sourceSubnet: str().optional(),
});

const tlsMatch = obj({
  sniHosts: strings(),
  destinationSubnets: strings().optional(),
  port: port().optional(),
  sourceLabels: labels().optional(),
  gateways: strings().optional(),
  sourceNamespace: str().optional(),
});

export const virtualServiceSchema = obj({
  hosts: strings().optional(),
  gateways: strings().optional(),
  http: z.array(httpRoute).optional(),
  tls: z.array(obj({ match: z.array(tlsMatch), route: z.array(routeDestination).optional() })).optional(),
  tcp: z
    .array(obj({ match: z.array(l4Match).optional(), route: z.array(routeDestination).optional() }))
    .optional(),
  exportTo: strings().optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateVirtualService)
// ---------------------------------------------------------------------------

/** Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on conditions. */
export const RETRY_ON = [
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'envoy-ratelimited',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
];

const GRPC_STATUS = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE'];

function checkVirtualService(spec: VirtualServiceSpec, at: Checker, ctx: { namespace: string }): void {
  const hosts = spec.hosts ?? [];
  const gateways = spec.gateways ?? [];
  // Bound only to gateways (no `mesh`): `*` hosts are fine there, and JWT claim routing is allowed.
  const gatewayOnly = gateways.length > 0 && !gateways.includes('mesh');
  const delegate = hosts.length === 0;

  if (delegate) {
    // Istio treats a VirtualService without hosts as a delegate, which only carries http routes.
    const conflicts = [
      gateways.length ? 'name gateways' : '',
      spec.tls?.length ? 'have tls routes' : '',
      spec.tcp?.length ? 'have tcp routes' : '',
    ].filter(Boolean);
    for (const what of conflicts) {
      at.at('hosts').error(
        `hosts is required (only a delegate VirtualService has no hosts, and it cannot ${what})`,
      );
    }
    if (conflicts.length === 0) {
      at.at('hosts').warn(
        'no hosts: this VirtualService only takes effect as the delegate of another VirtualService',
      );
    }
  }

  let hostsValid = true;
  for (const [i, host] of hosts.entries()) {
    const here = at.at('hosts', i);
    if (host === '*' && !gatewayOnly) {
      here.error(
        '"*" is only allowed in a VirtualService bound to gateways (add gateways, or name the hosts)',
      );
      hostsValid = false;
      continue;
    }
    const reason = wildcardHost(host);
    if (reason && !isIP(host)) {
      here.error(reason);
      hostsValid = false;
    }
  }
  if (hostsValid) {
    for (let i = 0; i < hosts.length; i++) {
      for (let j = i + 1; j < hosts.length; j++) {
        if (hostsOverlap(hosts[i]!, hosts[j]!))
          at.at('hosts', j).error(`duplicate host: "${hosts[j]}" overlaps "${hosts[i]}"`);
      }
    }
  }

  checkGatewayRefs(spec.gateways, at.at('gateways'));

  if (!spec.http?.length && !spec.tcp?.length && !spec.tls?.length) {
    at.error('at least one of http, tcp or tls routes is required');
  }
  for (const [i, route] of (spec.http ?? []).entries()) {
    checkHttpRoute(route, at.at('http', i), { delegate, gatewayOnly });
  }
  for (const [i, route] of (spec.tls ?? []).entries())
    checkTlsRoute(route, at.at('tls', i), hosts, gatewayOnly);
  for (const [i, route] of (spec.tcp ?? []).entries()) checkTcpRoute(route, at.at('tcp', i));
  checkExportTo(spec.exportTo, ctx.namespace, at);

  checkReachable(spec.http ?? [], at.at('http'));
  checkReachable(spec.tcp ?? [], at.at('tcp'));
  checkReachable(spec.tls ?? [], at.at('tls'));
}

function checkHttpRoute(
  route: HTTPRoute,
  at: Checker,
  vs: { delegate: boolean; gatewayOnly: boolean },
): void {
  const actions = (['route', 'redirect', 'directResponse', 'delegate'] as const).filter((k) =>
    k === 'route' ? (route.route?.length ?? 0) > 0 : route[k] !== undefined,
  );
  if (actions.length === 0) at.error('one of route, redirect, directResponse or delegate is required');
  if (actions.length > 1)
    at.error(
      `only one of route, redirect, directResponse or delegate may be set, found ${actions.join(' and ')}`,
    );
  if (route.redirect) {
    if (route.fault) at.at('fault').error('a route with a redirect cannot also inject faults');
    if (route.rewrite) at.at('rewrite').error('a route with a redirect cannot also rewrite');
  }
  if (route.delegate) {
    if (vs.delegate)
      at.at('delegate').error('a delegate VirtualService (one without hosts) cannot delegate again');
    if (!route.delegate.name)
      at.at('delegate', 'name').error('the name of the VirtualService to delegate to is required');
    else at.at('delegate', 'name').check(resourceName(route.delegate.name));
    if (route.delegate.namespace)
      at.at('delegate', 'namespace').check(namespaceName(route.delegate.namespace));
  }

  const noRegex = route.delegate !== undefined || vs.delegate;
  for (const [i, match] of (route.match ?? []).entries())
    checkHttpMatch(match, at.at('match', i), noRegex, vs.gatewayOnly);

  checkHeaderOperations(route.headers, at.at('headers'));
  checkAuthorityRewrite(route, at);
  if (route.corsPolicy) checkCors(route.corsPolicy, at.at('corsPolicy'));
  if (route.fault) checkFault(route.fault, at.at('fault'));
  if (route.mirror) checkDestination(route.mirror, at.at('mirror'));
  if (route.mirror && route.mirrors?.length)
    at.at('mirrors').error('only one of mirror or mirrors may be set');
  for (const [i, m] of (route.mirrors ?? []).entries())
    checkDestination(m.destination, at.at('mirrors', i, 'destination'));
  for (const old of ['mirrorPercent', 'mirror_percent'] as const) {
    if (route[old] !== undefined) at.at(old).warn(`"${old}" is deprecated; use mirrorPercentage`);
  }
  if (route.redirect) checkRedirect(route.redirect, at.at('redirect'));
  if (route.directResponse) checkDirectResponse(route.directResponse, at.at('directResponse'));
  if (route.retries) checkRetries(route.retries, at.at('retries'));
  if (route.rewrite) checkRewrite(route.rewrite, at.at('rewrite'));
  for (const [i, d] of (route.route ?? []).entries()) {
    checkDestination(d.destination, at.at('route', i, 'destination'));
    checkHeaderOperations(d.headers, at.at('route', i, 'headers'));
  }
  checkWeights(route.route ?? [], at.at('route'));
}

function checkHttpMatch(m: HTTPMatchRequest, at: Checker, noRegex: boolean, gatewayOnly: boolean): void {
  if (noRegex) {
    for (const field of ['uri', 'scheme', 'method', 'authority'] as const) {
      if (m[field]?.regex !== undefined)
        at.at(field, 'regex').error('regex matches are not supported in delegating or delegate routes');
    }
    for (const field of ['headers', 'withoutHeaders', 'queryParams'] as const) {
      for (const [name, sm] of Object.entries(m[field] ?? {})) {
        if (sm.regex !== undefined)
          at.at(field, name, 'regex').error(
            'regex matches are not supported in delegating or delegate routes',
          );
      }
    }
  }
  for (const field of ['headers', 'withoutHeaders'] as const) {
    for (const name of Object.keys(m[field] ?? {})) {
      if (name.startsWith('@request.auth.claims.') && !gatewayOnly) {
        at.at(field, name).error(
          'JWT claim based routing is only supported in VirtualServices bound to gateways',
        );
      }
    }
  }
  if (m.method?.exact !== undefined && !HTTP_METHODS.includes(m.method.exact)) {
    at.at('method', 'exact').warn(`"${m.method.exact}" is not a standard HTTP method`);
  }
  checkGatewayRefs(m.gateways, at.at('gateways'));
  checkSourceNamespace(m.sourceNamespace, at.at('sourceNamespace'));
}

function checkHeaderOperations(headers: Headers | undefined, at: Checker): void {
  for (const side of ['request', 'response'] as const) {
    const ops = headers?.[side];
    if (!ops) continue;
    for (const op of ['set', 'add'] as const) {
      for (const [name, value] of Object.entries(ops[op] ?? {})) {
        const here = at.at(side, op, name);
        const authority = /^(:authority|host)$/i.test(name);
        if (name === '') here.error('header name must not be empty');
        else if (side === 'response' && authority)
          here.error(`cannot set the "${name}" header of a response`);
        else if (name.startsWith(':') && !authority) here.error(`cannot modify pseudo-header "${name}"`);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
        if (/[\u0000-\u0008\u000A-\u001F\u007F]/.test(value))
          here.error('header value must not contain control characters');
      }
    }
    for (const [i, name] of (ops.remove ?? []).entries()) {
      if (name === '') at.at(side, 'remove', i).error('header name must not be empty');
      else if (name.startsWith(':') || /^host$/i.test(name))
        at.at(side, 'remove', i).error(`cannot remove "${name}"`);
    }
  }
}

function checkAuthorityRewrite(route: HTTPRoute, at: Checker): void {
  let current = route.rewrite?.authority;
  for (const op of ['set', 'add'] as const) {
    for (const [name, value] of Object.entries(route.headers?.request?.[op] ?? {})) {
      if (!/^(:authority|host)$/i.test(name)) continue;
      if (current !== undefined) {
        at.at('headers', 'request', op, name).error(
          `the authority is already rewritten to "${current}"; set it in one place only`,
        );
      }
      current = value;
    }
  }
}

function checkCors(cors: CorsPolicy, at: Checker): void {
  for (const [i, origin] of (cors.allowOrigins ?? []).entries()) {
    if (!origin.exact && !origin.prefix && !origin.regex)
      at.at('allowOrigins', i).error('set one of exact, prefix or regex');
  }
  if (cors.allowOrigin) at.at('allowOrigin').warn('"allowOrigin" is deprecated; use allowOrigins');
  for (const [i, method] of (cors.allowMethods ?? []).entries()) {
    if (!HTTP_METHODS.includes(method))
      at.at('allowMethods', i).error(`"${method}" is not a supported HTTP method`);
  }
  for (const field of ['allowHeaders', 'exposeHeaders'] as const) {
    for (const [i, name] of (cors[field] ?? []).entries()) {
      if (name !== '*' && !/^[-_A-Za-z0-9]+$/.test(name))
        at.at(field, i).error(`"${name}" is not a valid header name`);
    }
  }
}

function checkFault(fault: HTTPFaultInjection, at: Checker): void {
  if (!fault.abort && !fault.delay) at.error('a fault needs an abort, a delay, or both');
  const abort = fault.abort;
  if (abort) {
    const kinds = (['httpStatus', 'grpcStatus', 'http2Error'] as const).filter((k) => abort[k] !== undefined);
    if (kinds.length === 0) at.at('abort').error('set one of httpStatus or grpcStatus');
    if (kinds.length > 1)
      at.at('abort').error(
        `only one of httpStatus, grpcStatus or http2Error may be set, found ${kinds.join(' and ')}`,
      );
    if (abort.grpcStatus !== undefined && !GRPC_STATUS.includes(abort.grpcStatus)) {
      at.at('abort', 'grpcStatus').error(
        `"${abort.grpcStatus}" is not a gRPC status; use a name such as UNAVAILABLE or NOT_FOUND`,
      );
    }
    if (abort.http2Error !== undefined)
      at.at('abort', 'http2Error').error('HTTP/2 error aborts are not supported (as in Istio)');
  }
  const delay = fault.delay;
  if (delay) {
    if (delay.fixedDelay === undefined && delay.exponentialDelay === undefined)
      at.at('delay').error('fixedDelay is required');
    if (delay.fixedDelay !== undefined && delay.exponentialDelay !== undefined) {
      at.at('delay').error('only one of fixedDelay or exponentialDelay may be set');
    }
    if (delay.exponentialDelay !== undefined)
      at.at('delay', 'exponentialDelay').error('exponentialDelay is not supported (as in Istio)');
    if (delay.percent !== undefined)
      at.at('delay', 'percent').warn('"percent" is deprecated; use percentage');
  }
}

function checkRedirect(r: HTTPRedirect, at: Checker): void {
  if (
    r.uri === undefined &&
    r.authority === undefined &&
    r.port === undefined &&
    r.scheme === undefined &&
    r.derivePort === undefined
  ) {
    at.error('a redirect must set at least one of uri, authority, port, derivePort or scheme');
  }
  if (r.port !== undefined && r.derivePort !== undefined)
    at.error('only one of port or derivePort may be set');
  if (r.scheme !== undefined && r.scheme !== 'http' && r.scheme !== 'https') {
    at.at('scheme').error(`must be "http" or "https", got "${r.scheme}"`);
  }
  // Istio accepts any 3xx, but Envoy sends only these: another code would leave the route without an action.
  if (r.redirectCode !== undefined && ![301, 302, 303, 307, 308].includes(r.redirectCode)) {
    at.at('redirectCode').error(
      `${r.redirectCode} is not a redirect the proxy can send; use 301, 302, 303, 307 or 308`,
    );
  }
}

function checkDirectResponse(d: HTTPDirectResponse, at: Checker): void {
  const body = d.body;
  if (!body) return;
  if (body.string !== undefined && body.bytes !== undefined)
    at.at('body').error('only one of string or bytes may be set');
  if (body.bytes !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(body.bytes.replace(/\s/g, ''))) {
    at.at('body', 'bytes').error('must be base64-encoded');
  }
  const size =
    body.string !== undefined
      ? Buffer.byteLength(body.string)
      : Math.floor(((body.bytes ?? '').length * 3) / 4);
  if (size > 1024 * 1024) at.at('body').error('the body is larger than 1MB');
  else if (size > 100 * 1024) at.at('body').warn('a body larger than 100KB slows down config distribution');
}

function checkRetries(r: HTTPRetry, at: Checker): void {
  const tuning = (
    ['perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'retryIgnorePreviousHosts', 'backoff'] as const
  ).filter((f) => r[f] !== undefined);
  if (r.attempts === 0 && tuning.length) {
    at.at('attempts').error(
      `retries are disabled (attempts: 0), so ${tuning.join(', ')} would have no effect; remove ${tuning.length === 1 ? 'it' : 'them'} or set attempts`,
    );
  }
  if (r.retryOn !== undefined) {
    for (const raw of r.retryOn.split(',')) {
      const condition = raw.trim();
      if (condition === '') continue;
      if (/^[1-5]\d\d$/.test(condition) || RETRY_ON.includes(condition)) continue;
      at.at('retryOn').error(
        `"${condition}" is not a retry condition; use HTTP status codes or ${RETRY_ON.join(', ')}`,
      );
    }
  }
}

function checkRewrite(r: HTTPRewrite, at: Checker): void {
  if (r.uri !== undefined && r.uriRegexRewrite !== undefined)
    at.error('only one of uri or uriRegexRewrite may be set');
  if (r.uri === undefined && r.uriRegexRewrite === undefined && r.authority === undefined) {
    at.error('a rewrite must set uri, uriRegexRewrite or authority');
  }
  const rr = r.uriRegexRewrite;
  if (rr) {
    if (rr.match === undefined) at.at('uriRegexRewrite', 'match').error('required field "match" is missing');
    if (rr.rewrite === undefined)
      at.at('uriRegexRewrite', 'rewrite').error('required field "rewrite" is missing');
  }
}

function checkTlsRoute(route: TLSRoute, at: Checker, vsHosts: readonly string[], gatewayOnly: boolean): void {
  if (route.match.length === 0) at.at('match').error('a TLS route needs at least one match');
  for (const [i, m] of route.match.entries()) {
    const here = at.at('match', i);
    if (m.sniHosts.length === 0) here.at('sniHosts').error('at least one SNI host is required');
    for (const [j, sni] of m.sniHosts.entries()) {
      const reason = sni === '*' && gatewayOnly ? undefined : wildcardHost(sni);
      if (reason) {
        if (isIP(sni))
          here
            .at('sniHosts', j)
            .warn(`"${sni}" is an IP address; SNI should be a host name and most clients send none for IPs`);
        else here.at('sniHosts', j).error(reason);
        continue;
      }
      if (!vsHosts.some((h) => hostSubsetOf(sni, h))) {
        here
          .at('sniHosts', j)
          .error(`SNI host "${sni}" is not within any of the VirtualService hosts (${vsHosts.join(', ')})`);
      }
    }
    checkSubnets(m.destinationSubnets, here.at('destinationSubnets'));
    checkGatewayRefs(m.gateways, here.at('gateways'));
    checkSourceNamespace(m.sourceNamespace, here.at('sourceNamespace'));
  }
  checkRouteDestinations(route.route, at, 'TLS');
}

function checkTcpRoute(route: TCPRoute, at: Checker): void {
  for (const [i, m] of (route.match ?? []).entries()) {
    const here = at.at('match', i);
    checkSubnets(m.destinationSubnets, here.at('destinationSubnets'));
    checkGatewayRefs(m.gateways, here.at('gateways'));
    checkSourceNamespace(m.sourceNamespace, here.at('sourceNamespace'));
    if (m.sourceSubnet !== undefined)
      here.at('sourceSubnet').warn('"sourceSubnet" is deprecated and ignored');
  }
  checkRouteDestinations(route.route, at, 'TCP');
}

function checkRouteDestinations(route: RouteDestination[] | undefined, at: Checker, what: string): void {
  if (!route?.length) {
    at.at('route').error(`a ${what} route needs at least one destination`);
    return;
  }
  for (const [i, d] of route.entries()) checkDestination(d.destination, at.at('route', i, 'destination'));
  checkWeights(route, at.at('route'));
}

/** Istio's unreachable-rule analysis: a rule after a catch-all, or whose matches all repeat earlier ones. */
function checkReachable(routes: readonly { match?: readonly object[] }[], at: Checker): void {
  let catchAll: number | undefined;
  const seen = new Map<string, number>();
  for (const [i, route] of routes.entries()) {
    if (catchAll !== undefined) {
      at.at(i).warn(`this rule is never used: rule ${catchAll} before it has no match and takes all traffic`);
      continue;
    }
    const matches = route.match ?? [];
    if (matches.length === 0) {
      catchAll = i;
      continue;
    }
    let repeated = 0;
    for (const m of matches) {
      const key = JSON.stringify({ ...m, name: undefined });
      if (seen.has(key)) repeated++;
      else seen.set(key, i);
    }
    if (repeated === matches.length)
      at.at(i).warn('this rule is never used: all its matches repeat earlier rules');
  }
}

export const virtualService: KindValidation<VirtualServiceSpec> = {
  schema: virtualServiceSchema,
  check: checkVirtualService,
};
