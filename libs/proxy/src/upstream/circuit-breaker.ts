import type { CircuitBreakerLimits } from '../config/cluster.js';

/** Gives a slot back. */
export type Release = () => void;

/**
 * What a slot is for: an HTTP/1.1 request (it holds a connection while in
 * flight), an HTTP/2 request (a stream on a shared connection), or a
 * connection alone (tcp_proxy, an upgraded tunnel).
 */
export type SlotKind = 'http1' | 'http2' | 'connection';

interface Waiter {
  readonly kind: SlotKind;
  readonly admit: (release: Release) => void;
}

/** Why a retry may not start: the budget (max_retries or retry_budget) is spent. */
export type RetryVerdict = Release | 'overflow';

/**
 * Envoy's circuit breaker for one cluster (priority DEFAULT), as its HTTP
 * connection pools apply it:
 *
 * - max_requests caps the requests in flight over all hosts, HTTP/1.1 and
 *   HTTP/2 alike: one more overflows at once (503, flag UO);
 * - max_connections caps connections. An HTTP/1.1 request holds one while in
 *   flight; HTTP/2 requests share them, max_concurrent_streams each (without
 *   that setting HTTP/2 needs no more than one connection per host, which
 *   Envoy always allows). A request with no connection to go on waits;
 * - max_pending_requests caps the requests waiting so: one more overflows;
 * - max_retries caps retries in flight, or retry_budget makes the cap a
 *   share of the requests active and pending (at least its minimum).
 *
 * Connections alone (tcp_proxy, upgrades) count against max_connections and
 * never wait: at the limit they overflow.
 */
export class CircuitBreaker {
  private requests = 0;
  /** HTTP/1.1 requests in flight and connection-only slots: connections held. */
  private connections = 0;
  private h2Streams = 0;
  private retries = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    private limits: CircuitBreakerLimits,
    /** HTTP/2 streams per connection (max_concurrent_streams), when the cluster sets it. */
    private streamsPerConnection?: number,
  ) {}

  update(limits: CircuitBreakerLimits, streamsPerConnection?: number): void {
    this.limits = limits;
    this.streamsPerConnection = streamsPerConnection;
    this.drain();
  }

  /**
   * A slot now, a promise of one once capacity frees up, or 'overflow'.
   * `onAbandon` lets a waiting caller give up its place.
   */
  acquire(
    kind: SlotKind,
    abandoned?: { onAbandon(cb: () => void): void },
  ): Release | Promise<Release> | 'overflow' {
    if (kind !== 'connection' && this.requests >= this.limits.maxRequests) return 'overflow';
    if (this.queue.length === 0 && this.fits(kind)) return this.take(kind);
    if (kind === 'connection' || this.queue.length >= this.limits.maxPendingRequests) return 'overflow';
    return new Promise<Release>((resolve) => {
      const waiter: Waiter = { kind, admit: resolve };
      this.queue.push(waiter);
      abandoned?.onAbandon(() => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
      });
    });
  }

  /** A slot only if one is free right now (never queues): for work that may simply be dropped, like shadows. */
  tryAcquire(kind: SlotKind): Release | undefined {
    if (kind !== 'connection' && this.requests >= this.limits.maxRequests) return undefined;
    if (this.queue.length > 0 || !this.fits(kind)) return undefined;
    return this.take(kind);
  }

  /** A retry may start only within the retry budget; 'overflow' when it is spent (Envoy flags that UO). */
  tryRetry(): RetryVerdict {
    if (this.retries >= this.maxRetries()) return 'overflow';
    this.retries++;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.retries--;
      }
    };
  }

  stats(): { requests: number; connections: number; pending: number; retries: number } {
    return {
      requests: this.requests,
      connections: this.connections + this.h2Connections(this.h2Streams),
      pending: this.queue.length,
      retries: this.retries,
    };
  }

  private maxRetries(): number {
    const budget = this.limits.retryBudget;
    if (!budget) return this.limits.maxRetries;
    const outstanding = this.requests + this.queue.length;
    return Math.max(budget.minRetryConcurrency, Math.floor((budget.percent / 100) * outstanding));
  }

  /** Connections HTTP/2 streams occupy: max_concurrent_streams each, or none counted without it. */
  private h2Connections(streams: number): number {
    const per = this.streamsPerConnection;
    return per ? Math.ceil(streams / per) : 0;
  }

  private fits(kind: SlotKind): boolean {
    const max = this.limits.maxConnections;
    if (kind === 'http2') return this.connections + this.h2Connections(this.h2Streams + 1) <= max;
    return this.connections + this.h2Connections(this.h2Streams) < max;
  }

  private take(kind: SlotKind): Release {
    if (kind !== 'connection') this.requests++;
    if (kind === 'http2') this.h2Streams++;
    else this.connections++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (kind !== 'connection') this.requests--;
      if (kind === 'http2') this.h2Streams--;
      else this.connections--;
      this.drain();
    };
  }

  /** Admits waiting requests in order while the limits allow. */
  private drain(): void {
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (this.requests >= this.limits.maxRequests || !this.fits(next.kind)) return;
      this.queue.shift();
      next.admit(this.take(next.kind));
    }
  }
}
