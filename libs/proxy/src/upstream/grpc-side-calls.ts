import { type EnvoyUnaryMethod, UnaryChannel } from '@mizzen/xds';
import type { UpstreamTls } from '../security/tls-provider.js';
import type { ClusterManager } from './cluster-manager.js';
import type { UpstreamHost } from './host.js';

/** How one side call is made: its deadline and the :authority it names (Envoy's envoy_grpc.authority). */
export interface GrpcCallOptions {
  readonly timeoutMs: number;
  readonly authority?: string;
}

interface OpenChannel {
  readonly channel: UnaryChannel;
  readonly cluster: string;
  readonly hostKey: string;
  /** The TLS setup it was made with (a rotated certificate gets a new channel). */
  readonly tlsKey: string;
  readonly authority: string;
}

/**
 * Unary gRPC calls the proxy makes on its own behalf (an external
 * authorizer's Check), as Envoy's `envoy_grpc` makes them: to a host the
 * named cluster picks (its load balancer, health and outlier ejections),
 * counted by its circuit breaker, over the cluster's TLS for that host (the
 * transport socket match Istio's auto-mTLS chose, its SNI and SAN checks),
 * with one grpc-js channel kept per host.
 */
export class GrpcSideCalls {
  private readonly channels = new Map<string, OpenChannel>();

  constructor(private readonly clusters: ClusterManager) {}

  /** One call; rejects when the cluster is unknown, has no host, is overflowing, or the call fails. */
  async unary<Req, Res>(
    clusterName: string,
    method: EnvoyUnaryMethod<Req, Res>,
    request: Req,
    options: GrpcCallOptions,
  ): Promise<Res> {
    const cluster = this.clusters.get(clusterName);
    if (!cluster) throw new Error(`cluster ${clusterName} is not configured`);
    const host = cluster.pick();
    if (!host) throw new Error(`cluster ${clusterName} has no healthy host`);
    // A gRPC call is a stream on a shared HTTP/2 connection.
    const slot = cluster.breaker.tryAcquire('http2');
    if (!slot) throw new Error(`cluster ${clusterName} is overflowing`);
    try {
      const provider = cluster.tlsFor(host);
      const secure = provider?.upstream(host);
      if (secure && 'error' in secure) throw new Error(`TLS to ${host.key}: ${secure.error}`);
      const channel = this.channelFor(clusterName, host, secure, options.authority);
      const response = await channel.call(method, request, options.timeoutMs);
      cluster.report(host.key, 'success');
      return response;
    } catch (err) {
      cluster.report(host.key, 'local-failure');
      throw err;
    } finally {
      slot();
    }
  }

  /** Closes every channel (the proxy is stopping). */
  close(): void {
    for (const open of this.channels.values()) open.channel.close();
    this.channels.clear();
  }

  private channelFor(
    cluster: string,
    host: UpstreamHost,
    secure: UpstreamTls | undefined,
    authority: string | undefined,
  ): UnaryChannel {
    this.closeStale();
    const key = `${cluster}|${host.key}`;
    const tlsKey = secure?.key ?? 'plaintext';
    const wanted = authority ?? '';
    const open = this.channels.get(key);
    if (open && open.tlsKey === tlsKey && open.authority === wanted) return open.channel;
    open?.channel.close();
    const channel = new UnaryChannel({
      address: host.address,
      port: host.port,
      ...(authority ? { authority } : {}),
      ...(secure
        ? {
            tls: {
              context: secure.context,
              verify: secure.verify,
              ...(secure.servername ? { servername: secure.servername } : {}),
            },
          }
        : {}),
    });
    this.channels.set(key, { channel, cluster, hostKey: host.key, tlsKey, authority: wanted });
    return channel;
  }

  /** Channels to hosts their cluster no longer has (EDS moved on, the cluster went away). */
  private closeStale(): void {
    for (const [key, open] of this.channels) {
      const hosts = this.clusters.get(open.cluster)?.hosts();
      if (hosts?.some((h) => h.key === open.hostKey)) continue;
      open.channel.close();
      this.channels.delete(key);
    }
  }
}
