import type { UpstreamHost } from './host.js';
import { xxHash64 } from './xxhash64.js';

/**
 * RING_HASH and MAGLEV exactly as Envoy builds and reads them: the same
 * xxHash64 of the same host keys, the same table sizes and fill order, the
 * same lookup. A key therefore reaches the same endpoint through a Mizzen
 * proxy as through an Envoy sidecar given the same endpoints.
 */

/** Picks the host for a request hash; `attempt` > 0 asks for an alternative (Envoy's host reselection). */
export interface HashTable {
  chooseHost(hash: bigint, attempt: number): UpstreamHost | undefined;
}

/** A host and its share of the level (all shares sum to 1). */
export interface NormalizedHost {
  readonly host: UpstreamHost;
  readonly weight: number;
}

/** Envoy's largest ring (ring_hash_lb_config.maximum_ring_size's default). */
export const MAX_RING_SIZE = 8_388_608;

/**
 * Envoy's normalizeWeights: each host's weight over the level's total, or,
 * with locality-weighted balancing, over its locality's total times the
 * locality's share of the locality weights (localities weighing 0 drop out).
 */
export function normalizeHostWeights(
  hosts: readonly UpstreamHost[],
  localityWeighted: boolean,
): NormalizedHost[] {
  if (!localityWeighted) return normalizeWithin(hosts, 1);
  const localities = new Map<string, UpstreamHost[]>();
  for (const h of hosts) {
    const list = localities.get(h.locality) ?? [];
    list.push(h);
    localities.set(h.locality, list);
  }
  let localityTotal = 0;
  for (const list of localities.values()) localityTotal += list[0]!.localityWeight;
  // Envoy uses locality weights only when the level has them; without any, hosts weigh alone.
  if (!(localityTotal > 0)) return normalizeWithin(hosts, 1);
  const out: NormalizedHost[] = [];
  for (const list of localities.values()) {
    const share = list[0]!.localityWeight / localityTotal;
    if (share > 0) out.push(...normalizeWithin(list, share));
  }
  return out;
}

function normalizeWithin(hosts: readonly UpstreamHost[], share: number): NormalizedHost[] {
  const sum = hosts.reduce((s, h) => s + h.weight, 0);
  return sum > 0 ? hosts.map((host) => ({ host, weight: (host.weight * share) / sum })) : [];
}

/**
 * Envoy's ring hash: host key `<address>_<n>` hashed for n = 0, 1, … gives
 * each host points in proportion to its weight, the ring scaled so the
 * lightest host has a whole number of points and at least
 * minimum_ring_size of them in all (at most maximum_ring_size). A key goes
 * to the first point at or after its hash, wrapping to the start.
 */
export class RingHash implements HashTable {
  private readonly hashes: BigUint64Array;
  private readonly hosts: UpstreamHost[];

  constructor(entries: readonly NormalizedHost[], minimumRingSize: number, maximumRingSize = MAX_RING_SIZE) {
    const points: { hash: bigint; host: UpstreamHost }[] = [];
    if (entries.length > 0) {
      const lightest = Math.min(...entries.map((e) => e.weight));
      const scale = Math.min(Math.ceil(lightest * minimumRingSize) / lightest, maximumRingSize);
      // Running totals keep each host's points whole while their sum tracks scale × weight.
      let current = 0;
      let target = 0;
      for (const { host, weight } of entries) {
        target += scale * weight;
        for (let n = 0; current < target; n++, current++)
          points.push({ hash: xxHash64(`${host.key}_${n}`), host });
      }
      points.sort((a, b) => (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : 0));
    }
    this.hashes = BigUint64Array.from(points, (p) => p.hash);
    this.hosts = points.map((p) => p.host);
  }

  /** Points on the ring (its size). */
  get size(): number {
    return this.hosts.length;
  }

  chooseHost(hash: bigint, attempt: number): UpstreamHost | undefined {
    const n = this.hosts.length;
    if (n === 0) return undefined;
    const at = this.pointFor(hash);
    // A reselection moves along the ring, as Envoy does for a retry host predicate.
    return this.hosts[attempt > 0 ? (at + attempt) % n : at];
  }

  /** The index of the first point whose hash is ≥ `hash` (0 past the last one): Envoy's ketama search. */
  private pointFor(hash: bigint): number {
    let lo = 0;
    let hi = this.hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.hashes[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.hashes.length ? 0 : lo;
  }
}

/**
 * Google's Maglev table as Envoy fills it: hosts in order of their key, each
 * with offset xxHash64(key) and skip xxHash64(key, seed 1) over the (prime)
 * table size; round after round every host whose weight has earned a slot
 * takes the next free one in its permutation. A key's slot is hash % size.
 */
export class MaglevTable implements HashTable {
  private readonly table: (UpstreamHost | undefined)[];
  private readonly tableSize: bigint;

  constructor(entries: readonly NormalizedHost[], tableSize: number) {
    this.table = new Array(tableSize).fill(undefined);
    this.tableSize = BigInt(tableSize);
    if (entries.length === 0) return;
    const maxWeight = Math.max(...entries.map((e) => e.weight));
    const size = this.tableSize;
    const builds = [...entries]
      .sort((a, b) => (a.host.key < b.host.key ? -1 : a.host.key > b.host.key ? 1 : 0))
      .map(({ host, weight }) => ({
        host,
        weight,
        offset: Number(xxHash64(host.key) % size),
        skip: Number(xxHash64(host.key, 1n) % (size - 1n)) + 1,
        next: 0,
        target: 0,
      }));
    const slot = (b: (typeof builds)[number]) => (b.offset + b.skip * b.next) % tableSize;
    let filled = 0;
    for (let iteration = 1; filled < tableSize; iteration++) {
      for (const b of builds) {
        if (filled >= tableSize) break;
        // A host of the largest weight takes a slot every round; one of a third of it, every third.
        if (iteration * b.weight < b.target) continue;
        b.target += maxWeight;
        let c = slot(b);
        while (this.table[c] !== undefined) {
          b.next++;
          c = slot(b);
        }
        this.table[c] = b.host;
        b.next++;
        filled++;
      }
    }
  }

  /** Hosts that own at least one slot: with a table smaller than the host count, some own none. */
  owners(): Set<UpstreamHost> {
    return new Set(this.table.filter((h): h is UpstreamHost => h !== undefined));
  }

  chooseHost(hash: bigint, attempt: number): UpstreamHost | undefined {
    if (this.table[0] === undefined) return undefined;
    // A reselection flips most of the hash's bits (Envoy: hash ^= ~0 - attempt + 1).
    const h = attempt > 0 ? hash ^ ((1n << 64n) - BigInt(attempt)) : hash;
    return this.table[Number(h % this.tableSize)];
  }
}
