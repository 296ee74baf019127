import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BrowserFailureRecorder, freePort, isAlive } from '@mizzen/runtime';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type LoadResult, steadyLoad } from '../src/load.js';

/**
 * The dashboard in real Chromium (Debian's /usr/bin/chromium through
 * playwright-core) against the real thing: `npx mizzen up` as a user runs it,
 * Bookinfo traffic flowing through the ingress gateway, the collector
 * scraping every proxy and receiving their spans. One mesh for every case.
 *
 * Screenshots go to e2e/artifacts/dashboard/ (gitignored); a failed test
 * leaves its screenshot, the page's console and mizzen up's output in
 * e2e/artifacts/dashboard/failures/. With MIZZEN_UPDATE_SCREENSHOTS=1 the
 * README's screenshot (apps/telemetry-collector/docs/dashboard-mizzen-up.png)
 * is written too.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const artifacts = path.join(root, 'e2e', 'artifacts', 'dashboard');
const readmeShot = path.join(root, 'apps', 'telemetry-collector', 'docs', 'dashboard-mizzen-up.png');
const CHROMIUM = '/usr/bin/chromium';
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-dashboard-home-'));
const env: NodeJS.ProcessEnv = { ...process.env, MIZZEN_HOME: home };
delete env.MIZZEN_PILOT;

/** What the tests use of the dashboard's cytoscape instance (window.mizzenGraph), evaluated in the page. */
interface GraphHandle {
  getElementById(id: string): {
    data(key: string): unknown;
    style(key: string): unknown;
    renderedMidpoint(): { x: number; y: number };
  };
  container(): { getBoundingClientRect(): { left: number; top: number } } | null;
}
declare const window: { mizzenGraph?: GraphHandle };

const EDGE = {
  productpageToReviews: 'workload:default/productpage-v1->service:default/reviews',
  reviewsToV2: 'service:default/reviews->workload:default/reviews-v2',
  reviewsToV3: 'service:default/reviews->workload:default/reviews-v3',
  v2ToRatings: 'workload:default/reviews-v2->service:default/ratings',
  v3ToRatings: 'workload:default/reviews-v3->service:default/ratings',
};
const RED = 'rgb(214,40,40)';
const BOOKINFO = ['productpage.default', 'details.default', 'reviews.default', 'ratings.default'];

const RATINGS_ABORT = `# Istio's fault injection task: every call to ratings aborted with a 503.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: default
spec:
  hosts: [ratings]
  http:
    - fault:
        abort:
          httpStatus: 503
          percentage: { value: 100 }
      route:
        - destination: { host: ratings }
`;

function mizzen(args: string[]) {
  const r = spawnSync('npx', ['mizzen', ...args], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Polls for up to `timeout` ms: the dashboard refreshes every few seconds and the collector scrapes every 5 s. */
function poll<T>(fn: () => Promise<T> | T, timeout = 30_000) {
  return expect.poll(fn, { timeout, interval: 250 });
}

async function text(locator: Locator): Promise<string> {
  return (await locator.allTextContents()).join(' ');
}

/** The requests/s cell of an edge's row in the Edges table (0 while the row is absent). */
async function edgeRate(page: Page, id: string): Promise<number> {
  const cell = page.locator(`table[aria-label="Edges"] tr[data-edge-id="${id}"] td`).nth(2);
  if ((await cell.count()) === 0) return 0;
  return Number.parseFloat((await cell.textContent()) ?? '0') || 0;
}

async function edgeStyle(page: Page, id: string, key: string): Promise<string> {
  return page.evaluate(([edge, k]) => String(window.mizzenGraph?.getElementById(edge).style(k) ?? ''), [
    id,
    key,
  ] as const);
}

describe('the dashboard in Chromium against `npx mizzen up` with Bookinfo traffic flowing', () => {
  let up: ChildProcess;
  let exited: Promise<unknown>;
  let output = '';
  let ingress = '';
  let dashboard = '';
  let browser: Browser;
  let page: Page;
  let load: { stop: () => Promise<LoadResult>; sent: () => number } | undefined;
  const failures = new BrowserFailureRecorder(path.join(artifacts, 'failures'));

  afterEach(async ({ task }) => {
    if (task.result?.state !== 'fail' || !page) return;
    const saved = await failures.saveFailure(task.name, (file) =>
      page.screenshot({ path: file, fullPage: true }),
    );
    const upLog = path.join(failures.dir, 'mizzen-up.log');
    fs.writeFileSync(upLog, output);
    console.error(`the failed test's browser artifacts: ${[...saved, upLog].join(', ')}`);
  });

  const productpageLoad = () =>
    steadyLoad(
      async () => {
        const r = await fetch(`${ingress}/productpage`, { signal: AbortSignal.timeout(10_000) });
        await r.arrayBuffer();
        return { ok: r.status === 200, detail: `productpage answered ${r.status}` };
      },
      // About five pages a second: enough for rates, gentle on a shared two-core machine.
      { concurrency: 1, pauseMs: 200, maxRequests: 4000, maxMs: 8 * 60_000 },
    );

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install chromium)`,
      );
    fs.mkdirSync(artifacts, { recursive: true });
    failures.reset();
    const ingressPort = await freePort();
    ingress = `http://127.0.0.1:${ingressPort}`;
    up = spawn('npx', ['mizzen', 'up', '--ingress-port', String(ingressPort)], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: stopped the way a terminal's Ctrl-C stops it.
      detached: true,
    });
    exited = new Promise((resolve) => up.once('exit', resolve));
    const collect = (c: Buffer) => {
      output += c.toString();
    };
    up.stdout?.on('data', collect);
    up.stderr?.on('data', collect);
    await eventually(
      '`mesh ready` from mizzen up',
      async () => output.includes('mesh ready') || (up.exitCode !== null ? `exited: ${output}` : false),
      180_000,
    );
    dashboard = /dashboard: (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1] ?? '';
    expect(dashboard, output).not.toBe('');
    load = productpageLoad();
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
    page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
    page.setDefaultTimeout(15_000);
    page.on('console', (m) => failures.log(`console.${m.type()}`, m.text()));
    page.on('pageerror', (err) => failures.log('pageerror', err.message));
  }, 240_000);

  afterAll(async () => {
    await load?.stop();
    await browser?.close();
    if (up?.pid && up.exitCode === null) {
      process.kill(-up.pid, 'SIGINT');
      const stopped = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
      if (!stopped) {
        try {
          process.kill(-up.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    const state = path.join(home, 'run', 'state.json');
    if (fs.existsSync(state)) {
      const { components } = JSON.parse(fs.readFileSync(state, 'utf8')) as { components: { pid: number }[] };
      for (const c of components) if (isAlive(c.pid)) process.kill(c.pid, 'SIGKILL');
    }
    fs.rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it('draws productpage → reviews → ratings with non-zero rates and mTLS marked on every edge', async () => {
    await page.goto(`${dashboard}/#/graph`);
    await poll(() => edgeRate(page, EDGE.productpageToReviews)).toBeGreaterThan(0);
    // Round robin over v1, v2 and v3: v2 and v3 call ratings.
    for (const id of [EDGE.reviewsToV2, EDGE.reviewsToV3, EDGE.v2ToRatings, EDGE.v3ToRatings])
      await poll(() => edgeRate(page, id)).toBeGreaterThan(0);
    const label = await page.evaluate(
      (id) => String(window.mizzenGraph?.getElementById(id).data('label') ?? ''),
      EDGE.productpageToReviews,
    );
    expect(label).toMatch(/\/s · 0% err/);
    expect(label).toMatch(/p99 \d/);
    expect(label).toMatch(/mTLS/);
    expect((await edgeStyle(page, EDGE.v2ToRatings, 'line-color')).replace(/\s/g, '')).not.toBe(RED);
    const graph = page.getByRole('img', { name: /Service graph over 5m: \d+ nodes, \d+ edges/ });
    expect(await graph.count()).toBe(1);
    await page.screenshot({ path: path.join(artifacts, 'graph.png') });
  });

  it('shows an edge’s metrics when it is clicked on the canvas, and they move while traffic flows', async () => {
    // The graph may re-lay itself out when nodes appear: aim again until the click lands on the edge.
    await expect
      .poll(
        async () => {
          const point = await page.evaluate((id) => {
            const cy = window.mizzenGraph!;
            const p = cy.getElementById(id).renderedMidpoint();
            const box = cy.container()!.getBoundingClientRect();
            return { x: box.left + p.x, y: box.top + p.y };
          }, EDGE.productpageToReviews);
          await page.mouse.click(point.x, point.y);
          return page.locator('aside[aria-label="Selection details"] h2').allTextContents();
        },
        { timeout: 20_000, interval: 500 },
      )
      .toEqual(['productpage-v1 → reviews']);
    const details = page.getByRole('region', { name: 'Selection details' });
    const metrics = details.getByLabel('Edge metrics');
    const stats = await text(metrics);
    expect(stats).toMatch(/Requests\/s\d/);
    expect(stats).toMatch(/Error rate0%/);
    expect(stats).toMatch(/Latency p99\d+(\.\d+)? m?s/);
    expect(stats).toMatch(/Security\s*mutual TLS/);
    expect(stats).toMatch(/Reported by.*destination/);
    expect(await details.getByRole('table', { name: 'Response codes' }).textContent()).toMatch(/200/);
    // Live: the window's request count grows with the traffic, without a reload.
    const inWindow = async () =>
      Number(/Requests(\d+) in [\d.]+ (s|min) observed/.exec(await text(metrics))?.[1] ?? 0);
    const before = await inWindow();
    await poll(inWindow, 40_000).toBeGreaterThan(before);
    await page.screenshot({ path: path.join(artifacts, 'graph-edge-selected.png') });
    if (process.env.MIZZEN_UPDATE_SCREENSHOTS === '1') await page.screenshot({ path: readmeShot });
  });

  it('opens a Bookinfo trace as a waterfall spanning its four services, every hop a client span over the callee’s server span', async () => {
    // Quiet, so the trace is easy to find in the list.
    await load?.stop();
    load = undefined;
    type Span = { spanId: string; parentSpanId?: string; service: string; kind: string };
    let traceId = '';
    let spans: Span[] = [];
    // Reviews v1 does not call ratings: trace requests until one goes through v2 or v3.
    for (let i = 1; i <= 6 && !traceId; i++) {
      const id = `dab0a2d0${String(i).padStart(24, '0')}`;
      const res = await fetch(`${ingress}/productpage`, {
        headers: { traceparent: `00-${id}-00000000000000aa-01` },
      });
      expect(res.status).toBe(200);
      await eventually(
        `trace ${id} at the collector`,
        async () => {
          const r = await fetch(`${dashboard}/api/traces/${id}`);
          if (!r.ok) return `collector answered ${r.status}`;
          spans = ((await r.json()) as { spans: Span[] }).spans;
          const services = new Set(spans.map((s) => s.service));
          return [
            'istio-ingressgateway.istio-system',
            'productpage.default',
            'details.default',
            'reviews.default',
          ].every((s) => services.has(s));
        },
        30_000,
      );
      // Spans arrive in batches: give the last hop a moment.
      await sleep(1500);
      spans = ((await (await fetch(`${dashboard}/api/traces/${id}`)).json()) as { spans: Span[] }).spans;
      if (spans.some((s) => s.service === 'ratings.default')) traceId = id;
    }
    expect(traceId, 'no request went through reviews v2 or v3 in six tries').not.toBe('');
    // Both proxies of every hop: the caller's client span is the parent of the callee's server span.
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const hops = spans
      .filter((s) => s.kind === 'server' && s.parentSpanId && byId.get(s.parentSpanId)?.kind === 'client')
      .map((s) => `${byId.get(s.parentSpanId!)!.service} → ${s.service}`);
    expect(new Set(hops)).toEqual(
      new Set([
        'istio-ingressgateway.istio-system → productpage.default',
        'productpage.default → details.default',
        'productpage.default → reviews.default',
        'reviews.default → ratings.default',
      ]),
    );

    await page.goto(`${dashboard}/#/traces`);
    const row = page.locator(`table[aria-label="Traces"] tr[data-trace-id="${traceId}"]`);
    await row.waitFor({ timeout: 20_000 });
    await page.screenshot({ path: path.join(artifacts, 'traces.png') });
    await row.click();
    const waterfall = page.getByRole('list', { name: 'Trace waterfall' });
    await waterfall.waitFor();
    const items = waterfall.getByRole('listitem');
    await poll(() => items.count()).toBe(spans.length);
    const services = new Set(
      await items.evaluateAll((els) => els.map((e) => e.getAttribute('data-service'))),
    );
    for (const s of BOOKINFO) expect(services.has(s), s).toBe(true);
    // Bookinfo's four and the ingress gateway.
    expect(await page.getByLabel('Trace summary').getByLabel('5 services').count()).toBe(1);
    // The root starts at 0; children start later.
    const lefts = await waterfall
      .locator('.span-bar')
      .evaluateAll((els) =>
        els.map((e) => Number.parseFloat((e as unknown as { style: { left: string } }).style.left)),
      );
    expect(lefts[0]).toBe(0);
    expect(Math.max(...lefts)).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(artifacts, 'trace-waterfall.png'), fullPage: true });
    load = productpageLoad();
  });

  it('turns reviews → ratings red once a VirtualService fault aborts every call to ratings', async () => {
    const file = path.join(home, 'ratings-abort.yaml');
    fs.writeFileSync(file, RATINGS_ABORT);
    const applied = mizzen(['apply', '-f', file]);
    expect(applied.code, applied.stderr).toBe(0);
    try {
      await page.goto(`${dashboard}/#/graph`);
      const row = (id: string) => page.locator(`table[aria-label="Edges"] tr[data-edge-id="${id}"]`);
      const health = (id: string) =>
        row(id)
          .getAttribute('data-health', { timeout: 1000 })
          .catch(() => null);
      await poll(() => health(EDGE.v2ToRatings), 90_000).toBe('failure');
      expect((await edgeStyle(page, EDGE.v2ToRatings, 'line-color')).replace(/\s/g, '')).toBe(RED);
      // The rest of the page still works: productpage → reviews stays green.
      expect((await edgeStyle(page, EDGE.productpageToReviews, 'line-color')).replace(/\s/g, '')).not.toBe(
        RED,
      );
      await row(EDGE.v2ToRatings).click();
      const details = page.getByRole('region', { name: 'Selection details' });
      await poll(() => text(details)).toMatch(/failing/);
      expect(await details.getByRole('table', { name: 'Response flags' }).textContent()).toMatch(/FI/);
      expect(await details.getByRole('table', { name: 'Response codes' }).textContent()).toMatch(/503/);
      await page.screenshot({ path: path.join(artifacts, 'graph-fault-abort.png') });
    } finally {
      const removed = mizzen(['delete', '-f', file]);
      expect(removed.code, removed.stderr).toBe(0);
    }
  });

  it('lists Bookinfo’s services with their rates and mTLS, and charts one’s golden signals', async () => {
    await page.goto(`${dashboard}/#/services`);
    const table = page.getByRole('table', { name: 'Services' });
    const row = (name: string) =>
      table.locator('tbody tr').filter({ has: page.getByRole('link', { name, exact: true }) });
    for (const name of ['productpage', 'details', 'reviews', 'ratings']) {
      await poll(
        async () => Number.parseFloat((await row(name).locator('td').nth(1).textContent()) ?? '0') || 0,
      ).toBeGreaterThan(0);
      expect(await row(name).locator('td').nth(4).textContent(), name).toBe('on');
    }
    await row('reviews').getByRole('link', { name: 'reviews', exact: true }).click();
    await page.waitForURL(/#\/services\/default\/reviews$/);
    expect(await page.getByRole('figure').count()).toBe(4);
    await page.getByRole('figure', { name: 'Traffic (requests/s)' }).locator('canvas').waitFor();
    await poll(async () =>
      Number(/Requests\/s(\d+(\.\d+)?)/.exec(await text(page.getByLabel('Window totals')))?.[1] ?? 0),
    ).toBeGreaterThan(0);
    await poll(() => text(page.getByLabel('Window totals'))).toMatch(/mTLS100%/);
    await page.screenshot({ path: path.join(artifacts, 'services-reviews.png'), fullPage: true });
  });

  it('shows the config in force as pilot has it, each resource valid, filterable by kind, with its spec on click', async () => {
    const status = JSON.parse(mizzen(['status', '--output', 'json']).stdout) as {
      components: { name: string; ports: Record<string, number> }[];
    };
    const pilotHttp = status.components.find((c) => c.name === 'pilot')!.ports.http;
    const configz = (await (await fetch(`http://127.0.0.1:${pilotHttp}/debug/configz`)).json()) as {
      resources: { kind: string; metadata: { name: string } }[];
    };
    expect(configz.resources.length).toBeGreaterThanOrEqual(10);
    await page.goto(`${dashboard}/#/config`);
    const resources = page.getByRole('table', { name: 'Resources' });
    await poll(() => resources.locator('tbody tr').count()).toBe(configz.resources.length);
    for (const r of configz.resources)
      expect(
        await resources
          .locator(`tr[data-resource^="${r.kind}/"]`)
          .filter({ hasText: r.metadata.name })
          .count(),
        `${r.kind} ${r.metadata.name}`,
      ).toBeGreaterThan(0);
    expect(await text(resources.locator('tbody td:nth-child(4)'))).not.toMatch(/error|warning/);
    await page.getByRole('combobox', { name: 'Kind' }).selectOption('VirtualService');
    await poll(() => resources.locator('tbody tr').count()).toBe(
      configz.resources.filter((r) => r.kind === 'VirtualService').length,
    );
    await resources.locator('tr[data-resource="VirtualService/default/bookinfo"]').click();
    await poll(() => text(resources.locator('tr.detail'))).toMatch(/bookinfo-gateway/);
    expect(await page.getByRole('region', { name: 'Rejected documents' }).textContent()).toMatch(/accepted/);
    await page.screenshot({ path: path.join(artifacts, 'config.png'), fullPage: true });
  });

  it('has every component’s own traces next to the mesh’s: pilot’s pushes, citadel’s certificates, the collector’s scrapes, the proxies’ config updates', async () => {
    await page.goto(`${dashboard}/#/traces`);
    const services = page.getByRole('combobox', { name: 'Service' });
    await poll(() => services.locator('option').allTextContents()).toEqual(
      expect.arrayContaining([
        'pilot',
        'citadel',
        'telemetry-collector',
        'sidecar-agent',
        'ingress-gateway',
        'productpage.default',
      ]),
    );
    const named = async (service: string) =>
      JSON.stringify(
        (
          (await (await fetch(`${dashboard}/api/traces?service=${service}&lookback=1h`)).json()) as {
            traces: unknown[];
          }
        ).traces,
      );
    expect(await named('pilot')).toContain('pilot.push');
    expect(await named('telemetry-collector')).toContain('collector.scrape');
    expect(await named('sidecar-agent')).toContain('xds apply');
  });

  it('lists every proxy of `mizzen status` with its xDS acknowledged', async () => {
    const status = JSON.parse(mizzen(['status', '--output', 'json']).stdout) as { proxies: { id: string }[] };
    await page.goto(`${dashboard}/#/proxies`);
    const proxies = page.getByRole('table', { name: 'Proxies' });
    await poll(() => proxies.locator('tbody tr').count()).toBe(status.proxies.length);
    const rows = await text(proxies);
    for (const p of status.proxies) expect(rows).toContain(p.id.split('~')[2]!.split('.')[0]!);
    expect(rows).not.toMatch(/NACKED/);
    await poll(() => text(proxies)).toMatch(/up · /);
    await page.screenshot({ path: path.join(artifacts, 'proxies.png') });
  });
});
