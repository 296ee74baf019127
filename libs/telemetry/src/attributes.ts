import { type CelResult, celEnv, isCelError, parse, plan } from '@bufbuild/cel';
import type { HttpRequestRecord, TcpConnectionRecord } from '@mizzen/proxy';

/**
 * Envoy's request attributes (`request.*`, `response.*`, `source.*`,
 * `destination.*`, `connection.*`, `upstream.*`, `xds.*`) for one finished
 * request, as the CEL expressions of Istio's Telemetry API see them:
 * access-log filters (`response.code >= 400`) and metric tag values
 * (`request.headers['user-agent']`).
 */

type Bag = Map<string, unknown>;

function headerMap(headers: Record<string, unknown>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    out.set(k.toLowerCase(), Array.isArray(v) ? v.join(',') : String(v));
  }
  return out;
}

function splitAddress(address: string): { host: string; port?: bigint } {
  const m = /^(\[[^\]]+\]|[^:]+|.*?)(?::(\d+))?$/.exec(address);
  return { host: m?.[1] ?? address, port: m?.[2] ? BigInt(m[2]) : undefined };
}

function address(map: Bag, addr: string | undefined): Bag {
  if (!addr) return map;
  const { host, port } = splitAddress(addr);
  map.set('address', addr);
  if (port !== undefined) map.set('port', port);
  else map.set('address', host);
  return map;
}

function durationString(ms: number): string {
  return `${(ms / 1000).toFixed(9).replace(/\.?0+$/, '')}s`;
}

/** The attribute bag of a finished request, keyed by top-level attribute name. */
export function requestAttributes(
  r: HttpRequestRecord,
  node: { id: string; cluster?: string },
): Record<string, Bag> {
  const q = r.path.indexOf('?');
  const headers = headerMap(r.headers as Record<string, unknown>);
  headers.set(':authority', r.authority);
  headers.set(':method', r.method);
  headers.set(':path', r.path);
  headers.set(':scheme', r.scheme);
  const request: Bag = new Map<string, unknown>([
    ['path', r.path],
    ['url_path', q >= 0 ? r.path.slice(0, q) : r.path],
    ['query', q >= 0 ? r.path.slice(q + 1) : ''],
    ['host', r.authority],
    ['scheme', r.scheme],
    ['method', r.method],
    ['headers', headers],
    ['useragent', headers.get('user-agent') ?? ''],
    ['referer', headers.get('referer') ?? ''],
    ['id', headers.get('x-request-id') ?? ''],
    ['protocol', r.protocol],
    ['size', BigInt(r.requestBytes)],
    ['total_size', BigInt(r.requestBytes)],
    ['time', r.startTime.toISOString()],
    ['duration', durationString(r.durationMs)],
  ]);
  const response: Bag = new Map<string, unknown>([
    ['code', BigInt(r.responseCode)],
    ['code_details', responseCodeDetails(r) ?? ''],
    ['flags', r.responseFlags],
    ['grpc_status', r.grpcStatus === undefined ? 0n : BigInt(Number(r.grpcStatus) || 0)],
    ['headers', headerMap(r.responseHeaders as Record<string, unknown>)],
    ['size', BigInt(r.responseBytes)],
    ['total_size', BigInt(r.responseBytes)],
  ]);
  const source = address(new Map(), r.downstreamRemoteAddress);
  const destination = address(new Map(), r.downstreamLocalAddress);
  const mtls = r.connectionSecurityPolicy === 'mutual_tls';
  const connection: Bag = new Map<string, unknown>([['mtls', mtls]]);
  if (r.sourcePrincipal && r.direction === 'inbound')
    connection.set('uri_san_peer_certificate', r.sourcePrincipal);
  const upstream = address(new Map(), r.upstreamHost);
  const xds: Bag = new Map<string, unknown>([
    ['cluster_name', r.upstreamCluster ?? ''],
    ['route_name', r.routeName ?? ''],
    [
      'node',
      new Map<string, unknown>([
        ['id', node.id],
        ['cluster', node.cluster ?? ''],
      ]),
    ],
  ]);
  return { request, response, source, destination, connection, upstream, xds };
}

/**
 * The attribute bag of a TCP connection: Envoy's connection attributes
 * (`source.*`, `destination.*`, `connection.*`, `upstream.*`, `xds.*`, and
 * `response.flags`); no `request` or `response.code`, so expressions over
 * them have no value here (and an access-log filter on them is false).
 */
export function connectionAttributes(
  r: TcpConnectionRecord,
  node: { id: string; cluster?: string },
): Record<string, Bag> {
  // `connection.*` is the downstream connection: mutual TLS only where this proxy terminated it (inbound).
  const inbound = r.direction === 'inbound';
  const connection: Bag = new Map<string, unknown>([
    ['mtls', inbound && r.connectionSecurityPolicy === 'mutual_tls'],
  ]);
  if (r.sourcePrincipal && inbound) connection.set('uri_san_peer_certificate', r.sourcePrincipal);
  if (r.requestedServerName) connection.set('requested_server_name', r.requestedServerName);
  const xds: Bag = new Map<string, unknown>([
    ['cluster_name', r.upstreamCluster],
    [
      'node',
      new Map<string, unknown>([
        ['id', node.id],
        ['cluster', node.cluster ?? ''],
      ]),
    ],
  ]);
  const upstream = address(new Map(), r.upstreamHost);
  if (r.upstreamLocalAddress) upstream.set('local_address', r.upstreamLocalAddress);
  if (r.upstreamTransportFailureReason)
    upstream.set('transport_failure_reason', r.upstreamTransportFailureReason);
  return {
    source: address(new Map(), r.downstreamRemoteAddress),
    destination: address(new Map(), r.downstreamLocalAddress),
    connection,
    upstream,
    response: new Map<string, unknown>([['flags', r.responseFlags]]),
    xds,
  };
}

const env = celEnv();

/** A compiled CEL expression; `error` set when it does not parse. */
/**
 * Envoy's %RESPONSE_CODE_DETAILS% (`response.code_details`): why the response
 * has its code. `via_upstream` when the upstream answered; otherwise the detail
 * of the filter that answered itself, as Envoy names it
 * (`rbac_access_denied_matched_policy[ns[default]-policy[deny-get]-rule[0]]`,
 * `ext_authz_denied`, `ext_authz_error`, `fault_filter_abort`, `route_not_found`,
 * `no_healthy_upstream`); undefined when the proxy cannot tell.
 */
export function responseCodeDetails(r: HttpRequestRecord): string | undefined {
  if (r.responseCode === 0) return undefined;
  if (r.authz && !r.authz.allowed) {
    const details = denialDetails(r.authz);
    if (details) return details;
  }
  const flags = r.responseFlags.split(',');
  if (flags.includes('FI')) return 'fault_filter_abort';
  if (flags.includes('NR')) return 'route_not_found';
  if (flags.includes('UH')) return 'no_healthy_upstream';
  return r.responseFlags === '-' ? 'via_upstream' : undefined;
}

/**
 * Why authorization refused a request or a connection, as Envoy's filters
 * say it (a request's %RESPONSE_CODE_DETAILS%, a connection's
 * %CONNECTION_TERMINATION_DETAILS%): `rbac_access_denied_matched_policy[…]`,
 * `ext_authz_denied`, `ext_authz_error`, `jwt_authn_access_denied`.
 */
export function denialDetails(by: {
  policy?: string;
  deniedBy?: 'rbac' | 'ext_authz' | 'jwt';
  extAuthzError?: boolean;
}): string | undefined {
  if (by.deniedBy === 'rbac') return `rbac_access_denied_matched_policy[${by.policy ?? 'none'}]`;
  if (by.deniedBy === 'ext_authz') return by.extAuthzError ? 'ext_authz_error' : 'ext_authz_denied';
  if (by.deniedBy === 'jwt') return 'jwt_authn_access_denied';
  return undefined;
}

export interface CompiledExpression {
  readonly source: string;
  readonly error?: string;
  eval(attributes: Record<string, Bag>): CelResult | undefined;
}

const cache = new Map<string, CompiledExpression>();

/** Parses (once, cached) a CEL expression over the request attributes. */
export function compileExpression(source: string): CompiledExpression {
  let compiled = cache.get(source);
  if (compiled) return compiled;
  try {
    const run = plan(env, parse(source)) as (ctx: Record<string, unknown>) => CelResult;
    compiled = { source, eval: (attrs) => run(attrs) };
  } catch (err) {
    compiled = { source, error: (err as Error).message, eval: () => undefined };
  }
  if (cache.size > 1000) cache.clear();
  cache.set(source, compiled);
  return compiled;
}

/** A filter's verdict: true only when the expression evaluates to `true` (errors and non-booleans drop the entry, as Envoy does). */
export function evaluateFilter(expression: CompiledExpression, attributes: Record<string, Bag>): boolean {
  const result = expression.eval(attributes);
  return result === true;
}

/** A metric tag's value: the expression's result as a string, or undefined when it cannot be computed. */
export function evaluateTag(
  expression: CompiledExpression,
  attributes: Record<string, Bag>,
): string | undefined {
  const result = expression.eval(attributes);
  if (result === undefined || isCelError(result)) return undefined;
  if (typeof result === 'string') return result;
  if (typeof result === 'bigint' || typeof result === 'number' || typeof result === 'boolean')
    return String(result);
  if (result === null) return undefined;
  return String(result);
}
