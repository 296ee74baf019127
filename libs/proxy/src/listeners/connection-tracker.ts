import http from 'node:http';
import type http2 from 'node:http2';

/** How long a replaced listener's connections may finish their requests before they are closed. */
export const DRAIN_MS = 10_000;

/** A downstream connection as a drain sees it: an HTTP/1.1 socket or an HTTP/2 session. */
export interface Closable {
  end(): void;
  destroy(): void;
  once(event: 'close', fn: () => void): unknown;
}

/**
 * Tracks the connections an HTTP server owns so a drain can close each one as
 * soon as it is idle (and force the rest after DRAIN_MS).
 */
export class ConnectionTracker {
  private readonly inFlight = new Map<Closable, number>();
  private draining = false;

  add(conn: Closable): void {
    if (this.inFlight.has(conn)) return;
    this.inFlight.set(conn, 0);
    conn.once('close', () => this.inFlight.delete(conn));
  }

  begin(conn: Closable, res: http.ServerResponse | http2.Http2ServerResponse): void {
    this.add(conn);
    this.inFlight.set(conn, (this.inFlight.get(conn) ?? 0) + 1);
    if (this.draining && res instanceof http.ServerResponse) res.shouldKeepAlive = false;
    res.once('close', () => {
      const n = (this.inFlight.get(conn) ?? 1) - 1;
      this.inFlight.set(conn, n);
      if (this.draining && n === 0) conn.end();
    });
  }

  drain(): void {
    this.draining = true;
    for (const [conn, n] of this.inFlight) if (n === 0) conn.end();
    const timer = setTimeout(() => {
      for (const conn of this.inFlight.keys()) conn.destroy();
    }, DRAIN_MS);
    timer.unref();
  }
}

/** An HTTP/2 session as a Closable: `end` is a graceful GOAWAY. */
export function sessionHandle(session: http2.ServerHttp2Session): Closable {
  return {
    end: () => session.close(),
    destroy: () => session.destroy(),
    once: (_event, fn) => session.once('close', fn),
  };
}
