import { parseEnvoyDuration } from '../common/duration.js';
import { fail } from '../common/errors.js';
import {
  compileMetadataMatcher,
  compileStringMatcher,
  type DynamicMetadata,
  type StringPredicate,
} from '../common/matchers.js';
import type { ExtAuthzJson, ListStringMatcherJson, NetworkExtAuthzJson } from '../envoy/types.js';
import type { HttpRequestAttributes } from './attributes.js';
import { statusCodeNumber } from './ext-authz-config.js';

/**
 * The runtime half of Envoy's ext_authz filter as pure functions: when the
 * filter is enabled, what check request to send to an HTTP authorizer, and
 * what its answer means. The proxy does the I/O.
 */

export type HeaderPair = readonly [name: string, value: string];

/** What the authorizer decided (or what a failure to ask it means). */
export type ExtAuthzOutcome =
  | {
      allowed: true;
      /** Headers to set on the upstream request (allowed_upstream_headers). */
      setUpstream: HeaderPair[];
      /** Headers to append to the upstream request (allowed_upstream_headers_to_append). */
      appendUpstream: HeaderPair[];
      /** Headers to add to the client's response (allowed_client_headers_on_success). */
      responseHeaders: HeaderPair[];
    }
  | {
      allowed: false;
      status: number;
      body: string;
      /** Headers for the denial sent to the client. */
      headers: HeaderPair[];
    };

export interface ExtAuthzHttpCheckRequest {
  method: string;
  /** path_prefix + the original :path. */
  path: string;
  /** Lower-case names; includes host. */
  headers: Record<string, string>;
}

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
  /** with_request_body.max_request_bytes, when the body is to be sent. */
  readonly maxRequestBytes?: number;
  /** True when the filter_enabled_metadata matcher selects this request (no matcher: always). */
  enabled(metadata: DynamicMetadata): boolean;
  /** The check request for an HTTP authorizer. */
  checkRequest(http: HttpRequestAttributes, bodyLength?: number): ExtAuthzHttpCheckRequest;
  /** An HTTP authorizer's response: 200 allows, 5xx is a failure, anything else denies. */
  interpretResponse(res: {
    status: number;
    headers: Readonly<Record<string, string | readonly string[] | undefined>>;
    body?: string;
  }): ExtAuthzOutcome;
  /** The authorizer could not be reached or timed out: failure_mode_allow or status_on_error. */
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

const ALLOW: ExtAuthzOutcome = { allowed: true, setUpstream: [], appendUpstream: [], responseHeaders: [] };

/** Compiles an HTTP or network ext_authz filter config. */
export function compileExtAuthz(config: ExtAuthzJson | NetworkExtAuthzJson, where: string): CompiledExtAuthz {
  const enabledBy = config.filter_enabled_metadata
    ? compileMetadataMatcher(config.filter_enabled_metadata, `${where}.filter_enabled_metadata`)
    : () => true;
  const httpService = 'http_service' in config ? config.http_service : undefined;
  const grpc = config.grpc_service;
  if (!httpService && !grpc) fail(where, 'ext_authz needs http_service or grpc_service');
  const statusOnErrorCode = 'status_on_error' in config ? config.status_on_error?.code : undefined;
  const statusOnError = statusOnErrorCode === undefined ? 403 : statusCodeNumber(statusOnErrorCode);
  if (statusOnError === undefined)
    fail(`${where}.status_on_error`, `unknown status ${String(statusOnErrorCode)}`);
  const failureModeAllow = config.failure_mode_allow === true;
  const body = 'with_request_body' in config ? config.with_request_body : undefined;

  // Allowed client headers in the check request: the configured list (top level, or the deprecated
  // authorization_request one) plus what Envoy always sends.
  const allowed =
    listMatcher(
      'allowed_headers' in config ? config.allowed_headers : undefined,
      `${where}.allowed_headers`,
    ) ??
    listMatcher(
      httpService?.authorization_request?.allowed_headers,
      `${where}.http_service.authorization_request.allowed_headers`,
    );
  const always = new Set([':method', ':path', ':authority', 'host', 'authorization']);
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

  const deniedWith = (status: number): ExtAuthzOutcome => ({ allowed: false, status, body: '', headers: [] });
  const onError = (): ExtAuthzOutcome => (failureModeAllow ? ALLOW : deniedWith(statusOnError));
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
    maxRequestBytes: body?.max_request_bytes,
    enabled: enabledBy,
    checkRequest(http, bodyLength = 0) {
      const headers: Record<string, string> = { 'content-length': String(bodyLength) };
      for (const { name, value } of pairs(http.headers)) {
        if (name === 'content-length' || name.startsWith(':')) continue;
        if (always.has(name) || allowed?.(name)) {
          headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
        }
      }
      headers.host = http.host;
      for (const h of headersToAdd) headers[h.key.toLowerCase()] = h.value;
      return { method: http.method, path: `${httpService?.path_prefix ?? ''}${http.path}`, headers };
    },
    interpretResponse(res) {
      if (res.status >= 500 && res.status < 600) return onError();
      const all = pairs(res.headers);
      if (res.status === 200) {
        return {
          allowed: true,
          setUpstream: upstream
            ? all.filter((h) => upstream(h.name)).map((h) => [h.name, h.value] as const)
            : [],
          appendUpstream: upstreamAppend
            ? all.filter((h) => upstreamAppend(h.name)).map((h) => [h.name, h.value] as const)
            : [],
          responseHeaders: clientAllow
            ? all.filter((h) => clientAllow(h.name)).map((h) => [h.name, h.value] as const)
            : [],
        };
      }
      const forward = clientDeny
        ? all.filter((h) => clientDeny(h.name) || denyAlways.has(h.name))
        : all.filter((h) => h.name !== 'host' && h.name !== ':authority');
      return {
        allowed: false,
        status: res.status,
        body: res.body ?? '',
        headers: forward.map((h) => [h.name, h.value] as const),
      };
    },
    onError,
  };
}

/** The request as the rest of the chain sees it after an allowing authorizer edited its headers. */
export function applyUpstreamHeaders(
  http: HttpRequestAttributes,
  outcome: Extract<ExtAuthzOutcome, { allowed: true }>,
): HttpRequestAttributes {
  if (!outcome.setUpstream.length && !outcome.appendUpstream.length) return http;
  const headers: Record<string, string | readonly string[] | undefined> = {};
  for (const [k, v] of Object.entries(http.headers)) headers[k.toLowerCase()] = v;
  const set = new Map<string, string[]>();
  for (const [name, value] of outcome.setUpstream) set.set(name, [...(set.get(name) ?? []), value]);
  for (const [name, values] of set) headers[name] = values.length === 1 ? values[0] : values;
  for (const [name, value] of outcome.appendUpstream) {
    const prev = headers[name];
    headers[name] = prev === undefined ? value : [...(typeof prev === 'string' ? [prev] : prev), value];
  }
  return { ...http, headers };
}
