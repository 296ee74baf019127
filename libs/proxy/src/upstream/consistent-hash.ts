import type { UpstreamHost } from './host.js';

/** 32-bit FNV-1a: fast, and stable across processes, so every proxy maps a key to the same host. */
export function hash32(value: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    h ^= value.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche (murmur3 fmix32) so nearby keys spread over the ring.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Picks the host for a hash, skipping those `usable` rejects; undefined when none is usable. */
export interface HashTable {
  pick(hash: number, usable: (h: UpstreamHost) => boolean): UpstreamHost | undefined;
}

/** Envoy's largest ring (ring_hash_lb_config.maximum_ring_size's default). */
export const MAX_RING_SIZE = 8_388_608;

/**
 * Envoy's ring hash: each host owns points on a ring in proportion to its
 * weight; a key goes to the next point. As Envoy sizes it, the ring is
 * scaled so the lightest host gets a whole number of points and the ring has
 * at least minimum_ring_size of them (at most maximum_ring_size).
 */
export class RingHash implements HashTable {
  private readonly points: { at: number; host: UpstreamHost }[] = [];

  constructor(hosts: readonly UpstreamHost[], minimumRingSize: number, maximumRingSize = MAX_RING_SIZE) {
    const totalWeight = hosts.reduce((s, h) => s + h.weight, 0);
    if (hosts.length === 0 || !(totalWeight > 0)) return;
    const normalized = hosts.map((h) => h.weight / totalWeight);
    const lightest = Math.min(...normalized);
    const scale = Math.min(Math.ceil(lightest * minimumRingSize) / lightest, maximumRingSize);
    // Running totals keep the points per host whole while their sum tracks scale × weight.
    let current = 0;
    let target = 0;
    hosts.forEach((host, i) => {
      target += scale * normalized[i]!;
      for (let n = 0; current < target; n++, current++)
        this.points.push({ at: hash32(`${host.key}_${n}`), host });
    });
    this.points.sort((a, b) => a.at - b.at);
  }

  /** Points on the ring (its size). */
  get size(): number {
    return this.points.length;
  }

  pick(hash: number, usable: (h: UpstreamHost) => boolean): UpstreamHost | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]!.at < hash) lo = mid + 1;
      else hi = mid;
    }
    for (let i = 0; i < n; i++) {
      const host = this.points[(lo + i) % n]!.host;
      if (usable(host)) return host;
    }
    return undefined;
  }
}

/** Google's Maglev table (as Envoy's MAGLEV): even spread and minimal disruption when hosts change. */
export class MaglevTable implements HashTable {
  private readonly table: UpstreamHost[];

  /** Hosts that own at least one slot: with a table smaller than the host count, some own none. */
  owners(): Set<UpstreamHost> {
    return new Set(this.table.filter((h) => h !== undefined));
  }

  constructor(hosts: readonly UpstreamHost[], tableSize: number) {
    this.table = new Array(tableSize);
    if (hosts.length === 0) return;
    const perms = hosts.map((h) => ({
      offset: hash32(`${h.key}#offset`) % tableSize,
      skip: (hash32(`${h.key}#skip`) % (tableSize - 1)) + 1,
      next: 0,
    }));
    let filled = 0;
    const maxWeight = Math.max(...hosts.map((h) => h.weight));
    for (let round = 0; filled < tableSize; round++) {
      for (let i = 0; i < hosts.length && filled < tableSize; i++) {
        // Weighted Maglev: a host takes a slot in a round only while its weight allows.
        if (hosts[i]!.weight * (round + 1) < maxWeight * round) continue;
        const p = perms[i]!;
        let slot = (p.offset + p.next * p.skip) % tableSize;
        while (this.table[slot] !== undefined) {
          p.next++;
          slot = (p.offset + p.next * p.skip) % tableSize;
        }
        this.table[slot] = hosts[i]!;
        p.next++;
        filled++;
      }
    }
  }

  pick(hash: number, usable: (h: UpstreamHost) => boolean): UpstreamHost | undefined {
    const n = this.table.length;
    if (n === 0 || this.table[0] === undefined) return undefined;
    for (let i = 0; i < n; i++) {
      const host = this.table[(hash + i) % n]!;
      if (usable(host)) return host;
    }
    return undefined;
  }
}
