import { describe, expect, it } from 'vitest';
import { hash32 } from '../src/upstream/consistent-hash.js';
import { makeHost } from '../src/upstream/host.js';
import { LoadBalancer } from '../src/upstream/load-balancer.js';

const hosts = [makeHost('10.0.0.1', 80), makeHost('10.0.0.2', 80), makeHost('10.0.0.3', 80)];

function tally(lb: LoadBalancer, n: number, exclude?: Set<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const h = lb.pick(exclude)!.key;
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
      const keys = Array.from({ length: 2000 }, (_, i) => hash32(`user-${i}`));
      const first = keys.map((k) => lb.pick(undefined, k)!.key);
      expect(
        keys.map((k) => lb.pick(undefined, k)!.key),
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
        (k, i) => first[i] !== five[4]!.key && four.pick(undefined, k)!.key !== first[i],
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
});
