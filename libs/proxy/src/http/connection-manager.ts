import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { type Duplex, Transform } from 'node:stream';
import type { Logger } from '@mizzen/runtime';
import { applyHeaderMutations, type HeaderMap, type HeaderMutation } from '../config/headers.js';
import type { HttpConnectionManagerConfig } from '../config/listener.js';
import {
  type CompiledRoute,
  type CompiledVirtualHost,
  type ForwardAction,
  findRoute,
  type MatchInput,
  type RedirectAction,
  type RouteTable,
  type WeightedCluster,
} from '../config/route-table.js';
import type { ProxyEndpoint } from '../listeners/proxy-protocol.js';
import { PEER_ID_HEADER, PEER_METADATA_HEADER, takePeerHeaders } from '../observe/peer-metadata.js';
import type { HttpRequestRecord, ProxyObserver, TrafficDirection } from '../observe/records.js';
import { applyClientCertPolicy, type ClientCertificate } from '../security/client-cert-details.js';
import type { OriginalDestination } from '../upstream/cluster-manager.js';
import type { GrpcSideCalls } from '../upstream/grpc-side-calls.js';
import { hostKey } from '../upstream/host.js';
import type { HttpFilterContext, ResponseDecorator } from './filters/filter.js';
import { sample } from './filters/percent.js';
import { cookieValue, requestHash } from './hash-policy.js';
import { endToEndHeaders, headerValue } from './headers.js';
import { LocalReplies, sendLocalReply } from './local-reply.js';
import { DownstreamBody } from './request-body.js';
import type { Router } from './router.js';
import { StreamInfo } from './stream-info.js';
import { responseOnSocket } from './upgrade-tunnel.js';

/** A request that asked to switch protocols: the raw connection and what followed the request head. */
export interface UpgradeContext {
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly protocol: string;
}

/** Route tables received over RDS, by name. */
export interface RouteTables {
  get(name: string): RouteTable | undefined;
  /** Resolves when the table arrives (a listener is still warming), or undefined after `timeoutMs`. */
  wait(name: string, timeoutMs: number): Promise<RouteTable | undefined>;
}

export interface DownstreamContext {
  readonly scheme: 'http' | 'https';
  /** Where the connection was headed before capture (ORIGINAL_DST clusters forward there). */
  readonly originalDst?: OriginalDestination;
  /** The client's address when the request's socket (a TLS stream) does not know it. */
  readonly remoteAddress?: string;
  readonly localAddress?: string;
  /** The client's SPIFFE identity, proven by its certificate (mutual TLS). */
  readonly peerPrincipal?: string;
  readonly mtls?: boolean;
  /** The client's verified certificate (mutual TLS), for x-forwarded-client-cert. */
  readonly clientCertificate?: ClientCertificate;
  /** The port the client connected to, as the workload sees it (authorization's destination.port). */
  readonly destinationPort?: number;
  /** The TLS SNI the client sent (connection.sni). */
  readonly sni?: string;
}

export interface HcmDeps {
  routes: RouteTables;
  router: Router;
  /** The proxy's own gRPC calls to clusters (a gRPC external authorizer's Check). */
  grpc: GrpcSideCalls;
  logger: Logger;
  /** Which side of the workload this listener is on (metadata exchange and telemetry depend on it). */
  direction: TrafficDirection;
  listenerName: string;
  observer?: ProxyObserver;
}

/**
 * The downstream connection's source and destination, as a PROXY header
 * tells them upstream: the client (or who a PROXY header or TLS chain said it
 * was), and where it was headed (its original destination when that is an
 * address, else the listener's own).
 */
function downstreamEnds(
  req: IncomingMessage,
  ctx: DownstreamContext,
): { source: ProxyEndpoint; destination: ProxyEndpoint } {
  const socket = req.socket;
  const original = ctx.originalDst && net.isIP(ctx.originalDst.host) ? ctx.originalDst : undefined;
  return {
    source: { address: ctx.remoteAddress ?? socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
    destination: {
      address: original?.host ?? ctx.localAddress ?? socket.localAddress ?? '',
      port: original?.port ?? ctx.destinationPort ?? socket.localPort ?? 0,
    },
  };
}

/** How long a request waits for the route table of a listener that is still warming. */
const WARMING_WAIT_MS = 5_000;

/** `host:port` → port, or undefined. */
function splitAuthority(authority: string): { host: string; port?: string } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(authority);
  return m ? { host: m[1]!, port: m[2] } : { host: authority };
}

function pickWeighted(action: ForwardAction): WeightedCluster {
  if (action.clusters.length === 1) return action.clusters[0]!;
  let r = Math.random() * action.totalWeight;
  for (const c of action.clusters) {
    r -= c.weight;
    if (r < 0) return c;
  }
  return action.clusters[action.clusters.length - 1]!;
}

/**
 * Envoy's HTTP connection manager: turns one downstream request into a route
 * decision (virtual host by authority, first matching route) and hands it to
 * the router, or answers it locally (direct response, redirect, no route).
 */
export class HttpConnectionManager {
  constructor(
    readonly config: HttpConnectionManagerConfig,
    private readonly deps: HcmDeps,
  ) {}

  /** The route table names this manager needs over RDS. */
  rdsName(): string | undefined {
    return this.config.inlineRoutes ? undefined : this.config.rds;
  }

  /**
   * An HTTP/1.1 request asking to switch protocols (`Upgrade: websocket`).
   * Upgrade types the HCM allows (upgrade_configs) are routed like any
   * request — filters, authorization and all — then tunnelled to the chosen
   * endpoint; others get 403 as in Envoy. `h2c` is HTTP's own upgrade, which
   * Envoy's codec ignores: such a request is served as a plain one.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: DownstreamContext): void {
    const protocol = String(req.headers.upgrade ?? '').toLowerCase();
    const res = responseOnSocket(req, socket);
    if (protocol === 'h2c') {
      if (head.length || Number(req.headers['content-length'] ?? 0) > 0) {
        sendLocalReply(res, 400, 'an h2c upgrade request with a body is not supported');
        return;
      }
      void this.handle(req, res, ctx);
      return;
    }
    if (!this.config.upgradeTypes.has(protocol)) {
      sendLocalReply(res, 403, 'upgrade failed');
      return;
    }
    void this.handle(req, res, ctx, { socket, head, protocol });
  }

  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: DownstreamContext,
    upgrade?: UpgradeContext,
  ): Promise<void> {
    const info = new StreamInfo();
    const started = new Date();
    let path = req.url ?? '/';
    // HTTP/2 carries the authority as a pseudo-header.
    let authority = req.headers.host ?? (req.headers[':authority'] as string | undefined) ?? '';
    // Absolute-form request line (an application using the sidecar as HTTP_PROXY): the URL's authority wins.
    if (/^https?:\/\//i.test(path)) {
      const url = new URL(path);
      authority = url.host;
      path = `${url.pathname}${url.search}`;
    }
    if (!path.startsWith('/')) {
      sendLocalReply(res, 400, 'invalid request target');
      return;
    }
    // HTTP/1.1 header blocks over the limit never get here (the parser answers 431); HTTP/2's are measured here.
    const maxHeaders = this.config.maxRequestHeadersBytes;
    if (req.httpVersionMajor === 2 && maxHeaders && headerListSize(req.rawHeaders) > maxHeaders) {
      sendLocalReply(res, 431, 'request header fields too large');
      return;
    }
    const headers = this.requestHeaders(req, authority, ctx);
    // Peer metadata headers are for sidecars only: take them off every request (a caller's, inbound).
    const callerPeer = takePeerHeaders(headers);
    if (this.deps.direction === 'inbound') info.peer = callerPeer;
    const observation = this.deps.observer?.startHttp?.({
      direction: this.deps.direction,
      listener: this.deps.listenerName,
      statPrefix: this.config.statPrefix,
      method: req.method ?? 'GET',
      authority,
      path,
      scheme: ctx.scheme,
      protocol: req.httpVersionMajor === 2 ? 'HTTP/2' : req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1',
      headers,
      downstreamRemoteAddress: ctx.remoteAddress ?? req.socket.remoteAddress ?? '',
      downstreamLocalAddress: ctx.localAddress ?? req.socket.localAddress ?? '',
      startTime: started,
      telemetry: this.config.telemetry,
    });
    if (observation)
      res.once('close', () =>
        observation.end(
          this.record(req, res, info, ctx, { path, authority, scheme: ctx.scheme }, headers, started),
        ),
      );
    try {
      await this.route(req, res, ctx, info, { path, authority, headers }, upgrade);
    } catch (err) {
      this.deps.logger.error({ err, url: req.url }, 'request failed inside the proxy');
      sendLocalReply(res, 500, 'internal proxy error');
    }
    if (this.deps.logger.isLevelEnabled('debug')) {
      this.deps.logger.debug(
        {
          method: req.method,
          url: req.url,
          route: info.routeName,
          cluster: info.upstreamCluster,
          host: info.upstreamHost,
          code: info.responseCode ?? res.statusCode,
          flags: info.flagString(),
          attempts: info.attempts,
          ms: Math.round(performance.now() - info.startTime),
        },
        'request',
      );
    }
  }

  /** The finished request as observers see it. */
  private record(
    req: IncomingMessage,
    res: ServerResponse,
    info: StreamInfo,
    ctx: DownstreamContext,
    target: { path: string; authority: string; scheme: string },
    headers: HeaderMap,
    started: Date,
  ): HttpRequestRecord {
    const responseHeaders = res.getHeaders() as HeaderMap;
    const length = Number(responseHeaders['content-length']);
    if (info.responseBytes === 0 && Number.isFinite(length)) info.responseBytes = length;
    const grpc = info.grpcStatus ?? (responseHeaders['grpc-status'] as string | undefined);
    if (!res.writableFinished && !res.headersSent) info.flag('DC');
    return {
      direction: this.deps.direction,
      listener: this.deps.listenerName,
      statPrefix: this.config.statPrefix,
      method: req.method ?? 'GET',
      authority: target.authority,
      path: target.path,
      scheme: target.scheme,
      protocol: req.httpVersionMajor === 2 ? 'HTTP/2' : req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1',
      headers,
      downstreamRemoteAddress: ctx.remoteAddress ?? req.socket.remoteAddress ?? '',
      downstreamLocalAddress: ctx.localAddress ?? req.socket.localAddress ?? '',
      startTime: started,
      durationMs: performance.now() - info.startTime,
      responseCode: res.headersSent ? res.statusCode : 0,
      responseHeaders,
      grpcStatus: grpc,
      responseFlags: info.flagString(),
      requestBytes: info.requestBytes,
      responseBytes: info.responseBytes,
      routeName: info.routeName,
      upstreamCluster: info.upstreamCluster,
      upstreamHost: info.upstreamHost,
      upstreamServiceTimeMs: info.upstreamServiceTimeMs,
      attempts: info.attempts,
      peer: info.peer,
      // Inbound, the hop that reached us; outbound, the hop we made.
      connectionSecurityPolicy: (this.deps.direction === 'inbound' ? ctx.mtls : info.upstreamMtls)
        ? 'mutual_tls'
        : 'none',
      sourcePrincipal: this.deps.direction === 'inbound' ? ctx.peerPrincipal : undefined,
      destinationPrincipal:
        this.deps.direction === 'outbound' ? info.upstreamTls?.peerPrincipal() : undefined,
      ...(info.authz ? { authz: info.authz } : {}),
      ...(Object.keys(info.dynamicMetadata).length ? { dynamicMetadata: info.dynamicMetadata } : {}),
    };
  }

  private async route(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: DownstreamContext,
    info: StreamInfo,
    target: { path: string; authority: string; headers: HeaderMap },
    upgrade?: UpgradeContext,
  ): Promise<void> {
    const { path, authority, headers } = target;
    const table = await this.routeTable();
    if (!table) {
      info.flag('NR');
      sendLocalReply(res, 503, `route configuration ${this.config.rds} has not been received`);
      return;
    }
    const vhost = table.findVirtualHost(authority);
    const query = path.indexOf('?');
    const pathOnly = query >= 0 ? path.slice(0, query) : path;
    let parsedQuery: URLSearchParams | undefined;
    const input: MatchInput = {
      path,
      pathOnly,
      header: (name) => {
        switch (name) {
          case ':method':
            return req.method;
          case ':authority':
            return authority;
          case ':path':
            return path;
          case ':scheme':
            return ctx.scheme;
          default:
            return headerValue(headers, name);
        }
      },
      query: () => {
        parsedQuery ??= new URLSearchParams(query >= 0 ? path.slice(query + 1) : '');
        return parsedQuery;
      },
    };
    const route = vhost ? findRoute(vhost, input) : undefined;
    info.routeName = route?.name;
    // As Envoy's refreshCachedRoute: the route's (weighted) cluster is chosen with the route, so a filter
    // that answers itself (a fault abort, an RBAC denial) is still reported against it.
    const routeCluster = route?.action.kind === 'forward' ? pickWeighted(route.action) : undefined;
    if (routeCluster) info.upstreamCluster = routeCluster.name;
    const responseLevels =
      route && vhost ? [route.responseHeaders, vhost.responseHeaders, table.responseHeaders] : [];
    const decorators: ResponseDecorator[] = [];
    const reply = (status: number, body: string | Buffer, extra: Record<string, string | string[]> = {}) => {
      const replyHeaders: HeaderMap = { ...extra };
      // Istio's metadata exchange answers a meshed caller on every response, the proxy's own (an RBAC 403) too.
      const self = this.deps.router.identity;
      if (self && this.deps.direction === 'inbound' && info.peer) {
        replyHeaders[PEER_ID_HEADER] = self.id;
        replyHeaders[PEER_METADATA_HEADER] = self.metadata;
      }
      applyHeaderMutations(replyHeaders, responseLevels);
      for (const d of decorators) d(status, replyHeaders);
      info.responseCode = status;
      sendLocalReply(res, status, body, replyHeaders as Record<string, string | string[]>);
    };
    // An upgrade's "body" is the tunnel that follows the response, never buffered nor forwarded as a body.
    const body = new DownstreamBody(req, upgrade ? false : undefined);
    // What goes upstream: a filter may change the path (the route chosen above stays, as in Envoy).
    let upstreamPath = path;
    if (this.config.filters.length) {
      const filterContext: HttpFilterContext = {
        request: { method: req.method ?? 'GET', path, authority, scheme: ctx.scheme, headers },
        req,
        res,
        body,
        route,
        vhost,
        info,
        downstream: ctx,
        clientAddress: this.clientAddress(req, ctx, headers),
        reply,
        decorateResponse: (d) => decorators.push(d),
        callCluster: (cluster, request, timeoutMs) => this.deps.router.call(cluster, request, timeoutMs),
        callGrpc: (cluster, method, request, options) =>
          this.deps.grpc.unary(cluster, method, request, options),
      };
      for (const filter of this.config.filters) {
        if ((await filter.decode(filterContext)) === 'stop') {
          // Answered locally: whatever a filter left unread of the body flows away.
          body.discard();
          return;
        }
      }
      upstreamPath = filterContext.request.path;
    }
    if (!vhost || !route) {
      info.flag('NR');
      body.discard();
      reply(404, LocalReplies.noRoute);
      return;
    }
    const action = route.action;
    switch (action.kind) {
      case 'direct':
        body.discard();
        reply(action.status, action.body ?? '');
        return;
      case 'redirect': {
        const forwardedProto = headerValue(headers, 'x-forwarded-proto') ?? ctx.scheme;
        body.discard();
        reply(action.status, '', {
          location: redirectLocation(action, route, { scheme: ctx.scheme, forwardedProto, authority, path }),
        });
        return;
      }
      case 'forward':
        await this.forward(req, res, ctx, info, body, {
          table,
          vhost,
          route,
          action,
          target: routeCluster ?? pickWeighted(action),
          headers,
          path: upstreamPath,
          pathOnly: upstreamPath === path ? pathOnly : upstreamPath.split('?')[0]!,
          decorators,
          upgrade,
        });
    }
  }

  private async forward(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: DownstreamContext,
    info: StreamInfo,
    downstreamBody: DownstreamBody,
    r: {
      table: RouteTable;
      vhost: CompiledVirtualHost;
      route: CompiledRoute;
      action: ForwardAction;
      target: WeightedCluster;
      headers: HeaderMap;
      path: string;
      pathOnly: string;
      decorators: ResponseDecorator[];
      upgrade?: UpgradeContext;
    },
  ): Promise<void> {
    const target = r.target;
    // Envoy's order: weighted cluster, route, virtual host, route table — later levels win on overwrite.
    const requestLevels: HeaderMutation[] = [
      target.requestHeaders,
      r.route.requestHeaders,
      r.vhost.requestHeaders,
      r.table.requestHeaders,
    ];
    applyHeaderMutations(r.headers, requestLevels);
    const path = rewritePath(r.action, r.route, r.path, r.pathOnly);
    const hostRewrite = r.action.hostRewrite ?? target.hostRewrite;
    if (hostRewrite) r.headers.host = hostRewrite;
    const hash = r.action.hashPolicies.length
      ? this.hash(r.action, r.headers, req, r.path, r.decorators, ctx)
      : undefined;
    if (r.upgrade) {
      await this.deps.router.upgrade(
        target.name,
        {
          method: req.method ?? 'GET',
          path,
          headers: r.headers,
          protocol: r.upgrade.protocol,
          head: r.upgrade.head,
          originalDst: ctx.originalDst,
          hash,
          timeoutMs: r.action.timeoutMs,
          downstream: downstreamEnds(req, ctx),
        },
        r.upgrade.socket,
        res,
        info,
      );
      return;
    }
    const body = await downstreamBody.read();
    if (body.kind === 'buffered') info.requestBytes = body.data.length;
    else if (body.kind === 'stream') {
      // Count as it flows (a 'data' listener here would start the flow before the upstream is attached).
      const source = body.stream;
      const counted = new Transform({
        transform(chunk: Buffer, _enc, done) {
          info.requestBytes += chunk.length;
          done(null, chunk);
        },
      });
      source.once('error', (err) => counted.destroy(err));
      body.stream = source.pipe(counted);
    }
    for (const mirror of r.action.mirrors) {
      // Fire and forget: the caller never waits for, or sees, the shadow's answer.
      if (body.kind !== 'stream' && sample(mirror.probability)) {
        this.deps.router.shadow(mirror.cluster, {
          method: req.method ?? 'GET',
          path,
          headers: { ...r.headers, host: shadowHost(String(r.headers.host ?? '')) },
          body,
          originalDst: ctx.originalDst,
        });
      }
    }
    await this.deps.router.forward(
      target.name,
      {
        method: req.method ?? 'GET',
        path,
        headers: r.headers,
        body,
        timeoutMs: r.action.timeoutMs,
        retry: r.action.retry,
        includeAttemptCount: r.vhost.includeAttemptCount,
        originalDst: ctx.originalDst,
        responseMutations: [
          target.responseHeaders,
          r.route.responseHeaders,
          r.vhost.responseHeaders,
          r.table.responseHeaders,
        ],
        decorators: r.decorators,
        hash,
        downstream: downstreamEnds(req, ctx),
        downstreamHttp2: req.httpVersionMajor === 2,
        direction: this.deps.direction,
      },
      res,
      info,
    );
  }

  /** The consistent-hash key of a request, setting a sticky cookie when a cookie policy makes one. */
  private hash(
    action: ForwardAction,
    headers: HeaderMap,
    req: IncomingMessage,
    path: string,
    decorators: ResponseDecorator[],
    ctx: DownstreamContext,
  ): bigint | undefined {
    let query: URLSearchParams | undefined;
    return requestHash(action.hashPolicies, {
      header: (name) => {
        const v = headers[name];
        return v === undefined ? [] : Array.isArray(v) ? v : [v];
      },
      connection: () => {
        const { source, destination } = downstreamEnds(req, ctx);
        return {
          remote: hostKey(source.address, source.port),
          local: hostKey(destination.address, destination.port),
        };
      },
      cookie: (name) => cookieValue(headerValue(headers, 'cookie'), name),
      sourceIp: () => ctx.remoteAddress ?? req.socket.remoteAddress,
      query: (name) => {
        query ??= new URLSearchParams(path.includes('?') ? path.slice(path.indexOf('?') + 1) : '');
        return query.get(name) ?? undefined;
      },
      setCookie: (cookie) =>
        decorators.push((_status, h) => {
          const existing = h['set-cookie'];
          h['set-cookie'] =
            existing === undefined ? cookie : [...(Array.isArray(existing) ? existing : [existing]), cookie];
        }),
    });
  }

  private requestHeaders(req: IncomingMessage, authority: string, ctx: DownstreamContext): HeaderMap {
    const headers = endToEndHeaders(req.headers);
    headers.host = authority;
    if (this.config.generateRequestId && !headers['x-request-id']) headers['x-request-id'] = randomUUID();
    if (this.config.useRemoteAddress) {
      // At the edge: append the peer to X-Forwarded-For, and name the client the trusted hops vouch for.
      const remote = ctx.remoteAddress ?? req.socket.remoteAddress ?? '';
      const xff = headerValue(headers, 'x-forwarded-for');
      headers['x-forwarded-for'] = xff ? `${xff},${remote}` : remote;
      headers['x-envoy-external-address'] = this.clientAddress(req, ctx, headers);
      // The scheme the client really used, unless a trusted proxy in front already said which.
      if (this.config.xffNumTrustedHops === 0 || !headers['x-forwarded-proto'])
        headers['x-forwarded-proto'] = ctx.scheme;
    } else if (!headers['x-forwarded-proto']) {
      headers['x-forwarded-proto'] = ctx.scheme;
    }
    applyClientCertPolicy(headers, this.config.clientCert, ctx.clientCertificate);
    return headers;
  }

  /**
   * Envoy's trusted client address. At the edge (use_remote_address, the peer
   * already appended to X-Forwarded-For) it is the peer, or with
   * `xff_num_trusted_hops` N the (N+1)th entry from the right — the address
   * the last of N trusted proxies in front saw; elsewhere the Nth entry from
   * the right (the rightmost when N is 0). Too few entries: the peer.
   */
  private clientAddress(req: IncomingMessage, ctx: DownstreamContext, headers: HeaderMap): string {
    const peer = ctx.remoteAddress ?? req.socket.remoteAddress ?? '';
    const n = this.config.xffNumTrustedHops;
    if (this.config.useRemoteAddress && n === 0) return peer;
    const xff = headerValue(headers, 'x-forwarded-for');
    if (!xff) return peer;
    const hops = xff
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const fromRight = this.config.useRemoteAddress ? n + 1 : Math.max(n, 1);
    return hops[hops.length - fromRight] ?? peer;
  }

  private async routeTable(): Promise<RouteTable | undefined> {
    if (this.config.inlineRoutes) return this.config.inlineRoutes;
    const name = this.config.rds!;
    return this.deps.routes.get(name) ?? (await this.deps.routes.wait(name, WARMING_WAIT_MS));
  }
}

/** Envoy's shadow authority: `-shadow` after the host, before any port (`reviews:9080` → `reviews-shadow:9080`). */
export function shadowHost(authority: string): string {
  const m = /^(\[[^\]]+\]|[^:]+)(:\d+)?$/.exec(authority);
  return m ? `${m[1]}-shadow${m[2] ?? ''}` : `${authority}-shadow`;
}

/**
 * The path sent upstream after the route's rewrite: prefix_rewrite swaps the
 * matched prefix (the whole path, query kept, for exact and regex matches);
 * regex_rewrite substitutes within the path, query kept.
 */
function rewritePath(action: ForwardAction, route: CompiledRoute, path: string, pathOnly: string): string {
  const query = path.slice(pathOnly.length);
  if (action.prefixRewrite !== undefined) {
    const rewritten =
      route.prefix !== undefined
        ? action.prefixRewrite + path.slice(route.prefix.length)
        : action.prefixRewrite + query;
    return rewritten.startsWith('/') ? rewritten : `/${rewritten}`;
  }
  if (action.regexRewrite) {
    return action.regexRewrite.pattern.replaceAll(pathOnly, action.regexRewrite.substitution) + query;
  }
  return path;
}

/**
 * Envoy's redirect URL (RouteEntryImplBase::newPath): the scheme, host, port
 * and path the route says, the request's for the rest. A new host replaces
 * the request's authority, port included; a new port replaces the request's;
 * otherwise the request's port is dropped only when the scheme changes away
 * from the one it is the default port of. A new path keeps the request's query.
 */
function redirectLocation(
  action: RedirectAction,
  route: CompiledRoute,
  request: { scheme: string; forwardedProto: string; authority: string; path: string },
): string {
  const scheme = action.scheme ?? request.scheme;
  const port = action.port !== undefined ? `:${action.port}` : '';
  let host = action.host;
  if (host === undefined) {
    const { host: name, port: requestPort } = splitAuthority(request.authority);
    const dropPort =
      port !== '' ||
      (scheme !== request.forwardedProto &&
        ((request.forwardedProto === 'https' && requestPort === '443') ||
          (request.forwardedProto === 'http' && requestPort === '80')));
    host = dropPort || requestPort === undefined ? name : `${name}:${requestPort}`;
  }
  const queryAt = request.path.indexOf('?');
  const query = queryAt >= 0 ? request.path.slice(queryAt) : '';
  let path = request.path;
  if (action.path !== undefined) path = action.path.includes('?') ? action.path : action.path + query;
  else if (action.prefixRewrite !== undefined) {
    path =
      route.prefix !== undefined
        ? action.prefixRewrite + request.path.slice(route.prefix.length)
        : action.prefixRewrite + query;
  }
  if (!path.startsWith('/')) path = `/${path}`;
  if (action.stripQuery && !(action.path ?? '').includes('?')) {
    const q = path.indexOf('?');
    if (q >= 0) path = path.slice(0, q);
  }
  return `${scheme}://${host}${port}${path}`;
}

/** An HTTP/2 header list's size as RFC 7540 §6.5.2 counts it: name and value octets plus 32 per field. */
function headerListSize(raw: readonly string[]): number {
  let size = 0;
  for (let i = 0; i + 1 < raw.length; i += 2)
    size += Buffer.byteLength(raw[i]!) + Buffer.byteLength(raw[i + 1]!) + 32;
  return size;
}
