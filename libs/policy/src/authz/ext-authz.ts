import { parseEnvoyDuration } from '../common/duration.js';
import { fail } from '../common/errors.js';
import { HOP_BY_HOP_HEADERS } from '../common/headers.js';
import {
  compileMetadataMatcher,
  compileStringMatcher,
  type DynamicMetadata,
  type StringPredicate,
} from '../common/matchers.js';
import type {
  CheckRequestJson,
  CheckResponseJson,
  ExtAuthzJson,
  ExtAuthzPerRouteJson,
  HeaderValueJson,
  ListStringMatcherJson,
  NetworkExtAuthzJson,
} from '../envoy/types.js';
import type { HttpRequestAttributes } from './attributes.js';
import {
  type CheckBody,
  compileBufferSettings,
  PARTIAL_BODY_HEADER,
  type RequestBodySettings,
  sanitizedUtf8Bytes,
} from './ext-authz-body.js';
import {
  allowed,
  buildCheckRequest,
  clientHeaders,
  type ExtAuthzCheckInput,
  type ExtAuthzOutcome,
  interpretCheckResponse,
} from './ext-authz-check.js';
import { statusCodeNumber } from './ext-authz-config.js';
import { editHeaders, editQuery, type HeaderEdit } from './header-edits.js';

export { allowed, type ExtAuthzCheckInput, type ExtAuthzOutcome } from './ext-authz-check.js';

/**
 * The runtime half of Envoy's ext_authz filter (HTTP and network) as pure
 * functions: when the filter is enabled, what check request to send (to an
 * HTTP authorizer, or the AttributeContext for a gRPC one), and what the
 * answer means. The proxy does the I/O.
 */

export interface ExtAuthzHttpCheckRequest {
  method: string;
  /** path_prefix + the original :path. */
  path: string;
  /** Lower-case names; includes host and content-length. */
  headers: Record<string, string>;
  /** The request body bytes the check carries (with_request_body), when there are any. */
  body?: Buffer;
}

/** ExtAuthzPerRoute: a route may turn the check off, send context_extensions with it, or keep the body out of it. */
export interface ExtAuthzPerRoute {
  readonly disabled: boolean;
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** check_settings.disable_request_body_buffering: the check carries no body on this route. */
  readonly disableRequestBodyBuffering: boolean;
}

export const EXT_AUTHZ_PER_ROUTE_TYPE =
  'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';

/** The header a request let through by failure_mode_allow carries with failure_mode_allow_header_add. */
export const FAILURE_MODE_ALLOWED_HEADER = 'x-envoy-auth-failure-mode-allowed';

export interface CompiledExtAuthz {
  readonly transport: 'http' | 'grpc';
  /** Envoy cluster of the authorizer. */
  readonly cluster: string;
  /** gRPC :authority to use (gRPC authorizers). */
  readonly authority?: string;
  /** server_uri.uri (HTTP authorizers; informational, Envoy sends to the cluster). */
  readonly uri?: string;
  readonly pathPrefix: string;
  readonly timeoutMs: number;
  readonly failureModeAllow: boolean;
  /** Status sent to the client when the authorizer cannot be reached (default 403). */
  readonly statusOnError: number;
  /** with_request_body: the check carries the request body, this much of it. */
  readonly withRequestBody?: RequestBodySettings;
  /** True when the filter_enabled_metadata matcher selects this request (no matcher: always). */
  enabled(metadata: DynamicMetadata): boolean;
  /** The check request for an HTTP authorizer, with the body bytes buffered for it (with_request_body). */
  checkRequest(http: HttpRequestAttributes, body?: CheckBody): ExtAuthzHttpCheckRequest;
  /** An HTTP authorizer's response: 200 allows, 5xx is a failure, anything else denies. */
  interpretResponse(res: {
    status: number;
    headers: Readonly<Record<string, string | readonly string[] | undefined>>;
    body?: string;
  }): ExtAuthzOutcome;
  /** The CheckRequest for a gRPC authorizer, as Envoy fills its AttributeContext. */
  grpcCheckRequest(input: ExtAuthzCheckInput): CheckRequestJson;
  /** A gRPC authorizer's CheckResponse: status OK allows with its edits, anything else denies. */
  interpretCheckResponse(res: CheckResponseJson): ExtAuthzOutcome;
  /** The authorizer could not be reached, failed or timed out: failure_mode_allow or status_on_error. */
  onError(): ExtAuthzOutcome;
}

type NameMatcher = (name: string) => boolean;

function listMatcher(list: ListStringMatcherJson | undefined, where: string): NameMatcher | undefined {
  if (!list) return undefined;
  const preds: StringPredicate[] = (list.patterns ?? []).map((p, i) =>
    compileStringMatcher(p, `${where}.patterns[${i}]`),
  );
  return (name) => preds.some((p) => p(name));
}

function pairs(
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
): { name: string; value: string }[] {
  const out: { name: string; value: string }[] = [];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const value of typeof v === 'string' ? [v] : v) out.push({ name: k.toLowerCase(), value });
  }
  return out;
}

/** Only envoy_grpc is run: the proxy calls the authorizer through one of its own clusters. */
function checkGrpcService(grpc: ExtAuthzJson['grpc_service'], where: string): void {
  if (grpc && !grpc.envoy_grpc?.cluster_name)
    fail(`${where}.grpc_service`, 'needs envoy_grpc.cluster_name (google_grpc is not supported)');
}

/** Request headers every check to an HTTP authorizer carries, whatever allowed_headers says. */
const ALWAYS_SENT = new Set([':method', ':path', ':authority', 'host', 'authorization']);

/**
 * The headers of a check sent to an HTTP authorizer: the length of its own
 * body, the client's headers it may see (with the partial-body marker when
 * a body goes with it), the request's host, then headers_to_add.
 */
function httpCheckHeaders(
  http: HttpRequestAttributes,
  body: CheckBody | undefined,
  bodyLength: number,
  allowedHeader: NameMatcher | undefined,
  headersToAdd: readonly HeaderValueJson[],
): Record<string, string> {
  const offered = clientHeaders(http.headers);
  if (body) offered[PARTIAL_BODY_HEADER] = String(body.partial);
  const headers: Record<string, string> = { 'content-length': String(bodyLength) };
  for (const [name, value] of Object.entries(offered))
    if (name !== 'content-length' && (ALWAYS_SENT.has(name) || allowedHeader?.(name))) headers[name] = value;
  headers.host = http.host;
  for (const h of headersToAdd) headers[h.key.toLowerCase()] = h.value;
  return headers;
}

/**
 * The body bytes an HTTP check carries, as a gRPC check would: the bytes
 * themselves with pack_as_bytes (a view, not a copy: nothing writes to
 * them), else their sanitized UTF-8.
 */
function httpCheckBody(data: Uint8Array, packAsBytes: boolean): Buffer {
  return packAsBytes ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : sanitizedUtf8Bytes(data);
}

const asSet = (h: readonly (readonly [string, string])[]): HeaderEdit[] =>
  h.map(([name, value]) => ({ name, value, action: 'set' }));
const asAppend = (h: readonly (readonly [string, string])[]): HeaderEdit[] =>
  h.map(([name, value]) => ({ name, value, action: 'append' }));

/**
 * Compiles an HTTP (envoy.filters.http.ext_authz) or network
 * (envoy.filters.network.ext_authz) filter config, refusing values it cannot
 * run. Which fields a config may carry is the proxy's to check: it declares
 * every field of these messages it honours and refuses any other.
 */
export function compileExtAuthz(config: ExtAuthzJson | NetworkExtAuthzJson, where: string): CompiledExtAuthz {
  if (config.transport_api_version === 'V2')
    fail(`${where}.transport_api_version`, 'V2 is not supported; use V3');
  const enabledBy = config.filter_enabled_metadata
    ? compileMetadataMatcher(config.filter_enabled_metadata, `${where}.filter_enabled_metadata`)
    : () => true;
  const httpService = 'http_service' in config ? config.http_service : undefined;
  const grpc = config.grpc_service;
  if (!httpService && !grpc) fail(where, 'ext_authz needs http_service or grpc_service');
  if (httpService && grpc) fail(where, 'ext_authz takes http_service or grpc_service, not both');
  checkGrpcService(grpc, where);
  const statusOnErrorCode = 'status_on_error' in config ? config.status_on_error?.code : undefined;
  const statusOnError = statusOnErrorCode === undefined ? 403 : statusCodeNumber(statusOnErrorCode);
  if (statusOnError === undefined)
    fail(`${where}.status_on_error`, `unknown status ${String(statusOnErrorCode)}`);
  const failureModeAllow = config.failure_mode_allow === true;
  const markFailedOpen = 'failure_mode_allow_header_add' in config && config.failure_mode_allow_header_add;
  const bodyJson = 'with_request_body' in config ? config.with_request_body : undefined;
  const withRequestBody = bodyJson
    ? compileBufferSettings(bodyJson, `${where}.with_request_body`)
    : undefined;

  // Allowed client headers in the check request: the configured list (top level, or the deprecated
  // authorization_request one) plus, for an HTTP authorizer, what Envoy always sends.
  const topAllowed = listMatcher(
    'allowed_headers' in config ? config.allowed_headers : undefined,
    `${where}.allowed_headers`,
  );
  const checkHeaderAllowed =
    topAllowed ??
    listMatcher(
      httpService?.authorization_request?.allowed_headers,
      `${where}.http_service.authorization_request.allowed_headers`,
    );
  const headersToAdd = httpService?.authorization_request?.headers_to_add ?? [];
  const resp = httpService?.authorization_response;
  const upstream = listMatcher(resp?.allowed_upstream_headers, `${where}.allowed_upstream_headers`);
  const upstreamAppend = listMatcher(
    resp?.allowed_upstream_headers_to_append,
    `${where}.allowed_upstream_headers_to_append`,
  );
  const clientDeny = listMatcher(resp?.allowed_client_headers, `${where}.allowed_client_headers`);
  const clientAllow = listMatcher(
    resp?.allowed_client_headers_on_success,
    `${where}.allowed_client_headers_on_success`,
  );
  const denyAlways = new Set([
    'path',
    ':path',
    ':status',
    'status',
    'content-length',
    'www-authenticate',
    'location',
  ]);
  const grpcSettings = {
    ...(topAllowed ? { allowedHeader: topAllowed } : {}),
    includePeerCertificate: config.include_peer_certificate === true,
    includeTlsSession: config.include_tls_session === true,
    metadataNamespaces: ('metadata_context_namespaces' in config && config.metadata_context_namespaces) || [],
    packAsBytes: withRequestBody?.packAsBytes === true,
  };

  const onError = (): ExtAuthzOutcome =>
    failureModeAllow
      ? allowed({
          failedOpen: true,
          upstream: markFailedOpen
            ? [{ name: FAILURE_MODE_ALLOWED_HEADER, value: 'true', action: 'set' }]
            : [],
        })
      : { allowed: false, status: statusOnError, body: '', headers: [], error: true };
  const timeout = httpService?.server_uri?.timeout ?? grpc?.timeout;

  return {
    transport: httpService ? 'http' : 'grpc',
    cluster: httpService ? (httpService.server_uri?.cluster ?? '') : grpc!.envoy_grpc.cluster_name,
    authority: grpc?.envoy_grpc.authority,
    uri: httpService?.server_uri?.uri,
    pathPrefix: httpService?.path_prefix ?? '',
    timeoutMs: timeout ? parseEnvoyDuration(timeout, `${where}.timeout`) : 200,
    failureModeAllow,
    statusOnError,
    ...(withRequestBody ? { withRequestBody } : {}),
    enabled: enabledBy,
    checkRequest(http, body) {
      const bytes = body ? httpCheckBody(body.data, withRequestBody?.packAsBytes === true) : undefined;
      return {
        method: http.method,
        path: `${httpService?.path_prefix ?? ''}${http.path}`,
        headers: httpCheckHeaders(http, body, bytes?.length ?? 0, checkHeaderAllowed, headersToAdd),
        ...(bytes?.length ? { body: bytes } : {}),
      };
    },
    interpretResponse(res) {
      if (res.status >= 500 && res.status < 600) return onError();
      const all = pairs(res.headers);
      const picked = (m: NameMatcher | undefined) =>
        m ? all.filter((h) => m(h.name)).map((h) => [h.name, h.value] as const) : [];
      if (res.status === 200) {
        return allowed({
          upstream: [...asSet(picked(upstream)), ...asAppend(picked(upstreamAppend))],
          responseHeaders: asSet(picked(clientAllow)),
        });
      }
      // How the authorizer's answer was framed on its connection is no header of the denial (Envoy's codec drops it).
      const framed = all.filter((h) => !HOP_BY_HOP_HEADERS.has(h.name));
      const forward = clientDeny
        ? framed.filter((h) => clientDeny(h.name) || denyAlways.has(h.name))
        : framed.filter((h) => h.name !== 'host' && h.name !== ':authority');
      return {
        allowed: false,
        status: res.status,
        body: res.body ?? '',
        headers: forward.map((h) => [h.name, h.value] as const),
      };
    },
    grpcCheckRequest: (input) => buildCheckRequest(input, grpcSettings),
    interpretCheckResponse,
    onError,
  };
}

/** Compiles an ExtAuthzPerRoute (a route's typed_per_filter_config for the ext_authz filter). */
export function compileExtAuthzPerRoute(config: ExtAuthzPerRouteJson, where: string): ExtAuthzPerRoute {
  const settings = config.check_settings ?? {};
  if (config.disabled && config.check_settings)
    fail(where, 'disabled and check_settings are alternatives (a oneof); set one');
  return {
    disabled: config.disabled === true,
    contextExtensions: { ...settings.context_extensions },
    disableRequestBodyBuffering: settings.disable_request_body_buffering === true,
  };
}

/**
 * How much of the body a check on this route carries: the filter's
 * with_request_body, unless the route's check_settings turn buffering off.
 */
export function requestBodySettings(
  authorizer: CompiledExtAuthz,
  perRoute: ExtAuthzPerRoute | undefined,
): RequestBodySettings | undefined {
  return perRoute?.disableRequestBodyBuffering ? undefined : authorizer.withRequestBody;
}

/**
 * The request as the rest of the chain sees it after an allowing authorizer
 * edited it: its header edits and removals, and its query parameter edits.
 */
export function applyUpstreamEdits(
  http: HttpRequestAttributes,
  outcome: Extract<ExtAuthzOutcome, { allowed: true }>,
): HttpRequestAttributes {
  const { upstream, removeUpstream, setQuery, removeQuery } = outcome;
  if (!upstream.length && !removeUpstream.length && !setQuery.length && !removeQuery.length) return http;
  return {
    ...http,
    headers: editHeaders(http.headers, upstream, removeUpstream),
    path: editQuery(http.path, setQuery, removeQuery),
  };
}
