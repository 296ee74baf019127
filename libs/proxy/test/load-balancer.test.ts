import { describe, expect, it } from 'vitest';
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
    expect(Object.values(tally(new LoadBalancer('round_robin', hosts, () => 0), 300))).toEqual([
      100, 100, 100,
    ]);
  });

  it('weighted round robin follows the weights exactly', () => {
    const lb = new LoadBalancer('round_robin', [makeHost('a', 1, 3), makeHost('b', 1, 1)], () => 0);
    expect(tally(lb, 400)).toEqual({ 'a:1': 300, 'b:1': 100 });
  });

  it('skips unhealthy hosts, and excluded hosts when another is left', () => {
    const lb = new LoadBalancer('round_robin', [makeHost('a', 1), makeHost('b', 1, 1, false)], () => 0);
    expect(tally(lb, 10)).toEqual({ 'a:1': 10 });
    const two = new LoadBalancer('round_robin', hosts.slice(0, 2), () => 0);
    expect(tally(two, 10, new Set(['10.0.0.1:80']))).toEqual({ '10.0.0.2:80': 10 });
    expect(tally(two, 4, new Set(['10.0.0.1:80', '10.0.0.2:80']))).toEqual({
      '10.0.0.1:80': 2,
      '10.0.0.2:80': 2,
    });
  });

  it('least request prefers the idle host of two', () => {
    const busy = new Set(['10.0.0.1:80']);
    const lb = new LoadBalancer('least_request', hosts.slice(0, 2), (k) => (busy.has(k) ? 10 : 0));
    expect(tally(lb, 50)).toEqual({ '10.0.0.2:80': 50 });
  });

  it('with no healthy host it falls back to every host (panic mode) rather than none', () => {
    const lb = new LoadBalancer('random', [makeHost('a', 1, 1, false)], () => 0);
    expect(lb.pick()?.key).toBe('a:1');
  });
});
