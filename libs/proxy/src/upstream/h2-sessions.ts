import http2 from 'node:http2';
import type { UpstreamTls } from '../security/tls-provider.js';
import { connectUpstream, type ProxyProtocolStamp, proxyHeaderOf, stampKey } from './connect.js';
import { type ConnectionSettings, sourceAddressFor, sourceKey } from './connection-pools.js';
import { hostAuthority, type UpstreamHost } from './host.js';
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

/** Envoy's default idle_timeout for upstream connections: a session with no stream this long is closed. */
const DEFAULT_IDLE_MS = 3_600_000;

/** One HTTP/2 connection to a host and what it has carried. */
interface Session {
  readonly session: http2.ClientHttp2Session;
  readonly ready: Promise<void>;
  /** Streams open on it now. */
  active: number;
  /** Streams ever handed out on it (max_requests_per_connection counts these). */
  started: number;
  /** Takes no new stream: it reached max_requests_per_connection or max_connection_duration, or was told to go away. */
  retiring: boolean;
  idleTimer?: NodeJS.Timeout;
  lifeTimer?: NodeJS.Timeout;
  /** The last stream the server said it processed, once it sent GOAWAY. */
  goawayLastStreamId?: number;
}

/**
 * Cleartext or TLS HTTP/2 to upstream hosts, as Envoy's HTTP/2 connection
 * pool: requests to a host share a multiplexed session (sidecar to sidecar,
 * and gRPC servers), a new session opens when every session of the host has
 * its max_concurrent_streams (the cluster's, or fewer if the server's
 * SETTINGS say so) in flight, a session that has carried
 * max_requests_per_connection streams or lived max_connection_duration takes
 * no more and closes once its streams end (GOAWAY, gracefully), and one with
 * no stream for idle_timeout (an hour by default) is closed. A session that
 * fails or is told to go away is replaced on the next request.
 */
export class H2Sessions {
  /** Sessions by host, source address, TLS and connection settings (clusters with other settings do not share). */
  private readonly pools = new Map<string, Session[]>();
  private readonly signatures = new WeakMap<ConnectionSettings, string>();

  request(
    host: UpstreamHost,
    settings: ConnectionSettings,
    req: UpstreamRequestHead,
    secure?: UpstreamTls,
    stamp?: ProxyProtocolStamp,
  ): Promise<UpstreamResponse> {
    const entry = this.acquire(host, settings, secure, stamp);
    return entry.ready.then(
      () => this.stream(entry, settings, req),
      (err) => {
        this.release(entry, settings);
        throw err;
      },
    );
  }

  /**
   * A raw stream on a pooled session (a CONNECT or POST tunnel for tcp_proxy):
   * the caller owns it; its end gives the session's slot back.
   */
  async openStream(
    host: UpstreamHost,
    settings: ConnectionSettings,
    headers: http2.OutgoingHttpHeaders,
    secure?: UpstreamTls,
    stamp?: ProxyProtocolStamp,
  ): Promise<http2.ClientHttp2Stream> {
    const entry = this.acquire(host, settings, secure, stamp);
    try {
      await entry.ready;
    } catch (err) {
      this.release(entry, settings);
      throw err;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = entry.session.request(headers, { endStream: false });
    } catch (err) {
      this.release(entry, settings);
      throw new H2Error((err as Error).message, 'UND_ERR_CLOSED');
    }
    stream.once('close', () => this.release(entry, settings));
    return stream;
  }

  /** Closes sessions to hosts not in `keep`; streams in flight finish first. */
  retainOnly(keep: ReadonlySet<string>): void {
    for (const [key, list] of this.pools) {
      if (keep.has(key.split('|')[0]!)) continue;
      this.pools.delete(key);
      for (const e of list) this.retire(e);
    }
  }

  closeAll(): void {
    for (const list of this.pools.values()) {
      for (const e of list) {
        clearTimeout(e.idleTimer);
        clearTimeout(e.lifeTimer);
        e.session.destroy();
      }
    }
    this.pools.clear();
  }

  private keyOf(
    host: UpstreamHost,
    settings: ConnectionSettings,
    secure?: UpstreamTls,
    stamp?: ProxyProtocolStamp,
  ): string {
    let signature = this.signatures.get(settings);
    if (signature === undefined) {
      signature = JSON.stringify(settings);
      this.signatures.set(settings, signature);
    }
    return `${host.key}${sourceKey(settings, host)}${secure ? `|${secure.key}` : ''}${stampKey(stamp)}|${signature}`;
  }

  /** A session with room for one more stream (opening one if none has), with that stream counted on it. */
  private acquire(
    host: UpstreamHost,
    settings: ConnectionSettings,
    secure?: UpstreamTls,
    stamp?: ProxyProtocolStamp,
  ): Session {
    const key = this.keyOf(host, settings, secure, stamp);
    const list = this.pools.get(key) ?? [];
    let entry = list.find((e) => this.hasRoom(e, settings));
    if (!entry) {
      entry = this.open(key, host, settings, secure, proxyHeaderOf(stamp));
      list.push(entry);
      this.pools.set(key, list);
    }
    entry.active++;
    entry.started++;
    clearTimeout(entry.idleTimer);
    const max = settings.maxRequestsPerConnection;
    if (max && entry.started >= max) entry.retiring = true;
    return entry;
  }

  private hasRoom(e: Session, settings: ConnectionSettings): boolean {
    if (e.retiring || e.session.closed || e.session.destroyed) return false;
    const peer = e.session.remoteSettings?.maxConcurrentStreams;
    const limit = Math.min(
      settings.maxConcurrentStreams ?? Number.POSITIVE_INFINITY,
      peer && peer > 0 ? peer : Number.POSITIVE_INFINITY,
    );
    return e.active < limit;
  }

  /** A stream on the session ended: a session left with none starts its idle timer. */
  private release(e: Session, settings: ConnectionSettings): void {
    e.active--;
    if (e.retiring) this.closeIfDone(e);
    if (e.active > 0 || e.retiring) return;
    const idle = settings.idleTimeoutMs ?? DEFAULT_IDLE_MS;
    e.idleTimer = setTimeout(() => {
      e.retiring = true;
      this.retire(e);
    }, idle);
    e.idleTimer.unref();
  }

  /** Takes a session out of use; it closes once the streams handed out on it have ended. */
  private retire(e: Session): void {
    e.retiring = true;
    clearTimeout(e.idleTimer);
    clearTimeout(e.lifeTimer);
    this.closeIfDone(e);
  }

  /** Closes a retiring session (GOAWAY to the server) once every stream handed out on it has ended. */
  private closeIfDone(e: Session): void {
    if (!e.retiring || e.active > 0) return;
    if (!e.session.closed && !e.session.destroyed) e.session.close();
  }

  private open(
    key: string,
    host: UpstreamHost,
    settings: ConnectionSettings,
    secure?: UpstreamTls,
    proxyHeader?: Buffer,
  ): Session {
    const session = http2.connect(`${secure ? 'https' : 'http'}://${hostAuthority(host)}`, {
      createConnection: () =>
        connectUpstream(host, {
          connectTimeoutMs: settings.connectTimeoutMs,
          localAddress: host.pipe ? undefined : sourceAddressFor(settings.sourceAddresses, host.address),
          tls: secure,
          alpn: ['h2'],
          keepalive: settings.tcpKeepalive,
          proxyHeader,
        }),
      settings: { enablePush: false },
    });
    const ready = new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', (err: NodeJS.ErrnoException) => {
        // Failing before the session is up (refused, unreachable, TLS rejected) never carried a request.
        reject(new H2Error(err.message, 'H2_CONNECT_FAILED'));
      });
    });
    ready.catch(() => {});
    const entry: Session = { session, ready, active: 0, started: 0, retiring: false };
    const forget = () => {
      entry.retiring = true;
      clearTimeout(entry.idleTimer);
      clearTimeout(entry.lifeTimer);
      const list = this.pools.get(key);
      const i = list?.indexOf(entry) ?? -1;
      if (i >= 0) list!.splice(i, 1);
      if (list?.length === 0 && this.pools.get(key) === list) this.pools.delete(key);
    };
    session.on('error', forget);
    session.on('goaway', (_code: number, lastStreamId: number) => {
      entry.goawayLastStreamId = lastStreamId;
      forget();
    });
    session.on('close', forget);
    if (settings.maxConnectionDurationMs) {
      // Counted from the connection's start, as Envoy's max_connection_duration.
      entry.lifeTimer = setTimeout(() => this.retire(entry), settings.maxConnectionDurationMs);
      entry.lifeTimer.unref();
    }
    session.unref();
    return entry;
  }

  private stream(
    entry: Session,
    settings: ConnectionSettings,
    req: UpstreamRequestHead,
  ): Promise<UpstreamResponse> {
    const session = entry.session;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.release(entry, settings);
    };
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
        release();
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
        release();
        req.signal.off('abort', onAbort);
        if (answered) return;
        const code = req.signal.aborted
          ? 'UND_ERR_ABORTED'
          : unprocessedAfterGoaway(entry, stream) && !isStreamed(req.body)
            ? 'H2_GOAWAY_UNPROCESSED'
            : stream.rstCode === NGHTTP2_REFUSED_STREAM
              ? 'REFUSED_STREAM'
              : 'ECONNRESET';
        reject(new H2Error(`stream closed before a response (code ${stream.rstCode})`, code));
      });
      stream.on('error', () => {});
      if (Buffer.isBuffer(req.body)) stream.end(req.body);
      else if (req.body) (req.body as import('node:stream').Readable).pipe(stream);
    });
  }
}

/**
 * A stream the server never processed: it was sent after the last one the
 * server's GOAWAY names (or never got an id). RFC 9113 §6.8 makes such a
 * request safe to send again on a new connection whatever the retry policy,
 * which matters because a Node server cannot send Envoy's GOAWAY "shutdown
 * notice" first: a draining sidecar's GOAWAY always races the streams its
 * peer is sending.
 */
function unprocessedAfterGoaway(entry: Session, stream: http2.ClientHttp2Stream): boolean {
  if (entry.goawayLastStreamId === undefined) return false;
  return stream.id === undefined || stream.id > entry.goawayLastStreamId;
}

/** A body being piped: once the stream took some of it, it cannot be sent again. */
function isStreamed(body: UpstreamRequestHead['body']): boolean {
  return body !== null && !Buffer.isBuffer(body);
}
