import type http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from '@mizzen/runtime';
import type { DownstreamContext } from '../http/connection-manager.js';
import { type ClientCertificate, clientCertificateOf } from '../security/client-cert-details.js';
import { spiffeIdOf, type TlsContextProvider } from '../security/tls-provider.js';
import { type Closable, ConnectionTracker, DRAIN_MS, sessionHandle } from './connection-tracker.js';
import {
  answerClientError,
  type ChainRuntime,
  type ConnectionContext,
  type DownstreamLimits,
  enforceHeadersTimeout,
  type HttpChainRuntime,
  h2Settings,
  stopHeadersTimeout,
} from './runtimes.js';

/** How long a client may take to finish its TLS handshake. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A socket whose first bytes were read for inspection and put back: TLS can
 * only see them through the stream API, not the native handle, so it gets
 * this stream view of the socket.
 */
function streamView(socket: net.Socket): Duplex {
  const view = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, encoding, callback) {
      socket.write(chunk, encoding, callback);
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy(err ?? undefined);
      callback(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    if (!view.push(chunk)) socket.pause();
  });
  socket.once('end', () => view.push(null));
  socket.once('error', (err) => view.destroy(err));
  socket.once('close', () => view.destroy());
  return view;
}

/** What a chain's TLS offers in ALPN when its context names nothing. */
const DEFAULT_ALPN = ['h2', 'http/1.1'];

/**
 * Hands a connection whose ClientHello offers none of the server's ALPN
 * protocols to the TLS server as one without ALPN. Node answers such a hello
 * with a fatal no_application_protocol alert (RFC 7301); Envoy carries on
 * without ALPN — so a sidecar offering `istio-peer-exchange` to a chain that
 * does not take part in the metadata exchange still connects. The server
 * reads its ALPN list as it wraps each connection, synchronously, in
 * emit('connection').
 */
function handOverWithoutAlpn(server: tls.Server, wire: Duplex | net.Socket): void {
  const s = server as unknown as { ALPNProtocols?: unknown };
  const listed = s.ALPNProtocols;
  s.ALPNProtocols = undefined;
  try {
    server.emit('connection', wire);
  } finally {
    s.ALPNProtocols = listed;
  }
}

interface Peer {
  principal?: string;
  mtls: boolean;
  certificate?: ClientCertificate;
  sni?: string;
  /** The protocol the handshake agreed on (ALPN), if any. */
  alpn?: string;
  /** What the listener knew of the connection before TLS (original destination, addresses). */
  connection: ConnectionContext;
}

function peerOf(socket: tls.TLSSocket, connection: ConnectionContext): Peer {
  const cert = socket.getPeerCertificate?.();
  const presented = cert !== undefined && Object.keys(cert).length > 0;
  const sni = typeof socket.servername === 'string' ? socket.servername : undefined;
  const alpn = typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : undefined;
  if (!presented) return { mtls: false, sni, alpn, connection };
  return {
    principal: spiffeIdOf(cert),
    mtls: true,
    certificate: clientCertificateOf(socket),
    sni,
    alpn,
    connection,
  };
}

/** The connection context a chain hands on after TLS: the pre-TLS facts plus what the handshake proved. */
function afterTls(peer: Peer): ConnectionContext {
  const { inspection: _bytesAlreadyConsumed, ...before } = peer.connection;
  return {
    ...before,
    tls: {
      peerPrincipal: peer.principal,
      mtls: peer.mtls,
      sni: peer.sni,
      alpn: peer.alpn,
      clientCertificate: peer.certificate,
    },
  };
}

/**
 * TLS termination for one filter chain (a DownstreamTlsContext): Node's own
 * TLS server does the handshake and chain verification; this class keeps its
 * certificate current (rotation reaches the next handshake), requires and
 * checks client certificates for mutual TLS, and refuses connections whose
 * peer identity is not allowed.
 */
abstract class TlsTermination implements ChainRuntime {
  abstract readonly kind: 'http' | 'tcp';
  protected server?: tls.Server;
  private version?: tls.SecureContext;
  protected readonly peers = new WeakMap<tls.TLSSocket, Peer>();
  private readonly live = new Set<tls.TLSSocket>();
  /** Each connection's pre-TLS context, by the stream the TLS server was given. */
  private readonly contexts = new WeakMap<object, ConnectionContext>();

  constructor(
    protected readonly provider: TlsContextProvider,
    protected readonly logger: Logger,
  ) {}

  /** Creates the TLS server (Node needs a certificate to create one). */
  protected abstract createServer(options: tls.TlsOptions): tls.Server;

  accept(socket: net.Socket, ctx: ConnectionContext): void {
    const result = this.provider.context();
    if (!result.ok) {
      this.logger.warn({ reason: result.reason }, 'TLS connection refused: no certificate to present yet');
      socket.destroy();
      return;
    }
    const server = this.serverFor(result.context, result.options);
    const wire = ctx.inspection ? streamView(socket) : socket;
    this.contexts.set(wire, {
      ...ctx,
      remote: ctx.remote ?? { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
      local: ctx.local ?? { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
    });
    const offered = ctx.inspection?.applicationProtocols ?? [];
    if (offered.length > 0 && !offered.some((p) => this.alpn().includes(p)))
      handOverWithoutAlpn(server, wire);
    else server.emit('connection', wire);
    socket.resume();
  }

  /** The protocols this chain's TLS offers in ALPN (the context's, else HTTP's). */
  private alpn(): readonly string[] {
    return this.provider.spec.alpn.length ? this.provider.spec.alpn : DEFAULT_ALPN;
  }

  /**
   * The pre-TLS context of a TLS socket. Node's TLSSocket keeps a net.Socket
   * it wraps in `_parent`; a JS stream (the view accept() makes of an
   * inspected connection, so the inspected bytes are read again) it wraps in
   * a JSStreamSocket reachable from its TLS handle as `_parentWrap.stream`.
   * Both are reachable through HTTP/2's session socket proxy; that stream is
   * what accept() handed the server. Without this, a connection that was
   * inspected (every chain behind a TLS inspector) lost its original
   * destination and addresses at TLS termination.
   */
  protected connectionOf(s: tls.TLSSocket): ConnectionContext {
    const internals = s as unknown as { _parent?: object; _handle?: { _parentWrap?: { stream?: object } } };
    const wrapped = internals._parent ?? internals._handle?._parentWrap?.stream;
    return (wrapped && this.contexts.get(wrapped)) ?? {};
  }

  drain(): void {
    const timer = setTimeout(() => {
      for (const s of this.live) s.destroy();
    }, DRAIN_MS);
    timer.unref();
  }

  private serverFor(context: tls.SecureContext, options: tls.SecureContextOptions): tls.Server {
    const spec = this.provider.spec;
    if (!this.server) {
      this.server = this.createServer({
        ...options,
        SNICallback: (_name, cb) => cb(null, this.currentContext()),
        requestCert: spec.requireClientCertificate || spec.validation !== undefined,
        rejectUnauthorized: false,
        ALPNProtocols: [...this.alpn()],
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      });
      // Checked before the protocol handler sees the connection.
      this.server.prependListener('secureConnection', (s: tls.TLSSocket) => this.check(s));
      this.server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
        this.logger.debug({ err: err.message, remote: s.remoteAddress }, 'TLS handshake failed');
        s.destroy();
      });
      this.version = context;
    } else if (this.version !== context) {
      // A rotated certificate: the server's default context too (clients that send no SNI get that one).
      this.server.setSecureContext(options);
      this.version = context;
    }
    return this.server;
  }

  private currentContext(): tls.SecureContext | undefined {
    const result = this.provider.context();
    return result.ok ? result.context : undefined;
  }

  private check(s: tls.TLSSocket): void {
    const spec = this.provider.spec;
    const cert = s.getPeerCertificate();
    const presented = cert !== undefined && Object.keys(cert).length > 0;
    let refusal: string | undefined;
    if (spec.requireClientCertificate && !presented) refusal = 'no client certificate';
    else if (presented && !s.authorized) refusal = `client certificate not trusted: ${s.authorizationError}`;
    else if (presented) refusal = this.provider.checkPeer(cert);
    if (refusal) {
      this.logger.info({ remote: s.remoteAddress, reason: refusal }, 'TLS connection refused');
      s.destroy();
      return;
    }
    this.peers.set(s, peerOf(s, this.connectionOf(s)));
    this.live.add(s);
    s.once('close', () => this.live.delete(s));
  }
}

/** TLS in front of a tcp_proxy chain. */
export class TlsTcpChain extends TlsTermination {
  readonly kind = 'tcp';

  constructor(
    private readonly inner: ChainRuntime,
    provider: TlsContextProvider,
    logger: Logger,
  ) {
    super(provider, logger);
  }

  protected createServer(options: tls.TlsOptions): tls.Server {
    const server = tls.createServer(options);
    server.on('secureConnection', (s: tls.TLSSocket) => {
      if (s.destroyed) return;
      const peer = this.peers.get(s);
      if (peer) this.inner.accept(s as unknown as net.Socket, afterTls(peer));
    });
    return server;
  }

  override drain(): void {
    super.drain();
    this.inner.drain();
  }
}

/**
 * TLS in front of an HTTP connection manager: HTTP/2 or HTTP/1.1 by ALPN,
 * each request handed to the chain's connection manager with the client's
 * identity.
 */
export class TlsHttpChain extends TlsTermination {
  readonly kind = 'http';
  private readonly sessionPeers = new WeakMap<http2.Http2Session, Peer>();
  private secureServer?: http2.Http2SecureServer;
  /** Connections by HTTP/1.1 socket or HTTP/2 session, so a drain closes each as soon as it is idle. */
  private readonly tracker = new ConnectionTracker();
  private readonly sessions = new WeakMap<http2.ServerHttp2Session, Closable>();

  constructor(
    private readonly inner: HttpChainRuntime,
    provider: TlsContextProvider,
    logger: Logger,
    private readonly limits: DownstreamLimits = {},
  ) {
    super(provider, logger);
  }

  protected createServer(options: tls.TlsOptions): tls.Server {
    const server = http2.createSecureServer({
      ...options,
      allowHTTP1: true,
      settings: h2Settings(this.limits),
      ...(this.limits.maxRequestHeadersBytes ? { maxHeaderSize: this.limits.maxRequestHeadersBytes } : {}),
    });
    // Node's HTTP/2 server does not pass maxHeaderSize on to its HTTP/1.1 fallback; the parser reads it from the server.
    if (this.limits.maxRequestHeadersBytes)
      (server as unknown as { maxHeaderSize: number }).maxHeaderSize = this.limits.maxRequestHeadersBytes;
    this.secureServer = server;
    enforceHeadersTimeout(server, this.limits.requestHeadersTimeoutMs);
    // HTTP/1.1 over TLS gets the same answers as plaintext to requests that break the protocol.
    server.on('clientError', answerClientError);
    server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const socket = (req.httpVersionMajor === 2 ? req.stream.session?.socket : req.socket) as
        | tls.TLSSocket
        | undefined;
      const session = req.httpVersionMajor === 2 ? req.stream.session : undefined;
      const conn = session ? this.sessions.get(session as http2.ServerHttp2Session) : req.socket;
      if (conn) this.tracker.begin(conn as Closable, res as unknown as http.ServerResponse);
      const peer = session ? this.sessionPeer(session) : socket ? this.peers.get(socket) : undefined;
      const ctx: DownstreamContext = peer
        ? this.inner.downstreamContext(afterTls(peer), undefined)
        : { scheme: 'https', mtls: false };
      void this.inner.hcm.handle(
        req as unknown as http.IncomingMessage,
        res as unknown as http.ServerResponse,
        ctx,
      );
    });
    server.on('sessionError', () => {});
    server.on('upgrade', (req: http.IncomingMessage, socket: tls.TLSSocket, head: Buffer) => {
      const peer = this.peers.get(socket);
      const ctx: DownstreamContext = peer
        ? this.inner.downstreamContext(afterTls(peer), undefined)
        : { scheme: 'https', mtls: false };
      this.inner.hcm.handleUpgrade(req, socket, head, ctx);
    });
    server.on('session', (session: http2.ServerHttp2Session) => {
      const handle = sessionHandle(session);
      this.sessions.set(session, handle);
      this.tracker.add(handle);
    });
    return server;
  }

  /** The connection manager behind the TLS (its route table comes over RDS). */
  get hcm(): HttpChainRuntime['hcm'] {
    return this.inner.hcm;
  }

  /** HTTP/2 hands requests a proxy of the socket: its certificate is read once per session. */
  private sessionPeer(session: http2.Http2Session): Peer {
    let peer = this.sessionPeers.get(session);
    if (!peer) {
      const socket = session.socket as tls.TLSSocket;
      peer = peerOf(socket, this.connectionOf(socket));
      this.sessionPeers.set(session, peer);
    }
    return peer;
  }

  override drain(): void {
    super.drain();
    // Idle connections close now (HTTP/2 with a GOAWAY), busy ones after their last request: clients reconnect to the new config.
    this.tracker.drain();
    this.inner.drain();
    if (this.secureServer) stopHeadersTimeout(this.secureServer);
  }
}
