import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EnvoyUnaryMethod } from '@mizzen/xds';
import type { HeaderMap } from '../../config/headers.js';
import type { CompiledRoute, CompiledVirtualHost } from '../../config/route-table.js';
import type { GrpcCallOptions } from '../../upstream/grpc-side-calls.js';
import type { DownstreamContext } from '../connection-manager.js';
import type { DownstreamBody } from '../request-body.js';
import type { SideCallResponse } from '../router.js';
import type { StreamInfo } from '../stream-info.js';

/** The request as filters see and may edit it (headers are the end-to-end headers that will go upstream). */
export interface FilterRequest {
  readonly method: string;
  /** :path with the query; a filter may change what goes upstream (jwt_authn removes a token parameter). */
  path: string;
  readonly authority: string;
  readonly scheme: string;
  readonly headers: HeaderMap;
}

/** Edits response headers just before they are written (CORS, for example). */
export type ResponseDecorator = (status: number, headers: HeaderMap) => void;

export interface HttpFilterContext {
  readonly request: FilterRequest;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /**
   * The request body: a filter may buffer its start (an external authorizer
   * that checks it); the router still sends all of it upstream.
   */
  readonly body: DownstreamBody;
  /** The route the request matched, if any (filters run before a no-route 404 is sent). */
  readonly route?: CompiledRoute;
  readonly vhost?: CompiledVirtualHost;
  readonly info: StreamInfo;
  readonly downstream: DownstreamContext;
  /**
   * The client's address as Envoy's connection manager determines it: the
   * peer at the edge (use_remote_address), else from X-Forwarded-For.
   */
  readonly clientAddress: string;
  /** A request of the proxy's own to a cluster (an external authorizer), bounded by `timeoutMs`. */
  callCluster(
    cluster: string,
    req: { method: string; path: string; headers: HeaderMap; body?: Buffer },
    timeoutMs: number,
  ): Promise<SideCallResponse>;
  /** A unary gRPC call of the proxy's own to a cluster (a gRPC external authorizer's Check). */
  callGrpc<Req, Res>(
    cluster: string,
    method: EnvoyUnaryMethod<Req, Res>,
    request: Req,
    options: GrpcCallOptions,
  ): Promise<Res>;
  /** Answers the request from the filter (decorators still apply). */
  reply(status: number, body: string | Buffer, headers?: Record<string, string | string[]>): void;
  /** Registers a response-header edit for whatever response goes back. */
  decorateResponse(decorator: ResponseDecorator): void;
}

export type FilterStatus = 'continue' | 'stop';

/**
 * One of Envoy's HTTP filters, decoding side: it sees the request before the
 * router, may change it, delay it or answer it itself ('stop').
 */
export interface HttpFilter {
  readonly name: string;
  decode(ctx: HttpFilterContext): FilterStatus | Promise<FilterStatus>;
}

/** A filter's configuration for the matched route (route level, else virtual host level), compiled. */
export function perRouteConfig<T>(ctx: HttpFilterContext, filterName: string): T | undefined {
  return (ctx.route?.perFilterConfig.get(filterName) ?? ctx.vhost?.perFilterConfig.get(filterName)) as
    | T
    | undefined;
}
