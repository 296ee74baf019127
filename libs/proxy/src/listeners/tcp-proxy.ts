import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { Logger } from '@mizzen/runtime';
import type { TcpProxyConfig } from '../config/listener.js';
import type { ProxyObserver, TcpConnectionRecord, TrafficDirection } from '../observe/records.js';
import { ObservedTcpConnection } from '../observe/tcp-connection.js';
import type { UpstreamTls } from '../security/tls-provider.js';
import type { ClusterManager, ClusterRuntime, OriginalDestination } from '../upstream/cluster-manager.js';
import { connectUpstream, type ProxyProtocolStamp, proxyHeaderOf } from '../upstream/connect.js';
import { sourceAddressFor } from '../upstream/connection-pools.js';
import { hostKey, type UpstreamHost } from '../upstream/host.js';
import { xxHash64 } from '../upstream/xxhash64.js';
import { type PeerExchangeResult, readPeerExchange } from './peer-exchange.js';
import { openTcpTunnel } from './tcp-tunnel.js';

/** A connection's idle and lifetime timers. */
interface ConnectionTimers {
  /** The upstream is up: the idle timer starts. */
  connected(): void;
  /** Bytes read from this side reset the idle timer. */
  watch(stream: Duplex): void;
  clear(): void;
  /** max_downstream_connection_duration closed the connection (Envoy's `DT`). */
  expired(): boolean;
}

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
  /** The SNI of the downstream's TLS ClientHello. */
  sni?: string;
  /**
   * The downstream's metadata exchange header, being read (its sidecar and
   * this chain agreed on `istio-peer-exchange`): the downstream's bytes go
   * upstream once it has been read, after whatever it left over.
   */
  peerExchange?: Promise<PeerExchangeResult>;
}

/** What a tcp_proxy needs besides its config to take part in the mesh's telemetry. */
export interface TcpProxyObserving {
  observer?: ProxyObserver;
  listenerName: string;
  direction: TrafficDirection;
  /**
   * This proxy's metadata exchange header (Istio's TCP metadata exchange),
   * written first on an upstream connection whose TLS handshake agreed on
   * `istio-peer-exchange`; the upstream's own header is read before its bytes
   * reach the downstream.
   */
  exchangeHeader?: Buffer;
}

function addressOf(a: { address?: string; port?: number } | undefined): string | undefined {
  return a?.address ? hostKey(a.address, a.port ?? 0) : undefined;
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
    private readonly observe: TcpProxyObserving = { listenerName: '', direction: 'outbound' },
  ) {}

  /** The connection as observers (Istio's TCP metrics, access logs) see it, from the moment it is accepted. */
  private observeConnection(
    downstream: net.Socket,
    cluster: string,
    ctx: TcpConnectionContext,
  ): ObservedTcpConnection {
    const inbound = this.observe.direction === 'inbound';
    // Without a metadata exchange, the server side knows its caller by the identity in its certificate,
    // and pilot's endpoints by who runs as it.
    const peer = inbound && ctx.peerPrincipal ? this.clusters.peerByPrincipal(ctx.peerPrincipal) : undefined;
    const local = ctx.originalDst
      ? hostKey(ctx.originalDst.host, ctx.originalDst.port)
      : (addressOf(ctx.local) ?? addressOf({ address: downstream.localAddress, port: downstream.localPort }));
    return new ObservedTcpConnection(
      this.observe.observer,
      {
        direction: this.observe.direction,
        listener: this.observe.listenerName,
        upstreamCluster: cluster,
        downstreamRemoteAddress:
          addressOf(ctx.remote) ??
          addressOf({ address: downstream.remoteAddress, port: downstream.remotePort }) ??
          '',
        downstreamLocalAddress: local ?? '',
        ...(ctx.sni ? { requestedServerName: ctx.sni } : {}),
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

  /**
   * A connection authorization refused before it reached tcp_proxy: closed,
   * and written to the chain's access logs with why (no upstream cluster was
   * chosen, as in Envoy, where tcp_proxy never started on it).
   */
  deny(
    downstream: net.Socket,
    ctx: TcpConnectionContext,
    by: NonNullable<TcpConnectionRecord['denied']>,
  ): void {
    this.observeConnection(downstream, '', ctx).denied(by);
    downstream.destroy();
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
    // Envoy's tcp_proxy source_ip hash policy: xxHash64 of the address alone, without the port.
    const hash = this.config.hashBySourceIp && source ? xxHash64(source) : undefined;
    const host = cluster?.pick(ctx.originalDst, { hash });
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
      observed.failed('UF', secure.error);
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
      observed.failed(flags, flags === 'UF' ? why : undefined);
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
          observed.closed(timers.expired() ? 'DT' : undefined);
        });
        downstream.once('close', () => {
          up.destroy();
          observed.closed(timers.expired() ? 'DT' : undefined);
        });
        this.pipe(downstream, up, ctx, observed, timers, {
          ...(cluster.config.peerExchange
            ? { peerExchangeProtocol: cluster.config.peerExchange.protocol }
            : {}),
          upstreamMtls: secure?.mutual === true,
          destinationPrincipal: secure?.peerPrincipal(),
          upstreamLocalAddress: addressOf({
            address: (up as Partial<net.Socket>).localAddress,
            port: (up as Partial<net.Socket>).localPort,
          }),
          closed: () => ended || downstream.destroyed,
        });
      },
      (err: Error) => fail(err.message, 'UF'),
    );
  }

  /**
   * Pipes the two sides together once each has given up its metadata
   * exchange header, if it sends one: the downstream's (read by the chain
   * before) holds only the bytes going upstream, the upstream's (when its
   * TLS handshake agreed on `istio-peer-exchange`, after this proxy wrote
   * its own first) only the bytes coming back — as Envoy's filters hold only
   * the direction they read. Bytes are counted as they pass, never the
   * headers; the observers hear of the connection once the peer is settled.
   */
  private pipe(
    downstream: net.Socket,
    up: Duplex,
    ctx: TcpConnectionContext,
    observed: ObservedTcpConnection,
    timers: ConnectionTimers,
    opts: {
      /** The cluster's istio.metadata_exchange protocol: exchange with the upstream when its TLS agreed on it. */
      peerExchangeProtocol?: string;
      upstreamMtls: boolean;
      destinationPrincipal?: string;
      upstreamLocalAddress?: string;
      closed: () => boolean;
    },
  ): void {
    const inbound = this.observe.direction === 'inbound';
    const flow = (from: Duplex, to: Duplex, count: (n: number) => void, head: Buffer | undefined) => {
      if (opts.closed()) return;
      if (head?.length) {
        count(head.length);
        to.write(head);
      }
      from.on('data', (c: Buffer) => count(c.length));
      timers.watch(from);
      from.pipe(to);
    };
    const settled = (side: 'downstream' | 'upstream') => (r: PeerExchangeResult) => {
      if (r.problem)
        this.logger.debug({ side, reason: r.problem }, 'no peer metadata from the TCP metadata exchange');
      // The peer telemetry reports: the caller inbound, the upstream's workload outbound.
      if (r.peer && (side === 'downstream') === inbound) observed.exchanged(r.peer);
      return r.rest;
    };
    const fromDownstream = ctx.peerExchange?.then(settled('downstream'));
    const upstreamExchanges =
      this.observe.exchangeHeader !== undefined &&
      opts.peerExchangeProtocol !== undefined &&
      (up as Partial<tls.TLSSocket>).alpnProtocol === opts.peerExchangeProtocol;
    if (upstreamExchanges) up.write(this.observe.exchangeHeader);
    const fromUpstream = upstreamExchanges ? readPeerExchange(up).then(settled('upstream')) : undefined;
    timers.connected();
    const toUpstream = (rest?: Buffer) => {
      const head = ctx.head?.length && rest?.length ? Buffer.concat([ctx.head, rest]) : (ctx.head ?? rest);
      flow(downstream, up, (n) => observed.countReceived(n), head);
    };
    const toDownstream = (rest?: Buffer) => flow(up, downstream, (n) => observed.countSent(n), rest);
    if (fromDownstream) void fromDownstream.then(toUpstream);
    else toUpstream();
    if (fromUpstream) void fromUpstream.then(toDownstream);
    else toDownstream();
    void Promise.all([fromDownstream, fromUpstream]).then(() =>
      observed.connected({
        upstreamMtls: opts.upstreamMtls,
        ...(opts.destinationPrincipal ? { destinationPrincipal: opts.destinationPrincipal } : {}),
        ...(opts.upstreamLocalAddress ? { upstreamLocalAddress: opts.upstreamLocalAddress } : {}),
      }),
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
      // The cluster's ALPN (Istio offers `istio-peer-exchange` to sidecars over mTLS for TCP).
      ...(secure?.alpn.length ? { alpn: secure.alpn } : {}),
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
  private connectionTimers(downstream: net.Socket, upstream: () => Duplex | undefined): ConnectionTimers {
    let expired = false;
    const close = () => {
      upstream()?.destroy();
      downstream.destroy();
    };
    const { idleTimeoutMs, maxDurationMs } = this.config;
    const lifetime =
      maxDurationMs > 0
        ? setTimeout(() => {
            expired = true;
            close();
          }, maxDurationMs)
        : undefined;
    lifetime?.unref();
    let idle: NodeJS.Timeout | undefined;
    let running = false;
    const touch = () => {
      if (!running) return;
      clearTimeout(idle);
      idle = setTimeout(close, idleTimeoutMs);
      idle.unref();
    };
    const watched: Duplex[] = [];
    return {
      connected: () => {
        if (idleTimeoutMs <= 0) return;
        running = true;
        touch();
      },
      // Called as a side is piped, so this listener does not start its flow early.
      watch: (stream) => {
        if (idleTimeoutMs <= 0) return;
        watched.push(stream);
        stream.on('data', touch);
      },
      clear: () => {
        running = false;
        clearTimeout(lifetime);
        clearTimeout(idle);
        for (const s of watched) s.off('data', touch);
      },
      expired: () => expired,
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
