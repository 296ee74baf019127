import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../src/upstream/circuit-breaker.js';
import { OutlierDetector } from '../src/upstream/outlier-detector.js';

describe('circuit breaker', () => {
  it('admits up to the connection limit, queues up to the pending limit, and overflows beyond', async () => {
    const cb = new CircuitBreaker({
      maxConnections: 1,
      maxPendingRequests: 1,
      maxRequests: 100,
      maxRetries: 1,
    });
    const first = cb.acquire();
    expect(typeof first).toBe('function');
    const second = cb.acquire();
    expect(second).toBeInstanceOf(Promise);
    expect(cb.acquire()).toBe('overflow');
    (first as () => void)();
    const release = await (second as Promise<() => void>);
    expect(cb.stats()).toEqual({ active: 1, pending: 0, retries: 0 });
    release();
    release(); // releasing twice is harmless
    expect(cb.stats().active).toBe(0);
    const retry = cb.tryRetry();
    expect(retry).toBeDefined();
    expect(cb.tryRetry()).toBeUndefined();
    retry!();
    expect(cb.tryRetry()).toBeDefined();
  });

  it('lets a waiting request give up its place in the queue', () => {
    const cb = new CircuitBreaker({
      maxConnections: 1,
      maxPendingRequests: 1,
      maxRequests: 100,
      maxRetries: 3,
    });
    cb.acquire();
    let abandon = () => {};
    void cb.acquire({ onAbandon: (fn) => (abandon = fn) });
    expect(cb.acquire()).toBe('overflow');
    abandon();
    expect(cb.acquire()).toBeInstanceOf(Promise);
  });
});

describe('outlier detector', () => {
  const config = {
    consecutive5xx: 3,
    enforcing5xx: 100,
    consecutiveGateway: 0,
    enforcingGateway: 0,
    intervalMs: 60_000,
    baseEjectionMs: 1000,
    maxEjectionMs: 10_000,
    maxEjectionPercent: 50,
  };

  it('ejects after consecutive errors for base × times ejected, and a success resets the count', () => {
    let now = 0;
    const od = new OutlierDetector(config, () => now);
    od.report('a', '5xx', 4);
    od.report('a', '5xx', 4);
    od.report('a', 'success', 4);
    od.report('a', '5xx', 4);
    od.report('a', '5xx', 4);
    expect(od.isEjected('a')).toBe(false);
    od.report('a', 'local-failure', 4);
    expect(od.isEjected('a')).toBe(true);
    now = 999;
    expect(od.isEjected('a')).toBe(true);
    now = 1000;
    expect(od.isEjected('a')).toBe(false);
    for (let i = 0; i < 3; i++) od.report('a', '5xx', 4);
    expect(od.isEjected('a')).toBe(true);
    now = 2999;
    expect(od.isEjected('a')).toBe(true); // second ejection lasts twice as long
    now = 3000;
    expect(od.isEjected('a')).toBe(false);
    od.stop();
  });

  it('never ejects more than max_ejection_percent of the hosts, but always at least one', () => {
    const od = new OutlierDetector({ ...config, maxEjectionPercent: 10 }, () => 0);
    for (const host of ['a', 'b']) for (let i = 0; i < 3; i++) od.report(host, '5xx', 2);
    expect(od.ejected()).toEqual(['a']);
    od.stop();
  });

  it('grows the ejection time with repeated ejections up to max_ejection_time, and forgives a host that stays back', () => {
    let now = 0;
    const od = new OutlierDetector({ ...config, baseEjectionMs: 1000, maxEjectionMs: 3000 }, () => now);
    const fail = () => {
      for (let i = 0; i < 3; i++) od.report('a', '5xx', 4);
    };
    const ejectedFor = () => {
      const from = now;
      while (od.isEjected('a')) now += 100;
      const took = now - from;
      od.sweep(); // the interval that notices the return
      return took;
    };
    fail();
    expect(ejectedFor()).toBe(1000);
    fail();
    expect(ejectedFor()).toBe(2000);
    fail();
    expect(ejectedFor()).toBe(3000);
    fail();
    expect(ejectedFor()).toBe(3000); // capped by max_ejection_time
    expect(od.ejectionMultiplier('a')).toBe(4);
    // Each interval back in rotation takes one off the multiplier.
    od.sweep();
    od.sweep();
    expect(od.ejectionMultiplier('a')).toBe(2);
    fail();
    expect(ejectedFor()).toBe(3000);
    for (let i = 0; i < 3; i++) od.sweep();
    expect(od.ejectionMultiplier('a')).toBe(0);
    fail();
    expect(ejectedFor()).toBe(1000);
    od.stop();
  });
});
