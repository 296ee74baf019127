import type { DynamicMetadata } from '../common/matchers.js';
import type {
  AttributeContextHttpRequestJson,
  AttributeContextJson,
  AttributeContextPeerJson,
  CheckRequestJson,
  CheckResponseJson,
  HeaderValueOptionJson,
  SocketAddressJson,
} from '../envoy/types.js';
import { type CheckBody, PARTIAL_BODY_HEADER, sanitizeUtf8 } from './ext-authz-body.js';
import { statusCodeNumber } from './ext-authz-config.js';
import {
  editedPairs,
  type HeaderAction,
  type HeaderEdit,
  type HeaderPair,
  type HeaderRecord,
} from './header-edits.js';

/**
 * The gRPC authorizer's side of Envoy's ext_authz (`envoy.service.auth.v3.
 * Authorization/Check`) as pure functions: the AttributeContext Envoy fills
 * for a request or a connection, and what a CheckResponse means. The proxy
 * gathers the facts and does the call.
 */

/** What the proxy knows of one request or connection when it asks a gRPC authorizer. */
export interface ExtAuthzCheckInput {
  /** The downstream peer: its address, and what its certificate proved (mutual TLS). */
  source: {
    address: string;
    port: number;
    /** URI SAN, else DNS SAN, else subject of the peer certificate. */
    principal?: string;
    /** PEM of the peer certificate. */
    certificatePem?: string;
  };
  /** This proxy's end: the address and port the connection came to, and its own certificate's identity. */
  destination: { address: string; port: number; principal?: string };
  /** The TLS SNI the client asked for. */
  sni?: string;
  /** The HTTP request; absent for a TCP connection. */
  http?: {
    /** Envoy's stream id (a decimal uint64). */
    id: string;
    /** When the proxy received the request's first byte. */
    time: Date;
    method: string;
    /** :path with the query. */
    path: string;
    host: string;
    scheme: string;
    /** `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`. */
    protocol: string;
    headers: HeaderRecord;
    /** Request bytes received so far. */
    size: number;
    /** The body bytes the check carries (with_request_body), when the request has a body. */
    body?: CheckBody;
  };
  /** The request's dynamic metadata (metadata_context_namespaces picks what is sent). */
  metadata: DynamicMetadata;
  /** The route's ExtAuthzPerRoute context_extensions. */
  contextExtensions?: Readonly<Record<string, string>>;
}

/** The parts of an ext_authz config that shape a gRPC check request. */
export interface GrpcCheckSettings {
  /** allowed_headers: only these request headers are sent (all when absent). */
  allowedHeader?: (name: string) => boolean;
  includePeerCertificate: boolean;
  includeTlsSession: boolean;
  metadataNamespaces: readonly string[];
  /** with_request_body.pack_as_bytes: the body goes as `raw_body` bytes, not the UTF-8 `body`. */
  packAsBytes: boolean;
}

/** A peer's address as Envoy's config.core.v3.Address (an IPv4-mapped IPv6 address as the IPv4 it is). */
function socketAddress(address: string, port: number): SocketAddressJson {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return { socket_address: { address: v4 ? v4[1]! : address, port_value: port } };
}

/**
 * The request's own headers as a check (HTTP or gRPC) offers them to its
 * authorizer: lower-case names, the values of a repeated header joined with
 * `,`; no pseudo-headers (each check writes the request line its own way) and
 * no partial-body marker, which is Envoy's own and never taken from a client.
 */
export function clientHeaders(headers: HeaderRecord): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (name.startsWith(':') || name === PARTIAL_BODY_HEADER) continue;
    const value = typeof v === 'string' ? v : v.join(',');
    out[name] = out[name] === undefined ? value : `${out[name]},${value}`;
  }
  return out;
}

/** Header map of the gRPC check: pseudo-headers as Envoy's codec has them, then the client's headers. */
function checkHeaders(
  http: NonNullable<ExtAuthzCheckInput['http']>,
  allowed: ((name: string) => boolean) | undefined,
): Record<string, string> {
  // Host became :authority.
  const { host: _host, ...headers } = clientHeaders(http.headers);
  const out: Record<string, string> = {
    ':authority': http.host,
    ':path': http.path,
    ':method': http.method,
    ':scheme': http.scheme,
    ...headers,
  };
  const picked = allowed ? Object.fromEntries(Object.entries(out).filter(([name]) => allowed(name))) : out;
  // Envoy adds its marker after choosing the allowed headers: a check with a body always says whether it is all there.
  if (http.body) picked[PARTIAL_BODY_HEADER] = String(http.body.partial);
  return picked;
}

/**
 * The CheckRequest Envoy sends for `input` (CheckRequestUtils::createHttpCheck
 * / createTcpCheck): source and destination peers, the HTTP request (id,
 * method, headers, path, host, scheme, protocol, size, time, and the body
 * when one was buffered for it), context extensions, metadata context and, when asked for, the peer certificate and
 * the TLS session's SNI. A TCP check names the SNI as the destination's service.
 */
export function buildCheckRequest(input: ExtAuthzCheckInput, s: GrpcCheckSettings): CheckRequestJson {
  const { source, destination, http } = input;
  const sourcePeer: AttributeContextPeerJson = {
    address: socketAddress(source.address, source.port),
    ...(source.principal ? { principal: source.principal } : {}),
    ...(s.includePeerCertificate && source.certificatePem
      ? { certificate: encodeURIComponent(source.certificatePem) }
      : {}),
  };
  const downstreamService = http?.headers['x-envoy-downstream-service-cluster'];
  if (typeof downstreamService === 'string' && downstreamService) sourcePeer.service = downstreamService;
  const destinationPeer: AttributeContextPeerJson = {
    address: socketAddress(destination.address, destination.port),
    ...(destination.principal ? { principal: destination.principal } : {}),
    ...(!http && input.sni ? { service: input.sni } : {}),
  };
  const attributes: AttributeContextJson = { source: sourcePeer, destination: destinationPeer };
  if (http) {
    const request: AttributeContextHttpRequestJson = {
      id: http.id,
      method: http.method,
      headers: checkHeaders(http, s.allowedHeader),
      path: http.path,
      host: http.host,
      scheme: http.scheme,
      size: http.size,
      protocol: http.protocol,
    };
    if (http.body) {
      if (s.packAsBytes) request.raw_body = Buffer.from(http.body.data).toString('base64');
      else request.body = sanitizeUtf8(http.body.data);
    }
    attributes.request = { time: http.time.toISOString(), http: request };
    if (input.contextExtensions && Object.keys(input.contextExtensions).length)
      attributes.context_extensions = { ...input.contextExtensions };
    const picked = s.metadataNamespaces.filter((ns) => input.metadata[ns] !== undefined);
    if (picked.length)
      attributes.metadata_context = {
        filter_metadata: Object.fromEntries(picked.map((ns) => [ns, { ...input.metadata[ns] }])),
      };
  }
  if (s.includeTlsSession && input.sni) attributes.tls_session = { sni: input.sni };
  return { attributes };
}

/** What an authorizer decided (or what a failure to ask it means). */
export type ExtAuthzOutcome =
  | {
      allowed: true;
      /** Edits of the request that goes on, in order. */
      upstream: HeaderEdit[];
      /** Request headers to remove (never pseudo-headers or Host). */
      removeUpstream: string[];
      /** Query parameters to set on the request's path, and to remove from it. */
      setQuery: HeaderPair[];
      removeQuery: string[];
      /** Edits of the response the client gets. */
      responseHeaders: HeaderEdit[];
      /** Dynamic metadata the authorizer returned (the ext_authz filter's namespace). */
      metadata?: Record<string, unknown>;
      /** Let through only because the authorizer failed and failure_mode_allow says so. */
      failedOpen?: true;
    }
  | {
      allowed: false;
      status: number;
      body: string;
      /** Headers of the denial sent to the client. */
      headers: HeaderPair[];
      metadata?: Record<string, unknown>;
      /** The authorizer could not be asked or failed (Envoy's `ext_authz_error`), rather than said no. */
      error?: true;
    };

export type AllowedOutcome = Extract<ExtAuthzOutcome, { allowed: true }>;

/** An allowing outcome with the given edits (and none of the others). */
export function allowed(parts: Partial<Omit<AllowedOutcome, 'allowed'>> = {}): AllowedOutcome {
  return {
    allowed: true,
    upstream: [],
    removeUpstream: [],
    setQuery: [],
    removeQuery: [],
    responseHeaders: [],
    ...parts,
  };
}

// RFC 9110 token characters.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** A header value HTTP can carry: no control characters but tab. */
function validHeaderValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
  }
  return true;
}

/**
 * One HeaderValueOption as an edit: `append` when set wins (true joins a
 * request header's value to the existing one, adds another response header;
 * false replaces); else `append_action`. Unset, the header is replaced, as
 * the Check API documents for these messages (proto3 cannot tell an unset
 * action from APPEND_IF_EXISTS_OR_ADD, so only an explicit one adds).
 * Headers no HTTP message can carry are dropped.
 */
function headerEdit(h: HeaderValueOptionJson, response: boolean): HeaderEdit | undefined {
  const name = (h.header?.key ?? '').toLowerCase();
  const value =
    h.header?.value || (h.header?.raw_value ? Buffer.from(h.header.raw_value, 'base64').toString() : '');
  if (!HEADER_NAME.test(name) || !validHeaderValue(value)) return undefined;
  let action: HeaderAction;
  if (h.append !== undefined) action = h.append ? (response ? 'add' : 'append') : 'set';
  else
    switch (h.append_action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        action = 'add';
        break;
      case 'ADD_IF_ABSENT':
        action = 'add-if-absent';
        break;
      case 'OVERWRITE_IF_EXISTS':
        action = 'overwrite-if-exists';
        break;
      default:
        action = 'set';
    }
  return { name, value, action };
}

function headerEdits(list: readonly HeaderValueOptionJson[] | undefined, response: boolean): HeaderEdit[] {
  return (list ?? []).flatMap((h) => {
    const e = headerEdit(h, response);
    return e ? [e] : [];
  });
}

/** A DeniedHttpResponse status: a StatusCode name or number; unset (`Empty`, 0) or unknown is 403. */
function deniedStatus(code: string | number | undefined): number {
  if (typeof code === 'number') return code >= 100 && code <= 599 ? code : 403;
  return (code !== undefined ? statusCodeNumber(code) : undefined) ?? 403;
}

/**
 * A CheckResponse as Envoy applies it: status OK allows, with the
 * ok_response's request header edits and removals, query parameter edits and
 * response headers; any other status denies with the denied_response's status
 * (default 403), headers and body.
 */
export function interpretCheckResponse(res: CheckResponseJson): ExtAuthzOutcome {
  const ok = res.ok_response;
  // The deprecated ok_response.dynamic_metadata, when set, replaces the response's own.
  const metadata = ok?.dynamic_metadata ?? res.dynamic_metadata;
  const withMetadata = metadata && Object.keys(metadata).length ? { metadata } : {};
  if ((res.status?.code ?? 0) === 0) {
    return allowed({
      upstream: headerEdits(ok?.headers, false),
      removeUpstream: (ok?.headers_to_remove ?? []).map((h) => h.toLowerCase()),
      setQuery: (ok?.query_parameters_to_set ?? []).map((q): HeaderPair => [q.key, q.value]),
      removeQuery: [...(ok?.query_parameters_to_remove ?? [])],
      responseHeaders: headerEdits(ok?.response_headers_to_add, true),
      ...withMetadata,
    });
  }
  const denied = res.denied_response;
  return {
    allowed: false,
    status: deniedStatus(denied?.status?.code),
    body: denied?.body ?? '',
    headers: editedPairs(headerEdits(denied?.headers, true)),
    ...withMetadata,
  };
}
