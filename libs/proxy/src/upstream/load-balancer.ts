import type { LbKind } from '../config/cluster.js';
import { type HashTable, MaglevTable, RingHash } from './consistent-hash.js';
import type { UpstreamHost } from './host.js';

export interface BalancerOptions {
  /** Requests in flight per host (LEAST_REQUEST reads it). */
  active: (hostKey: string) => number;
  /** Hosts outlier detection has ejected right now. */
  isEjected?: (hostKey: string) => boolean;
  /** Envoy's healthy_panic_threshold (default 50%): below it, balance over every host; 0 never panics. */
  panicThresholdPercent?: number;
  /** Ring size (RING_HASH) or table size (MAGLEV). */
  hashTableSize?: number;
}

/**
 * Picks a host for one attempt. Retries pass the hosts already tried so the
 * next attempt goes elsewhere (Istio's `previous_hosts` retry predicate),
 * unless no other host is left. Consistent-hash policies use the request's
 * hash; without one they pick at random, as Envoy does.
 */
export class LoadBalancer {
  private rrIndex = Math.floor(Math.random() * 1024);
  /** Smooth weighted round robin state (nginx's algorithm), by host key. */
  private readonly current = new Map<string, number>();
  private readonly table?: HashTable;
  private readonly weighted: readonly UpstreamHost[];

  constructor(
    private readonly kind: LbKind,
    hosts: readonly UpstreamHost[],
    private readonly options: BalancerOptions,
  ) {
    this.weighted = hosts.filter((h) => h.weight > 0);
    if (kind === 'ring_hash') this.table = new RingHash(this.weighted, options.hashTableSize ?? 1024);
    if (kind === 'maglev') this.table = new MaglevTable(this.weighted, options.hashTableSize ?? 65537);
  }

  get size(): number {
    return this.weighted.length;
  }

  /** The hosts a request may go to now: healthy and not ejected, or all of them in panic mode. */
  candidates(): readonly UpstreamHost[] {
    const ejected = this.options.isEjected;
    const healthy = this.weighted.filter((h) => h.healthy && !ejected?.(h.key));
    const threshold = this.options.panicThresholdPercent ?? 50;
    if (threshold > 0 && healthy.length * 100 < this.weighted.length * threshold) return this.weighted;
    return healthy;
  }

  pick(exclude?: ReadonlySet<string>, hash?: number): UpstreamHost | undefined {
    let candidates = this.candidates();
    if (exclude?.size) {
      const rest = candidates.filter((h) => !exclude.has(h.key));
      if (rest.length > 0) candidates = rest;
    }
    if (candidates.length === 0) return undefined;
    if (this.table && hash !== undefined) {
      const allowed = new Set(candidates);
      return this.table.pick(hash, (h) => allowed.has(h));
    }
    if (candidates.length === 1) return candidates[0];
    switch (this.kind) {
      case 'random':
      case 'ring_hash':
      case 'maglev':
        return this.weightedRandom(candidates);
      case 'least_request':
        return this.leastRequest(candidates);
      default:
        return this.roundRobin(candidates);
    }
  }

  private roundRobin(candidates: readonly UpstreamHost[]): UpstreamHost {
    const first = candidates[0]!.weight;
    if (candidates.every((h) => h.weight === first)) return candidates[this.rrIndex++ % candidates.length]!;
    let total = 0;
    let best: UpstreamHost | undefined;
    let bestWeight = -Infinity;
    for (const h of candidates) {
      const w = (this.current.get(h.key) ?? 0) + h.weight;
      this.current.set(h.key, w);
      total += h.weight;
      if (w > bestWeight) {
        bestWeight = w;
        best = h;
      }
    }
    this.current.set(best!.key, bestWeight - total);
    return best!;
  }

  private weightedRandom(candidates: readonly UpstreamHost[]): UpstreamHost {
    const total = candidates.reduce((s, h) => s + h.weight, 0);
    let r = Math.random() * total;
    for (const h of candidates) {
      r -= h.weight;
      if (r < 0) return h;
    }
    return candidates[candidates.length - 1]!;
  }

  /** Envoy's default LEAST_REQUEST: the less busy of two random choices (power of two choices). */
  private leastRequest(candidates: readonly UpstreamHost[]): UpstreamHost {
    const a = candidates[Math.floor(Math.random() * candidates.length)]!;
    let b = candidates[Math.floor(Math.random() * candidates.length)]!;
    if (b === a) b = candidates[(candidates.indexOf(a) + 1) % candidates.length]!;
    return this.options.active(b.key) < this.options.active(a.key) ? b : a;
  }
}
