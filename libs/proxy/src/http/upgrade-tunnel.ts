import { type IncomingMessage, ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HeaderMap } from '../config/headers.js';
import type { UpstreamTls } from '../security/tls-provider.js';
import { connectUpstream } from '../upstream/connect.js';
import type { UpstreamHost } from '../upstream/host.js';
import type { TcpKeepalive } from '../upstream/socket-options.js';

/** The most an upstream may send before its response head is complete. */
const MAX_RESPONSE_HEAD = 64 * 1024;

export interface UpgradeRequest {
  readonly method: string;
  readonly path: string;
  /** End-to-end headers, `host` included; the upgrade headers are added here. */
  readonly headers: HeaderMap;
  /** The protocol asked for (`websocket`). */
  readonly protocol: string;
  /** Bytes the client sent after its request head (already read by the HTTP parser). */
  readonly head: Buffer;
}

export type TunnelOutcome =
  | { kind: 'upgraded'; status: 101; upstream: Duplex }
  | { kind: 'refused'; status: number }
  | { kind: 'failed'; reason: 'connect-failure' | 'timeout' | 'reset' | 'bad-response'; message: string };

/** The HTTP/1.1 request head that asks the upstream to switch protocols. */
function requestHead(req: UpgradeRequest): string {
  const lines = [`${req.method} ${req.path} HTTP/1.1`];
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  lines.push('connection: upgrade', `upgrade: ${req.protocol}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * Opens a connection to `host` (TLS when the cluster's transport says so,
 * HTTP/1.1 by ALPN: upgrades are HTTP/1.1's), sends the upgrade request and
 * reads the answer's head. A 101 hands back the raw upstream stream for the
 * two sides to be joined; anything else is relayed to the client as is
 * (`downstream` gets the bytes) and the exchange ends there.
 */
export function openUpgradeTunnel(
  host: UpstreamHost,
  req: UpgradeRequest,
  downstream: Duplex,
  opts: {
    tls?: UpstreamTls;
    connectTimeoutMs?: number;
    headTimeoutMs?: number;
    localAddress?: string;
    /** The cluster's TCP keepalive for the tunnel's upstream connection. */
    keepalive?: TcpKeepalive;
    /** A PROXY protocol header for the upstream, first thing on the connection. */
    proxyHeader?: Buffer;
  },
): Promise<TunnelOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (o: TunnelOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    const upstream = connectUpstream(host, {
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      localAddress: opts.localAddress,
      ...(opts.tls ? { tls: opts.tls } : {}),
      alpn: ['http/1.1'],
      keepalive: opts.keepalive,
      proxyHeader: opts.proxyHeader,
    });
    let connected = false;
    const expire = () => {
      upstream.destroy();
      finish(
        connected
          ? { kind: 'failed', reason: 'timeout', message: 'no upgrade response in time' }
          : { kind: 'failed', reason: 'connect-failure', message: 'connect timeout' },
      );
    };
    let timer = setTimeout(expire, opts.connectTimeoutMs ?? 10_000);
    const onConnected = () => {
      connected = true;
      clearTimeout(timer);
      // The route timeout bounds the wait for the answer; once upgraded, the tunnel has no timeout (as Envoy's).
      if (opts.headTimeoutMs) timer = setTimeout(expire, opts.headTimeoutMs);
      upstream.write(requestHead(req));
      if (req.head.length) upstream.write(req.head);
    };
    upstream.once(opts.tls ? 'secureConnect' : 'connect', onConnected);
    upstream.once('error', (err) =>
      finish({ kind: 'failed', reason: connected ? 'reset' : 'connect-failure', message: err.message }),
    );
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.length > MAX_RESPONSE_HEAD) {
          upstream.destroy();
          finish({ kind: 'failed', reason: 'bad-response', message: 'upgrade response head too large' });
        }
        return;
      }
      upstream.off('data', onData);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(buffered.subarray(0, end).toString('latin1'))?.[1]);
      if (!Number.isInteger(status)) {
        upstream.destroy();
        finish({ kind: 'failed', reason: 'bad-response', message: 'the upstream did not answer HTTP/1.1' });
        return;
      }
      // The head and whatever followed it go to the client verbatim: the upstream speaks for itself now.
      downstream.write(buffered);
      if (status === 101) {
        finish({ kind: 'upgraded', status: 101, upstream });
        return;
      }
      upstream.pipe(downstream);
      finish({ kind: 'refused', status });
    };
    upstream.on('data', onData);
    upstream.once('close', () =>
      finish({ kind: 'failed', reason: 'reset', message: 'the upstream closed before answering' }),
    );
  });
}

/**
 * A response bound to the raw socket of an upgrade request, for answers
 * before any tunnel exists (denials, 503s, 403 for a disallowed upgrade);
 * the connection closes once such an answer is sent.
 */
export function responseOnSocket(req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new ServerResponse(req);
  res.assignSocket(socket as net.Socket);
  res.shouldKeepAlive = false;
  res.once('finish', () => socket.end());
  socket.once('error', () => socket.destroy());
  return res;
}

/** Joins two streams both ways until either ends; `onClose` runs once when both are done. */
export function joinStreams(a: Duplex, b: Duplex, onClose: () => void): void {
  let open = 2;
  const done = () => {
    if (--open === 0) onClose();
  };
  a.pipe(b);
  b.pipe(a);
  const teardown = () => {
    a.destroy();
    b.destroy();
  };
  a.once('error', teardown);
  b.once('error', teardown);
  a.once('close', () => {
    b.end();
    done();
  });
  b.once('close', () => {
    a.end();
    done();
  });
}
