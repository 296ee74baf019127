import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrowserFailureRecorder } from '@mizzen/runtime';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BookinfoMesh } from './helpers/bookinfo-mesh.js';
import { type Running, startCollector } from './helpers/collector.js';
import { hexId, Kind, log, logsJson, span, tracesJson } from './helpers/otlp.js';
import { jsonServer } from './helpers/servers.js';

/**
 * The dashboard in real Chromium against a real collector that scrapes
 * simulated Bookinfo proxies (prom-client expositions with Istio's metrics,
 * growing while the test runs) and receives OTLP spans and access logs.
 * Screenshots go to test-artifacts/ (gitignored); a failed test leaves its
 * screenshot and the page's console in test-artifacts/failures/. With
 * MIZZEN_UPDATE_SCREENSHOTS=1 the README's docs/dashboard-graph.png is
 * rewritten too.
 */
/** What the tests use of the dashboard's cytoscape instance (window.mizzenGraph), evaluated in the page. */
interface GraphHandle {
  getElementById(id: string): {
    data(key: string): unknown;
    style(key: string): unknown;
    renderedMidpoint(): { x: number; y: number };
  };
  fit(eles?: unknown, padding?: number): void;
  container(): { getBoundingClientRect(): { left: number; top: number } } | null;
}
declare const window: { mizzenGraph?: GraphHandle };

const here = path.dirname(fileURLToPath(import.meta.url));
const artifacts = path.resolve(here, '..', 'test-artifacts');
/** The README's screenshot, rewritten with MIZZEN_UPDATE_SCREENSHOTS=1. */
const readmeShot = path.resolve(here, '..', 'docs', 'dashboard-graph.png');
const CHROMIUM = '/usr/bin/chromium';
const dashboardBuilt = fs.existsSync(path.resolve(here, '..', 'dist', 'dashboard', 'index.html'));

const EDGE = {
  toReviews: 'workload:default/productpage-v1->service:default/reviews',
  reviewsToV2: 'service:default/reviews->workload:default/reviews-v2',
  v2ToRatings: 'workload:default/reviews-v2->service:default/ratings',
  toDetails: 'workload:default/productpage-v1->service:default/details',
};

const TRACE_ID = hexId(16, 42);

function bookinfoTrace(startMs: number) {
  const id = (n: number) => hexId(8, 100 + n);
  const http = (method: string, path: string, code: number) => ({
    'http.request.method': method,
    'url.path': path,
    'http.response.status_code': code,
    response_flags: '-',
  });
  return [
    span({
      traceId: TRACE_ID,
      spanId: id(1),
      name: 'productpage.default.svc.cluster.local:9080/productpage',
      service: 'productpage',
      kind: Kind.server,
      startMs,
      durationMs: 48,
      attributes: {
        ...http('GET', '/productpage', 200),
        node_id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
        'istio.canonical_service': 'productpage',
        upstream_cluster: 'inbound|9080||',
      },
    }),
    span({
      traceId: TRACE_ID,
      spanId: id(2),
      parentSpanId: id(1),
      name: 'details.default.svc.cluster.local:9080/*',
      service: 'productpage',
      kind: Kind.client,
      startMs: startMs + 2,
      durationMs: 7,
      attributes: {
        ...http('GET', '/details/0', 200),
        upstream_cluster: 'outbound|9080||details.default.svc.cluster.local',
      },
    }),
    span({
      traceId: TRACE_ID,
      spanId: id(3),
      parentSpanId: id(2),
      name: 'details.default.svc.cluster.local:9080/*',
      service: 'details',
      kind: Kind.server,
      startMs: startMs + 3,
      durationMs: 5,
      attributes: http('GET', '/details/0', 200),
    }),
    span({
      traceId: TRACE_ID,
      spanId: id(4),
      parentSpanId: id(1),
      name: 'reviews.default.svc.cluster.local:9080/*',
      service: 'productpage',
      kind: Kind.client,
      startMs: startMs + 11,
      durationMs: 33,
      attributes: {
        ...http('GET', '/reviews/0', 200),
        upstream_cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
      },
    }),
    span({
      traceId: TRACE_ID,
      spanId: id(5),
      parentSpanId: id(4),
      name: 'reviews.default.svc.cluster.local:9080/*',
      service: 'reviews',
      kind: Kind.server,
      startMs: startMs + 12,
      durationMs: 31,
      attributes: http('GET', '/reviews/0', 200),
    }),
    span({
      traceId: TRACE_ID,
      spanId: id(6),
      parentSpanId: id(5),
      name: 'ratings.default.svc.cluster.local:9080/*',
      service: 'reviews',
      kind: Kind.client,
      startMs: startMs + 20,
      durationMs: 9,
      attributes: {
        ...http('GET', '/ratings/0', 200),
        upstream_cluster: 'outbound|9080||ratings.default.svc.cluster.local',
      },
    }),
    span({
      traceId: TRACE_ID,
      spanId: id(7),
      parentSpanId: id(6),
      name: 'ratings.default.svc.cluster.local:9080/*',
      service: 'ratings',
      kind: Kind.server,
      startMs: startMs + 21,
      durationMs: 7,
      attributes: http('GET', '/ratings/0', 200),
    }),
  ];
}

describe('dashboard in Chromium', () => {
  let mesh: BookinfoMesh;
  let pilot: Awaited<ReturnType<typeof jsonServer>>;
  let c: Running;
  let browser: Browser;
  let page: Page;
  const failures = new BrowserFailureRecorder(path.join(artifacts, 'failures'));

  afterEach(async ({ task }) => {
    if (task.result?.state !== 'fail' || !page) return;
    const saved = await failures.saveFailure(task.name, (file) =>
      page.screenshot({ path: file, fullPage: true }),
    );
    console.error(`the failed test's browser artifacts: ${saved.join(', ')}`);
  });

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium`);
    if (!dashboardBuilt)
      throw new Error('dist/dashboard is missing: run `npm run build` in apps/telemetry-collector first');
    fs.mkdirSync(artifacts, { recursive: true });
    failures.reset();
    mesh = new BookinfoMesh();
    await mesh.start(100);
    pilot = await jsonServer({
      '/debug/syncz': () => mesh.syncz(),
      '/debug/registryz': () => [],
      '/debug/configz': () => ({
        resources: [
          {
            apiVersion: 'networking.istio.io/v1',
            kind: 'VirtualService',
            metadata: { name: 'details', namespace: 'default' },
            spec: {
              hosts: ['details'],
              http: [
                {
                  fault: { abort: { percentage: { value: 66 }, httpStatus: 503 } },
                  route: [{ destination: { host: 'details' } }],
                },
              ],
            },
            source: 'dir:deploy/local',
          },
          {
            apiVersion: 'networking.istio.io/v1',
            kind: 'DestinationRule',
            metadata: { name: 'reviews', namespace: 'default' },
            spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
            source: 'dir:deploy/local',
          },
        ],
        issues: [
          {
            severity: 'error',
            source: 'store:/home/u/.mizzen/pilot/store.json',
            document: 2,
            kind: 'VirtualService',
            namespace: 'default',
            name: 'ratings',
            field: 'spec.http[0].route[0].weight',
            message:
              'store.json: document 2 (VirtualService default/ratings): spec.http[0].route[0].weight: must be between 0 and 100, got 120',
          },
        ],
      }),
    });
    c = await startCollector({
      pilotUrl: pilot.url,
      manualScrape: false,
      scrapeIntervalMs: 500,
      scrapeTimeoutMs: 400,
    });
    const now = Date.now();
    const traces = await fetch(`${c.otlp}/v1/traces`, {
      method: 'POST',
      body: tracesJson(bookinfoTrace(now - 2000)),
      headers: { 'content-type': 'application/json' },
    });
    expect(traces.status).toBe(200);
    const logs = await fetch(`${c.otlp}/v1/logs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: logsJson([
        log({
          service: 'productpage',
          atMs: now - 1500,
          traceId: TRACE_ID,
          body: JSON.stringify({
            method: 'GET',
            path: '/productpage',
            authority: 'bookinfo',
            response_code: 200,
            response_flags: '-',
            duration: 48,
            upstream_cluster: 'inbound|9080||',
          }),
        }),
        log({
          service: 'productpage',
          atMs: now - 1000,
          body: JSON.stringify({
            method: 'GET',
            path: '/details/0',
            authority: 'details:9080',
            response_code: 503,
            response_flags: 'FI',
            duration: 0,
            upstream_cluster: 'outbound|9080||details.default.svc.cluster.local',
          }),
        }),
      ]),
    });
    expect(logs.status).toBe(200);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    page.setDefaultTimeout(15_000);
    page.on('console', (m) => failures.log(`console.${m.type()}`, m.text()));
    page.on('pageerror', (err) => failures.log('pageerror', err.message));
  });

  afterAll(async () => {
    await browser?.close();
    await c?.stop();
    await Promise.all([mesh?.stop(), pilot?.close()]);
  });

  const edgeRow = (id: string) => page.locator(`table[aria-label="Edges"] tr[data-edge-id="${id}"]`);

  it('shows productpage → reviews → ratings with non-zero rates', async () => {
    await page.goto(`${c.api}/#/graph`);
    for (const id of [EDGE.toReviews, EDGE.reviewsToV2, EDGE.v2ToRatings]) {
      await expectNonZeroRate(page, id);
    }
    const label = await page.evaluate(
      (id) => window.mizzenGraph?.getElementById(id).data('label') as string,
      EDGE.toReviews,
    );
    expect(label).toMatch(/\/s · 0% err/);
    expect(label).toMatch(/p99 \d/);
    expect(label).toMatch(/mTLS/);
    const graphLabel = await page
      .getByRole('img', { name: /Service graph over 5m: \d+ nodes, \d+ edges/ })
      .getAttribute('aria-label');
    expect(graphLabel).toBeTruthy();
    await poll(() => text(page.locator('#health'))).toMatch(/Healthy · memory/);
    await page.screenshot({ path: path.join(artifacts, 'graph.png') });
  });

  it('shows an edge’s metrics when it is clicked on the canvas', async () => {
    // The graph re-lays itself out when new nodes appear, so aim again until the click lands on the edge.
    await expect
      .poll(
        async () => {
          const point = await page.evaluate((id) => {
            const cy = window.mizzenGraph!;
            const p = cy.getElementById(id).renderedMidpoint();
            const box = cy.container()!.getBoundingClientRect();
            return { x: box.left + p.x, y: box.top + p.y };
          }, EDGE.toReviews);
          await page.mouse.click(point.x, point.y);
          return page.locator('aside[aria-label="Selection details"] h2').allTextContents();
        },
        { timeout: 10_000, interval: 300 },
      )
      .toEqual(['productpage-v1 → reviews']);
    const details = page.getByRole('region', { name: 'Selection details' });
    const metrics = details.getByLabel('Edge metrics');
    await poll(() => metrics.allTextContents()).toEqual([expect.stringMatching(/Requests\/s\d/)]);
    const text = (await metrics.textContent()) ?? '';
    expect(text).toMatch(/Error rate0%/);
    expect(text).toMatch(/Latency p99\d+(\.\d+)? ms/);
    expect(text).toMatch(/Security\s*mutual TLS/);
    // The rate is the requests over the time the proxies were observed (a few seconds here), not the 5m window.
    const [, rps, count, observed] =
      /Requests\/s([\d.]+)\/s.*Requests(\d+) in ([\d.]+) s observed/.exec(text) ?? [];
    expect(Number(count)).toBeGreaterThan(0);
    // The observed time is shown rounded (to 0.1 s below 10 s, to whole seconds above), so the rate must lie
    // between the count over the longest and over the shortest time that displays as `observed`.
    const half = Number(observed) < 10 ? 0.05 : 0.5;
    expect(Number(rps)).toBeGreaterThanOrEqual(Number(count) / (Number(observed) + half) - 0.05);
    expect(Number(rps)).toBeLessThanOrEqual(Number(count) / (Number(observed) - half) + 0.05);
    expect(await details.getByRole('table', { name: 'Response codes' }).textContent()).toMatch(/200/);
    expect(await edgeRow(EDGE.toReviews).getAttribute('aria-selected')).toBe('true');
    await page.screenshot({ path: path.join(artifacts, 'graph-edge-selected.png') });
  });

  it('turns the edge with fault-injected 5xx red', async () => {
    await poll(() =>
      edgeRow(EDGE.toDetails)
        .getAttribute('data-health', { timeout: 1000 })
        .catch(() => null),
    ).toBe('failure');
    const color = await page.evaluate(
      (id) => window.mizzenGraph?.getElementById(id).style('line-color') as string,
      EDGE.toDetails,
    );
    expect(color.replace(/\s/g, '')).toBe('rgb(214,40,40)');
    const healthy = await page.evaluate(
      (id) => window.mizzenGraph?.getElementById(id).style('line-color') as string,
      EDGE.toReviews,
    );
    expect(healthy.replace(/\s/g, '')).not.toBe('rgb(214,40,40)');
    const errors = await edgeRow(EDGE.toDetails).locator('td').nth(3).textContent();
    expect(Number.parseFloat(errors ?? '')).toBeGreaterThanOrEqual(50);
    await edgeRow(EDGE.toDetails).click();
    const details = page.getByRole('region', { name: 'Selection details' });
    await poll(() => text(details)).toMatch(/failing/);
    expect(await details.getByRole('table', { name: 'Response flags' }).textContent()).toMatch(/FI/);
    await page.screenshot({ path: path.join(artifacts, 'graph-failing-edge.png') });
    if (process.env.MIZZEN_UPDATE_SCREENSHOTS === '1') await page.screenshot({ path: readmeShot });
  });

  it('opens a trace as a waterfall spanning four services', async () => {
    await page.getByRole('link', { name: 'Traces' }).first().click();
    const row = page.locator(`table[aria-label="Traces"] tr[data-trace-id="${TRACE_ID}"]`);
    await row.waitFor();
    expect(await row.textContent()).toMatch(
      /productpage: productpage\.default\.svc\.cluster\.local:9080\/productpage/,
    );
    await page.screenshot({ path: path.join(artifacts, 'traces.png') });
    await row.click();
    const waterfall = page.getByRole('list', { name: 'Trace waterfall' });
    await waterfall.waitFor();
    const items = waterfall.getByRole('listitem');
    await poll(() => items.count()).toBe(7);
    const services = await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-service')));
    expect(new Set(services)).toEqual(new Set(['productpage', 'details', 'reviews', 'ratings']));
    expect(await page.getByLabel('Trace summary').getByLabel('4 services').count()).toBe(1);
    // Children are indented under their parents and start later.
    const bars = await waterfall
      .locator('.span-bar')
      .evaluateAll((els) => els.map((e) => (e as unknown as { style: { left: string } }).style.left));
    expect(bars[0]).toBe('0%');
    await items.nth(6).getByRole('button').click();
    await poll(() => text(items.nth(6))).toMatch(/http\.response\.status_code/);
    await page.screenshot({ path: path.join(artifacts, 'trace-waterfall.png'), fullPage: true });
  });

  it('charts golden signals and shows access logs, proxy sync status and the config in force', async () => {
    await page.goto(`${c.api}/#/services/default/reviews`);
    const traffic = page.getByRole('figure', { name: 'Traffic (requests/s)' });
    await traffic.locator('canvas').waitFor();
    await poll(() => text(page.getByLabel('Window totals'))).toMatch(/Requests\/s\d/);
    expect(await page.getByRole('figure').count()).toBe(4);
    await page.screenshot({ path: path.join(artifacts, 'service-reviews.png'), fullPage: true });

    await page.goto(`${c.api}/#/logs`);
    const logs = page.getByRole('table', { name: 'Access logs' });
    await poll(() => text(logs)).toMatch(/FI/);
    expect(await logs.textContent()).toMatch(/\/productpage/);
    await page.screenshot({ path: path.join(artifacts, 'access-logs.png') });

    await page.goto(`${c.api}/#/proxies`);
    const proxies = page.getByRole('table', { name: 'Proxies' });
    await poll(() => proxies.locator('tbody tr').count()).toBe(7);
    expect(await proxies.textContent()).toMatch(/ACKED/);
    await poll(() => text(proxies)).toMatch(/up · /);
    await page.screenshot({ path: path.join(artifacts, 'proxies.png') });

    await page.goto(`${c.api}/#/config`);
    const resources = page.getByRole('table', { name: 'Resources' });
    await poll(() => resources.locator('tbody tr').count()).toBe(2);
    expect(await resources.textContent()).toMatch(/VirtualService/);
    const rejected = page.getByRole('region', { name: 'Rejected documents' });
    expect(await rejected.textContent()).toMatch(/weight: must be between 0 and 100, got 120/);
    await page.screenshot({ path: path.join(artifacts, 'config.png'), fullPage: true });
  });
});

/** Polls for up to 10 s: the dashboard refreshes every few seconds. */
function poll<T>(fn: () => Promise<T> | T) {
  return expect.poll(fn, { timeout: 10_000, interval: 200 });
}

/** Text of whatever matches now (no waiting for it to appear). */
async function text(locator: Locator): Promise<string> {
  return (await locator.allTextContents()).join(' ');
}

async function expectNonZeroRate(page: Page, id: string): Promise<void> {
  await expect
    .poll(
      async () => {
        const row = page.locator(`table[aria-label="Edges"] tr[data-edge-id="${id}"] td`).nth(2);
        if ((await row.count()) === 0) return 0;
        return Number.parseFloat((await row.textContent()) ?? '0') || 0;
      },
      { timeout: 15_000, message: `edge ${id} with a non-zero rate` },
    )
    .toBeGreaterThan(0);
}
