import { Pool } from 'undici';
import type { UpstreamHost } from './host.js';

interface Entry {
  pool: Pool;
  /** The connection settings it was made with; other settings get a new pool. */
  signature: string;
  active: number;
}

/** How a cluster wants its upstream connections made (from its Cluster resource). */
export interface ConnectionSettings {
  connectTimeoutMs: number;
  /** Close a connection idle this long (HttpProtocolOptions idle_timeout). */
  idleTimeoutMs?: number;
  /** Close a connection after this many requests (max_requests_per_connection). */
  maxRequestsPerConnection?: number;
  /** TCP keepalive probes after this long idle. */
  keepaliveInitialDelayMs?: number;
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

  private readonly signatures = new WeakMap<ConnectionSettings, string>();

  get(host: UpstreamHost, settings: ConnectionSettings): Pool {
    let signature = this.signatures.get(settings);
    if (signature === undefined) {
      signature = JSON.stringify(settings);
      this.signatures.set(settings, signature);
    }
    let entry = this.pools.get(host.key);
    if (entry && entry.signature !== signature) {
      this.retire(host.key, entry);
      entry = undefined;
    }
    if (!entry) {
      const origin = `http://${host.key}`;
      const idle = settings.idleTimeoutMs ?? 30_000;
      entry = {
        pool: new Pool(origin, {
          connections: MAX_CONNECTIONS_PER_HOST,
          pipelining: 1,
          connect: {
            timeout: settings.connectTimeoutMs,
            ...(settings.keepaliveInitialDelayMs !== undefined
              ? { keepAlive: true, keepAliveInitialDelay: settings.keepaliveInitialDelayMs }
              : {}),
          },
          // Route and per-try timeouts are the router's job; undici must not impose its own.
          headersTimeout: 0,
          bodyTimeout: 0,
          keepAliveTimeout: idle,
          keepAliveMaxTimeout: Math.max(idle, 300_000),
          ...(settings.maxRequestsPerConnection
            ? { maxRequestsPerClient: settings.maxRequestsPerConnection }
            : {}),
        }),
        signature,
        active: 0,
      };
      this.pools.set(host.key, entry);
    }
    return entry.pool;
  }

  /** Requests in flight to a host (LEAST_REQUEST reads this). */
  active(key: string): number {
    return this.pools.get(key)?.active ?? 0;
  }

  begin(key: string): void {
    const e = this.pools.get(key);
    if (e) e.active++;
  }

  end(key: string): void {
    const e = this.pools.get(key);
    if (e && e.active > 0) e.active--;
  }

  /** Closes the pools of hosts not in `keep`. */
  retainOnly(keep: ReadonlySet<string>): void {
    for (const [key, entry] of this.pools) if (!keep.has(key)) this.retire(key, entry);
  }

  async closeAll(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.map((e) => e.pool.destroy()));
  }

  private retire(key: string, entry: Entry): void {
    this.pools.delete(key);
    void entry.pool.close().catch(() => {});
  }
}
