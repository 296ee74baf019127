import type { CircuitBreakerLimits } from '../config/cluster.js';

/** Gives a request slot back. */
export type Release = () => void;

/**
 * Envoy's circuit breaker for one cluster. Over HTTP/1 every request in
 * flight holds one upstream connection, so `maxConnections` and `maxRequests`
 * both cap the requests in flight; when none is free a request waits in the
 * pending queue, and when that is full it overflows at once (503, flag UO).
 * Retries in flight are capped separately by `maxRetries`.
 */
export class CircuitBreaker {
  private active = 0;
  private retries = 0;
  private readonly queue: ((release: Release) => void)[] = [];

  constructor(private limits: CircuitBreakerLimits) {}

  update(limits: CircuitBreakerLimits): void {
    this.limits = limits;
    this.drain();
  }

  private get capacity(): number {
    return Math.min(this.limits.maxConnections, this.limits.maxRequests);
  }

  /**
   * A slot now, a promise of one once a request finishes, or 'overflow' when
   * the pending queue is full. `onAbandon` lets a waiting caller give up.
   */
  acquire(abandoned?: { onAbandon(cb: () => void): void }): Release | Promise<Release> | 'overflow' {
    if (this.active < this.capacity) {
      this.active++;
      return this.releaser();
    }
    if (this.queue.length >= this.limits.maxPendingRequests) return 'overflow';
    return new Promise<Release>((resolve) => {
      const waiter = (release: Release) => resolve(release);
      this.queue.push(waiter);
      abandoned?.onAbandon(() => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
      });
    });
  }

  /** A slot only if one is free right now (never queues): for work that may simply be dropped, like shadows. */
  tryAcquire(): Release | undefined {
    if (this.active >= this.capacity) return undefined;
    this.active++;
    return this.releaser();
  }

  /** A retry may start only while fewer than `maxRetries` are in flight. */
  tryRetry(): Release | undefined {
    if (this.retries >= this.limits.maxRetries) return undefined;
    this.retries++;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.retries--;
      }
    };
  }

  stats(): { active: number; pending: number; retries: number } {
    return { active: this.active, pending: this.queue.length, retries: this.retries };
  }

  private releaser(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.active--;
      this.drain();
    };
  }

  private drain(): void {
    while (this.queue.length > 0 && this.active < this.capacity) {
      this.active++;
      this.queue.shift()!(this.releaser());
    }
  }
}
