import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceGraph } from '../src/mesh/graph.js';
import type { TargetStatus } from '../src/scrape.js';
import { getJson, type Running, startCollector } from './helpers/collector.js';
import { BOOKINFO, exposition, requestLines } from './helpers/istio.js';
import { closeServer, type TextServer, textServer } from './helpers/servers.js';

/** Scrape targets that hang, fail or lie are bounded and isolated: the others are scraped as usual. */
describe('scraping misbehaving targets', () => {
  let now = 1_800_000_000_000;
  let c: Running;
  let good: TextServer;
  let garbage: TextServer;
  let hanging: net.Server;
  let hangingPort: number;
  let slowBody: http.Server;
  let slowBodyPort: number;
  let failing: http.Server;
  let failingPort: number;
  const sockets = new Set<net.Socket>();
  const traffic = (n: number) =>
    exposition(
      requestLines(
        {
          reporter: 'destination',
          source: BOOKINFO.productpage,
          destination: BOOKINFO.details,
          service: 'details',
          code: '200',
        },
        { requests: n },
      ),
    );

  beforeAll(async () => {
    good = await textServer(traffic(10));
    garbage = await textServer('istio_requests_total{reporter="destination" 5\n');
    // Accepts connections and never answers.
    hanging = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    hangingPort = (hanging.address() as AddressInfo).port;
    // Sends headers, then trickles the body forever.
    slowBody = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('# HELP istio_requests_total x\n');
    });
    await new Promise<void>((r) => slowBody.listen(0, '127.0.0.1', r));
    slowBodyPort = (slowBody.address() as AddressInfo).port;
    failing = http.createServer((_req, res) => {
      res.writeHead(500);
      res.end('boom');
    });
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', r));
    failingPort = (failing.address() as AddressInfo).port;
    c = await startCollector({
      clock: () => now,
      scrapeTimeoutMs: 300,
      staticTargets: [
        { name: 'good', url: good.url },
        { name: 'hanging', url: `http://127.0.0.1:${hangingPort}/stats/prometheus` },
        { name: 'slow-body', url: `http://127.0.0.1:${slowBodyPort}/stats/prometheus` },
        { name: 'garbage', url: garbage.url },
        { name: 'failing', url: `http://127.0.0.1:${failingPort}/stats/prometheus` },
        { name: 'refused', url: 'http://127.0.0.1:1/stats/prometheus' },
      ],
    });
  });

  afterAll(async () => {
    await c?.stop();
    for (const s of sockets) s.destroy();
    await Promise.all([
      good?.close(),
      garbage?.close(),
      new Promise<void>((r) => hanging.close(() => r())),
      closeServer(slowBody),
      closeServer(failing),
    ]);
  });

  it('bounds every scrape by the timeout and still scrapes the healthy target', async () => {
    const started = performance.now();
    await c.collector.scrapeNow();
    now += 10_000;
    good.body = traffic(30);
    await c.collector.scrapeNow();
    const elapsed = performance.now() - started;
    // Two rounds, each bounded by the 300 ms timeout (targets are scraped in parallel).
    expect(elapsed).toBeLessThan(2000);

    const { targets } = await getJson<{ targets: TargetStatus[] }>(`${c.api}/api/targets`);
    const byId = Object.fromEntries(targets.map((t) => [t.id, t]));
    expect(byId.good).toMatchObject({ state: 'up', samples: expect.any(Number) });
    expect(byId.hanging).toMatchObject({ state: 'down', error: 'no answer within 300 ms' });
    expect(byId['slow-body']).toMatchObject({ state: 'down', error: 'no answer within 300 ms' });
    expect(byId.garbage).toMatchObject({ state: 'down', error: expect.stringMatching(/^line 1: /) });
    expect(byId.failing).toMatchObject({ state: 'down', error: expect.stringMatching(/HTTP 500/) });
    expect(byId.refused).toMatchObject({ state: 'down' });
    expect(byId.hanging!.durationMs).toBeLessThan(1000);

    const g = await getJson<ServiceGraph>(`${c.api}/api/graph?window=5m`);
    const e = g.edges.find((x) => x.id === 'workload:default/productpage-v1->service:default/details');
    expect(e?.requests).toBe(20);
    expect(e?.requestsPerSecond).toBeCloseTo(2, 10);

    const health = await getJson<{ status: string; scrape: { up: number; down: number } }>(
      `${c.api}/healthz`,
    );
    expect(health.scrape).toMatchObject({ up: 1, down: 5 });
    const metrics = await (await fetch(`${c.api}/metrics`)).text();
    expect(metrics).toMatch(/mizzen_collector_scrapes_total\{result="timeout"\} 4/);
  });

  it('pairs the next success with the last success after a failed scrape', async () => {
    good.status = 503;
    now += 10_000;
    await c.collector.scrapeNow();
    const { targets } = await getJson<{ targets: TargetStatus[] }>(`${c.api}/api/targets`);
    expect(targets.find((t) => t.id === 'good')).toMatchObject({
      state: 'down',
      error: expect.stringMatching(/HTTP 503/),
    });
    good.status = 200;
    good.body = traffic(60);
    now += 10_000;
    await c.collector.scrapeNow();
    const g = await getJson<ServiceGraph>(`${c.api}/api/graph?window=5m`);
    const e = g.edges.find((x) => x.id === 'workload:default/productpage-v1->service:default/details');
    // 10 → 30 over 10 s, then 30 → 60 over the 20 s that included the failed scrape: 50 requests in 30 s.
    expect(e?.requests).toBe(50);
    expect(e?.requestsPerSecond).toBeCloseTo(50 / 30, 10);
  });
});
