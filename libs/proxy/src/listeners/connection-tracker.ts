import http from 'node:http';
import type http2 from 'node:http2';

/** How long a replaced listener's connections may finish their requests before they are closed. */
export const DRAIN_MS = 10_000;

/**
 * How long a draining connection must have been idle before it is closed. A
 * keep-alive client may be writing its next request at the very moment an idle
 * connection is closed, and that request is then lost (HTTP/1.1 has no way to
 * say "not processed"); clients send their next request right after the last
 * answer, so closing only connections that have been quiet for a while keeps
 * that race to the rare client that pauses exactly this long. A request that
 * does arrive is answered with `Connection: close`.
 */
export const DRAIN_IDLE_MS = 1_000;

/** A downstream connection as a drain sees it: an HTTP/1.1 socket or an HTTP/2 session. */
export interface Closable {
  end(): void;
  destroy(): void;
  once(event: 'close', fn: () => void): unknown;
  /**
   * `end` is safe at any moment: an HTTP/2 GOAWAY lets the streams in flight
   * finish and tells the client which ones were taken, so it sends the rest
   * on a new connection (to the new listener).
   */
  readonly multiplexed?: boolean;
}

interface Tracked {
  /** Requests in flight on the connection. */
  active: number;
  /** When it last became idle. */
  idleSince: number;
}

/**
 * Tracks the connections an HTTP server owns so a drain can close each one:
 * an HTTP/2 session at once with a graceful GOAWAY (as Envoy's immediate
 * drain does — its next requests go to the new listener), an HTTP/1.1
 * connection once it is idle, and whatever is left after DRAIN_MS.
 */
export class ConnectionTracker {
  private readonly connections = new Map<Closable, Tracked>();
  private draining = false;
  private sweeper?: NodeJS.Timeout;

  add(conn: Closable): void {
    if (this.connections.has(conn)) return;
    this.connections.set(conn, { active: 0, idleSince: Date.now() });
    conn.once('close', () => this.connections.delete(conn));
  }

  begin(conn: Closable, res: http.ServerResponse | http2.Http2ServerResponse): void {
    this.add(conn);
    const tracked = this.connections.get(conn)!;
    tracked.active++;
    // A session that reached a draining listener gets its GOAWAY too; this stream still completes.
    if (this.draining && conn.multiplexed) conn.end();
    // HTTP/1.1 answers on a draining listener say `Connection: close`, and the server closes after them.
    if (this.draining && res instanceof http.ServerResponse) res.shouldKeepAlive = false;
    res.once('close', () => {
      tracked.active = Math.max(0, tracked.active - 1);
      if (tracked.active === 0) tracked.idleSince = Date.now();
    });
  }

  drain(): void {
    if (this.draining) return;
    this.draining = true;
    const started = Date.now();
    for (const conn of this.connections.keys()) if (conn.multiplexed) conn.end();
    this.sweeper = setInterval(() => {
      const now = Date.now();
      if (now - started >= DRAIN_MS) {
        for (const conn of this.connections.keys()) conn.destroy();
      } else {
        for (const [conn, t] of this.connections)
          if (t.active === 0 && now - t.idleSince >= DRAIN_IDLE_MS) conn.end();
      }
      if (this.connections.size === 0 || now - started >= DRAIN_MS) clearInterval(this.sweeper);
    }, DRAIN_IDLE_MS / 4);
    this.sweeper.unref();
  }
}

/** An HTTP/2 session as a Closable: `end` is a graceful GOAWAY. */
export function sessionHandle(session: http2.ServerHttp2Session): Closable {
  return {
    end: () => {
      if (!session.closed && !session.destroyed) session.close();
    },
    destroy: () => session.destroy(),
    once: (_event, fn) => session.once('close', fn),
    multiplexed: true,
  };
}
