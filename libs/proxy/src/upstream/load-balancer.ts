import type { LbKind } from '../config/cluster.js';
import type { UpstreamHost } from './host.js';

/** How busy each host is right now (requests in flight), for LEAST_REQUEST. */
export type ActiveRequests = (hostKey: string) => number;

/**
 * Picks a host for one attempt. Retries pass the hosts already tried so the
 * next attempt goes elsewhere (Istio's `previous_hosts` retry predicate),
 * unless no other host is left.
 */
export class LoadBalancer {
  private readonly healthy: readonly UpstreamHost[];
  private readonly uniformWeights: boolean;
  private rrIndex = Math.floor(Math.random() * 1024);
  /** Smooth weighted round robin state (nginx's algorithm), by host key. */
  private readonly current = new Map<string, number>();

  constructor(
    private readonly kind: LbKind,
    hosts: readonly UpstreamHost[],
    private readonly active: ActiveRequests,
  ) {
    const healthy = hosts.filter((h) => h.healthy && h.weight > 0);
    // Envoy's panic threshold: with no healthy host at all, try every host rather than none.
    this.healthy = healthy.length > 0 ? healthy : hosts.filter((h) => h.weight > 0);
    this.uniformWeights = this.healthy.every((h) => h.weight === this.healthy[0]?.weight);
  }

  get size(): number {
    return this.healthy.length;
  }

  pick(exclude?: ReadonlySet<string>): UpstreamHost | undefined {
    let candidates = this.healthy;
    if (exclude?.size) {
      const rest = candidates.filter((h) => !exclude.has(h.key));
      if (rest.length > 0) candidates = rest;
    }
    if (candidates.length === 0) return undefined;
    if (candidates.length === 1) return candidates[0];
    switch (this.kind) {
      case 'random':
        return this.weightedRandom(candidates);
      case 'least_request':
        return this.leastRequest(candidates);
      default:
        return this.roundRobin(candidates);
    }
  }

  private roundRobin(candidates: readonly UpstreamHost[]): UpstreamHost {
    if (this.uniformWeights) return candidates[this.rrIndex++ % candidates.length]!;
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
    return this.active(b.key) < this.active(a.key) ? b : a;
  }
}
