import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GraphEdge, ServiceGraph, SignalSeries } from '../src/mesh/graph.js';
import { getJson, type Running, startCollector } from './helpers/collector.js';
import { BOOKINFO, exposition, requestLines, syncEntry, type Traffic } from './helpers/istio.js';
import { jsonServer, type TextServer, textServer } from './helpers/servers.js';

/**
 * The service graph computed from two real scrapes of real HTTP servers that
 * serve fixed Prometheus text, changed between the scrapes: exact rates,
 * error shares, percentiles from bucket deltas, the reporter rule and mTLS.
 */
const T0 = 1_800_000_000_000;
const { productpage, reviewsV1, ratings } = BOOKINFO;

// productpage → reviews (reviews-v1), as reviews-v1's proxy reports it.
const ppToReviews = (code: string): Traffic => ({
  reporter: 'destination',
  source: productpage,
  destination: reviewsV1,
  service: 'reviews',
  code,
});
// The same traffic as productpage's proxy reports it: must not be counted twice.
const ppToReviewsSrc = (code: string): Traffic => ({ ...ppToReviews(code), reporter: 'source' });

describe('service graph from scrapes', () => {
  let now = T0;
  let c: Running;
  let pilot: Awaited<ReturnType<typeof jsonServer>>;
  const proxies: Record<'productpage' | 'reviews' | 'ratings', TextServer> = {} as never;

  beforeAll(async () => {
    proxies.productpage = await textServer();
    proxies.reviews = await textServer();
    proxies.ratings = await textServer();
    pilot = await jsonServer({
      '/debug/syncz': () => [
        syncEntry(productpage, proxies.productpage.port),
        syncEntry(reviewsV1, proxies.reviews.port),
        syncEntry(ratings, proxies.ratings.port),
        // Connected, but not serving stats yet.
        syncEntry(BOOKINFO.details, undefined),
      ],
      '/debug/registryz': () => [
        { hostname: 'details.default.svc.cluster.local', namespace: 'default', ports: [] },
      ],
    });
    c = await startCollector({ clock: () => now, pilotUrl: pilot.url });

    // ---- first scrape (baseline) ----
    proxies.reviews.body = exposition(
      requestLines(ppToReviews('200'), {
        requests: 100,
        buckets: [10, 50, 80, 95, 100, 100, 100, 100],
        durationSum: 900,
      }),
      requestLines(ppToReviews('503'), { requests: 5, durationSum: 2.5 }),
    );
    proxies.productpage.body = exposition(
      requestLines(ppToReviewsSrc('200'), { requests: 100 }),
      requestLines(ppToReviewsSrc('503'), { requests: 5 }),
    );
    proxies.ratings.body = exposition(
      requestLines(
        {
          reporter: 'destination',
          source: reviewsV1,
          destination: ratings,
          service: 'ratings',
          code: '200',
          security: 'none',
        },
        { requests: 30 },
      ),
      requestLines(
        {
          reporter: 'destination',
          source: 'unknown',
          destination: ratings,
          service: 'ratings',
          code: '200',
          security: 'none',
        },
        { requests: 50 },
      ),
    );
    await c.collector.scrapeNow();

    // ---- ten seconds of traffic later ----
    now = T0 + 10_000;
    proxies.reviews.body = exposition(
      requestLines(ppToReviews('200'), {
        requests: 140,
        buckets: [10, 60, 100, 125, 135, 140, 140, 140],
        durationSum: 1300,
      }),
      requestLines(ppToReviews('503'), { requests: 15, durationSum: 7.5 }),
      // reviews-v1's own proxy, as a client: a fault-injected abort that never reached ratings…
      requestLines(
        {
          reporter: 'source',
          source: reviewsV1,
          destination: 'unknown',
          service: 'ratings',
          code: '500',
          flags: 'FI',
        },
        { requests: 10 },
      ),
      // …and the calls ratings also reports (not counted twice).
      requestLines(
        { reporter: 'source', source: reviewsV1, destination: ratings, service: 'ratings', code: '200' },
        { requests: 60 },
      ),
    );
    proxies.productpage.body = exposition(
      // The source saw a few more (in flight when the destination was scraped): ignored for a meshed destination.
      requestLines(ppToReviewsSrc('200'), { requests: 145 }),
      requestLines(ppToReviewsSrc('503'), { requests: 15 }),
      // An external service without a proxy: only the source reports it; the series is new.
      requestLines(
        {
          reporter: 'source',
          source: productpage,
          destination: 'unknown',
          service: 'httpbin.org',
          code: '200',
        },
        { requests: 20 },
      ),
    );
    proxies.ratings.body = exposition(
      requestLines(
        {
          reporter: 'destination',
          source: reviewsV1,
          destination: ratings,
          service: 'ratings',
          code: '200',
          security: 'none',
        },
        { requests: 60 },
      ),
      // The ingress-less caller's counter restarted: 50 → 5 is a reset, so the increase is 5.
      requestLines(
        {
          reporter: 'destination',
          source: 'unknown',
          destination: ratings,
          service: 'ratings',
          code: '200',
          security: 'none',
        },
        { requests: 5 },
      ),
    );
    await c.collector.scrapeNow();
  });

  afterAll(async () => {
    await c?.stop();
    await Promise.all([...Object.values(proxies).map((p) => p.close()), pilot?.close()]);
  });

  const edge = (g: ServiceGraph, id: string): GraphEdge => {
    const e = g.edges.find((x) => x.id === id);
    if (!e) throw new Error(`no edge ${id}; edges: ${g.edges.map((x) => x.id).join(', ')}`);
    return e;
  };

  it('counts each request once, from the destination proxy, with exact rate, error share and percentiles', async () => {
    const g = await getJson<ServiceGraph>(`${c.api}/api/graph?window=5m`);
    const e = edge(g, 'workload:default/productpage-v1->service:default/reviews');
    expect(e.requests).toBe(50);
    expect(e.requestsPerSecond).toBeCloseTo(5, 10);
    // The rate's denominator: the 10 s the proxy was observed, not the 5m window.
    expect(e.observedSeconds).toBe(10);
    expect(e.errors).toBe(10);
    expect(e.errorRate).toBeCloseTo(0.2, 10);
    expect(e.responseCodes).toEqual({ '200': 40, '503': 10 });
    // Bucket deltas (cumulative): le1 10, le5 20, le10 30, le25 40, le50 45, le100 50, +Inf 50.
    expect(e.latencyMs.p50).toBeCloseTo(7.5, 10); // rank 25 in (5,10]: 5 + 5 * (5/10)
    expect(e.latencyMs.p90).toBeCloseTo(50, 10); // rank 45 at the top of (25,50]
    expect(e.latencyMs.p99).toBeCloseTo(95, 10); // rank 49.5 in (50,100]: 50 + 50 * (4.5/5)
    expect(e.latencyMs.mean).toBeCloseTo(405 / 50, 10);
    expect(e.mtls).toEqual({ percent: 100, status: 'full' });
    expect(e.reporters).toEqual(['destination']);
    expect(e.requestBytesPerSecond).toBeCloseTo((50 * 100) / 10, 10);
    // The service → workload hop carries the same traffic.
    const hop = edge(g, 'service:default/reviews->workload:default/reviews-v1');
    expect(hop.requests).toBe(50);
    expect(hop.errorRate).toBeCloseTo(0.2, 10);
    expect(hop.latencyMs.p99).toBeCloseTo(95, 10);
  });

  it('uses the source report for destinations without a proxy and for requests that never reached one', async () => {
    const g = await getJson<ServiceGraph>(`${c.api}/api/graph?window=5m`);
    const external = edge(g, 'workload:default/productpage-v1->service:/httpbin.org');
    expect(external.requests).toBe(20); // a series new since the first scrape counts from zero
    expect(external.requestsPerSecond).toBeCloseTo(2, 10);
    expect(external.mtls.status).toBe('unknown');
    expect(g.edges.some((x) => x.source === 'service:/httpbin.org')).toBe(false);

    // 30 served by ratings (destination report) + 10 aborted by fault injection (source report only).
    const toRatings = edge(g, 'workload:default/reviews-v1->service:default/ratings');
    expect(toRatings.requests).toBe(40);
    expect(toRatings.requestsPerSecond).toBeCloseTo(4, 10);
    expect(toRatings.errorRate).toBeCloseTo(0.25, 10);
    expect(toRatings.responseFlags).toEqual({ FI: 10 });
    expect(toRatings.mtls).toEqual({ percent: 0, status: 'none' });
    const served = edge(g, 'service:default/ratings->workload:default/ratings-v1');
    expect(served.requests).toBe(35); // 30 from reviews-v1 + 5 after the unknown caller's counter reset
    expect(served.errorRate).toBe(0);

    const fromUnknown = edge(g, 'unknown->service:default/ratings');
    expect(fromUnknown.requests).toBe(5);
    expect(fromUnknown.requestsPerSecond).toBeCloseTo(0.5, 10);
  });

  it('lists nodes with inbound stats, including proxies that have no traffic or no stats port yet', async () => {
    const g = await getJson<ServiceGraph>(`${c.api}/api/graph?window=5m`);
    const ids = g.nodes.map((n) => n.id);
    expect(ids).toEqual(
      expect.arrayContaining([
        'unknown',
        'workload:default/productpage-v1',
        'service:default/reviews',
        'workload:default/reviews-v1',
        'service:default/ratings',
        'workload:default/ratings-v1',
        'service:/httpbin.org',
        'workload:default/details-v1',
      ]),
    );
    const reviews = g.nodes.find((n) => n.id === 'workload:default/reviews-v1')!;
    expect(reviews).toMatchObject({ kind: 'workload', app: 'reviews', version: 'v1', meshed: true });
    expect(reviews.inbound.requestsPerSecond).toBeCloseTo(5, 10);
    const svc = g.nodes.find((n) => n.id === 'service:default/reviews')!;
    expect(svc).toMatchObject({ kind: 'service', host: 'reviews.default.svc.cluster.local', meshed: true });

    const targets = await getJson<{ targets: { workload: string; state: string; error?: string }[] }>(
      `${c.api}/api/targets`,
    );
    expect(targets.targets.find((t) => t.workload === 'details-v1')).toMatchObject({
      state: 'pending',
      error: expect.stringMatching(/no stats port/),
    });
    expect(targets.targets.filter((t) => t.state === 'up')).toHaveLength(3);
  });

  it('gives per-service golden signals as series and lists services from traffic and the registry', async () => {
    const s = await getJson<SignalSeries>(
      `${c.api}/api/metrics/service?namespace=default&name=reviews&window=1m&step=10s`,
    );
    expect(s.times).toHaveLength(6);
    expect(s.times.at(-1)).toBe(T0 + 10_000);
    expect(s.requestsPerSecond.at(-1)).toBeCloseTo(5, 10);
    expect(s.errorRate.at(-1)).toBeCloseTo(0.2, 10);
    expect(s.p99.at(-1)).toBeCloseTo(95, 10);
    expect(s.requestsPerSecond.slice(0, -1)).toEqual([0, 0, 0, 0, 0]);
    expect(s.p99.slice(0, -1)).toEqual([null, null, null, null, null]);
    expect(s.summary.requests).toBe(50);

    const w = await getJson<SignalSeries>(
      `${c.api}/api/metrics/workload?namespace=default&name=ratings-v1&window=1m&step=10s`,
    );
    expect(w.summary.requests).toBe(35);

    const list = await getJson<{
      services: { name: string; requestsPerSecond: number; errorRate: number | null }[];
    }>(`${c.api}/api/services?window=5m`);
    const byName = Object.fromEntries(list.services.map((x) => [x.name, x]));
    expect(byName.reviews!.requestsPerSecond).toBeCloseTo(5, 10);
    expect(byName.ratings!.errorRate).toBeCloseTo(10 / 45, 10);
    expect(byName.details).toMatchObject({ requestsPerSecond: 0, errorRate: null });
    expect(byName['httpbin.org']).toBeDefined();
  });

  it('answers for the window asked: nothing once the traffic is older than it', async () => {
    now = T0 + 10_000 + 120_000;
    const g = await getJson<ServiceGraph>(`${c.api}/api/graph?window=1m`);
    expect(g.edges).toEqual([]);
    const wide = await getJson<ServiceGraph>(`${c.api}/api/graph?window=5m`);
    expect(edge(wide, 'workload:default/productpage-v1->service:default/reviews').requests).toBe(50);
    now = T0 + 10_000;
  });

  it('rejects bad query parameters with a reason', async () => {
    for (const [url, reason] of [
      ['/api/graph?window=soon', /window must be a duration/],
      ['/api/metrics/service?namespace=default', /name is required/],
      ['/api/traces?limit=-1', /limit must be a positive/],
      ['/api/traces/xyz', /32 hex/],
    ] as const) {
      const res = await fetch(`${c.api}${url}`);
      expect(res.status, url).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(reason);
    }
  });
});
