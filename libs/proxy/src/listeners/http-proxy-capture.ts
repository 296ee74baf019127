import type http from 'node:http';
import type net from 'node:net';
import type { ListenerConfig, TcpProxyConfig } from '../config/listener.js';
import { endToEndHeaders } from '../http/headers.js';
import { sendLocalReply } from '../http/local-reply.js';
import { readRequestBody } from '../http/request-body.js';
import { StreamInfo } from '../http/stream-info.js';
import { responseOnSocket } from '../http/upgrade-tunnel.js';
import type { OriginalDestination } from '../upstream/cluster-manager.js';
import { ConnectionTracker } from './connection-tracker.js';
import {
  type ChainedListenerRuntime,
  HttpChainRuntime,
  type ListenerRuntime,
  newHttpServer,
  type RuntimeDeps,
  TcpChainRuntime,
} from './runtimes.js';

/** Istio's cluster for destinations REGISTRY_ONLY forbids. */
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';

export interface VirtualListenerLookup {
  /** The listener for a destination: `address:port` exactly, else `0.0.0.0:port` (Envoy's use_original_dst rule). */
  virtualFor(host: string, port: number): ChainedListenerRuntime | undefined;
}

/** Where an HTTP request was going: the absolute-form URL's authority, else the Host header (port 80 by default). */
export function requestDestination(req: http.IncomingMessage): OriginalDestination | undefined {
  const target = req.url ?? '';
  let authority: string | undefined;
  if (/^https?:\/\//i.test(target)) authority = new URL(target).host;
  else authority = req.headers.host;
  return authority ? parseAuthority(authority, 80) : undefined;
}

export function parseAuthority(authority: string, defaultPort: number): OriginalDestination | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(authority.trim());
  if (!m) return undefined;
  const port = m[3] ? Number(m[3]) : defaultPort;
  if (!(port > 0 && port < 65536)) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * The capture listener (Istio's `virtualOutbound`, `use_original_dst`) in
 * local mode, where applications reach their sidecar as an HTTP proxy: the
 * original destination comes from the request line (absolute-form) or the
 * CONNECT target instead of SO_ORIGINAL_DST, and each request or tunnel is
 * handed to the listener for that destination's port, as Envoy hands over
 * captured connections.
 */
export class HttpProxyCaptureRuntime implements ListenerRuntime {
  readonly kind = 'http';
  private readonly server = newHttpServer();
  private readonly tracker = new ConnectionTracker();
  /** This listener's own filter chain: where traffic for ports no listener claims goes (passthrough or blackhole). */
  private readonly fallback: TcpChainRuntime;
  /** The capture listener that replaced this one, which its kept-alive connections' requests go to. */
  private successor?: HttpProxyCaptureRuntime;

  constructor(
    readonly config: ListenerConfig,
    private readonly deps: RuntimeDeps,
    private readonly lookup: VirtualListenerLookup,
  ) {
    const own = config.defaultChain ?? config.chains[0];
    if (own?.filter.kind !== 'tcp')
      throw new Error(`listener ${config.name} needs a tcp_proxy chain to pass unknown traffic to`);
    this.fallback = new TcpChainRuntime(own.filter, deps, config);
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.tracker.begin(req.socket, res);
      void this.latest().onRequest(req, res);
    });
    this.server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) =>
      this.onConnect(req, socket, head),
    );
    this.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) =>
      this.onUpgrade(req, socket, head),
    );
    this.server.on('clientError', (_err: Error, socket: net.Socket) => socket.destroy());
  }

  accept(socket: net.Socket): void {
    this.server.emit('connection', socket);
  }

  /**
   * Replaced (its catch-all changed). A request that still arrives on one of
   * its keep-alive connections is handled by the listener that replaced it —
   * this runtime holds no per-connection state besides the HTTP parser — so
   * the app's next request meets the new catch-all at once and none is lost
   * to a connection closed under it. The connections themselves close once
   * idle (answers say `Connection: close`). CONNECT tunnels belong to the
   * listener they were handed to and are left alone.
   */
  drain(successor?: ListenerRuntime): void {
    if (successor instanceof HttpProxyCaptureRuntime) this.successor = successor;
    this.tracker.drain();
  }

  /** The runtime in force: this one, or the newest that replaced it. */
  private latest(): HttpProxyCaptureRuntime {
    let current: HttpProxyCaptureRuntime = this;
    while (current.successor) current = current.successor;
    return current;
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const dest = requestDestination(req);
    if (!dest) {
      sendLocalReply(res, 400, 'request names no destination (no absolute URL and no Host header)');
      return;
    }
    const source = { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 };
    const chain = this.lookup.virtualFor(dest.host, dest.port)?.chainForHttp(dest, source);
    if (chain instanceof HttpChainRuntime) {
      await chain.hcm.handle(req, res, { scheme: 'http', originalDst: dest });
      return;
    }
    // An HTTP request to a port the mesh treats as opaque TCP, or knows nothing about: forward it unrouted.
    const tcp = chain instanceof TcpChainRuntime ? chain : this.fallback;
    await this.forwardUnrouted(req, res, tcp.config, dest);
  }

  private async forwardUnrouted(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    filter: TcpProxyConfig,
    dest: OriginalDestination,
  ): Promise<void> {
    const cluster = filter.clusters[0]!.name;
    if (cluster === BLACKHOLE_CLUSTER) {
      this.deps.logger.info(
        { destination: `${dest.host}:${dest.port}` },
        'blocked: destination is not in the mesh registry',
      );
      sendLocalReply(
        res,
        502,
        `${dest.host}:${dest.port} is not in the mesh registry (outboundTrafficPolicy REGISTRY_ONLY)`,
      );
      return;
    }
    const url = req.url ?? '/';
    const path = /^https?:\/\//i.test(url) ? `${new URL(url).pathname}${new URL(url).search}` : url;
    const headers = endToEndHeaders(req.headers);
    headers.host = dest.port === 80 ? dest.host : `${dest.host}:${dest.port}`;
    await this.deps.router.forward(
      cluster,
      {
        method: req.method ?? 'GET',
        path,
        headers,
        body: await readRequestBody(req),
        timeoutMs: 0,
        includeAttemptCount: false,
        originalDst: dest,
        responseMutations: [],
      },
      res,
      new StreamInfo(),
    );
  }

  /** A WebSocket (or other upgrade) through HTTP_PROXY: routed by the port's HTTP chain, else passed through. */
  private onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const dest = requestDestination(req);
    if (!dest) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const source = { address: req.socket.remoteAddress ?? '', port: req.socket.remotePort ?? 0 };
    const chain = this.lookup.virtualFor(dest.host, dest.port)?.chainForHttp(dest, source);
    if (chain instanceof HttpChainRuntime) {
      chain.hcm.handleUpgrade(req, socket, head, { scheme: 'http', originalDst: dest });
      return;
    }
    const res = responseOnSocket(req, socket);
    const cluster = (chain instanceof TcpChainRuntime ? chain : this.fallback).config.clusters[0]!.name;
    if (cluster === BLACKHOLE_CLUSTER) {
      sendLocalReply(
        res,
        502,
        `${dest.host}:${dest.port} is not in the mesh registry (outboundTrafficPolicy REGISTRY_ONLY)`,
      );
      return;
    }
    const url = req.url ?? '/';
    const headers = endToEndHeaders(req.headers);
    headers.host = dest.port === 80 ? dest.host : `${dest.host}:${dest.port}`;
    void this.deps.router.upgrade(
      cluster,
      {
        method: req.method ?? 'GET',
        path: /^https?:\/\//i.test(url) ? `${new URL(url).pathname}${new URL(url).search}` : url,
        headers,
        protocol: String(req.headers.upgrade ?? '').toLowerCase(),
        head,
        originalDst: dest,
        timeoutMs: 0,
      },
      socket,
      res,
      new StreamInfo(),
    );
  }

  private onConnect(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    const dest = parseAuthority(req.url ?? '', 443);
    if (!dest) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const target = this.lookup.virtualFor(dest.host, dest.port);
    if (target) {
      // The tunnel carries whatever the app speaks to a mesh port: that listener picks its filter chain.
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) socket.unshift(head);
      target.accept(socket, dest);
      return;
    }
    this.fallback.proxy.handle(socket, {
      originalDst: dest,
      head,
      onUpstream: (ok) => {
        if (ok) socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        else socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n');
      },
    });
  }
}
