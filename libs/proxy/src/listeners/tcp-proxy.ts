import type net from 'node:net';
import type { Logger } from '@mizzen/runtime';
import type { TcpProxyConfig } from '../config/listener.js';
import type { ProxyObserver, TrafficDirection } from '../observe/records.js';
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

  /** Reports the connection to observers (Istio's TCP metrics and access logs). */
  private watch(
    downstream: net.Socket,
    upstream: net.Socket,
    cluster: string,
    hostKey: string,
    mtls: boolean,
  ): void {
    const start = {
      direction: this.observe.direction,
      listener: this.observe.listenerName,
      upstreamCluster: cluster,
      upstreamHost: hostKey,
      downstreamRemoteAddress: downstream.remoteAddress ?? '',
      startTime: new Date(),
    };
    const observation = this.observe.observer?.startTcp?.(start);
    if (!observation) return;
    let received = 0;
    let sent = 0;
    downstream.on('data', (c: Buffer) => {
      received += c.length;
    });
    upstream.on('data', (c: Buffer) => {
      sent += c.length;
    });
    const began = performance.now();
    const snapshot = () => ({
      ...start,
      durationMs: performance.now() - began,
      receivedBytes: received,
      sentBytes: sent,
      responseFlags: '-',
      connectionSecurityPolicy: mtls ? ('mutual_tls' as const) : ('none' as const),
    });
    // Long-lived connections report their bytes as they go, as Istio's proxies do every few seconds.
    const timer = observation.progress
      ? setInterval(() => observation.progress!(snapshot()), 5_000)
      : undefined;
    timer?.unref();
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      observation.end(snapshot());
    };
    downstream.once('close', end);
    upstream.once('close', end);
  }

  handle(downstream: net.Socket, ctx: TcpConnectionContext = {}): void {
    const clusterName = this.pickCluster();
    const cluster = this.clusters.get(clusterName);
    const host = cluster?.pick(undefined, ctx.originalDst);
    if (!cluster || !host) {
      this.logger.debug(
        { cluster: clusterName, flags: cluster ? 'UH' : 'NC' },
        'tcp connection refused: no upstream',
      );
      if (ctx.onUpstream) ctx.onUpstream(false);
      else downstream.destroy();
      return;
    }
    // Istio's auto-mTLS picks the transport per host (mTLS to hosts with a sidecar), as for HTTP.
    const provider = cluster.tlsFor(host);
    const secure = provider?.upstream(host);
    if (secure && 'error' in secure) {
      this.logger.debug(
        { cluster: clusterName, host: host.key, err: secure.error, flags: 'UF' },
        'tcp upstream TLS unavailable',
      );
      if (ctx.onUpstream) ctx.onUpstream(false);
      else downstream.destroy();
      return;
    }
    // The connection counts against the cluster's max_connections; beyond it, Envoy refuses it (flag UO).
    const slot = cluster.breaker.tryAcquire('connection');
    if (!slot) {
      this.logger.debug(
        { cluster: clusterName, flags: 'UO' },
        'tcp connection refused: max_connections reached',
      );
      if (ctx.onUpstream) ctx.onUpstream(false);
      else downstream.destroy();
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
      this.watch(downstream, upstream, clusterName, host.key, ctx.mtls === true);
      if (ctx.head?.length) upstream.write(ctx.head);
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
    upstream.once('error', (err) => {
      this.logger.debug({ cluster: clusterName, host: host.key, err: err.message }, 'tcp upstream error');
      if (!connected && ctx.onUpstream) ctx.onUpstream(false);
      else downstream.destroy();
    });
    downstream.once('error', () => upstream.destroy());
    upstream.once('close', () => {
      slot();
      downstream.destroy();
    });
    downstream.once('close', () => upstream.destroy());
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
