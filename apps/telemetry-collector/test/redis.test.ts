import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceGraph } from '../src/mesh/graph.js';
import type { TraceSummary } from '../src/store/types.js';
import { eventually, getJson, type Running, startCollector } from './helpers/collector.js';
import { BOOKINFO, exposition, requestLines, syncEntry, type Traffic } from './helpers/istio.js';
import {
  hexId,
  Kind,
  log,
  logsProtobuf,
  metrics,
  metricsJson,
  metricsProtobuf,
  span,
  tracesProtobuf,
} from './helpers/otlp.js';
import { type RedisProcess, startRedis } from './helpers/redis.js';
import { jsonServer, type TextServer, textServer } from './helpers/servers.js';

interface HealthBody {
  status: string;
  reasons: string[];
  storage: { backend: string; ok: boolean; scrapeLeader?: boolean; reason?: string };
}

const toReviews = (code: string): Traffic => ({
  reporter: 'destination',
  source: BOOKINFO.productpage,
  destination: BOOKINFO.reviewsV2,
  service: 'reviews',
  code,
});

async function postProtobuf(url: string, body: Uint8Array): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-protobuf' },
  });
  await res.arrayBuffer();
  return res.status;
}

function trace(traceId: string, startMs: number) {
  return [
    span({
      traceId,
      spanId: hexId(8, 1),
      name: 'GET /productpage',
      service: 'productpage',
      kind: Kind.server,
      startMs,
      durationMs: 20,
    }),
    span({
      traceId,
      spanId: hexId(8, 2),
      parentSpanId: hexId(8, 1),
      name: 'GET /reviews/0',
      service: 'reviews',
      kind: Kind.server,
      startMs: startMs + 2,
      durationMs: 10,
    }),
  ];
}

/**
 * Two collectors on one real Redis: the same answers from either, scrape
 * data written once (the lease holder's), and graceful degradation while
 * Redis is down — memory answers, health says why, and both recover.
 */
describe('two collectors sharing one Redis', () => {
  // A clock the test moves (both collectors share it), starting at the real time so logs and spans stamped now are recent.
  let now = Date.now();
  let redis: RedisProcess;
  let a: Running;
  let b: Running;
  let proxy: TextServer;
  let pilot: Awaited<ReturnType<typeof jsonServer>>;
  const health = (c: Running) => getJson<HealthBody>(`${c.api}/healthz`);
  const graph = (c: Running) => getJson<ServiceGraph>(`${c.api}/api/graph?window=5m`);
  const reviewsEdge = (g: ServiceGraph) =>
    g.edges.find((e) => e.id === 'workload:default/productpage-v1->service:default/reviews');
  const round = async (requests200: number, requests500: number) => {
    proxy.body = exposition(
      requestLines(toReviews('200'), { requests: requests200 }),
      requestLines(toReviews('500'), { requests: requests500 }),
    );
    await a.collector.scrapeNow();
    await b.collector.scrapeNow();
  };

  beforeAll(async () => {
    redis = await startRedis();
    proxy = await textServer();
    pilot = await jsonServer({ '/debug/syncz': () => [syncEntry(BOOKINFO.reviewsV2, proxy.port)] });
    const options = { clock: () => now, redisUrl: redis.url, pilotUrl: pilot.url, scrapeIntervalMs: 10_000 };
    a = await startCollector(options);
    b = await startCollector(options);
    await eventually(
      async () => ((await health(a)).storage.ok && (await health(b)).storage.ok ? true : undefined),
      10_000,
      'both collectors connected to Redis',
    );
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([redis?.stop(), proxy?.close(), pilot?.close()]);
  });

  it('answers the same graph from either collector, counting scraped traffic once', async () => {
    await round(100, 0);
    now += 10_000;
    await round(160, 20);
    const [ga, gb] = await Promise.all([graph(a), graph(b)]);
    expect(ga.edges).toEqual(gb.edges);
    expect(ga.nodes).toEqual(gb.nodes);
    const e = reviewsEdge(ga)!;
    expect(e.requests).toBe(80);
    expect(e.requestsPerSecond).toBeCloseTo(8, 10);
    expect(e.errorRate).toBeCloseTo(0.25, 10);
    const [ha, hb] = await Promise.all([health(a), health(b)]);
    expect(ha).toMatchObject({ status: 'ok', storage: { backend: 'redis', ok: true, scrapeLeader: true } });
    expect(hb).toMatchObject({ status: 'ok', storage: { backend: 'redis', ok: true, scrapeLeader: false } });
  });

  it('answers trace and log queries alike, whichever collector received the data', async () => {
    const traceId = hexId(16, 21);
    expect(await postProtobuf(`${a.otlp}/v1/traces`, tracesProtobuf(trace(traceId, Date.now())))).toBe(200);
    expect(
      await postProtobuf(
        `${b.otlp}/v1/logs`,
        logsProtobuf([
          log({ service: 'reviews', atMs: Date.now(), body: { response_code: 200, path: '/reviews/0' } }),
        ]),
      ),
    ).toBe(200);
    for (const c of [a, b]) {
      const t = await getJson<{ spans: unknown[]; services: string[] }>(`${c.api}/api/traces/${traceId}`);
      expect(t.services).toEqual(['productpage', 'reviews']);
      expect(t.spans).toHaveLength(2);
      const { logs } = await getJson<{ logs: { body: unknown }[] }>(`${c.api}/api/logs?service=reviews`);
      expect(logs.map((l) => l.body)).toEqual([{ response_code: 200, path: '/reviews/0' }]);
    }
    const [la, lb] = await Promise.all([
      getJson<{ traces: TraceSummary[] }>(`${a.api}/api/traces?service=reviews`),
      getJson<{ traces: TraceSummary[] }>(`${b.api}/api/traces?service=reviews`),
    ]);
    expect(la).toEqual(lb);
    expect(la.traces.map((t) => t.traceId)).toEqual([traceId]);
  });

  it('answers OTLP metric queries alike, whichever collector received the points', async () => {
    expect(await postProtobuf(`${a.otlp}/v1/metrics`, metricsProtobuf(metrics('ratings', Date.now())))).toBe(
      200,
    );
    const viaB = await fetch(`${b.otlp}/v1/metrics`, {
      method: 'POST',
      body: metricsJson(metrics('details', Date.now())),
      headers: { 'content-type': 'application/json' },
    });
    expect(viaB.status).toBe(200);
    type Points = {
      points: { name: string; service: string; kind: string; value?: number; count?: number }[];
    };
    for (const query of ['service=ratings', 'service=details', 'name=http.server.requests', '']) {
      const [pa, pb] = await Promise.all([
        getJson<Points>(`${a.api}/api/otlp-metrics?${query}`),
        getJson<Points>(`${b.api}/api/otlp-metrics?${query}`),
      ]);
      expect(pa, query).toEqual(pb);
    }
    const ratings = await getJson<Points>(`${b.api}/api/otlp-metrics?service=ratings`);
    expect(ratings.points.map((p) => p.name).sort()).toEqual([
      'http.server.duration',
      'http.server.requests',
      'process.memory.usage',
    ]);
    const requests = await getJson<Points>(`${a.api}/api/otlp-metrics?name=http.server.requests`);
    expect(requests.points.map((p) => [p.service, p.value]).sort()).toEqual([
      ['details', 42],
      ['ratings', 42],
    ]);
  });

  it('keeps answering from memory while Redis is down, says so on /healthz, and recovers when it is back', async () => {
    await redis.kill();
    for (const c of [a, b]) {
      const h = await eventually(
        async () => {
          const body = await health(c);
          return body.status === 'degraded' ? body : undefined;
        },
        5000,
        'health to report Redis down',
      );
      expect(h.reasons[0]).toMatch(
        new RegExp(`redis at 127\\.0\\.0\\.1:${redis.port} is unreachable.*serving from memory`),
      );
      expect(h.storage).toMatchObject({ backend: 'redis', ok: false });
    }
    // Every collector scraped for itself, so the graph is complete from memory; answers are prompt.
    const started = performance.now();
    const [ga, gb] = await Promise.all([graph(a), graph(b)]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(reviewsEdge(ga)?.requests).toBe(80);
    expect(reviewsEdge(gb)?.requests).toBe(80);
    // Ingestion goes on into memory.
    const during = hexId(16, 22);
    expect(await postProtobuf(`${a.otlp}/v1/traces`, tracesProtobuf(trace(during, Date.now())))).toBe(200);
    expect((await getJson<{ spans: unknown[] }>(`${a.api}/api/traces/${during}`)).spans).toHaveLength(2);
    expect((await fetch(`${b.api}/api/traces?service=reviews`)).status).toBe(200);

    await redis.restart();
    for (const c of [a, b]) {
      await eventually(
        async () => ((await health(c)).status === 'ok' ? true : undefined),
        10_000,
        'health to recover',
      );
    }
    // The restarted Redis is empty: the next scrapes fill it again, written once.
    now += 10_000;
    await round(200, 20);
    const [ra, rb] = await Promise.all([graph(a), graph(b)]);
    expect(ra.edges).toEqual(rb.edges);
    expect(reviewsEdge(ra)?.requests).toBe(40);
    expect(reviewsEdge(ra)?.errorRate).toBe(0);
    // What a received while Redis was away is still visible there (merged from memory).
    expect((await getJson<{ spans: unknown[] }>(`${a.api}/api/traces/${during}`)).spans).toHaveLength(2);
    const after = hexId(16, 23);
    expect(await postProtobuf(`${b.otlp}/v1/traces`, tracesProtobuf(trace(after, Date.now())))).toBe(200);
    expect((await getJson<{ spans: unknown[] }>(`${a.api}/api/traces/${after}`)).spans).toHaveLength(2);
  });
});
