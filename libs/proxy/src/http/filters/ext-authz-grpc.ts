import { randomBytes } from 'node:crypto';
import type {
  CheckRequestJson,
  CheckResponseJson,
  CompiledExtAuthz,
  ExtAuthzCheckInput,
  ExtAuthzOutcome,
  ExtAuthzPerRoute,
} from '@mizzen/policy';
import { authorizationCheckMethod, type EnvoyUnaryMethod } from '@mizzen/xds';
import type { ClientCertificate } from '../../security/client-cert-details.js';
import type { GrpcCallOptions } from '../../upstream/grpc-side-calls.js';
import type { BodyForCheck } from './ext-authz-body.js';
import type { HttpFilterContext } from './filter.js';

/**
 * Asking a gRPC external authorizer (Istio's envoyExtAuthzGrpc provider):
 * the facts Envoy puts in a CheckRequest, gathered from the request or the
 * connection; the call through the proxy's own cluster selection; the
 * answer as libs/policy reads it. Shared by the HTTP filter and the TCP
 * (network filter) path.
 */

/** How the proxy makes a unary gRPC call to a cluster (GrpcSideCalls.unary). */
export type GrpcCaller = <Req, Res>(
  cluster: string,
  method: EnvoyUnaryMethod<Req, Res>,
  request: Req,
  options: GrpcCallOptions,
) => Promise<Res>;

let checkMethod: EnvoyUnaryMethod<CheckRequestJson, CheckResponseJson> | undefined;

/**
 * Asks the authorizer about `input`: its CheckResponse as Envoy applies it,
 * or, when it cannot be reached, fails or takes longer than its timeout,
 * what failure_mode_allow / status_on_error say.
 */
export async function checkWithGrpcAuthorizer(
  call: GrpcCaller,
  authorizer: CompiledExtAuthz,
  input: ExtAuthzCheckInput,
): Promise<ExtAuthzOutcome> {
  checkMethod ??= authorizationCheckMethod<CheckRequestJson, CheckResponseJson>();
  try {
    const response = await call(authorizer.cluster, checkMethod, authorizer.grpcCheckRequest(input), {
      timeoutMs: authorizer.timeoutMs,
      ...(authorizer.authority ? { authority: authorizer.authority } : {}),
    });
    return authorizer.interpretCheckResponse(response);
  } catch {
    return authorizer.onError();
  }
}

/** Envoy's stream id: a random uint64, in decimal. */
function streamId(): string {
  return randomBytes(8).readBigUInt64BE().toString();
}

/** A peer certificate's principal as Envoy takes it: URI SAN, else DNS SAN, else subject. */
export function certificatePrincipal(cert: ClientCertificate | undefined): string | undefined {
  return cert?.uris[0] ?? cert?.dns[0] ?? (cert?.subject || undefined);
}

/** HTTP/1.0, HTTP/1.1 or HTTP/2, as Envoy names the request's protocol. */
function protocolOf(ctx: HttpFilterContext): string {
  if (ctx.req.httpVersionMajor === 2) return 'HTTP/2';
  return ctx.req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1';
}

/**
 * What a CheckRequest says about one HTTP request: the downstream peer and
 * what its certificate proved, this proxy's end, the request line and
 * headers, when it started, the body buffered for it, the dynamic metadata
 * so far and the route's context extensions.
 */
export function httpCheckInput(
  ctx: HttpFilterContext,
  metadata: ExtAuthzCheckInput['metadata'],
  perRoute: ExtAuthzPerRoute | undefined,
  buffered: Extract<BodyForCheck, { kind: 'body' }> = { kind: 'body', received: 0 },
): ExtAuthzCheckInput {
  const socket = ctx.req.socket;
  const down = ctx.downstream;
  const cert = down.clientCertificate;
  const principal = certificatePrincipal(cert) ?? down.peerPrincipal;
  return {
    source: {
      address: down.remoteAddress ?? socket?.remoteAddress ?? '',
      port: socket?.remotePort ?? 0,
      ...(principal ? { principal } : {}),
      ...(cert?.pem ? { certificatePem: cert.pem } : {}),
    },
    destination: {
      address: down.localAddress ?? socket?.localAddress ?? '',
      port: down.destinationPort ?? socket?.localPort ?? 0,
      ...(cert?.localUri ? { principal: cert.localUri } : {}),
    },
    ...(down.sni ? { sni: down.sni } : {}),
    http: {
      id: streamId(),
      time: new Date(performance.timeOrigin + ctx.info.startTime),
      method: ctx.request.method,
      path: ctx.request.path,
      host: ctx.request.authority,
      scheme: ctx.request.scheme,
      protocol: protocolOf(ctx),
      headers: ctx.request.headers,
      // Envoy's body bytes received when it checks: none unless the body was buffered for the check.
      size: buffered.received,
      ...(buffered.body ? { body: buffered.body } : {}),
    },
    metadata,
    ...(perRoute ? { contextExtensions: perRoute.contextExtensions } : {}),
  };
}
