import net from 'node:net';
import tls from 'node:tls';
import { encodeProxyHeader, type ProxyEndpoint } from '../listeners/proxy-protocol.js';
import type { UpstreamTls } from '../security/tls-provider.js';
import { socketPath, type UpstreamHost } from './host.js';
import { applyUpstreamSocketOptions, type TcpKeepalive } from './socket-options.js';

/**
 * What a cluster with upstream_proxy_protocol tells the host about the
 * downstream connection a request or tunnel came on.
 */
export interface ProxyProtocolStamp {
  readonly version: 1 | 2;
  readonly source: ProxyEndpoint;
  readonly destination: ProxyEndpoint;
}

/** The PROXY header for a stamp. */
export function proxyHeaderOf(stamp: ProxyProtocolStamp | undefined): Buffer | undefined {
  return stamp ? encodeProxyHeader(stamp.version, stamp.source, stamp.destination) : undefined;
}

/** Keeps connections carrying different PROXY headers apart: a pool or session key part. */
export function stampKey(stamp: ProxyProtocolStamp | undefined): string {
  if (!stamp) return '';
  const { version, source: s, destination: d } = stamp;
  return `|pp${version}=${s.address}:${s.port}>${d.address}:${d.port}`;
}

/** How one upstream connection is made: the cluster's transport, source address, timeout and socket options. */
export interface UpstreamConnectOptions {
  readonly connectTimeoutMs: number;
  /** upstream_bind_config's address for the host's family. */
  readonly localAddress?: string;
  /** TLS origination (the cluster's transport socket, or the match for this host). */
  readonly tls?: UpstreamTls;
  /** ALPN offered over TLS: `h2` for HTTP/2 sessions, `http/1.1` for pools and upgrades. */
  readonly alpn?: readonly string[];
  /** upstream_connection_options.tcp_keepalive. */
  readonly keepalive?: TcpKeepalive;
  /** A PROXY protocol header to send before anything else, TLS included (upstream_proxy_protocol). */
  readonly proxyHeader?: Buffer;
}

/** The code of an upstream connection that failed before it was up, for errors that bring none (a refused peer identity). */
export const CONNECT_FAILED = 'UPSTREAM_CONNECT_FAILED';

/** An error from before the connection was up, marked so the router counts it as a connect failure (UF), never a reset. */
export function asConnectFailure(err: Error): Error {
  const e = err as Error & { code?: string };
  return e.code ? e : Object.assign(e, { code: CONNECT_FAILED });
}

/** The error a connection that took longer than the cluster's connect_timeout fails with (classified as a connect failure). */
export function connectTimeoutError(): Error {
  return Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' });
}

/**
 * Opens a connection to an upstream host as its cluster says: from the bound
 * source address, over TLS when the transport asks for it, failing with
 * UND_ERR_CONNECT_TIMEOUT after connect_timeout, and with the cluster's
 * socket options set as soon as the TCP connection is up (a kernel that
 * refuses them fails the connection). The socket is returned at once; it
 * emits 'connect' (and 'secureConnect' over TLS) as usual.
 */
export function connectUpstream(host: UpstreamHost, o: UpstreamConnectOptions): net.Socket {
  const base = host.pipe
    ? { path: socketPath(host.address), timeout: o.connectTimeoutMs }
    : {
        host: host.address,
        port: host.port,
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
        timeout: o.connectTimeoutMs,
      };
  // The PROXY header goes out first, before the TLS handshake: TLS then runs over that TCP connection.
  const raw = o.proxyHeader || !o.tls ? net.connect(base) : undefined;
  if (raw && o.proxyHeader) raw.write(o.proxyHeader);
  const tlsOptions = o.tls
    ? {
        secureContext: o.tls.context,
        ...(o.tls.servername ? { servername: o.tls.servername } : {}),
        ...(o.alpn ? { ALPNProtocols: [...o.alpn] } : {}),
        rejectUnauthorized: true,
        checkServerIdentity: o.tls.verify,
      }
    : undefined;
  const socket: net.Socket = tlsOptions
    ? raw
      ? tls.connect({ ...tlsOptions, socket: raw })
      : tls.connect({ ...base, ...tlsOptions })
    : raw!;
  const tcp = raw ?? socket;
  tcp.setNoDelay(true);
  // TCP keepalive is a TCP option: a Unix socket has none to set.
  if (!host.pipe)
    tcp.once('connect', () => {
      try {
        applyUpstreamSocketOptions(tcp, o.keepalive);
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
  if (raw && socket !== raw) {
    // TLS over our own TCP socket: its errors and timeout are the connection's.
    raw.once('error', (err) => socket.destroy(err));
    raw.once('timeout', () => socket.destroy(connectTimeoutError()));
    socket.once('secureConnect', () => raw.setTimeout(0));
    return socket;
  }
  // The connect timeout covers the TLS handshake too; once up, the connection has no socket timeout.
  socket.once(o.tls ? 'secureConnect' : 'connect', () => socket.setTimeout(0));
  socket.once('timeout', () => socket.destroy(connectTimeoutError()));
  return socket;
}
