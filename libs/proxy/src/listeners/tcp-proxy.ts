import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '@mizzen/runtime';
import type { TcpProxyConfig } from '../config/listener.js';
import type { ProxyObserver, TrafficDirection } from '../observe/records.js';
import { ObservedTcpConnection } from '../observe/tcp-connection.js';
import type { UpstreamTls } from '../security/tls-provider.js';
import type { ClusterManager, ClusterRuntime, OriginalDestination } from '../upstream/cluster-manager.js';
import { connectUpstream, type ProxyProtocolStamp, proxyHeaderOf } from '../upstream/connect.js';
import { sourceAddressFor } from '../upstream/connection-pools.js';
import { hash32 } from '../upstream/consistent-hash.js';
import type { UpstreamHost } from '../upstream/host.js';
import { openTcpTunnel } from './tcp-tunnel.js';

export interface TcpConnectionContext {
  originalDst?: OriginalDestination;
  /** Bytes already read from the downstream (e.g. after a CONNECT request line). */
  head?: Buffer;
  /**
   * Called once the upstream connection is up (a CONNECT tunnel answers 200
   * only then), or with false when it failed — the callback then owns closing
   * the downstream (to answer the CONNECT with an error first).
   */
  onUpstream?: (connected: boolean) => void;
  /** The downstream connection came over mutual TLS (a chain terminated it): what Istio's metrics report. */
  mtls?: boolean;
  /** The downstream's ends when the socket (a TLS stream) no longer knows them, for a PROXY header upstream. */
  remote?: { address: string; port: number };
  local?: { address: string; port: number };
  /** The caller's SPIFFE identity from its certificate (a chain terminated mutual TLS). */
  peerPrincipal?: string;
}

/**
 * Envoy's tcp_proxy: an opaque byte pipe from the downstream connection to a
 * host of the cluster, with half-close passed through and either side's
 * error closing both.
 */
export class TcpProxy {
  constructor(
    private readonly config: TcpProxyConfig,
    private readonly clusters: ClusterManager,
    private readonly logger: Logger,
    private readonly observe: {
      observer?: ProxyObserver;
      listenerName: string;
      direction: TrafficDirection;
    } = {
      listenerName: '',
      direction: 'outbound',
    },
  ) {}

  /** The connection as observers (Istio's TCP metrics) see it, from the moment it is accepted. */
  private observeConnection(
    downstream: net.Socket,
    cluster: string,
    ctx: TcpConnectionContext,
  ): ObservedTcpConnection {
    const inbound = this.observe.direction === 'inbound';
    // The server side knows its caller by the identity in its certificate, and pilot's endpoints by who runs as it.
    const peer = inbound && ctx.peerPrincipal ? this.clusters.peerByPrincipal(ctx.peerPrincipal) : undefined;
    return new ObservedTcpConnection(
      this.observe.observer,
      {
        direction: this.observe.direction,
        listener: this.observe.listenerName,
        upstreamCluster: cluster,
        downstreamRemoteAddress: ctx.remote?.address ?? downstream.remoteAddress ?? '',
        startTime: new Date(),
        telemetry: this.config.telemetry,
      },
      {
        mtls: ctx.mtls === true,
        ...(inbound && ctx.mtls && ctx.peerPrincipal ? { sourcePrincipal: ctx.peerPrincipal } : {}),
        ...(peer ? { peer } : {}),
      },
    );
  }

  /** Refuses a connection that cannot be proxied (the CONNECT callback answers first, when there is one). */
  private refuse(downstream: net.Socket, ctx: TcpConnectionContext): void {
    if (ctx.onUpstream) ctx.onUpstream(false);
    else downstream.destroy();
  }

  handle(downstream: net.Socket, ctx: TcpConnectionContext = {}): void {
    const clusterName = this.pickCluster();
    const observed = this.observeConnection(downstream, clusterName, ctx);
    const cluster = this.clusters.get(clusterName);
    const source = ctx.remote?.address ?? downstream.remoteAddress;
    const hash = this.config.hashBySourceIp && source ? hash32(source) : undefined;
    const host = cluster?.pick(undefined, ctx.originalDst, hash);
    if (!cluster || !host) {
      const flags = cluster ? 'UH' : 'NC';
      this.logger.debug({ cluster: clusterName, flags }, 'tcp connection refused: no upstream');
      observed.failed(flags);
      this.refuse(downstream, ctx);
      return;
    }
    observed.picked(host);
    // Istio's auto-mTLS picks the transport per host (mTLS to hosts with a sidecar), as for HTTP.
    const provider = cluster.tlsFor(host);
    const secure = provider?.upstream(host);
    if (secure && 'error' in secure) {
      this.logger.debug(
        { cluster: clusterName, host: host.key, err: secure.error, flags: 'UF' },
        'tcp upstream TLS unavailable',
      );
      observed.failed('UF');
      this.refuse(downstream, ctx);
      return;
    }
    // The connection counts against the cluster's max_connections; beyond it, Envoy refuses it (flag UO).
    const slot = cluster.breaker.tryAcquire('connection');
    if (!slot) {
      this.logger.debug(
        { cluster: clusterName, flags: 'UO' },
        'tcp connection refused: max_connections reached',
      );
      observed.failed('UO');
      this.refuse(downstream, ctx);
      return;
    }
    const stamp = cluster.proxyProtocolStamp({
      source: ctx.remote ?? { address: downstream.remoteAddress ?? '', port: downstream.remotePort ?? 0 },
      destination:
        ctx.originalDst && net.isIP(ctx.originalDst.host)
          ? { address: ctx.originalDst.host, port: ctx.originalDst.port }
          : (ctx.local ?? { address: downstream.localAddress ?? '', port: downstream.localPort ?? 0 }),
    });
    let upstream: Duplex | undefined;
    let ended = false;
    const timers = this.connectionTimers(downstream, () => upstream);
    // The connection ends before the upstream is up: Envoy's UF (the upstream connection, its TLS
    // handshake or the tunnel failed) or DC (the caller left first), counted as such.
    const fail = (why: string, flags: 'UF' | 'DC') => {
      if (ended) return;
      ended = true;
      slot();
      timers.clear();
      this.logger.debug({ cluster: clusterName, host: host.key, err: why, flags }, 'tcp upstream failed');
      observed.failed(flags);
      this.refuse(downstream, ctx);
    };
    const onDownstreamGone = () => {
      if (!upstream) fail('the downstream closed first', 'DC');
    };
    downstream.once('close', onDownstreamGone);
    // An error before the upstream is up ends in 'close' (handled above); it must not go unheard.
    downstream.once('error', () => {});
    this.openUpstream(cluster, host, secure, stamp).then(
      (up) => {
        downstream.off('close', onDownstreamGone);
        if (ended || downstream.destroyed) {
          up.destroy();
          if (!ended) fail('the downstream closed first', 'DC');
          return;
        }
        upstream = up;
        ctx.onUpstream?.(true);
        const destinationPrincipal = secure?.peerPrincipal();
        observed.connected(downstream, up, {
          ...(ctx.head ? { head: ctx.head } : {}),
          upstreamMtls: secure?.mutual === true,
          ...(destinationPrincipal ? { destinationPrincipal } : {}),
        });
        timers.connected(up);
        if (ctx.head?.length) up.write(ctx.head);
        downstream.pipe(up);
        up.pipe(downstream);
        up.once('error', (err) => {
          this.logger.debug({ cluster: clusterName, host: host.key, err: err.message }, 'tcp upstream error');
          downstream.destroy();
        });
        downstream.once('error', () => up.destroy());
        up.once('close', () => {
          ended = true;
          slot();
          timers.clear();
          downstream.destroy();
        });
        downstream.once('close', () => up.destroy());
      },
      (err: Error) => fail(err.message, 'UF'),
    );
  }

  /** The connection to the host: direct, or through the cluster's host as an HTTP tunnel (tunneling_config). */
  private openUpstream(
    cluster: ClusterRuntime,
    host: UpstreamHost,
    secure: UpstreamTls | undefined,
    stamp: ProxyProtocolStamp | undefined,
  ): Promise<Duplex> {
    if (this.config.tunneling) return openTcpTunnel(cluster, host, this.config.tunneling, secure, stamp);
    const settings = cluster.connectionSettings;
    const socket = connectUpstream(host, {
      connectTimeoutMs: settings.connectTimeoutMs,
      localAddress: sourceAddressFor(settings.sourceAddresses, host.address),
      ...(secure ? { tls: secure } : {}),
      keepalive: settings.tcpKeepalive,
      proxyHeader: proxyHeaderOf(stamp),
    });
    return new Promise((resolve, reject) => {
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  }

  /**
   * idle_timeout (no bytes either way for that long, once the upstream is up)
   * and max_downstream_connection_duration (since the connection came in):
   * when either runs out, both sides are closed, as Envoy's tcp_proxy does.
   */
  private connectionTimers(
    downstream: net.Socket,
    upstream: () => Duplex | undefined,
  ): { clear(): void; connected(up: Duplex): void } {
    const close = () => {
      upstream()?.destroy();
      downstream.destroy();
    };
    const { idleTimeoutMs, maxDurationMs } = this.config;
    const lifetime = maxDurationMs > 0 ? setTimeout(close, maxDurationMs) : undefined;
    lifetime?.unref();
    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(close, idleTimeoutMs);
      idle.unref();
    };
    let up: Duplex | undefined;
    return {
      // Called as the two sides are piped together, so these listeners do not start either flow early.
      connected: (u) => {
        if (idleTimeoutMs <= 0) return;
        up = u;
        touch();
        downstream.on('data', touch);
        u.on('data', touch);
      },
      clear: () => {
        clearTimeout(lifetime);
        clearTimeout(idle);
        downstream.off('data', touch);
        up?.off('data', touch);
      },
    };
  }

  private pickCluster(): string {
    const list = this.config.clusters;
    if (list.length === 1) return list[0]!.name;
    const total = list.reduce((s, c) => s + c.weight, 0);
    let r = Math.random() * total;
    for (const c of list) {
      r -= c.weight;
      if (r < 0) return c.name;
    }
    return list[list.length - 1]!.name;
  }
}
