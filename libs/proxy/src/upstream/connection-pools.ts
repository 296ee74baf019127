import net from 'node:net';
import { Client, type Dispatcher, Pool } from 'undici';
import type { UpstreamTls } from '../security/tls-provider.js';
import {
  asConnectFailure,
  connectUpstream,
  type ProxyProtocolStamp,
  proxyHeaderOf,
  stampKey,
} from './connect.js';
import { H2Sessions } from './h2-sessions.js';
import { hostAuthority, type UpstreamHost } from './host.js';
import type { TcpKeepalive } from './socket-options.js';
import type { UpstreamRequestHead, UpstreamResponse } from './upstream-response.js';

interface Entry {
  pool: Pool;
  /** The connection settings it was made with; other settings get a new pool. */
  signature: string;
}

export type UpstreamProtocol = 'http1' | 'http2';

/** How a cluster wants its upstream connections made (from its Cluster resource). */
export interface ConnectionSettings {
  connectTimeoutMs: number;
  /** Close a connection idle this long (HttpProtocolOptions idle_timeout). */
  idleTimeoutMs?: number;
  /** Close a connection after this many requests (max_requests_per_connection). */
  maxRequestsPerConnection?: number;
  /** Close a connection this long after it was made, once its requests end (max_connection_duration). */
  maxConnectionDurationMs?: number;
  /** HTTP/2: streams in flight per connection before another connection opens (http2_protocol_options.max_concurrent_streams). */
  maxConcurrentStreams?: number;
  /** TCP keepalive (upstream_connection_options.tcp_keepalive): idle time, probe interval (s) and probe count. */
  tcpKeepalive?: TcpKeepalive;
  /** The local address to connect from, per IP family (the cluster's upstream_bind_config). */
  sourceAddresses?: { readonly ipv4?: string; readonly ipv6?: string };
}

/** The local address a connection to `host` is made from, when the cluster binds one for its family. */
export function sourceAddressFor(
  sources: ConnectionSettings['sourceAddresses'],
  host: string,
): string | undefined {
  if (!sources) return undefined;
  return net.isIPv6(host) ? sources.ipv6 : sources.ipv4;
}

/** The part of a pool or session key that keeps connections from different source addresses apart. */
export function sourceKey(settings: ConnectionSettings, host: UpstreamHost): string {
  const source = host.pipe ? undefined : sourceAddressFor(settings.sourceAddresses, host.address);
  return source ? `|from=${source}` : '';
}

/**
 * How undici connects to a host: through {@link connectUpstream}, so HTTP/1.1
 * connections get the cluster's TLS, timeout and socket options like every
 * other upstream connection.
 */
function connector(
  host: UpstreamHost,
  settings: ConnectionSettings,
  secure?: UpstreamTls,
  proxyHeader?: Buffer,
): Pool.Options['connect'] {
  return (options, callback) => {
    const socket = connectUpstream(host, {
      connectTimeoutMs: settings.connectTimeoutMs,
      localAddress: options.localAddress ?? undefined,
      tls: secure,
      alpn: ['http/1.1'],
      keepalive: settings.tcpKeepalive,
      proxyHeader,
    });
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      socket.off('error', finish);
      if (err) callback(asConnectFailure(err), null);
      else callback(null, socket);
    };
    socket.once(secure ? 'secureConnect' : 'connect', () => finish(null));
    socket.once('error', finish);
  };
}

/**
 * One undici Client per connection. With max_connection_duration, a
 * connection is closed that long after it was made, once its request ends
 * (undici's close waits for it), and the pool stops handing it requests
 * (clientTtl) from the same moment.
 */
function clientFactory(settings: ConnectionSettings): Pool.Options['factory'] {
  const duration = settings.maxConnectionDurationMs;
  return (origin, opts) => {
    const client = new Client(origin, opts as Client.Options);
    if (duration) {
      // A client reconnects after its connection drops: each connection gets its own lifetime.
      let timer: NodeJS.Timeout | undefined;
      client.on('connect', () => {
        clearTimeout(timer);
        timer = setTimeout(() => void client.close().catch(() => {}), duration + 1);
        timer.unref();
      });
      client.on('disconnect', () => clearTimeout(timer));
    }
    return client;
  };
}

/** Connections per upstream host; enough that a busy host is never a queue behind a few sockets. */
const MAX_CONNECTIONS_PER_HOST = 256;

/**
 * Keep-alive connection pools, one per upstream host and shared by every
 * cluster that contains the host (a service and its subsets reuse the same
 * connections). Pools for hosts no cluster uses any more are closed
 * gracefully: requests in flight finish first.
 */
export class ConnectionPools {
  private readonly pools = new Map<string, Entry>();
  private readonly h2 = new H2Sessions();
  private readonly activeByHost = new Map<string, number>();

  /** Sends one attempt to a host over HTTP/1.1 (pooled keep-alive) or HTTP/2 (one multiplexed session). */
  async dispatch(
    host: UpstreamHost,
    settings: ConnectionSettings,
    protocol: UpstreamProtocol,
    req: UpstreamRequestHead,
    tls?: UpstreamTls,
    stamp?: ProxyProtocolStamp,
  ): Promise<UpstreamResponse> {
    this.begin(host.key);
    try {
      if (protocol === 'http2') return await this.h2.request(host, settings, req, tls, stamp);
      // `te: trailers` only means something over HTTP/2.
      const { te: _te, ...headers } = req.headers;
      const res = await this.get(host, settings, tls, stamp).request({
        method: req.method as Dispatcher.HttpMethod,
        path: req.path,
        headers: headers as Record<string, string | string[]>,
        body: req.body,
        signal: req.signal as never,
        // max_requests_per_connection 1: every connection carries one request.
        ...(settings.maxRequestsPerConnection === 1 ? { reset: true } : {}),
        // The SNI is the cluster's (DestinationRule sni, Istio's outbound_.… for mesh hops): undici would
        // otherwise send each request's Host as SNI, and reconnect whenever two requests' Hosts differ.
        ...(tls?.servername ? ({ servername: tls.servername } as object) : {}),
      });
      return {
        statusCode: res.statusCode,
        headers: res.headers,
        body: res.body,
        trailers: () => res.trailers,
      };
    } finally {
      this.end(host.key);
    }
  }

  private readonly signatures = new WeakMap<ConnectionSettings, string>();

  private get(
    host: UpstreamHost,
    settings: ConnectionSettings,
    tls?: UpstreamTls,
    stamp?: ProxyProtocolStamp,
  ): Pool {
    let signature = this.signatures.get(settings);
    if (signature === undefined) {
      signature = JSON.stringify(settings);
      this.signatures.set(settings, signature);
    }
    // TLS and plaintext connections to one host are different pools; a new TLS setup replaces the old one's.
    // Connections from another source address (upstream_bind_config) are another pool too.
    const localAddress = host.pipe ? undefined : sourceAddressFor(settings.sourceAddresses, host.address);
    // With upstream_proxy_protocol each downstream connection's addresses get connections of their own, as in Envoy.
    const key = `${host.key}${sourceKey(settings, host)}${tls ? '|tls' : ''}${stampKey(stamp)}`;
    if (stamp && !this.pools.has(key)) this.sweepIdleStampedPools();
    if (tls) signature = `${signature}|${tls.key}`;
    let entry = this.pools.get(key);
    if (entry && entry.signature !== signature) {
      this.retire(key, entry);
      entry = undefined;
    }
    if (!entry) {
      const origin = `${tls ? 'https' : 'http'}://${hostAuthority(host)}`;
      const idle = settings.idleTimeoutMs ?? 30_000;
      entry = {
        pool: new Pool(origin, {
          connections: MAX_CONNECTIONS_PER_HOST,
          pipelining: 1,
          ...(localAddress ? { localAddress } : {}),
          connect: connector(host, settings, tls, proxyHeaderOf(stamp)),
          factory: clientFactory(settings),
          ...(settings.maxConnectionDurationMs ? { clientTtl: settings.maxConnectionDurationMs } : {}),
          // Route and per-try timeouts are the router's job; undici must not impose its own.
          headersTimeout: 0,
          bodyTimeout: 0,
          keepAliveTimeout: idle,
          // A configured idle timeout also caps what a server's Keep-Alive hint may ask for.
          keepAliveMaxTimeout: settings.idleTimeoutMs ?? Math.max(idle, 300_000),
          // undici resets a connection after maxRequestsPerClient + 1 requests; 1 is done per request (reset).
          ...(settings.maxRequestsPerConnection && settings.maxRequestsPerConnection > 1
            ? { maxRequestsPerClient: settings.maxRequestsPerConnection - 1 }
            : {}),
        }),
        signature,
      };
      this.pools.set(key, entry);
    }
    return entry.pool;
  }

  /** A raw HTTP/2 stream to a host on its pooled sessions (tcp_proxy tunnels). */
  openH2Stream(
    host: UpstreamHost,
    settings: ConnectionSettings,
    headers: import('node:http2').OutgoingHttpHeaders,
    tls?: UpstreamTls,
    stamp?: ProxyProtocolStamp,
  ): Promise<import('node:http2').ClientHttp2Stream> {
    return this.h2.openStream(host, settings, headers, tls, stamp);
  }

  /** Requests in flight to a host (LEAST_REQUEST reads this). */
  active(key: string): number {
    return this.activeByHost.get(key) ?? 0;
  }

  private begin(key: string): void {
    this.activeByHost.set(key, (this.activeByHost.get(key) ?? 0) + 1);
  }

  private end(key: string): void {
    const n = (this.activeByHost.get(key) ?? 1) - 1;
    if (n > 0) this.activeByHost.set(key, n);
    else this.activeByHost.delete(key);
  }

  /** Pools kept apart by PROXY header come and go with clients: those with no connection left are dropped. */
  private sweepIdleStampedPools(): void {
    for (const [key, entry] of this.pools) {
      const stats = entry.pool.stats;
      if (key.includes('|pp') && stats.connected === 0 && stats.pending === 0 && stats.running === 0)
        this.retire(key, entry);
    }
  }

  /** Closes the pools of hosts not in `keep`. */
  retainOnly(keep: ReadonlySet<string>): void {
    for (const [key, entry] of this.pools) if (!keep.has(key.split('|')[0]!)) this.retire(key, entry);
    this.h2.retainOnly(keep);
  }

  async closeAll(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    this.h2.closeAll();
    await Promise.allSettled(all.map((e) => e.pool.destroy()));
  }

  private retire(key: string, entry: Entry): void {
    this.pools.delete(key);
    void entry.pool.close().catch(() => {});
  }
}
