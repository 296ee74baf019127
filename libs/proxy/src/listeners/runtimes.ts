import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import type { AuthzDecision, CheckDecision, ExtAuthzCheckInput, RequestAttributes } from '@mizzen/policy';
import type { Logger } from '@mizzen/runtime';
import type { ConnectionFacts } from '../config/filter-chain-match.js';
import { selectFilterChain } from '../config/filter-chain-match.js';
import type {
  FilterChainConfig,
  HttpConnectionManagerConfig,
  ListenerConfig,
  TcpProxyConfig,
} from '../config/listener.js';
import {
  type DownstreamContext,
  HttpConnectionManager,
  type RouteTables,
} from '../http/connection-manager.js';
import {
  certificatePrincipal,
  checkWithGrpcAuthorizer,
  type GrpcCaller,
} from '../http/filters/ext-authz-grpc.js';
import type { Router } from '../http/router.js';
import { logDryRunDecisions } from '../observe/dry-run-log.js';
import type { ProxyObserver } from '../observe/records.js';
import type { ClientCertificate } from '../security/client-cert-details.js';
import type { SecretStore } from '../security/secret-store.js';
import { TlsContextProvider } from '../security/tls-provider.js';
import type { ClusterManager, OriginalDestination } from '../upstream/cluster-manager.js';
import type { GrpcSideCalls } from '../upstream/grpc-side-calls.js';
import { type Closable, ConnectionTracker, DRAIN_MS, sessionHandle } from './connection-tracker.js';
import { type Inspection, inspect } from './inspector.js';
import { readPeerExchange } from './peer-exchange.js';
import { readProxyHeader } from './proxy-protocol.js';
import { type TcpConnectionContext, TcpProxy } from './tcp-proxy.js';
import { TlsHttpChain, TlsTcpChain } from './tls-terminator.js';

export { DRAIN_MS } from './connection-tracker.js';

/** Downstream keep-alive: longer than any client's idle timeout, so clients close first and never race us. */
const DOWNSTREAM_KEEPALIVE_MS = 65_000;

export interface RuntimeDeps {
  clusters: ClusterManager;
  router: Router;
  /** The proxy's own gRPC calls to clusters (external authorizers). */
  grpc: GrpcSideCalls;
  routes: RouteTables;
  logger: Logger;
  observer?: ProxyObserver;
  secrets: SecretStore;
  /** This proxy's TCP metadata exchange header (its workload metadata, as Istio's sidecars exchange it). */
  exchangeHeader?: Buffer;
}

/** What a chain knows about the connection it was handed. */
export interface ConnectionContext {
  originalDst?: OriginalDestination;
  inspection?: Inspection;
  /** The downstream's addresses, when the socket handed over is a TLS stream that no longer knows them. */
  remote?: { address: string; port: number };
  local?: { address: string; port: number };
  /** Set when a TLS chain terminated the connection: the client's SPIFFE identity, whether it was mutual TLS, its SNI. */
  tls?: {
    peerPrincipal?: string;
    mtls: boolean;
    sni?: string;
    /** The protocol the TLS handshake agreed on (ALPN). */
    alpn?: string;
    clientCertificate?: ClientCertificate;
  };
}

/** The network filter of one filter chain: an HTTP connection manager or a TCP proxy. */
export interface ChainRuntime {
  readonly kind: 'http' | 'tcp';
  accept(socket: net.Socket, ctx: ConnectionContext): void;
  drain(): void;
}

/** A plaintext connection nothing else is known about. */
const PLAIN: DownstreamContext = { scheme: 'http' };

/** Limits on what a downstream HTTP/1.1 client may make the proxy hold (from the connection manager's config). */
export interface DownstreamLimits {
  /** How long a client may take over one request's headers; 0: unbounded (Envoy's default). */
  readonly requestHeadersTimeoutMs?: number;
  readonly maxRequestHeadersBytes?: number;
}

/**
 * HTTP/2 settings for a downstream server. With a header limit, nghttp2's own
 * bound is set above it so a request just over the limit reaches the
 * connection manager and gets Envoy's 431; far over it, the stream is reset
 * (memory stays bounded either way).
 */
export function h2Settings(limits: DownstreamLimits = {}): http2.Settings {
  return {
    maxConcurrentStreams: 1000,
    ...(limits.maxRequestHeadersBytes ? { maxHeaderListSize: 2 * limits.maxRequestHeadersBytes } : {}),
  };
}

export function newHttpServer(limits: DownstreamLimits = {}): http.Server {
  const server = http.createServer({
    keepAliveTimeout: DOWNSTREAM_KEEPALIVE_MS,
    noDelay: true,
    ...(limits.maxRequestHeadersBytes ? { maxHeaderSize: limits.maxRequestHeadersBytes } : {}),
  });
  server.headersTimeout = DOWNSTREAM_KEEPALIVE_MS + 5_000;
  enforceHeadersTimeout(server, limits.requestHeadersTimeoutMs);
  return server;
}

/**
 * Node enforces `headersTimeout` (answering 408 and closing) from a checker
 * it starts when a server begins listening. Proxy chains never listen — their
 * connections are handed over — so the checker is started here, ticking often
 * enough for the bound to mean what it says. `stopHeadersTimeout` ends it.
 */
export function enforceHeadersTimeout(
  server: http.Server | http2.Http2SecureServer,
  timeoutMs: number | undefined,
): void {
  if (!timeoutMs) return;
  const s = server as unknown as {
    headersTimeout: number;
    requestTimeout: number;
    connectionsCheckingInterval: number;
  };
  s.headersTimeout = timeoutMs;
  s.requestTimeout = Math.max(s.requestTimeout, timeoutMs);
  s.connectionsCheckingInterval = Math.max(50, Math.min(1_000, Math.floor(timeoutMs / 4)));
  server.emit('listening');
}

/** Stops the checker `enforceHeadersTimeout` started (closing a server that never listened only does that). */
export function stopHeadersTimeout(server: http.Server | http2.Http2SecureServer): void {
  server.close(() => {});
}

/** What a downstream HTTP/1.1 client that broke the protocol gets before its connection is closed. */
export function answerClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  // Envoy's answers: 431 for headers over the limit, 408 for headers that took too long, else 400.
  const status =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? '431 Request Header Fields Too Large'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}

/**
 * An HTTP connection manager chain. It speaks HTTP/1.1 and cleartext HTTP/2
 * (h2c) on the same port, told apart by the first bytes, as Envoy's codec
 * `AUTO` does: sidecars talk h2c to each other whatever the application speaks.
 */
export class HttpChainRuntime implements ChainRuntime {
  readonly kind = 'http';
  readonly hcm: HttpConnectionManager;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly tracker = new ConnectionTracker();
  /** Each connection's context (original destination, TLS peer), by HTTP/1 socket or HTTP/2 session. */
  private readonly connections = new WeakMap<object, DownstreamContext>();
  private readonly sessions = new WeakMap<http2.ServerHttp2Session, Closable>();
  private accepting?: DownstreamContext;

  constructor(
    config: HttpConnectionManagerConfig,
    deps: RuntimeDeps,
    private readonly listener: ListenerConfig,
  ) {
    this.hcm = new HttpConnectionManager(config, {
      ...deps,
      listenerName: listener.name,
      direction: listener.direction === 'INBOUND' ? 'inbound' : 'outbound',
    });
    this.h1 = newHttpServer(config);
    this.h2 = http2.createServer({ settings: h2Settings(config) });
    this.h1.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.tracker.begin(req.socket, res);
      void this.hcm.handle(req, res, this.connections.get(req.socket) ?? PLAIN);
    });
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      // The tunnel outlives any request: a drain closes it after the drain period.
      this.tracker.add(socket);
      this.hcm.handleUpgrade(req, socket, head, this.connections.get(socket) ?? PLAIN);
    });
    this.h1.on('clientError', answerClientError);
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.set(session, sessionHandle(session));
      // 'session' fires inside accept()'s emit('connection'): the connection being accepted is this session's.
      if (this.accepting) this.connections.set(session, this.accepting);
    });
    this.h2.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const session = req.stream.session as http2.ServerHttp2Session | undefined;
      const handle = session ? this.sessions.get(session) : undefined;
      if (handle) this.tracker.begin(handle, res);
      void this.hcm.handle(
        req as unknown as http.IncomingMessage,
        res as unknown as http.ServerResponse,
        (session && this.connections.get(session)) ?? PLAIN,
      );
    });
    this.h2.on('sessionError', () => {});
  }

  /** What the connection manager knows of a connection: addresses, the port the workload was called on, TLS facts. */
  downstreamContext(ctx: ConnectionContext, localPort: number | undefined): DownstreamContext {
    return {
      scheme: ctx.tls ? 'https' : 'http',
      originalDst: ctx.originalDst,
      remoteAddress: ctx.remote?.address,
      localAddress: ctx.local?.address,
      peerPrincipal: ctx.tls?.peerPrincipal,
      mtls: ctx.tls?.mtls ?? false,
      clientCertificate: ctx.tls?.clientCertificate,
      sni: ctx.tls?.sni,
      destinationPort:
        ctx.originalDst?.port ??
        this.listener.workloadPort ??
        ctx.local?.port ??
        localPort ??
        this.listener.port,
    };
  }

  accept(socket: net.Socket, ctx: ConnectionContext): void {
    const downstream = this.downstreamContext(ctx, socket.localPort);
    const hand = (i: Inspection) => {
      if (i.applicationProtocols.includes('h2c')) {
        // The HTTP/2 session takes over the socket and reads what inspection put back from its buffer.
        this.accepting = downstream;
        try {
          this.h2.emit('connection', socket);
        } finally {
          this.accepting = undefined;
        }
      } else {
        this.connections.set(socket, downstream);
        this.tracker.add(socket);
        this.h1.emit('connection', socket);
        socket.resume();
      }
    };
    if (ctx.inspection) hand(ctx.inspection);
    else void inspect(socket, 1_000).then(hand);
  }

  drain(): void {
    this.tracker.drain();
    stopHeadersTimeout(this.h1);
  }
}

/** A tcp_proxy chain. */
export class TcpChainRuntime implements ChainRuntime {
  readonly kind = 'tcp';
  readonly proxy: TcpProxy;
  private readonly sockets = new Set<net.Socket>();

  private readonly logger: Logger;
  private readonly callGrpc: GrpcCaller;
  private readonly exchangeHeader?: Buffer;

  constructor(
    readonly config: TcpProxyConfig,
    deps: RuntimeDeps,
    private readonly listener: ListenerConfig,
  ) {
    this.logger = deps.logger;
    this.callGrpc = (cluster, method, request, options) => deps.grpc.unary(cluster, method, request, options);
    this.exchangeHeader = deps.exchangeHeader;
    this.proxy = new TcpProxy(config, deps.clusters, deps.logger, {
      observer: deps.observer,
      listenerName: listener.name,
      direction: listener.direction === 'INBOUND' ? 'inbound' : 'outbound',
      ...(deps.exchangeHeader ? { exchangeHeader: deps.exchangeHeader } : {}),
    });
  }

  accept(socket: net.Socket, ctx: ConnectionContext): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    const chain = this.config.authz;
    if (!chain) {
      this.forward(socket, ctx);
      return;
    }
    const attrs = this.connectionAttributes(socket, ctx);
    const decision = chain.evaluate(attrs);
    if (decision.verdict !== 'check') {
      this.admit(socket, ctx, attrs, decision);
      return;
    }
    // A CUSTOM policy selected the connection: it waits, unread and not yet proxied, for the external authorizer.
    const ignore = () => {};
    socket.on('error', ignore);
    void this.askAuthorizers(socket, ctx, attrs, decision).then((decided) => {
      socket.off('error', ignore);
      if (!socket.destroyed) this.admit(socket, ctx, attrs, decided);
    });
  }

  private forward(socket: net.Socket, ctx: ConnectionContext): void {
    this.proxy.handle(socket, this.tcpContext(socket, ctx, true));
  }

  /** What tcp_proxy (and its telemetry) knows of a connection; `exchange` starts Istio's metadata exchange. */
  private tcpContext(socket: net.Socket, ctx: ConnectionContext, exchange: boolean): TcpConnectionContext {
    const sni = ctx.tls?.sni ?? ctx.inspection?.serverName;
    return {
      originalDst: ctx.originalDst,
      mtls: ctx.tls?.mtls === true,
      ...(ctx.tls?.peerPrincipal ? { peerPrincipal: ctx.tls.peerPrincipal } : {}),
      ...(ctx.remote ? { remote: ctx.remote } : {}),
      ...(ctx.local ? { local: ctx.local } : {}),
      ...(sni ? { sni } : {}),
      ...(exchange ? this.peerExchange(socket, ctx) : {}),
    };
  }

  /**
   * Istio's `istio.metadata_exchange` filter on this chain: when the caller's
   * sidecar and this chain's TLS agreed on its protocol, this proxy writes its
   * own header at once and reads the caller's (the caller's bytes wait for
   * it). Any other connection is proxied as it is.
   */
  private peerExchange(
    socket: net.Socket,
    ctx: ConnectionContext,
  ): Pick<TcpConnectionContext, 'peerExchange'> {
    const exchange = this.config.peerExchange;
    if (!exchange || !this.exchangeHeader || ctx.tls?.alpn !== exchange.protocol) return {};
    socket.write(this.exchangeHeader);
    return { peerExchange: readPeerExchange(socket) };
  }

  private connectionAttributes(socket: net.Socket, ctx: ConnectionContext): RequestAttributes {
    return {
      source: {
        address: ctx.remote?.address ?? socket.remoteAddress ?? '',
        ...(socket.remotePort !== undefined ? { port: socket.remotePort } : {}),
        ...(ctx.tls?.peerPrincipal ? { principal: ctx.tls.peerPrincipal } : {}),
      },
      destination: {
        address: ctx.local?.address ?? socket.localAddress ?? '',
        port: ctx.originalDst?.port ?? this.listener.workloadPort ?? ctx.local?.port ?? socket.localPort ?? 0,
      },
      ...(ctx.tls?.sni ? { sni: ctx.tls.sni } : {}),
    };
  }

  /** Proxies an allowed connection; closes a denied one (Istio's TCP denial), before anything reaches the workload. */
  private admit(
    socket: net.Socket,
    ctx: ConnectionContext,
    attrs: RequestAttributes,
    decision: Exclude<AuthzDecision, { verdict: 'check' }>,
  ): void {
    logDryRunDecisions(this.logger, decision.shadow, attrs);
    if (decision.verdict === 'allow') {
      this.forward(socket, ctx);
      return;
    }
    const by = {
      policy: decision.policy,
      deniedBy: decision.deniedBy,
      extAuthzError: decision.extAuthzError,
    };
    this.logger.debug(by, 'TCP connection denied');
    this.proxy.deny(socket, this.tcpContext(socket, ctx, false), by);
  }

  /**
   * Envoy's network ext_authz: the connection's peers go to the gRPC
   * authorizer; OK lets it through, anything else (or a failure, unless
   * failure_mode_allow) closes it.
   */
  private async askAuthorizers(
    socket: net.Socket,
    ctx: ConnectionContext,
    attrs: RequestAttributes,
    first: CheckDecision,
  ): Promise<Exclude<AuthzDecision, { verdict: 'check' }>> {
    const cert = ctx.tls?.clientCertificate;
    const principal = certificatePrincipal(cert) ?? ctx.tls?.peerPrincipal;
    const input: ExtAuthzCheckInput = {
      source: {
        address: attrs.source.address,
        port: ctx.remote?.port ?? socket.remotePort ?? 0,
        ...(principal ? { principal } : {}),
        ...(cert?.pem ? { certificatePem: cert.pem } : {}),
      },
      destination: {
        ...attrs.destination,
        ...(cert?.localUri ? { principal: cert.localUri } : {}),
      },
      ...(ctx.tls?.sni ? { sni: ctx.tls.sni } : {}),
      metadata: {},
    };
    let decision: AuthzDecision = first;
    while (decision.verdict === 'check') {
      const outcome = await checkWithGrpcAuthorizer(this.callGrpc, decision.check.authorizer, input);
      decision = decision.resume(outcome);
    }
    return decision;
  }

  /** Opaque connections cannot be asked to close politely; they get the drain period, then are closed. */
  drain(): void {
    const timer = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, DRAIN_MS);
    timer.unref();
  }
}

function chainRuntime(chain: FilterChainConfig, deps: RuntimeDeps, listener: ListenerConfig): ChainRuntime {
  const runtime =
    chain.filter.kind === 'http'
      ? new HttpChainRuntime(chain.filter, deps, listener)
      : new TcpChainRuntime(chain.filter, deps, listener);
  if (!chain.tls) return runtime;
  const provider = new TlsContextProvider(chain.tls, deps.secrets);
  return runtime instanceof HttpChainRuntime
    ? new TlsHttpChain(runtime, provider, deps.logger, runtime.hcm.config)
    : new TlsTcpChain(runtime, provider, deps.logger);
}

/** What a listener does with connections: picks a filter chain for each (Envoy's FilterChainMatch) and hands it over. */
export interface ListenerRuntime {
  readonly config: ListenerConfig;
  /** Takes a new downstream connection (from a bound socket or handed over by the capture listener). */
  accept(socket: net.Socket, originalDst?: OriginalDestination): void;
  /**
   * The listener was replaced (by `successor`, when one of the same name
   * takes its place; undefined when it was removed): finish requests in
   * flight, then close its connections.
   */
  drain(successor?: ListenerRuntime): void;
}

export class ChainedListenerRuntime implements ListenerRuntime {
  private readonly chains: {
    config: FilterChainConfig;
    match: FilterChainConfig['match'];
    runtime: ChainRuntime;
  }[];
  private readonly fallback?: ChainRuntime;

  constructor(
    readonly config: ListenerConfig,
    private readonly deps: RuntimeDeps,
  ) {
    this.chains = config.chains.map((c) => ({
      config: c,
      match: c.match,
      runtime: chainRuntime(c, deps, config),
    }));
    this.fallback = config.defaultChain ? chainRuntime(config.defaultChain, deps, config) : undefined;
  }

  accept(socket: net.Socket, originalDst?: OriginalDestination): void {
    const proxyProtocol = this.config.proxyProtocol;
    if (!proxyProtocol) {
      this.acceptFrom(socket, { originalDst });
      return;
    }
    // Envoy's proxy_protocol listener filter runs first: the header's addresses replace the socket's.
    void readProxyHeader(socket, proxyProtocol.timeoutMs).then((header) => {
      if ('error' in header) {
        if (header.absent && proxyProtocol.allowWithout) {
          this.acceptFrom(socket, { originalDst });
          return;
        }
        this.deps.logger.debug(
          { listener: this.config.name, remote: socket.remoteAddress, reason: header.error },
          'connection closed: PROXY protocol header required',
        );
        socket.destroy();
        return;
      }
      this.acceptFrom(socket, {
        originalDst,
        ...(header.source ? { remote: header.source } : {}),
        ...(header.destination ? { local: header.destination } : {}),
      });
    });
  }

  private acceptFrom(socket: net.Socket, ctx: ConnectionContext): void {
    if (!this.needsInspection(this.facts(socket, ctx).destinationPort)) {
      this.dispatch(socket, ctx, this.select(this.facts(socket, ctx)));
      return;
    }
    void inspect(socket, this.config.inspectionTimeoutMs).then((inspection) => {
      const inspected = { ...ctx, inspection };
      this.dispatch(socket, inspected, this.select(this.facts(socket, inspected)));
    });
  }

  /** Route tables the HTTP chains of this listener need from RDS. */
  rdsNames(): string[] {
    const names: string[] = [];
    for (const c of [...this.chains.map((x) => x.runtime), this.fallback]) {
      // Terminated TLS chains route too (a gateway's HTTPS servers use RDS).
      const hcm = c instanceof HttpChainRuntime || c instanceof TlsHttpChain ? c.hcm : undefined;
      const n = hcm?.rdsName();
      if (n) names.push(n);
    }
    return names;
  }

  /** The chain a plaintext HTTP/1.1 request to this listener would take (the HTTP_PROXY capture path). */
  chainForHttp(
    originalDst: OriginalDestination,
    source: { address: string; port: number },
  ): ChainRuntime | undefined {
    return this.select({
      destinationAddress: originalDst.host,
      destinationPort: originalDst.port,
      sourceAddress: source.address,
      sourcePort: source.port,
      transportProtocol: 'raw_buffer',
      applicationProtocols: ['http/1.1'],
    });
  }

  drain(): void {
    for (const c of this.chains) c.runtime.drain();
    this.fallback?.drain();
  }

  private facts(socket: net.Socket, ctx: ConnectionContext): ConnectionFacts {
    const { originalDst, inspection } = ctx;
    return {
      destinationAddress: originalDst?.host ?? ctx.local?.address ?? socket.localAddress ?? '',
      destinationPort: originalDst?.port ?? ctx.local?.port ?? socket.localPort ?? this.config.port,
      sourceAddress: ctx.remote?.address ?? socket.remoteAddress ?? '',
      sourcePort: ctx.remote?.port ?? socket.remotePort ?? 0,
      transportProtocol: inspection?.transportProtocol ?? 'raw_buffer',
      serverName: inspection?.serverName,
      applicationProtocols: inspection?.applicationProtocols ?? [],
    };
  }

  /**
   * Whether picking a chain for a connection to `port` needs its first bytes:
   * only when a chain that can take that port (its own, else the chains
   * naming no port) matches on SNI, TLS or ALPN — as Istio enables the
   * inspectors per destination port, so a server-first protocol on a port
   * declared TCP is not kept waiting.
   */
  private needsInspection(port: number): boolean {
    if (!this.config.needsInspection) return false;
    const own = this.chains.filter((c) => c.config.match.destinationPort === port);
    const candidates = own.length
      ? own
      : this.chains.filter((c) => c.config.match.destinationPort === undefined);
    return candidates.some((c) => c.config.match.needsInspection);
  }

  private select(facts: ConnectionFacts): ChainRuntime | undefined {
    return selectFilterChain(this.chains, facts)?.runtime ?? this.fallback;
  }

  private dispatch(socket: net.Socket, ctx: ConnectionContext, chain: ChainRuntime | undefined): void {
    if (!chain) {
      this.deps.logger.debug(
        { listener: this.config.name },
        'no filter chain matched; closing the connection',
      );
      socket.destroy();
      return;
    }
    chain.accept(socket, ctx);
  }
}
