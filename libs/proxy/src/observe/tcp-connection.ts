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
  /** The caller's workload as pilot's endpoints name its identity (used when no metadata exchange names it). */
  readonly peer?: PeerMetadata;
}

/** Envoy's flags for a connection tcp_proxy could not proxy, or that it ended itself. */
export type TcpFailureFlag = 'NC' | 'UH' | 'UO' | 'UF' | 'DC';

/**
 * One connection tcp_proxy handles, as the observers see it: started when
 * accepted, reported once the upstream is up and the peer known (after
 * Istio's metadata exchange, when the sidecars speak it) and then every few
 * seconds with its bytes, flushed to access logs at the chain's interval,
 * and ended exactly once — when it closes, or at once with Envoy's flag when
 * it cannot be proxied (`NC`, `UH`, `UO`, `UF`, `DC`), so failed connections
 * are counted and logged too.
 */
export class ObservedTcpConnection {
  private readonly observation?: TcpObservation;
  private readonly began = performance.now();
  private host?: UpstreamHost;
  private exchangedPeer?: PeerMetadata;
  private destinationPrincipal?: string;
  private upstreamLocalAddress?: string;
  private upstreamMtls = false;
  private received = 0;
  private sent = 0;
  private flags = '-';
  private failureReason?: string;
  private deniedBy?: TcpConnectionRecord['denied'];
  private progressTimer?: NodeJS.Timeout;
  private flushTimer?: NodeJS.Timeout;
  private ended = false;

  constructor(
    observer: ProxyObserver | undefined,
    private readonly start: TcpConnectionStart,
    private readonly downstream: TcpDownstreamFacts,
  ) {
    this.observation = observer?.startTcp?.(start);
    const every = start.telemetry?.accessLogFlushIntervalMs;
    const flush = this.observation?.flush;
    if (flush && every && every > 0) {
      // Envoy's flush timer runs from the moment the connection is accepted.
      this.flushTimer = setInterval(() => flush(this.snapshot()), every);
      this.flushTimer.unref();
    }
  }

  /** The host picked: its address, and (outbound) the workload pilot says runs there. */
  picked(host: UpstreamHost): void {
    this.host = host;
  }

  /** The other side's sidecar named its workload in the metadata exchange: that is the peer from now on. */
  exchanged(peer: PeerMetadata): void {
    this.exchangedPeer = peer;
  }

  /** Bytes from the downstream on their way upstream. */
  countReceived(bytes: number): void {
    this.received += bytes;
  }

  /** Bytes from the upstream on their way to the downstream. */
  countSent(bytes: number): void {
    this.sent += bytes;
  }

  /** The upstream is up and the peer settled: the first report, then one every few seconds until the end. */
  connected(opts: {
    upstreamMtls: boolean;
    destinationPrincipal?: string;
    upstreamLocalAddress?: string;
  }): void {
    if (!this.observation || this.ended) return;
    this.upstreamMtls = opts.upstreamMtls;
    this.destinationPrincipal = opts.destinationPrincipal;
    this.upstreamLocalAddress = opts.upstreamLocalAddress;
    const progress = this.observation.progress;
    if (!progress) return;
    progress(this.snapshot());
    this.progressTimer = setInterval(() => progress(this.snapshot()), PROGRESS_INTERVAL_MS);
    this.progressTimer.unref();
  }

  /**
   * The connection could not be proxied: `NC` (no cluster), `UH` (no healthy
   * host), `UO` (the cluster's max_connections reached), `UF` (connecting
   * failed, with why), `DC` (the caller left first).
   */
  failed(flags: TcpFailureFlag, reason?: string): void {
    this.flags = flags;
    if (reason) this.failureReason = reason;
    this.end();
  }

  /** Authorization refused the connection: it is closed, and only access logs hear of it. */
  denied(by: NonNullable<TcpConnectionRecord['denied']>): void {
    if (this.ended) return;
    this.deniedBy = by;
    this.ended = true;
    clearInterval(this.flushTimer);
    this.observation?.denied?.(this.snapshot());
  }

  /** Both sides are closed; `DT` when max_downstream_connection_duration closed them. */
  closed(flags?: 'DT'): void {
    if (flags && !this.ended) this.flags = flags;
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.progressTimer);
    clearInterval(this.flushTimer);
    this.observation?.end(this.snapshot());
  }

  private snapshot(): TcpConnectionRecord {
    const outbound = this.start.direction === 'outbound';
    const peer = this.exchangedPeer ?? (outbound ? this.host?.identity?.peer : this.downstream.peer);
    const mtls = outbound ? this.upstreamMtls : this.downstream.mtls;
    return {
      ...this.start,
      ...(this.host ? { upstreamHost: this.host.key } : {}),
      ...(this.upstreamLocalAddress ? { upstreamLocalAddress: this.upstreamLocalAddress } : {}),
      durationMs: performance.now() - this.began,
      receivedBytes: this.received,
      sentBytes: this.sent,
      responseFlags: this.flags,
      ...(this.failureReason ? { upstreamTransportFailureReason: this.failureReason } : {}),
      ...(this.deniedBy ? { denied: this.deniedBy } : {}),
      connectionSecurityPolicy: mtls ? 'mutual_tls' : 'none',
      ...(peer ? { peer } : {}),
      ...(this.downstream.sourcePrincipal ? { sourcePrincipal: this.downstream.sourcePrincipal } : {}),
      ...(this.destinationPrincipal ? { destinationPrincipal: this.destinationPrincipal } : {}),
    };
  }
}
