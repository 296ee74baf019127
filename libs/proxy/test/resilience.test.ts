import http2 from 'node:http2';
import net from 'node:net';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRequestRecord } from '../src/observe/records.js';
import {
  type Backend,
  backend,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  staticCluster,
  svcRoutes,
  TCP,
} from './harness.js';

const H2 = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

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
  /** Held responses of the HTTP/2 server. */
  const heldH2: (() => void)[] = [];
  let slowH2: http2.Http2Server;
  let slowH2Port = 0;
  let echo: net.Server;
  let echoPort = 0;
  let tcpPort = 0;
  /** What the proxy recorded for each finished request (path, code, response flags). */
  const records: HttpRequestRecord[] = [];
  const flagsOf = (path: string) => records.filter((r) => r.path === path).map((r) => r.responseFlags);

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
        enforcing_success_rate: 0,
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
    // HTTP/2: max_requests caps the streams in flight; one connection is no limit for them.
    staticCluster('slow-h2', [slowH2Port], {
      typed_extension_protocol_options: H2,
      circuit_breakers: {
        thresholds: [{ max_connections: 1, max_pending_requests: 100, max_requests: 2, max_retries: 3 }],
      },
    }),
    // No retry may start (max_retries 0): a retriable answer is passed on, flagged UO.
    staticCluster('no-retries', [b.flaky!.port], {
      circuit_breakers: { thresholds: [{ max_retries: 0 }] },
    }),
    staticCluster('retries', [b.flaky!.port]),
    staticCluster('tcp-limited', [echoPort], { circuit_breakers: { thresholds: [{ max_connections: 1 }] } }),
    PASSTHROUGH,
  ];

  const routes = () =>
    svcRoutes([
      { match: { prefix: '/slow' }, route: { cluster: 'slow', timeout: '0s' } },
      { match: { prefix: '/pair' }, route: { cluster: 'pair', timeout: '0s' } },
      { match: { prefix: '/h2-slow' }, route: { cluster: 'slow-h2', timeout: '0s' } },
      ...['no-retries', 'retries'].map((cluster) => ({
        match: { prefix: `/${cluster}/` },
        route: { cluster, timeout: '0s', retry_policy: { retry_on: '5xx', num_retries: 3 } },
      })),
      {
        match: { prefix: '/sticky-header' },
        route: { cluster: 'sticky', timeout: '0s', hash_policy: [{ header: { header_name: 'x-user' } }] },
      },
      {
        match: { prefix: '/sticky-cookie' },
        route: {
          cluster: 'maglev',
          timeout: '0s',
          hash_policy: [
            {
              cookie: {
                name: 'session',
                ttl: '60s',
                path: '/',
                attributes: [{ name: 'SameSite', value: 'Strict' }, { name: 'Secure' }],
              },
            },
          ],
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
    slowH2 = http2.createServer((req, res) => {
      req.resume();
      heldH2.push(() => res.end('done'));
    });
    await new Promise<void>((r) => slowH2.listen(0, '127.0.0.1', r));
    slowH2Port = (slowH2.address() as net.AddressInfo).port;
    echo = net.createServer((s) => s.pipe(s).on('error', () => {}));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as net.AddressInfo).port;
    tcpPort = await h.ports.take();
    await h.start(
      () => ({
        [TypeUrl.Cluster]: clusters(),
        [TypeUrl.Listener]: [
          ...outboundListeners(h.outbound),
          {
            name: 'tcp-limited',
            address: { socket_address: { address: '127.0.0.1', port_value: tcpPort } },
            filter_chains: [
              {
                filters: [
                  { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster: 'tcp-limited' } },
                ],
              },
            ],
          },
        ],
        [TypeUrl.RouteConfiguration]: [routes()],
      }),
      undefined,
      { observer: { startHttp: () => ({ end: (r) => records.push(r) }) } },
    );
  });

  afterAll(async () => {
    for (const release of held.splice(0)) release();
    for (const release of heldH2.splice(0)) release();
    await h.stop();
    slowH2.close();
    echo.close();
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

  it('circuit breaking over HTTP/2: max_requests streams in flight, and every request beyond overflows at once (UO), never queued', async () => {
    const inflight = [h.request('http://svc:9080/h2-slow/1'), h.request('http://svc:9080/h2-slow/2')];
    await h.until('two streams at the backend', () => heldH2.length === 2);
    const overflow = await Promise.all([
      h.request('http://svc:9080/h2-slow/3'),
      h.request('http://svc:9080/h2-slow/4'),
    ]);
    expect(overflow.map((r) => r.status)).toEqual([503, 503]);
    expect(overflow.every((r) => r.headers['x-envoy-overloaded'] === 'true')).toBe(true);
    expect([...flagsOf('/h2-slow/3'), ...flagsOf('/h2-slow/4')]).toEqual(['UO', 'UO']);
    expect(heldH2.length).toBe(2);
    for (const release of heldH2.splice(0)) release();
    expect((await Promise.all(inflight)).map((r) => r.status)).toEqual([200, 200]);
    expect(flagsOf('/h2-slow/1')).toEqual(['-']);
  });

  it('max_retries: with no retry budget left a retriable answer is passed on, flagged UO; within it, retried and flagged URX', async () => {
    flakyDown = true;
    try {
      const before = b.flaky!.hits;
      const r = await h.request('http://svc:9080/no-retries/x');
      expect(r.status).toBe(503);
      expect(b.flaky!.hits - before).toBe(1);
      expect(flagsOf('/no-retries/x')).toEqual(['UO']);
      const retried = await h.request('http://svc:9080/retries/x');
      expect(retried.status).toBe(503);
      expect(b.flaky!.hits - before).toBe(1 + 4);
      expect(flagsOf('/retries/x')).toEqual(['URX']);
    } finally {
      flakyDown = false;
    }
  });

  it('tcp_proxy: connections beyond max_connections are refused while the first is open', async () => {
    const first = net.connect(tcpPort, '127.0.0.1');
    await new Promise<void>((resolve) => {
      first.once('data', () => resolve());
      first.write('one');
    });
    const second = net.connect(tcpPort, '127.0.0.1');
    const secondGot: Buffer[] = [];
    second.on('data', (c: Buffer) => secondGot.push(c));
    second.on('error', () => {});
    second.write('two');
    await new Promise((resolve) => second.once('close', resolve));
    expect(Buffer.concat(secondGot).toString()).toBe('');
    first.destroy();
    // The slot is back once the first connection closed.
    await h.until('a new connection echoes again', async () => {
      const third = net.connect(tcpPort, '127.0.0.1');
      third.on('error', () => {});
      const ok = await new Promise<boolean>((resolve) => {
        third.once('data', () => resolve(true));
        third.once('close', () => resolve(false));
        third.write('three');
      });
      third.destroy();
      return ok;
    });
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
    expect(setCookie).toMatch(
      /^session="[0-9a-f]{16}"; Max-Age=60; Path=\/; SameSite=Strict; Secure; HttpOnly$/,
    );
    const cookie = setCookie.split(';')[0]!;
    // The request that got the cookie already went where the cookie leads.
    const host = JSON.parse(first.body).name;
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
