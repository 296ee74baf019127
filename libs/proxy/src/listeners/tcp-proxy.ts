import type net from 'node:net';
import type { Logger } from '@mizzen/runtime';
import type { TcpProxyConfig } from '../config/listener.js';
import type { ProxyObserver, TrafficDirection } from '../observe/records.js';
import { ObservedTcpConnection } from '../observe/tcp-connection.js';
import type { ClusterManager, OriginalDestination } from '../upstream/cluster-manager.js';
import { connectUpstream } from '../upstream/connect.js';
import { sourceAddressFor } from '../upstream/connection-pools.js';

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
        downstreamRemoteAddress: downstream.remoteAddress ?? '',
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
    const host = cluster?.pick(undefined, ctx.originalDst);
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
    const settings = cluster.connectionSettings;
    const upstream = connectUpstream(host, {
      connectTimeoutMs: settings.connectTimeoutMs,
      localAddress: sourceAddressFor(settings.sourceAddresses, host.address),
      ...(secure ? { tls: secure } : {}),
      keepalive: settings.tcpKeepalive,
    });
    let connected = false;
    upstream.once(secure ? 'secureConnect' : 'connect', () => {
      connected = true;
      ctx.onUpstream?.(true);
      observed.connected(downstream, upstream, {
        ...(ctx.head ? { head: ctx.head } : {}),
        upstreamMtls: secure?.mutual === true,
        ...(secure?.peerPrincipal() ? { destinationPrincipal: secure.peerPrincipal() } : {}),
      });
      if (ctx.head?.length) upstream.write(ctx.head);
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
    upstream.once('error', (err) => {
      this.logger.debug({ cluster: clusterName, host: host.key, err: err.message }, 'tcp upstream error');
      if (connected) {
        downstream.destroy();
        return;
      }
      // Envoy's UF: the upstream connection (or its TLS handshake) failed.
      observed.failed('UF');
      this.refuse(downstream, ctx);
    });
    downstream.once('error', () => upstream.destroy());
    upstream.once('close', () => {
      slot();
      downstream.destroy();
    });
    downstream.once('close', () => {
      // The caller left before the upstream answered: Envoy's DC (downstream connection termination).
      if (!connected) observed.failed('DC');
      upstream.destroy();
    });
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
