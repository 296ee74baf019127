import type { OutlierConfig } from '../config/cluster.js';

/** What one attempt to a host came to, as outlier detection counts it. */
export type AttemptOutcome = 'success' | '5xx' | 'gateway-error' | 'local-failure';

interface HostState {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocalOrigin: number;
  /** Times ejected; the next ejection lasts base_ejection_time × this. */
  ejections: number;
  ejectedUntil?: number;
}

/**
 * Envoy's outlier detection (consecutive 5xx and consecutive gateway
 * failures): a host that fails too often in a row is ejected for
 * base_ejection_time × the number of times it was ejected (capped by
 * max_ejection_time), never more than max_ejection_percent of the hosts at
 * once (but at least one), and returns when its time is up. Each interval a
 * host spends back in rotation takes one off that multiplier, so a host that
 * keeps failing stays out longer each time and one that recovers is forgiven.
 * Connection failures, resets and timeouts count as both kinds of failure —
 * or, with split_external_local_origin_errors, only toward their own
 * consecutive_local_origin_failure count, which any answer from the host
 * resets.
 */
export class OutlierDetector {
  private readonly hosts = new Map<string, HostState>();
  private timer?: NodeJS.Timeout;

  constructor(
    private config: OutlierConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.schedule();
  }

  update(config: OutlierConfig): void {
    const restart = config.intervalMs !== this.config.intervalMs;
    this.config = config;
    if (restart) this.schedule();
  }

  isEjected(hostKey: string): boolean {
    const until = this.hosts.get(hostKey)?.ejectedUntil;
    return until !== undefined && until > this.now();
  }

  /** Keys of the hosts ejected right now. */
  ejected(): string[] {
    return [...this.hosts.keys()].filter((k) => this.isEjected(k));
  }

  report(hostKey: string, outcome: AttemptOutcome, totalHosts: number): void {
    let h = this.hosts.get(hostKey);
    if (!h) {
      h = { consecutive5xx: 0, consecutiveGateway: 0, consecutiveLocalOrigin: 0, ejections: 0 };
      this.hosts.set(hostKey, h);
    }
    const c = this.config;
    if (c.splitLocalOrigin) {
      if (outcome === 'local-failure') {
        h.consecutiveLocalOrigin++;
        const byLocal =
          c.consecutiveLocalOrigin > 0 &&
          h.consecutiveLocalOrigin >= c.consecutiveLocalOrigin &&
          this.enforced(c.enforcingLocalOrigin);
        if (byLocal && !this.isEjected(hostKey) && this.mayEject(totalHosts)) this.eject(h);
        return;
      }
      // The host answered: its connection works, whatever the status.
      h.consecutiveLocalOrigin = 0;
    }
    if (outcome === 'success') {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      return;
    }
    h.consecutive5xx++;
    if (outcome !== '5xx') h.consecutiveGateway++;
    else h.consecutiveGateway = 0;
    if (this.isEjected(hostKey)) return;
    const by5xx =
      c.consecutive5xx > 0 && h.consecutive5xx >= c.consecutive5xx && this.enforced(c.enforcing5xx);
    const byGateway =
      c.consecutiveGateway > 0 &&
      h.consecutiveGateway >= c.consecutiveGateway &&
      this.enforced(c.enforcingGateway);
    if ((by5xx || byGateway) && this.mayEject(totalHosts)) this.eject(h);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private enforced(percent: number): boolean {
    return percent >= 100 || (percent > 0 && Math.random() * 100 < percent);
  }

  /** Within max_ejection_percent — except that one host may always be ejected. */
  private mayEject(totalHosts: number): boolean {
    const ejected = this.ejected().length;
    if (ejected === 0) return true;
    return ((ejected + 1) / Math.max(1, totalHosts)) * 100 <= this.config.maxEjectionPercent;
  }

  private eject(h: HostState): void {
    // Envoy grows the multiplier only while base × multiplier is below max + base (the time is capped anyway).
    if (h.ejections * this.config.baseEjectionMs < this.config.maxEjectionMs + this.config.baseEjectionMs)
      h.ejections++;
    h.consecutive5xx = 0;
    h.consecutiveGateway = 0;
    h.consecutiveLocalOrigin = 0;
    const ms = Math.min(this.config.baseEjectionMs * h.ejections, this.config.maxEjectionMs);
    h.ejectedUntil = this.now() + ms;
  }

  /** Times the host was ejected without being forgiven: its next ejection lasts base × (this + 1), capped. */
  ejectionMultiplier(hostKey: string): number {
    return this.hosts.get(hostKey)?.ejections ?? 0;
  }

  /**
   * The interval's sweep, as Envoy's: hosts whose ejection ended return, and
   * hosts back in rotation for a whole interval have their multiplier decay.
   */
  sweep(): void {
    const now = this.now();
    for (const [key, h] of this.hosts) {
      if (h.ejectedUntil !== undefined && h.ejectedUntil <= now) h.ejectedUntil = undefined;
      else if (h.ejectedUntil === undefined && h.ejections > 0) h.ejections--;
      if (
        h.ejections === 0 &&
        h.ejectedUntil === undefined &&
        h.consecutive5xx === 0 &&
        h.consecutiveGateway === 0 &&
        h.consecutiveLocalOrigin === 0
      ) {
        this.hosts.delete(key);
      }
    }
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setInterval(() => this.sweep(), this.config.intervalMs);
    this.timer.unref();
  }
}
