import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import type { UpstreamTls } from '../security/tls-provider.js';
import { type ConnectionSettings, sourceAddressFor, sourceKey } from './connection-pools.js';
import type { UpstreamHost } from './host.js';
import { applyUpstreamSocketOptions } from './socket-options.js';
import type { UpstreamHeaders, UpstreamRequestHead, UpstreamResponse } from './upstream-response.js';

/** An error from an HTTP/2 attempt, with the code the router classifies. */
export class H2Error extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL } = http2.constants;

/** The cluster's socket options on a new session's connection; one the kernel refuses fails the session. */
function withSocketOptions(socket: net.Socket, settings: ConnectionSettings): void {
  try {
    applyUpstreamSocketOptions(socket, settings.tcpKeepalive);
  } catch (err) {
    socket.destroy(err as Error);
  }
}

/**
 * Cleartext HTTP/2 to upstream hosts: one multiplexed session per host, so
 * many requests share one connection (sidecar to sidecar, and gRPC servers).
 * A session that fails or is told to go away is replaced on the next request.
 */
export class H2Sessions {
  private readonly sessions = new Map<string, { session: http2.ClientHttp2Session; ready: Promise<void> }>();

  request(
    host: UpstreamHost,
    settings: ConnectionSettings,
    req: UpstreamRequestHead,
    secure?: UpstreamTls,
  ): Promise<UpstreamResponse> {
    const entry = this.session(host, settings, secure);
    return entry.ready.then(() => this.stream(entry.session, req));
  }

  /** Closes sessions to hosts not in `keep`; streams in flight finish first. */
  retainOnly(keep: ReadonlySet<string>): void {
    for (const [key, e] of this.sessions) {
      if (!keep.has(key.split('|')[0]!)) {
        this.sessions.delete(key);
        e.session.close();
      }
    }
  }

  closeAll(): void {
    for (const e of this.sessions.values()) e.session.destroy();
    this.sessions.clear();
  }

  private session(host: UpstreamHost, settings: ConnectionSettings, secure?: UpstreamTls) {
    const key = `${host.key}${sourceKey(settings, host)}${secure ? `|${secure.key}` : ''}`;
    const localAddress = sourceAddressFor(settings.sourceAddresses, host.address);
    const existing = this.sessions.get(key);
    if (existing && !existing.session.closed && !existing.session.destroyed) return existing;
    const session = http2.connect(`${secure ? 'https' : 'http'}://${host.key}`, {
      createConnection: () => {
        if (secure) {
          const socket = tls.connect({
            host: host.address,
            port: host.port,
            ...(localAddress ? { localAddress } : {}),
            secureContext: secure.context,
            servername: secure.servername,
            ALPNProtocols: ['h2'],
            rejectUnauthorized: true,
            checkServerIdentity: secure.verify,
            timeout: settings.connectTimeoutMs,
          });
          socket.setNoDelay(true);
          socket.once('secureConnect', () => {
            socket.setTimeout(0);
            withSocketOptions(socket, settings);
          });
          socket.once('timeout', () =>
            socket.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })),
          );
          return socket;
        }
        const socket = net.connect({
          host: host.address,
          port: host.port,
          ...(localAddress ? { localAddress } : {}),
          noDelay: true,
          timeout: settings.connectTimeoutMs,
        });
        socket.once('connect', () => {
          socket.setTimeout(0);
          withSocketOptions(socket, settings);
        });
        socket.once('timeout', () =>
          socket.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })),
        );
        return socket;
      },
      settings: { enablePush: false },
    });
    const forget = () => {
      if (this.sessions.get(key)?.session === session) this.sessions.delete(key);
    };
    const ready = new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', (err: NodeJS.ErrnoException) => {
        forget();
        // Failing before the session is up (refused, unreachable, TLS rejected) never carried a request.
        reject(new H2Error(err.message, 'H2_CONNECT_FAILED'));
      });
    });
    ready.catch(() => {});
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    if (settings.idleTimeoutMs) session.setTimeout(settings.idleTimeoutMs, () => session.close());
    session.unref();
    const entry = { session, ready };
    this.sessions.set(key, entry);
    return entry;
  }

  private stream(session: http2.ClientHttp2Session, req: UpstreamRequestHead): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      const { host, ...rest } = req.headers;
      const headers: http2.OutgoingHttpHeaders = {
        ':method': req.method,
        ':path': req.path,
        ':scheme': 'http',
        ':authority': String(host ?? ''),
      };
      for (const [k, v] of Object.entries(rest)) if (v !== undefined) headers[k] = v;
      // A known length lets the next proxy buffer the body for retries instead of streaming it.
      if (Buffer.isBuffer(req.body) && headers['content-length'] === undefined)
        headers['content-length'] = req.body.length;
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request(headers, { endStream: req.body === null });
      } catch (err) {
        reject(new H2Error((err as Error).message, 'UND_ERR_CLOSED'));
        return;
      }
      let trailers: UpstreamHeaders = {};
      let answered = false;
      const onAbort = () => stream.close(NGHTTP2_CANCEL);
      req.signal.once('abort', onAbort);
      stream.on('trailers', (t) => {
        trailers = t as UpstreamHeaders;
      });
      stream.once('response', (h, flags) => {
        answered = true;
        const { ':status': status, ...responseHeaders } = h;
        resolve({
          statusCode: Number(status),
          headers: responseHeaders as UpstreamHeaders,
          body: stream,
          trailers: () => trailers,
          headersOnly: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0,
        });
      });
      stream.once('close', () => {
        req.signal.off('abort', onAbort);
        if (answered) return;
        const code =
          stream.rstCode === NGHTTP2_REFUSED_STREAM
            ? 'REFUSED_STREAM'
            : req.signal.aborted
              ? 'UND_ERR_ABORTED'
              : 'ECONNRESET';
        reject(new H2Error(`stream closed before a response (code ${stream.rstCode})`, code));
      });
      stream.on('error', () => {});
      if (Buffer.isBuffer(req.body)) stream.end(req.body);
      else if (req.body) (req.body as import('node:stream').Readable).pipe(stream);
    });
  }
}
