import { parseDuration } from '@mizzen/api';
import { envoyDuration } from '../common/duration.js';
import {
  type ExtAuthzJson,
  FilterNames,
  type GrpcServiceJson,
  type ListStringMatcherJson,
  type MetadataMatcherJson,
  type NetworkExtAuthzJson,
  type StringMatcherJson,
} from '../envoy/types.js';

/**
 * CUSTOM authorization's external authorizers, declared in mesh config
 * `extensionProviders`, as Envoy ext_authz filter configs
 * (Istio's pilot/pkg/security/authz/builder/extauthz.go).
 */

export interface ExtAuthzRequestBody {
  maxRequestBytes?: number;
  allowPartialMessage?: boolean;
  packAsBytes?: boolean;
}

/** meshConfig.extensionProviders[].envoyExtAuthzHttp */
export interface EnvoyExtAuthzHttpProvider {
  /** `hostname` or `namespace/hostname` of the authorizer service. */
  service: string;
  port: number;
  timeout?: string;
  pathPrefix?: string;
  failOpen?: boolean;
  statusOnError?: string;
  includeRequestHeadersInCheck?: string[];
  /** Deprecated: used only when includeRequestHeadersInCheck is not set. */
  includeHeadersInCheck?: string[];
  includeAdditionalHeadersInCheck?: Record<string, string>;
  includeRequestBodyInCheck?: ExtAuthzRequestBody;
  headersToUpstreamOnAllow?: string[];
  headersToDownstreamOnDeny?: string[];
  headersToDownstreamOnAllow?: string[];
  /** Refused when true: this mesh's proxies keep the route chosen before authorization. */
  clearRouteCache?: boolean;
}

/** meshConfig.extensionProviders[].envoyExtAuthzGrpc (the authorizer edits headers in its CheckResponse). */
export interface EnvoyExtAuthzGrpcProvider {
  service: string;
  port: number;
  timeout?: string;
  failOpen?: boolean;
  statusOnError?: string;
  includeRequestBodyInCheck?: ExtAuthzRequestBody;
  /** Refused when true: this mesh's proxies keep the route chosen before authorization. */
  clearRouteCache?: boolean;
}

export interface ExtensionProvider {
  name: string;
  envoyExtAuthzHttp?: EnvoyExtAuthzHttpProvider;
  envoyExtAuthzGrpc?: EnvoyExtAuthzGrpcProvider;
  /** Other provider kinds (tracing, access logging, …) are not authorizers and are ignored here. */
  [other: string]: unknown;
}

/** The part of Istio's MeshConfig authorization reads. */
export interface MeshConfig {
  extensionProviders?: ExtensionProvider[];
}

/** Where an authorizer lives: its host name and the Envoy cluster that reaches it. */
export type ServiceResolver = (
  service: string,
  port: number,
) => { hostname: string; cluster: string } | undefined;

/**
 * Resolves `hostname` or `namespace/name` (`name.namespace.svc.<domain>`) and
 * Istio's outbound cluster name `outbound|<port>||<hostname>`.
 */
export function defaultServiceResolver(domainSuffix = 'cluster.local'): ServiceResolver {
  return (service, port) => {
    let hostname = service;
    const slash = service.indexOf('/');
    if (slash >= 0) {
      const ns = service.slice(0, slash);
      const name = service.slice(slash + 1);
      if (!ns || !name) return undefined;
      hostname = name.includes('.') ? name : `${name}.${ns}.svc.${domainSuffix}`;
    }
    if (!hostname || hostname.includes('*')) return undefined;
    return { hostname, cluster: `outbound|${port}||${hostname}` };
  };
}

export interface BuiltExtAuthz {
  http: ExtAuthzJson;
  /** Only gRPC authorizers can check TCP connections. */
  tcp?: NetworkExtAuthzJson;
}

/** Prefix of the RBAC shadow policy names that trigger ext_authz. */
export const EXT_AUTHZ_MATCH_PREFIX = 'istio-ext-authz';
/** shadow_rules_stat_prefix of the CUSTOM RBAC filter; Envoy prefixes the metadata keys with it. */
export const EXT_AUTHZ_SHADOW_STAT_PREFIX = 'istio_ext_authz_';

const STATUS_CODES: Record<number, string> = {
  100: 'Continue',
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  203: 'NonAuthoritativeInformation',
  204: 'NoContent',
  205: 'ResetContent',
  206: 'PartialContent',
  207: 'MultiStatus',
  208: 'AlreadyReported',
  226: 'IMUsed',
  300: 'MultipleChoices',
  301: 'MovedPermanently',
  302: 'Found',
  303: 'SeeOther',
  304: 'NotModified',
  305: 'UseProxy',
  307: 'TemporaryRedirect',
  308: 'PermanentRedirect',
  400: 'BadRequest',
  401: 'Unauthorized',
  402: 'PaymentRequired',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  407: 'ProxyAuthenticationRequired',
  408: 'RequestTimeout',
  409: 'Conflict',
  410: 'Gone',
  411: 'LengthRequired',
  412: 'PreconditionFailed',
  413: 'PayloadTooLarge',
  414: 'URITooLong',
  415: 'UnsupportedMediaType',
  416: 'RangeNotSatisfiable',
  417: 'ExpectationFailed',
  421: 'MisdirectedRequest',
  422: 'UnprocessableEntity',
  423: 'Locked',
  424: 'FailedDependency',
  426: 'UpgradeRequired',
  428: 'PreconditionRequired',
  429: 'TooManyRequests',
  431: 'RequestHeaderFieldsTooLarge',
  500: 'InternalServerError',
  501: 'NotImplemented',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'GatewayTimeout',
  505: 'HTTPVersionNotSupported',
  506: 'VariantAlsoNegotiates',
  507: 'InsufficientStorage',
  508: 'LoopDetected',
  510: 'NotExtended',
  511: 'NetworkAuthenticationRequired',
};

/** envoy.type.v3.StatusCode name → HTTP status number. */
export function statusCodeNumber(code: string | number): number | undefined {
  if (typeof code === 'number') return STATUS_CODES[code] ? code : undefined;
  if (/^\d+$/.test(code)) return statusCodeNumber(Number(code));
  const hit = Object.entries(STATUS_CODES).find(([, name]) => name === code);
  return hit ? Number(hit[0]) : undefined;
}

/** `abc` exact, `abc*` prefix, `*abc` suffix; all case-insensitive (header names). */
function headerPatterns(headers: readonly string[] | undefined): ListStringMatcherJson | undefined {
  if (!headers?.length) return undefined;
  return {
    patterns: headers.map((h): StringMatcherJson => {
      if (h.startsWith('*')) return { suffix: h.slice(1), ignore_case: true };
      if (h.endsWith('*')) return { prefix: h.slice(0, -1), ignore_case: true };
      return { exact: h, ignore_case: true };
    }),
  };
}

/** ext_authz runs only when the preceding RBAC filter matched a CUSTOM policy (its shadow policy id). */
export function extAuthzFilterMatcher(rbacFilterName: string): MetadataMatcherJson {
  return {
    filter: rbacFilterName,
    path: [{ key: `${EXT_AUTHZ_SHADOW_STAT_PREFIX}shadow_effective_policy_id` }],
    value: { string_match: { prefix: EXT_AUTHZ_MATCH_PREFIX } },
  };
}

function timeoutOf(value: string | undefined, errors: string[]): string {
  if (value === undefined) return '600s';
  try {
    return envoyDuration(parseDuration(value));
  } catch (err) {
    errors.push(`invalid timeout: ${(err as Error).message}`);
    return '600s';
  }
}

function portOf(port: number, errors: string[]): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    errors.push(`port must be in the range [1, 65535], found: ${port}`);
  }
  return port;
}

function statusOnError(status: string | undefined, errors: string[]): { code: string } | undefined {
  if (status === undefined || status === '') return undefined;
  const n = /^-?\d+$/.test(status) ? Number(status) : Number.NaN;
  if (Number.isNaN(n)) {
    errors.push(`invalid statusOnError "${status}": not a number`);
    return undefined;
  }
  const name = STATUS_CODES[n];
  if (!name) {
    errors.push(
      `unsupported statusOnError ${status}, supported values: ${Object.keys(STATUS_CODES).join(', ')}`,
    );
    return undefined;
  }
  return { code: name };
}

/**
 * Envoy requires max_request_bytes > 0 (and Istio passes the number on as
 * it is), so a provider without a usable limit is refused here rather than
 * handed to every proxy to NACK.
 */
function checkBodyLimit(b: ExtAuthzRequestBody | undefined, errors: string[]): void {
  if (!b) return;
  const max = b.maxRequestBytes;
  if (max === undefined || !Number.isInteger(max) || max <= 0 || max > 0xffff_ffff)
    errors.push(
      `includeRequestBodyInCheck.maxRequestBytes must be a whole number of bytes greater than 0, found: ${String(max)}`,
    );
}

function body(b: ExtAuthzRequestBody | undefined): ExtAuthzJson['with_request_body'] {
  if (!b) return undefined;
  return {
    max_request_bytes: b.maxRequestBytes ?? 0,
    ...(b.allowPartialMessage ? { allow_partial_message: true } : {}),
    ...(b.packAsBytes ? { pack_as_bytes: true } : {}),
  };
}

function service(resolve: ServiceResolver, svc: string, port: number, errors: string[]) {
  if (!svc) {
    errors.push('service must not be empty');
    return undefined;
  }
  const hit = resolve(svc, port);
  if (!hit) errors.push(`could not find a service for "${svc}" port ${port}`);
  return hit;
}

function checkWildcards(p: EnvoyExtAuthzHttpProvider, errors: string[]): void {
  const fields = [
    'includeRequestHeadersInCheck',
    'includeHeadersInCheck',
    'headersToDownstreamOnDeny',
    'headersToDownstreamOnAllow',
    'headersToUpstreamOnAllow',
  ] as const;
  for (const f of fields) {
    if (p[f]?.includes('*')) {
      errors.push(
        `a single wildcard ("*") is not supported, change it to either prefix or suffix match: ${f}`,
      );
    }
  }
}

const HTTP_PROVIDER_FIELDS = [
  'service',
  'port',
  'timeout',
  'pathPrefix',
  'failOpen',
  'statusOnError',
  'includeRequestHeadersInCheck',
  'includeHeadersInCheck',
  'includeAdditionalHeadersInCheck',
  'includeRequestBodyInCheck',
  'headersToUpstreamOnAllow',
  'headersToDownstreamOnDeny',
  'headersToDownstreamOnAllow',
  'clearRouteCache',
];
const GRPC_PROVIDER_FIELDS = [
  'service',
  'port',
  'timeout',
  'failOpen',
  'statusOnError',
  'includeRequestBodyInCheck',
  'clearRouteCache',
];
/** Fields of the HTTP provider a gRPC authorizer does not have: it edits headers in its CheckResponse. */
const HTTP_ONLY_FIELDS = new Set(HTTP_PROVIDER_FIELDS.filter((f) => !GRPC_PROVIDER_FIELDS.includes(f)));

/**
 * Fields Istio's provider does not have (refused as Istio's MeshConfig
 * parsing refuses them), and clearRouteCache, which this mesh cannot honour:
 * its proxies choose the route before authorization and keep it.
 */
function checkProviderFields(
  p: object,
  known: readonly string[],
  kind: 'envoyExtAuthzHttp' | 'envoyExtAuthzGrpc',
  errors: string[],
): void {
  for (const field of Object.keys(p)) {
    if (known.includes(field)) continue;
    errors.push(
      kind === 'envoyExtAuthzGrpc' && HTTP_ONLY_FIELDS.has(field)
        ? `${field} is a field of envoyExtAuthzHttp only; a gRPC authorizer sets headers in its CheckResponse`
        : `unknown field ${field}`,
    );
  }
  if ((p as { clearRouteCache?: unknown }).clearRouteCache === true)
    errors.push('clearRouteCache is not supported: the route is chosen before authorization and kept');
}

function buildHttp(p: EnvoyExtAuthzHttpProvider, resolve: ServiceResolver): BuiltExtAuthz | string[] {
  const errors: string[] = [];
  checkProviderFields(p, HTTP_PROVIDER_FIELDS, 'envoyExtAuthzHttp', errors);
  const port = portOf(p.port, errors);
  const svc = service(resolve, p.service, port, errors);
  const status = statusOnError(p.statusOnError, errors);
  if (p.pathPrefix !== undefined && p.pathPrefix !== '' && !p.pathPrefix.startsWith('/')) {
    errors.push(`pathPrefix must begin with \`/\`, found: "${p.pathPrefix}"`);
  }
  checkWildcards(p, errors);
  checkBodyLimit(p.includeRequestBodyInCheck, errors);
  const timeout = timeoutOf(p.timeout, errors);
  if (errors.length || !svc) return errors;

  const allowedHeaders =
    headerPatterns(p.includeRequestHeadersInCheck) ?? headerPatterns(p.includeHeadersInCheck);
  const headersToAdd = Object.keys(p.includeAdditionalHeadersInCheck ?? {})
    .sort()
    .map((key) => ({ key, value: p.includeAdditionalHeadersInCheck![key]! }));
  const upstream = headerPatterns(p.headersToUpstreamOnAllow);
  const clientDeny = headerPatterns(p.headersToDownstreamOnDeny);
  const clientAllow = headerPatterns(p.headersToDownstreamOnAllow);

  const http: ExtAuthzJson = {
    http_service: {
      server_uri: { uri: `http://${svc.hostname}`, cluster: svc.cluster, timeout },
      ...(p.pathPrefix ? { path_prefix: p.pathPrefix } : {}),
      ...(headersToAdd.length ? { authorization_request: { headers_to_add: headersToAdd } } : {}),
      ...(upstream || clientDeny || clientAllow
        ? {
            authorization_response: {
              ...(upstream ? { allowed_upstream_headers: upstream } : {}),
              ...(clientDeny ? { allowed_client_headers: clientDeny } : {}),
              ...(clientAllow ? { allowed_client_headers_on_success: clientAllow } : {}),
            },
          }
        : {}),
    },
    transport_api_version: 'V3',
    ...(p.failOpen ? { failure_mode_allow: true } : {}),
    ...(status ? { status_on_error: status } : {}),
    filter_enabled_metadata: extAuthzFilterMatcher(FilterNames.httpRbac),
    ...(allowedHeaders ? { allowed_headers: allowedHeaders } : {}),
    ...(p.includeRequestBodyInCheck ? { with_request_body: body(p.includeRequestBodyInCheck) } : {}),
  };
  return { http };
}

function buildGrpc(p: EnvoyExtAuthzGrpcProvider, resolve: ServiceResolver): BuiltExtAuthz | string[] {
  const errors: string[] = [];
  checkProviderFields(p, GRPC_PROVIDER_FIELDS, 'envoyExtAuthzGrpc', errors);
  const port = portOf(p.port, errors);
  const svc = service(resolve, p.service, port, errors);
  const status = statusOnError(p.statusOnError, errors);
  checkBodyLimit(p.includeRequestBodyInCheck, errors);
  const timeout = timeoutOf(p.timeout, errors);
  if (errors.length || !svc) return errors;
  // `|` is not valid in a gRPC authority; Istio rewrites it.
  const grpc: GrpcServiceJson = {
    envoy_grpc: { cluster_name: svc.cluster, authority: svc.cluster.replaceAll('|', '_.') },
    timeout,
  };
  const http: ExtAuthzJson = {
    grpc_service: grpc,
    transport_api_version: 'V3',
    ...(p.failOpen ? { failure_mode_allow: true } : {}),
    ...(status ? { status_on_error: status } : {}),
    filter_enabled_metadata: extAuthzFilterMatcher(FilterNames.httpRbac),
    ...(p.includeRequestBodyInCheck ? { with_request_body: body(p.includeRequestBodyInCheck) } : {}),
  };
  const tcp: NetworkExtAuthzJson = {
    stat_prefix: 'tcp.',
    grpc_service: grpc,
    transport_api_version: 'V3',
    ...(p.failOpen ? { failure_mode_allow: true } : {}),
    filter_enabled_metadata: extAuthzFilterMatcher(FilterNames.networkRbac),
  };
  return { http, tcp };
}

/** Every authorizer in the mesh config, built; a provider that cannot be built carries its reasons. */
export function buildExtensionProviders(
  mesh: MeshConfig | undefined,
  resolve: ServiceResolver,
): Map<string, BuiltExtAuthz | { errors: string[] }> {
  const out = new Map<string, BuiltExtAuthz | { errors: string[] }>();
  (mesh?.extensionProviders ?? []).forEach((p, i) => {
    if (!p.name) return;
    if (out.has(p.name)) {
      out.set(p.name, { errors: [`extension provider name must be unique, found duplicate at index ${i}`] });
      return;
    }
    let built: BuiltExtAuthz | string[] | undefined;
    if (p.envoyExtAuthzHttp) built = buildHttp(p.envoyExtAuthzHttp, resolve);
    else if (p.envoyExtAuthzGrpc) built = buildGrpc(p.envoyExtAuthzGrpc, resolve);
    else return; // not an authorizer (tracing, logging, …)
    out.set(p.name, Array.isArray(built) ? { errors: built } : built);
  });
  return out;
}
