import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { UpstreamHost } from '../upstream/host.js';
import type {
  PeerMetadata,
  ProxyObserver,
  TcpConnectionRecord,
  TcpConnectionStart,
  TcpObservation,
} from './records.js';

/** How often a live connection reports its bytes (Istio's proxies report TCP metrics every few seconds). */
const PROGRESS_INTERVAL_MS = 5_000;

/** What is known about an inbound connection's caller when it is accepted. */
export interface TcpDownstreamFacts {
  /** The connection came over mutual TLS (a chain terminated it). */
  readonly mtls: boolean;
  readonly sourcePrincipal?: string;
  /** The caller's workload, when its identity names one. */
  readonly peer?: PeerMetadata;
}

/**
 * One connection tcp_proxy handles, as the observers see it: started when
 * accepted, reported once the upstream is up and then every few seconds with
 * its bytes, ended exactly once — when it closes, or at once with Envoy's
 * flag when it cannot be proxied (`NC`, `UH`, `UF`), so failed connections
 * are counted too.
 */
export class ObservedTcpConnection {
  private readonly observation?: TcpObservation;
  private readonly began = performance.now();
  private host?: UpstreamHost;
  private destinationPrincipal?: string;
  private upstreamMtls = false;
  private received = 0;
  private sent = 0;
  private flags = '-';
  private timer?: NodeJS.Timeout;
  private ended = false;

  constructor(
    observer: ProxyObserver | undefined,
    private readonly start: TcpConnectionStart,
    private readonly downstream: TcpDownstreamFacts,
  ) {
    this.observation = observer?.startTcp?.(start);
  }

  /** The host picked: its address, and (outbound) the workload pilot says runs there. */
  picked(host: UpstreamHost): void {
    this.host = host;
  }

  /** The upstream is up: bytes are counted both ways, and the connection ends when either side closes. */
  connected(
    downstream: net.Socket,
    upstream: Duplex,
    opts: { head?: Buffer; upstreamMtls: boolean; destinationPrincipal?: string },
  ): void {
    if (!this.observation) return;
    this.upstreamMtls = opts.upstreamMtls;
    this.destinationPrincipal = opts.destinationPrincipal;
    this.received += opts.head?.length ?? 0;
    downstream.on('data', (c: Buffer) => {
      this.received += c.length;
    });
    upstream.on('data', (c: Buffer) => {
      this.sent += c.length;
    });
    this.observation.progress?.(this.snapshot());
    if (this.observation.progress) {
      this.timer = setInterval(() => this.observation!.progress!(this.snapshot()), PROGRESS_INTERVAL_MS);
      this.timer.unref();
    }
    downstream.once('close', () => this.end());
    upstream.once('close', () => this.end());
  }

  /**
   * The connection could not be proxied: `NC` (no cluster), `UH` (no healthy
   * host), `UO` (the cluster's max_connections reached), `UF` (connecting
   * failed), `DC` (the caller left first).
   */
  failed(flags: 'NC' | 'UH' | 'UO' | 'UF' | 'DC'): void {
    this.flags = flags;
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    this.observation?.end(this.snapshot());
  }

  private snapshot(): TcpConnectionRecord {
    const outbound = this.start.direction === 'outbound';
    const peer = outbound ? this.host?.identity?.peer : this.downstream.peer;
    const mtls = outbound ? this.upstreamMtls : this.downstream.mtls;
    return {
      ...this.start,
      ...(this.host ? { upstreamHost: this.host.key } : {}),
      durationMs: performance.now() - this.began,
      receivedBytes: this.received,
      sentBytes: this.sent,
      responseFlags: this.flags,
      connectionSecurityPolicy: mtls ? 'mutual_tls' : 'none',
      ...(peer ? { peer } : {}),
      ...(this.downstream.sourcePrincipal ? { sourcePrincipal: this.downstream.sourcePrincipal } : {}),
      ...(this.destinationPrincipal ? { destinationPrincipal: this.destinationPrincipal } : {}),
    };
  }
}
