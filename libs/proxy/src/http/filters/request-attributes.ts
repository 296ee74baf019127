import type { RequestAttributes } from '@mizzen/policy';
import type { HttpFilterContext } from './filter.js';

/**
 * What authorization sees of one HTTP request (Istio's source.*, remote.*,
 * destination.*, connection.sni, request.*): the connection's verified peer
 * identity, the client address after X-Forwarded-For processing, the port the
 * workload was called on, and what jwt_authn established.
 */
export function requestAttributes(ctx: HttpFilterContext): RequestAttributes {
  const socket = ctx.req.socket;
  const down = ctx.downstream;
  return {
    source: {
      address: down.remoteAddress ?? socket?.remoteAddress ?? '',
      ...(socket?.remotePort !== undefined ? { port: socket.remotePort } : {}),
      ...(down.peerPrincipal ? { principal: down.peerPrincipal } : {}),
    },
    remoteAddress: ctx.clientAddress,
    destination: {
      address: down.localAddress ?? socket?.localAddress ?? '',
      port: down.destinationPort ?? socket?.localPort ?? 0,
    },
    ...(down.sni ? { sni: down.sni } : {}),
    http: {
      host: ctx.request.authority,
      method: ctx.request.method,
      path: ctx.request.path,
      scheme: ctx.request.scheme,
      headers: ctx.request.headers,
    },
    ...(ctx.info.requestAuth ? { auth: ctx.info.requestAuth } : {}),
    metadata: ctx.info.dynamicMetadata,
  };
}
