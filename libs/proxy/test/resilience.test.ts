import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Backend,
  backend,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  staticCluster,
  svcRoutes,
} from './harness.js';

/**
 * Circuit breaking, outlier detection, consistent hashing and mirroring, each
 * configured with the Envoy fields pilot emits for Istio's DestinationRule and
 * VirtualService, through a real proxy to real backends.
 */
describe('resilience and balancing', () => {
  const h = new ProxyHarness();
  const b: Record<string, Backend> = {};
  /** When set, `flaky` answers 503 to everything. */
  let flakyDown = false;
  /** Held responses of `slow`, released by the test. */
  const held: (() => void)[] = [];

  const clusters = () => [
    staticCluster('slow', [b.slow!.port], {
      circuit_breakers: {
        thresholds: [{ max_connections: 1, max_pending_requests: 1, max_requests: 100, max_retries: 3 }],
      },
    }),
    staticCluster('pair', [b.good!.port, b.flaky!.port], {
      outlier_detection: {
        consecutive_5xx: 3,
        enforcing_consecutive_5xx: 100,
        interval: '0.2s',
        base_ejection_time: '1s',
        max_ejection_percent: 100,
      },
      common_lb_config: { healthy_panic_threshold: { value: 0 } },
    }),
    staticCluster('sticky', [b.s1!.port, b.s2!.port, b.s3!.port], {
      lb_policy: 'RING_HASH',
      ring_hash_lb_config: { minimum_ring_size: 1024 },
    }),
    staticCluster('maglev', [b.s1!.port, b.s2!.port, b.s3!.port], { lb_policy: 'MAGLEV' }),
    staticCluster('main', [b.good!.port]),
    staticCluster('shadow', [b.shadow!.port]),
    PASSTHROUGH,
  ];

  const routes = () =>
    svcRoutes([
      { match: { prefix: '/slow' }, route: { cluster: 'slow', timeout: '0s' } },
      { match: { prefix: '/pair' }, route: { cluster: 'pair', timeout: '0s' } },
      {
        match: { prefix: '/sticky-header' },
        route: { cluster: 'sticky', timeout: '0s', hash_policy: [{ header: { header_name: 'x-user' } }] },
      },
      {
        match: { prefix: '/sticky-cookie' },
        route: {
          cluster: 'maglev',
          timeout: '0s',
          hash_policy: [{ cookie: { name: 'session', ttl: '60s', path: '/' } }],
        },
      },
      {
        match: { prefix: '/mirrored' },
        route: {
          cluster: 'main',
          timeout: '0s',
          request_mirror_policies: [
            {
              cluster: 'shadow',
              runtime_fraction: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
            },
          ],
        },
      },
    ]);

  beforeAll(async () => {
    b.slow = await backend('slow', (_req, res) => {
      held.push(() => res.end('done'));
      return true;
    });
    b.good = await backend('good');
    b.flaky = await backend('flaky', (_req, res) => {
      if (!flakyDown) return false;
      res.writeHead(503).end('down');
      return true;
    });
    for (const n of ['s1', 's2', 's3']) b[n] = await backend(n);
    b.shadow = await backend('shadow');
    await h.start(() => ({
      [TypeUrl.Cluster]: clusters(),
      [TypeUrl.Listener]: outboundListeners(h.outbound),
      [TypeUrl.RouteConfiguration]: [routes()],
    }));
  });

  afterAll(async () => {
    for (const release of held.splice(0)) release();
    await h.stop();
    await Promise.all(Object.values(b).map((x) => x.close()));
  });

  it('circuit breaking: one in flight, one pending, and every request beyond answered at once with 503 UO', async () => {
    const inflight = [h.request('http://svc:9080/slow/1'), h.request('http://svc:9080/slow/2')];
    await h.until('first request at the backend', () => held.length === 1);
    const overflow = await Promise.all([
      h.request('http://svc:9080/slow/3'),
      h.request('http://svc:9080/slow/4'),
    ]);
    for (const r of overflow) {
      expect(r.status).toBe(503);
      expect(r.headers['x-envoy-overloaded']).toBe('true');
      expect(r.body).toContain('reset reason: overflow');
    }
    held.shift()!();
    await h.until('pending request admitted', () => held.length === 1);
    held.shift()!();
    const done = await Promise.all(inflight);
    expect(done.map((r) => r.status)).toEqual([200, 200]);
  });

  it('outlier detection: ejects the failing host so it gets no traffic, and lets it back after the ejection time', async () => {
    flakyDown = true;
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await h.request('http://svc:9080/pair')).status);
    // At most three 503s reach the caller before the host is ejected; after that every request succeeds.
    expect(statuses.filter((s) => s === 503).length).toBeLessThanOrEqual(3);
    expect(statuses.slice(-6)).toEqual([200, 200, 200, 200, 200, 200]);
    const flakyHits = b.flaky!.hits;
    for (let i = 0; i < 10; i++) expect((await h.request('http://svc:9080/pair')).status).toBe(200);
    expect(b.flaky!.hits).toBe(flakyHits);
    flakyDown = false;
    await h.until(
      'ejected host back in rotation',
      async () => {
        await h.request('http://svc:9080/pair');
        return b.flaky!.hits > flakyHits;
      },
      5000,
    );
  });

  it('consistent hashing keeps each user on one host and spreads users over all hosts', async () => {
    const hostOf = async (user: string) =>
      JSON.parse((await h.request('http://svc:9080/sticky-header', { 'x-user': user })).body).name;
    const seen = new Set<string>();
    for (let u = 0; u < 30; u++) {
      const first = await hostOf(`user-${u}`);
      seen.add(first);
      for (let i = 0; i < 3; i++) expect(await hostOf(`user-${u}`)).toBe(first);
    }
    expect(seen.size).toBe(3);
  });

  it('a cookie hash policy sets a session cookie and the session then sticks to one host (Maglev)', async () => {
    const first = await h.request('http://svc:9080/sticky-cookie');
    const setCookie = String(first.headers['set-cookie']);
    expect(setCookie).toMatch(/^session="[0-9a-f]{16}"; Max-Age=60; Path=\/; HttpOnly$/);
    const cookie = setCookie.split(';')[0]!;
    const host = JSON.parse((await h.request('http://svc:9080/sticky-cookie', { cookie })).body).name;
    for (let i = 0; i < 10; i++) {
      const r = await h.request('http://svc:9080/sticky-cookie', { cookie });
      expect(JSON.parse(r.body).name).toBe(host);
      expect(r.headers['set-cookie']).toBeUndefined();
    }
  });

  it('mirrors requests to the shadow cluster with a -shadow authority, without the caller seeing it', async () => {
    const before = b.shadow!.hits;
    const r = await h.request(
      'http://svc:9080/mirrored/x',
      { 'content-type': 'text/plain' },
      'POST',
      'hello',
    );
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).name).toBe('good');
    await h.until('shadow received the copy', () => b.shadow!.hits === before + 1);
    expect(b.shadow!.lastHeaders?.host).toBe('svc-shadow:9080');
    expect(b.shadow!.lastBody).toBe('hello');
  });
});
