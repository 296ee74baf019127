import { randomBytes } from 'node:crypto';
import type { LbKind, SlowStartConfig } from '../config/cluster.js';
import { type HashTable, MaglevTable, normalizeHostWeights, RingHash } from './consistent-hash.js';
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
  /** RING_HASH: the ring's largest size (maximum_ring_size). */
  maximumRingSize?: number;
  /** Envoy's locality_weighted_lb_config: a locality by weight × availability first, then a host in it. */
  localityWeighted?: boolean;
  /** ROUND_ROBIN / LEAST_REQUEST slow start: hosts that joined recently get a ramped-down weight. */
  slowStart?: SlowStartConfig;
  /** When a host joined the cluster; undefined when it was there from the start (no slow start). */
  joinedAt?: (hostKey: string) => number | undefined;
  now?: () => number;
}

/**
 * Envoy's previous_priorities retry priority (Istio's `retryRemoteLocalities`):
 * every `updateFrequency` attempts, the priorities already attempted are left
 * out of the priority load, so a retry reaches the next locality.
 */
export interface RetryPriority {
  readonly updateFrequency: number;
  /** The hosts this request has attempted so far, in order. */
  readonly attempted: readonly UpstreamHost[];
}

/** What one host pick depends on beyond the hosts' state. */
export interface PickRequest {
  /** Hosts this request already tried, avoided under Envoy's previous_hosts retry predicate. */
  readonly exclude?: ReadonlySet<string>;
  /** The request's consistent-hash key (RING_HASH / MAGLEV), from the route's hash policies. */
  readonly hash?: bigint;
  readonly retry?: RetryPriority;
  /**
   * Envoy's host_selection_retry_max_attempts: how many draws a hash table
   * gets to find a host the retry predicate accepts (default 1).
   */
  readonly selectionAttempts?: number;
}

/** One priority level: its hosts and, for hash policies, the table over its current candidates. */
interface Level {
  readonly priority: number;
  readonly hosts: readonly UpstreamHost[];
  readonly overprovisioningFactor: number;
  /** The hash table last built for this level, and the candidate hosts it was built from. */
  table?: { readonly candidates: readonly UpstreamHost[]; readonly table: HashTable };
}

/** Per-level health as Envoy computes it for one pick. */
interface LevelState {
  readonly healthy: readonly UpstreamHost[];
  /** min(100, overprovisioning factor × healthy / total), in percent. */
  readonly health: number;
  readonly panic: boolean;
}

/**
 * Envoy's load balancer over a cluster's hosts.
 *
 * Hosts sit in priority levels (EDS priorities: Istio puts the proxy's own
 * locality at 0 and farther ones below). Each level's health is its healthy
 * share × the overprovisioning factor (1.4), capped at 100%; traffic goes to
 * the highest levels first and spills to lower ones only as their health
 * falls short of 100% in total. A level below the panic threshold balances
 * over all its hosts; when no level has any healthy host, either every host
 * is used (panic) or, with the threshold at 0, none.
 *
 * Within a level, locality-weighted balancing (when configured) picks a
 * locality by its weight × availability, then the policy picks a host:
 * (weighted) round robin, power-of-two-choices least request, weighted
 * random, or a ring hash / Maglev table per level for requests with a hash.
 * Slow start scales the weight of hosts that joined less than a window ago.
 * Retries pass the hosts already tried so the next attempt goes elsewhere
 * (Istio's `previous_hosts` predicate) unless no other host is left.
 */
export class LoadBalancer {
  private rrIndex = Math.floor(Math.random() * 1024);
  /** Smooth weighted round robin state (nginx's algorithm), by host key and by locality. */
  private readonly current = new Map<string, number>();
  private readonly localityCurrent = new Map<string, number>();
  private readonly levels: readonly Level[];
  private readonly total: number;

  constructor(
    private readonly kind: LbKind,
    hosts: readonly UpstreamHost[],
    private readonly options: BalancerOptions,
  ) {
    const byPriority = new Map<number, UpstreamHost[]>();
    for (const h of hosts) {
      if (!(h.weight > 0)) continue;
      const list = byPriority.get(h.priority) ?? [];
      list.push(h);
      byPriority.set(h.priority, list);
    }
    this.levels = [...byPriority.entries()]
      .sort(([a], [b]) => a - b)
      .map(([priority, list]) => ({
        priority,
        hosts: list,
        overprovisioningFactor: list[0]!.overprovisioningFactor,
      }));
    this.total = this.levels.reduce((n, l) => n + l.hosts.length, 0);
  }

  get size(): number {
    return this.total;
  }

  /** Each priority level's share of new requests in percent, as Envoy's priority load (for tests and admin). */
  priorityLoad(retry?: RetryPriority): number[] {
    return this.plan(retry).load;
  }

  pick(request: PickRequest = {}): UpstreamHost | undefined {
    if (this.levels.length === 0) return undefined;
    const { exclude, retry } = request;
    const { load, states } = this.plan(retry);
    const hashed = this.kind === 'ring_hash' || this.kind === 'maglev';
    // Envoy hashes a request without a hash key by a random one: it still goes through the table.
    const hash = hashed ? (request.hash ?? randomBytes(8).readBigUInt64BE()) : undefined;
    const level = this.choosePriority(load, hash);
    const state = states[level]!;
    let candidates = state.panic ? this.levels[level]!.hosts : state.healthy;
    if (candidates.length === 0) return undefined;
    if (hash !== undefined) return this.pickByHash(level, candidates, hash, request);
    if (exclude?.size) {
      const rest = candidates.filter((h) => !exclude.has(h.key));
      if (rest.length > 0) candidates = rest;
    }
    if (this.options.localityWeighted) candidates = this.chooseLocality(level, state, candidates);
    if (candidates.length === 1) return candidates[0];
    switch (this.kind) {
      case 'random':
        return this.weightedRandom(candidates, (h) => h.weight);
      case 'least_request':
        return this.leastRequest(candidates);
      default:
        return this.roundRobin(candidates);
    }
  }

  /** Health, panic and load of every level now (ejections and health change between picks). */
  private plan(retry?: RetryPriority): { load: number[]; states: LevelState[] } {
    const ejected = this.options.isEjected;
    const threshold = this.options.panicThresholdPercent ?? 50;
    const states: LevelState[] = this.levels.map((l) => {
      const healthy = l.hosts.filter((h) => h.healthy && !ejected?.(h.key));
      const health = Math.min(100, Math.floor((l.overprovisioningFactor * healthy.length) / l.hosts.length));
      return { healthy, health, panic: (100 * healthy.length) / l.hosts.length < threshold };
    });
    const health = states.map((s) => s.health);
    const available = Math.min(
      100,
      health.reduce((a, b) => a + b, 0),
    );
    if (available === 0) {
      // Nothing is healthy. With panic disabled, nothing is picked; else every host of every level
      // is used, each level taking load in proportion to its host count (Envoy's total panic).
      if (threshold === 0) return { load: this.levels.map((_, i) => (i === 0 ? 100 : 0)), states };
      const load = distribute(
        this.levels.map((l) => l.hosts.length),
        this.total,
      );
      return { load, states: states.map((s) => ({ ...s, panic: true })) };
    }
    const adjusted = retry ? this.retryAvailability(health, retry) : undefined;
    if (adjusted) {
      const sum = Math.min(
        100,
        adjusted.reduce((a, b) => a + b, 0),
      );
      if (sum > 0) return { load: distribute(adjusted, sum), states };
    }
    return { load: distribute(health, available), states };
  }

  /**
   * previous_priorities: once `updateFrequency` attempts were made, the levels
   * they went to count as unavailable; if that leaves none, nothing is excluded.
   */
  private retryAvailability(health: readonly number[], retry: RetryPriority): number[] | undefined {
    const n = retry.attempted.length;
    const f = Math.max(1, retry.updateFrequency);
    if (n < f) return undefined;
    const counted = n - (n % f);
    const excluded = new Set(retry.attempted.slice(0, counted).map((h) => h.priority));
    const adjusted = this.levels.map((l, i) => (excluded.has(l.priority) ? 0 : health[i]!));
    return adjusted.some((h) => h > 0) ? adjusted : undefined;
  }

  /**
   * Envoy's hashing pick: the table over the level's candidates (healthy
   * hosts, or all of them in panic) — rebuilt only when they change — read
   * at the hash; a host the retry predicate rejects is redrawn (attempt 1, 2,
   * …) up to host_selection_retry_max_attempts times, else kept.
   */
  private pickByHash(
    level: number,
    candidates: readonly UpstreamHost[],
    hash: bigint,
    request: PickRequest,
  ): UpstreamHost | undefined {
    const table = this.tableFor(this.levels[level]!, candidates);
    const attempts = request.exclude?.size ? Math.max(1, request.selectionAttempts ?? 1) : 1;
    let host: UpstreamHost | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      host = table.chooseHost(hash, attempt);
      if (!host || !request.exclude?.has(host.key)) return host;
    }
    return host;
  }

  private tableFor(level: Level, candidates: readonly UpstreamHost[]): HashTable {
    // Most picks see the same candidates as the last: compare in place rather than build a key per request.
    if (level.table && sameHosts(level.table.candidates, candidates)) return level.table.table;
    const weights = normalizeHostWeights(candidates, this.options.localityWeighted === true);
    const size = this.options.hashTableSize;
    const table =
      this.kind === 'maglev'
        ? new MaglevTable(weights, size ?? 65537)
        : new RingHash(weights, size ?? 1024, this.options.maximumRingSize);
    level.table = { candidates, table };
    return table;
  }

  /** A level for this request: by a random number, or by the hash (Envoy: hash % 100), against the load. */
  private choosePriority(load: readonly number[], hash?: bigint): number {
    const roll = hash !== undefined ? Number(hash % 100n) : Math.floor(Math.random() * 100);
    let acc = 0;
    for (let i = 0; i < load.length; i++) {
      acc += load[i]!;
      if (roll < acc) return i;
    }
    return Math.max(
      0,
      load.findIndex((l) => l > 0),
    );
  }

  /**
   * Envoy's locality-weighted pick: each locality of the level weighs its
   * load_balancing_weight × availability (healthy share × overprovisioning,
   * capped at 1; all hosts count in panic). Localities without weight get
   * nothing; if none has weight, hosts are balanced across all of them.
   */
  private chooseLocality(
    level: number,
    state: LevelState,
    candidates: readonly UpstreamHost[],
  ): readonly UpstreamHost[] {
    const l = this.levels[level]!;
    const groups = new Map<string, UpstreamHost[]>();
    for (const h of candidates) {
      const list = groups.get(h.locality) ?? [];
      list.push(h);
      groups.set(h.locality, list);
    }
    const healthyIn = (loc: string) => state.healthy.filter((h) => h.locality === loc).length;
    const totalIn = (loc: string) => l.hosts.filter((h) => h.locality === loc).length;
    const weights = new Map<string, number>();
    for (const [loc, list] of groups) {
      const availability = state.panic
        ? 1
        : Math.min(1, (l.overprovisioningFactor / 100) * (healthyIn(loc) / totalIn(loc)));
      weights.set(loc, list[0]!.localityWeight * availability);
    }
    let total = 0;
    for (const w of weights.values()) total += w;
    if (!(total > 0)) return candidates;
    let best: string | undefined;
    let bestWeight = -Infinity;
    for (const [loc, w] of weights) {
      if (!(w > 0)) continue;
      const key = `${l.priority}|${loc}`;
      const cur = (this.localityCurrent.get(key) ?? 0) + w;
      this.localityCurrent.set(key, cur);
      if (cur > bestWeight) {
        bestWeight = cur;
        best = loc;
      }
    }
    const bestKey = `${l.priority}|${best}`;
    this.localityCurrent.set(bestKey, bestWeight - total);
    return groups.get(best!)!;
  }

  /** A host's weight now: its EDS weight, scaled down while it is in its slow start window. */
  private effectiveWeight(h: UpstreamHost, now: number): number {
    const ss = this.options.slowStart;
    if (!ss || !h.healthy) return h.weight;
    const joined = this.options.joinedAt?.(h.key);
    if (joined === undefined) return h.weight;
    const inWindow = now - joined;
    if (inWindow >= ss.windowMs) return h.weight;
    const timeFactor = Math.max(1, inWindow) / ss.windowMs;
    const ramp = ss.aggression === 1 ? timeFactor : timeFactor ** (1 / ss.aggression);
    return h.weight * Math.max(ramp, ss.minWeightPercent / 100);
  }

  private weights(candidates: readonly UpstreamHost[]): number[] {
    if (!this.options.slowStart) return candidates.map((h) => h.weight);
    const now = (this.options.now ?? Date.now)();
    return candidates.map((h) => this.effectiveWeight(h, now));
  }

  private roundRobin(candidates: readonly UpstreamHost[]): UpstreamHost {
    const weights = this.weights(candidates);
    const first = weights[0]!;
    if (weights.every((w) => w === first)) return candidates[this.rrIndex++ % candidates.length]!;
    let total = 0;
    let best = 0;
    let bestWeight = -Infinity;
    candidates.forEach((h, i) => {
      const w = (this.current.get(h.key) ?? 0) + weights[i]!;
      this.current.set(h.key, w);
      total += weights[i]!;
      if (w > bestWeight) {
        bestWeight = w;
        best = i;
      }
    });
    const chosen = candidates[best]!;
    this.current.set(chosen.key, bestWeight - total);
    return chosen;
  }

  private weightedRandom(
    candidates: readonly UpstreamHost[],
    weightOf: (h: UpstreamHost, i: number) => number,
  ): UpstreamHost {
    const weights = candidates.map(weightOf);
    const total = weights.reduce((s, w) => s + w, 0);
    let r = Math.random() * total;
    for (let i = 0; i < candidates.length; i++) {
      r -= weights[i]!;
      if (r < 0) return candidates[i]!;
    }
    return candidates[candidates.length - 1]!;
  }

  /**
   * Envoy's LEAST_REQUEST: with equal weights, the less busy of two random
   * choices (power of two choices); with unequal weights (or hosts in slow
   * start), weight / (active requests + 1).
   */
  private leastRequest(candidates: readonly UpstreamHost[]): UpstreamHost {
    const weights = this.weights(candidates);
    if (weights.some((w) => w !== weights[0])) {
      return this.weightedRandom(candidates, (h, i) => weights[i]! / (this.options.active(h.key) + 1));
    }
    const a = candidates[Math.floor(Math.random() * candidates.length)]!;
    let b = candidates[Math.floor(Math.random() * candidates.length)]!;
    if (b === a) b = candidates[(candidates.indexOf(a) + 1) % candidates.length]!;
    return this.options.active(b.key) < this.options.active(a.key) ? b : a;
  }
}

/**
 * Envoy's distributeLoad: each level takes availability × 100 / total
 * (integer), higher levels first, until 100% is spent; rounding leftovers go
 * to the first level with any availability.
 */
function distribute(availability: readonly number[], total: number): number[] {
  let left = 100;
  const load = availability.map((a) => {
    const share = Math.min(left, Math.floor((a * 100) / total));
    left -= share;
    return share;
  });
  if (left > 0) {
    const first = availability.findIndex((a) => a > 0);
    load[Math.max(first, 0)]! += left;
  }
  return load;
}

function sameHosts(a: readonly UpstreamHost[], b: readonly UpstreamHost[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
