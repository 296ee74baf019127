import { describe, expect, it } from 'vitest';
import type { CircuitBreakerLimits } from '../src/config/cluster.js';
import { CircuitBreaker } from '../src/upstream/circuit-breaker.js';
import { OutlierDetector } from '../src/upstream/outlier-detector.js';

describe('circuit breaker (Envoy thresholds)', () => {
  const limits = (over: Partial<CircuitBreakerLimits>): CircuitBreakerLimits => ({
    maxConnections: 1024,
    maxPendingRequests: 1024,
    maxRequests: 1024,
    maxRetries: 3,
    ...over,
  });

  it('HTTP/1.1: one connection per request in flight, then the pending queue, then overflow', async () => {
    const cb = new CircuitBreaker(limits({ maxConnections: 1, maxPendingRequests: 1 }));
    const first = cb.acquire('http1');
    expect(typeof first).toBe('function');
    const second = cb.acquire('http1');
    expect(second).toBeInstanceOf(Promise);
    expect(cb.acquire('http1')).toBe('overflow');
    (first as () => void)();
    const release = await (second as Promise<() => void>);
    expect(cb.stats()).toEqual({ requests: 1, connections: 1, pending: 0, retries: 0 });
    release();
    release(); // releasing twice is harmless
    expect(cb.stats().requests).toBe(0);
  });

  it('HTTP/2: max_requests caps streams in flight and overflows at once, never queueing', () => {
    const cb = new CircuitBreaker(limits({ maxConnections: 1, maxPendingRequests: 5, maxRequests: 3 }));
    const held = [cb.acquire('http2'), cb.acquire('http2'), cb.acquire('http2')];
    expect(held.every((h) => typeof h === 'function')).toBe(true);
    // One connection is no limit for multiplexed streams; max_requests is.
    expect(cb.acquire('http2')).toBe('overflow');
    expect(cb.stats().pending).toBe(0);
    (held[0] as () => void)();
    expect(typeof cb.acquire('http2')).toBe('function');
  });

  it('HTTP/2 with max_concurrent_streams: streams fill max_connections connections, the rest wait', async () => {
    const cb = new CircuitBreaker(limits({ maxConnections: 2, maxPendingRequests: 1 }), 2);
    const held = Array.from({ length: 4 }, () => cb.acquire('http2'));
    expect(held.every((h) => typeof h === 'function')).toBe(true);
    expect(cb.stats().connections).toBe(2);
    const waiting = cb.acquire('http2');
    expect(waiting).toBeInstanceOf(Promise);
    expect(cb.acquire('http2')).toBe('overflow');
    (held[0] as () => void)();
    expect(typeof (await (waiting as Promise<() => void>))).toBe('function');
  });

  it('connections alone (tcp_proxy, upgrades) count against max_connections and never wait', () => {
    const cb = new CircuitBreaker(limits({ maxConnections: 2 }));
    const a = cb.tryAcquire('connection');
    expect(cb.acquire('connection')).not.toBe('overflow');
    expect(cb.acquire('connection')).toBe('overflow');
    expect(cb.tryAcquire('http1')).toBeUndefined();
    a!();
    expect(cb.tryAcquire('http1')).toBeDefined();
  });

  it('lets a waiting request give up its place in the queue', () => {
    const cb = new CircuitBreaker(limits({ maxConnections: 1, maxPendingRequests: 1 }));
    cb.acquire('http1');
    let abandon = () => {};
    void cb.acquire('http1', { onAbandon: (fn) => (abandon = fn) });
    expect(cb.acquire('http1')).toBe('overflow');
    abandon();
    expect(cb.acquire('http1')).toBeInstanceOf(Promise);
  });

  it('max_retries caps retries in flight; retry_budget makes it a share of the outstanding requests', () => {
    const cb = new CircuitBreaker(limits({ maxRetries: 1 }));
    const retry = cb.tryRetry();
    expect(typeof retry).toBe('function');
    expect(cb.tryRetry()).toBe('overflow');
    (retry as () => void)();
    expect(typeof cb.tryRetry()).toBe('function');

    const budget = new CircuitBreaker(limits({ retryBudget: { percent: 25, minRetryConcurrency: 1 } }));
    for (let i = 0; i < 8; i++) budget.acquire('http2');
    // 25% of 8 outstanding requests: two retries at once.
    expect(typeof budget.tryRetry()).toBe('function');
    expect(typeof budget.tryRetry()).toBe('function');
    expect(budget.tryRetry()).toBe('overflow');
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
    splitLocalOrigin: false,
    consecutiveLocalOrigin: 5,
    enforcingLocalOrigin: 100,
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

  it('consecutive gateway errors count 502/503/504 and local failures only; any other answer starts the count again', () => {
    const od = new OutlierDetector(
      { ...config, consecutive5xx: 0, consecutiveGateway: 3, enforcingGateway: 100 },
      () => 0,
    );
    for (let i = 0; i < 10; i++) od.report('a', '5xx', 4);
    expect(od.isEjected('a')).toBe(false);
    od.report('a', 'gateway-error', 4);
    od.report('a', 'local-failure', 4);
    od.report('a', '5xx', 4); // a 500 breaks the run
    od.report('a', 'gateway-error', 4);
    od.report('a', 'gateway-error', 4);
    expect(od.isEjected('a')).toBe(false);
    od.report('a', 'local-failure', 4);
    expect(od.isEjected('a')).toBe(true);
    od.stop();
  });

  it('split local-origin errors: connection failures count on their own, and any answer from the host resets them', () => {
    const od = new OutlierDetector(
      { ...config, consecutive5xx: 2, splitLocalOrigin: true, consecutiveLocalOrigin: 3 },
      () => 0,
    );
    od.report('a', 'local-failure', 4);
    od.report('a', 'local-failure', 4);
    od.report('a', '5xx', 4); // an answer: the connection works
    od.report('a', 'local-failure', 4);
    od.report('a', 'local-failure', 4);
    expect(od.isEjected('a')).toBe(false);
    od.report('a', 'local-failure', 4);
    expect(od.isEjected('a')).toBe(true);
    // Local failures never counted toward the 5xx rule: one 5xx more does not eject b.
    od.report('b', 'local-failure', 4);
    od.report('b', '5xx', 4);
    expect(od.isEjected('b')).toBe(false);
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
