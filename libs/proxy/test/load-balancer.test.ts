import { describe, expect, it } from 'vitest';
import { compileCluster } from '../src/config/cluster.js';
import { MaglevTable, normalizeHostWeights, RingHash } from '../src/upstream/consistent-hash.js';
import { makeHost, type UpstreamHost } from '../src/upstream/host.js';
import { LoadBalancer } from '../src/upstream/load-balancer.js';
import { xxHash64 } from '../src/upstream/xxhash64.js';

const even = (list: readonly UpstreamHost[]) => normalizeHostWeights(list, false);

const hosts = [makeHost('10.0.0.1', 80), makeHost('10.0.0.2', 80), makeHost('10.0.0.3', 80)];

function tally(lb: LoadBalancer, n: number, exclude?: Set<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const h = lb.pick({ exclude })!.key;
    out[h] = (out[h] ?? 0) + 1;
  }
  return out;
}

describe('load balancer', () => {
  it('round robin visits every host equally', () => {
    expect(Object.values(tally(new LoadBalancer('round_robin', hosts, { active: () => 0 }), 300))).toEqual([
      100, 100, 100,
    ]);
  });

  it('weighted round robin follows the weights exactly', () => {
    const lb = new LoadBalancer('round_robin', [makeHost('a', 1, 3), makeHost('b', 1, 1)], {
      active: () => 0,
    });
    expect(tally(lb, 400)).toEqual({ 'a:1': 300, 'b:1': 100 });
  });

  it('skips unhealthy hosts, and excluded hosts when another is left', () => {
    const lb = new LoadBalancer('round_robin', [makeHost('a', 1), makeHost('b', 1, 1, false)], {
      active: () => 0,
    });
    expect(tally(lb, 10)).toEqual({ 'a:1': 10 });
    const two = new LoadBalancer('round_robin', hosts.slice(0, 2), { active: () => 0 });
    expect(tally(two, 10, new Set(['10.0.0.1:80']))).toEqual({ '10.0.0.2:80': 10 });
    expect(tally(two, 4, new Set(['10.0.0.1:80', '10.0.0.2:80']))).toEqual({
      '10.0.0.1:80': 2,
      '10.0.0.2:80': 2,
    });
  });

  it('sizes the ring as Envoy does: whole points for the lightest host, at least minimum_ring_size, at most maximum_ring_size', () => {
    expect(new RingHash(even(hosts), 1024).size).toBe(1026);
    const weighted = [makeHost('a', 1, 1), makeHost('b', 1, 2)];
    // The lightest host (1/3) needs ceil(8/3) = 3 points: the ring has 9, the heavier host 6 of them.
    expect(new RingHash(even(weighted), 8).size).toBe(9);
    expect(new RingHash(even(hosts), 3).size).toBe(3);
    expect(new RingHash(even(hosts), 5000, 300).size).toBe(300);
  });

  it('a Maglev table smaller than the host count leaves the extra hosts without keys', () => {
    const ten = Array.from({ length: 10 }, (_, i) => makeHost(`10.0.2.${i}`, 80));
    expect(new MaglevTable(even(ten), 7).owners().size).toBe(7);
    expect(new MaglevTable(even(ten), 65537).owners().size).toBe(10);
  });

  it('refuses hash table sizes Envoy refuses, naming the field', () => {
    const base = {
      name: 'c',
      type: 'STATIC' as const,
      load_assignment: { cluster_name: 'c', endpoints: [] },
    };
    expect(() =>
      compileCluster({ ...base, lb_policy: 'MAGLEV', maglev_lb_config: { table_size: 1000 } }),
    ).toThrow('cluster c.maglev_lb_config.table_size: must be a prime number below 5000011, got 1000');
    expect(() =>
      compileCluster({
        ...base,
        lb_policy: 'RING_HASH',
        ring_hash_lb_config: { minimum_ring_size: 4096, maximum_ring_size: 1024 },
      }),
    ).toThrow(
      'cluster c.ring_hash_lb_config.minimum_ring_size: must not exceed maximum_ring_size 1024, got 4096',
    );
  });

  it('least request prefers the idle host of two', () => {
    const busy = new Set(['10.0.0.1:80']);
    const lb = new LoadBalancer('least_request', hosts.slice(0, 2), {
      active: (k) => (busy.has(k) ? 10 : 0),
    });
    expect(tally(lb, 50)).toEqual({ '10.0.0.2:80': 50 });
  });

  it('ring hash and Maglev send one key to one host, spread keys over all, and move few keys when a host goes', () => {
    for (const kind of ['ring_hash', 'maglev'] as const) {
      const five = Array.from({ length: 5 }, (_, i) => makeHost(`10.0.1.${i}`, 80));
      const lb = new LoadBalancer(kind, five, {
        active: () => 0,
        hashTableSize: kind === 'maglev' ? 65537 : 1024,
      });
      const keys = Array.from({ length: 2000 }, (_, i) => xxHash64(`user-${i}`));
      const first = keys.map((hash) => lb.pick({ hash })!.key);
      expect(
        keys.map((hash) => lb.pick({ hash })!.key),
        kind,
      ).toEqual(first);
      const spread = new Map<string, number>();
      for (const k of first) spread.set(k, (spread.get(k) ?? 0) + 1);
      expect(spread.size, kind).toBe(5);
      for (const n of spread.values()) expect(n, kind).toBeGreaterThan(200);
      // Remove one host: only (about) its keys move.
      const four = new LoadBalancer(kind, five.slice(0, 4), {
        active: () => 0,
        hashTableSize: kind === 'maglev' ? 65537 : 1024,
      });
      const moved = keys.filter(
        (hash, i) => first[i] !== five[4]!.key && four.pick({ hash })!.key !== first[i],
      ).length;
      expect(moved / keys.length, kind).toBeLessThan(0.1);
    }
  });

  it('never sends to an ejected host, and honours the panic threshold', () => {
    const ejected = new Set(['10.0.0.1:80']);
    const lb = new LoadBalancer('round_robin', hosts, {
      active: () => 0,
      isEjected: (k) => ejected.has(k),
      panicThresholdPercent: 0,
    });
    expect(tally(lb, 30)).toEqual({ '10.0.0.2:80': 15, '10.0.0.3:80': 15 });
    ejected.add('10.0.0.2:80');
    ejected.add('10.0.0.3:80');
    expect(lb.pick()).toBeUndefined();
    // With Envoy's default 50% threshold, one healthy host of three is a panic: every host is used.
    const panicky = new LoadBalancer('round_robin', hosts, {
      active: () => 0,
      isEjected: (k) => k !== '10.0.0.1:80',
    });
    expect(Object.keys(tally(panicky, 30)).length).toBe(3);
  });

  it('with no healthy host it falls back to every host (panic mode) rather than none', () => {
    const lb = new LoadBalancer('random', [makeHost('a', 1, 1, false)], { active: () => 0 });
    expect(lb.pick()?.key).toBe('a:1');
  });

  describe("consistent hashing picks Envoy's endpoint for a key", () => {
    // Hosts and expected picks from Envoy's own ring_hash_lb_test.cc and maglev_lb_test.cc ("Basic").
    const six = [90, 91, 92, 93, 94, 95].map((port) => makeHost('127.0.0.1', port));
    const port = (h: UpstreamHost | undefined) => h?.port;

    it("builds Envoy's ring: the same 12 points for six hosts, and the same host at and between them", () => {
      const ring = new LoadBalancer('ring_hash', six, { active: () => 0, hashTableSize: 12 });
      expect(port(ring.pick({ hash: 0n }))).toBe(94);
      expect(port(ring.pick({ hash: 0xffff_ffff_ffff_ffffn }))).toBe(94);
      expect(port(ring.pick({ hash: 3551244743356806947n }))).toBe(95);
      expect(port(ring.pick({ hash: 3551244743356806948n }))).toBe(93);
      expect(port(ring.pick({ hash: 16117243373044804880n }))).toBe(90);
      // Each point is xxHash64 of "<address>_<n>": the ring's first and last points, as Envoy lists them.
      expect(xxHash64('127.0.0.1:94_1')).toBe(833437586790550860n);
      expect(xxHash64('127.0.0.1:90_0')).toBe(16117243373044804889n);
      expect(port(ring.pick({ hash: 833437586790550860n }))).toBe(94);
      expect(port(ring.pick({ hash: 833437586790550861n }))).toBe(92);
    });

    it("fills Envoy's Maglev table: slots 0–6 hold :92 :94 :90 :91 :95 :90 :93, and a key's slot is hash % size", () => {
      const maglev = new LoadBalancer('maglev', six, { active: () => 0, hashTableSize: 7 });
      const expected = [92, 94, 90, 91, 95, 90, 93];
      for (let i = 0; i < 21; i++)
        expect(port(maglev.pick({ hash: BigInt(i) })), `hash ${i}`).toBe(expected[i % 7]);
      // Host order in the endpoint list does not matter: Envoy sorts hosts by key before filling.
      const shuffled = new LoadBalancer('maglev', [...six].reverse(), { active: () => 0, hashTableSize: 7 });
      for (let i = 0; i < 7; i++) expect(port(shuffled.pick({ hash: BigInt(i) }))).toBe(expected[i]);
    });

    it('rebuilds the table without an ejected host, as Envoy rebuilds it over the healthy hosts', () => {
      const ejected = new Set<string>();
      const lb = new LoadBalancer('maglev', six, {
        active: () => 0,
        hashTableSize: 7,
        isEjected: (k) => ejected.has(k),
      });
      expect(port(lb.pick({ hash: 1n }))).toBe(94);
      ejected.add('127.0.0.1:94');
      const without = new MaglevTable(even(six.filter((h) => h.port !== 94)), 7);
      for (let i = 0n; i < 7n; i++) expect(lb.pick({ hash: i })).toBe(without.chooseHost(i, 0));
      expect(port(lb.pick({ hash: 1n }))).not.toBe(94);
      ejected.clear();
      expect(port(lb.pick({ hash: 1n }))).toBe(94);
    });

    it('redraws a retry away from tried hosts up to host_selection_retry_max_attempts, as Envoy does', () => {
      const ring = new LoadBalancer('ring_hash', six, { active: () => 0, hashTableSize: 12 });
      const tried = new Set(['127.0.0.1:94']);
      // One draw (Envoy's default): the predicate cannot move the request.
      expect(port(ring.pick({ hash: 0n, exclude: tried }))).toBe(94);
      // More draws walk the ring: the next point after :94's is :92's.
      expect(port(ring.pick({ hash: 0n, exclude: tried, selectionAttempts: 5 }))).toBe(92);
      const maglev = new LoadBalancer('maglev', six, { active: () => 0, hashTableSize: 7 });
      const moved = maglev.pick({ hash: 1n, exclude: new Set(['127.0.0.1:94']), selectionAttempts: 5 });
      expect(port(moved)).not.toBe(94);
    });
  });

  describe('priorities, localities and slow start (Envoy semantics)', () => {
    const at = (name: string, priority: number, locality = '', localityWeight = 0, weight = 1) =>
      makeHost(name, 80, weight, true, locality, false, {}, { priority, localityWeight });

    it('sends everything to priority 0 while it is healthy enough, spilling by the overprovisioning factor', () => {
      const p0 = Array.from({ length: 10 }, (_, i) => at(`p0-${i}`, 0));
      const p1 = Array.from({ length: 10 }, (_, i) => at(`p1-${i}`, 1));
      const ejected = new Set<string>();
      const lb = new LoadBalancer('round_robin', [...p0, ...p1], {
        active: () => 0,
        isEjected: (k) => ejected.has(k),
        panicThresholdPercent: 0,
      });
      expect(lb.priorityLoad()).toEqual([100, 0]);
      // 8 of 10 healthy: 80% × 1.4 = 112%, still all of the load.
      ejected.add(p0[0]!.key).add(p0[1]!.key);
      expect(lb.priorityLoad()).toEqual([100, 0]);
      // 5 of 10: 70% health, the rest spills to priority 1.
      for (const h of p0.slice(2, 5)) ejected.add(h.key);
      expect(lb.priorityLoad()).toEqual([70, 30]);
      // None healthy at 0: everything to 1.
      for (const h of p0) ejected.add(h.key);
      expect(lb.priorityLoad()).toEqual([0, 100]);
      expect(Object.keys(tally(lb, 50)).every((k) => k.startsWith('p1-'))).toBe(true);
      // Both gone with panic disabled: nothing to pick.
      for (const h of p1) ejected.add(h.key);
      expect(lb.pick()).toBeUndefined();
    });

    it('normalises loads when the levels together are not fully healthy, and panics below the threshold', () => {
      const hosts = [at('a0', 0), at('a1', 0), at('b0', 1), at('b1', 1)];
      const ejected = new Set([hosts[0]!.key, hosts[2]!.key]);
      // Each level 1 of 2 healthy: 70% each, 140% together, capped at 100: level 0 takes 70, level 1 the rest.
      const lb = new LoadBalancer('round_robin', hosts, {
        active: () => 0,
        isEjected: (k) => ejected.has(k),
      });
      expect(lb.priorityLoad()).toEqual([70, 30]);
      // 50% healthy is not below the default 50% panic threshold: ejected hosts get nothing.
      expect(tally(lb, 100)[hosts[0]!.key]).toBeUndefined();
      // Everything ejected with the default threshold: total panic, load by host count, every host used.
      for (const h of hosts) ejected.add(h.key);
      expect(lb.priorityLoad()).toEqual([50, 50]);
      expect(Object.keys(tally(lb, 200)).sort()).toEqual(hosts.map((h) => h.key).sort());
    });

    it('weights localities by load_balancing_weight × availability when locality-weighted', () => {
      const hosts = [at('a', 0, 'r/z1', 80), at('b', 0, 'r/z2', 20), at('c', 0, 'r/z2', 20)];
      const lb = new LoadBalancer('round_robin', hosts, { active: () => 0, localityWeighted: true });
      const t = tally(lb, 1000);
      expect(t['a:80']).toBe(800);
      expect((t['b:80'] ?? 0) + (t['c:80'] ?? 0)).toBe(200);
      // Without locality weighting every host counts the same.
      const flat = new LoadBalancer('round_robin', hosts, { active: () => 0 });
      expect(Object.values(tally(flat, 300))).toEqual([100, 100, 100]);
      // A locality with half its hosts ejected has 0.5 × 1.4 = 0.7 availability.
      const ejected = new Set(['b:80']);
      const degraded = new LoadBalancer('round_robin', [...hosts, at('d', 0, 'r/z1', 80)], {
        active: () => 0,
        localityWeighted: true,
        isEjected: (k) => ejected.has(k),
        panicThresholdPercent: 0,
      });
      const d = tally(degraded, 940);
      expect((d['a:80'] ?? 0) + (d['d:80'] ?? 0)).toBe(800);
      expect(d['c:80']).toBe(140);
    });

    it('ramps a host that joins in slow start: min weight first, then linearly, then full', () => {
      let now = 0;
      const joined = new Map<string, number>([['new:80', 0]]);
      const hosts = [at('old', 0), at('new', 0)];
      const lb = new LoadBalancer('round_robin', hosts, {
        active: () => 0,
        slowStart: { windowMs: 10_000, aggression: 1, minWeightPercent: 10 },
        joinedAt: (k) => joined.get(k),
        now: () => now,
      });
      // At the start the new host weighs 10% of the old one: 1 request in 11.
      expect(tally(lb, 1100)['new:80']).toBe(100);
      now = 5_000; // halfway: weight 0.5
      expect(tally(lb, 1500)['new:80']).toBe(500);
      now = 10_000; // window over: equal share
      expect(tally(lb, 1000)['new:80']).toBe(500);
      // Aggression bends the curve: at a quarter of the window, 0.25^(1/2) = 0.5.
      now = 0;
      const steep = new LoadBalancer('round_robin', hosts, {
        active: () => 0,
        slowStart: { windowMs: 10_000, aggression: 2, minWeightPercent: 10 },
        joinedAt: (k) => joined.get(k),
        now: () => now + 2_500,
      });
      expect(tally(steep, 1500)['new:80']).toBe(500);
    });

    it('retries to other priorities with previous_priorities every update_frequency attempts', () => {
      const hosts = [at('local', 0), at('remote', 1)];
      const lb = new LoadBalancer('round_robin', hosts, { active: () => 0, panicThresholdPercent: 0 });
      const attempted: UpstreamHost[] = [];
      const retry = { updateFrequency: 2, attempted };
      const tried = new Set<string>();
      const next = () => {
        const h = lb.pick({ exclude: tried, retry })!;
        attempted.push(h);
        tried.add(h.key);
        return h.key;
      };
      // Attempts 1 and 2 use the unmodified load (the only local host, twice), attempt 3 leaves priority 0.
      expect([next(), next(), next()]).toEqual(['local:80', 'local:80', 'remote:80']);
      // Without the retry priority every attempt stays local.
      const plain = new LoadBalancer('round_robin', hosts, { active: () => 0, panicThresholdPercent: 0 });
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add(plain.pick({ exclude: new Set(['local:80']) })!.key);
      expect([...seen]).toEqual(['local:80']);
      // When every level has been tried, nothing is excluded any more.
      expect(lb.priorityLoad({ updateFrequency: 1, attempted: hosts })).toEqual([100, 0]);
    });

    it('hashes within the chosen priority and keeps a key on one host', () => {
      const hosts = [at('a', 0), at('b', 0), at('c', 1)];
      const lb = new LoadBalancer('ring_hash', hosts, { active: () => 0, hashTableSize: 256 });
      for (let k = 0; k < 50; k++) {
        const first = lb.pick({ hash: xxHash64(`k${k}`) })!.key;
        expect(first).not.toBe('c:80');
        expect(lb.pick({ hash: xxHash64(`k${k}`) })!.key).toBe(first);
      }
    });
  });
});
