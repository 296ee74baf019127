import http from 'node:http';
import type net from 'node:net';
import type { Logger } from '@mizzen/runtime';
import type { ListenerConfig } from '../config/listener.js';
import { HttpConnectionManager, type RouteTables } from '../http/connection-manager.js';
import type { Router } from '../http/router.js';
import type { ClusterManager, OriginalDestination } from '../upstream/cluster-manager.js';
import { TcpProxy } from './tcp-proxy.js';

/** How long a replaced listener's connections may finish their requests before they are closed. */
export const DRAIN_MS = 10_000;

/** Downstream keep-alive: longer than any client's idle timeout, so clients close first and never race us. */
const DOWNSTREAM_KEEPALIVE_MS = 65_000;

/** What a listener does with connections: an HTTP connection manager or a TCP proxy, per its filter chain. */
export interface ListenerRuntime {
  readonly config: ListenerConfig;
  readonly kind: 'http' | 'tcp';
  /** Takes a new downstream connection (from a bound socket or handed over by the capture listener). */
  accept(socket: net.Socket, originalDst?: OriginalDestination): void;
  /** The listener was replaced: finish requests in flight, then close its connections. */
  drain(): void;
}

export interface RuntimeDeps {
  clusters: ClusterManager;
  router: Router;
  routes: RouteTables;
  logger: Logger;
}

/**
 * Tracks the connections an HTTP server owns so a drain can close each one as
 * soon as it is idle (and force the rest after DRAIN_MS).
 */
class ConnectionTracker {
  private readonly inFlight = new Map<net.Socket, number>();
  private draining = false;

  add(socket: net.Socket): void {
    this.inFlight.set(socket, 0);
    socket.once('close', () => this.inFlight.delete(socket));
  }

  begin(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket;
    this.inFlight.set(socket, (this.inFlight.get(socket) ?? 0) + 1);
    if (this.draining) res.shouldKeepAlive = false;
    res.once('close', () => {
      const n = (this.inFlight.get(socket) ?? 1) - 1;
      this.inFlight.set(socket, n);
      if (this.draining && n === 0) socket.end();
    });
  }

  drain(): void {
    this.draining = true;
    for (const [socket, n] of this.inFlight) if (n === 0) socket.end();
    const timer = setTimeout(() => {
      for (const socket of this.inFlight.keys()) socket.destroy();
    }, DRAIN_MS);
    timer.unref();
  }
}

export function newHttpServer(): http.Server {
  const server = http.createServer({ keepAliveTimeout: DOWNSTREAM_KEEPALIVE_MS, noDelay: true });
  server.headersTimeout = DOWNSTREAM_KEEPALIVE_MS + 5_000;
  return server;
}

/** An HTTP connection manager listener: the sockets it accepts are parsed by an (unbound) node HTTP server. */
export class HttpListenerRuntime implements ListenerRuntime {
  readonly kind = 'http';
  readonly hcm: HttpConnectionManager;
  private readonly server = newHttpServer();
  private readonly tracker = new ConnectionTracker();
  private readonly tunnelled = new WeakMap<net.Socket, OriginalDestination>();

  constructor(
    readonly config: ListenerConfig,
    deps: RuntimeDeps,
  ) {
    if (config.filter.kind !== 'http') throw new Error(`listener ${config.name} is not an HTTP listener`);
    this.hcm = new HttpConnectionManager(config.filter, deps);
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.tracker.begin(req, res);
      void this.hcm.handle(req, res, { scheme: 'http', originalDst: this.tunnelled.get(req.socket) });
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
  }

  accept(socket: net.Socket, originalDst?: OriginalDestination): void {
    if (originalDst) this.tunnelled.set(socket, originalDst);
    this.tracker.add(socket);
    this.server.emit('connection', socket);
  }

  drain(): void {
    this.tracker.drain();
  }
}

/** A tcp_proxy listener. */
export class TcpListenerRuntime implements ListenerRuntime {
  readonly kind = 'tcp';
  readonly proxy: TcpProxy;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly config: ListenerConfig,
    deps: RuntimeDeps,
  ) {
    if (config.filter.kind !== 'tcp') throw new Error(`listener ${config.name} is not a TCP listener`);
    this.proxy = new TcpProxy(config.filter, deps.clusters, deps.logger);
  }

  accept(socket: net.Socket, originalDst?: OriginalDestination): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.proxy.handle(socket, { originalDst });
  }

  /** Opaque connections cannot be asked to close politely; they get the drain period, then are closed. */
  drain(): void {
    const timer = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, DRAIN_MS);
    timer.unref();
  }
}

export function createRuntime(config: ListenerConfig, deps: RuntimeDeps): ListenerRuntime {
  return config.filter.kind === 'http'
    ? new HttpListenerRuntime(config, deps)
    : new TcpListenerRuntime(config, deps);
}
