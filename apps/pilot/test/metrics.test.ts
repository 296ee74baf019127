import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sidecarNode } from '@mizzen/proxy';
import { createLogger } from '@mizzen/runtime';
import {
  explainProblems,
  type Family,
  ISTIO_LINT_EXCEPTIONS,
  parseExposition,
  promtoolCheckMetrics,
} from '@mizzen/telemetry';
import { AdsClient, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pilot } from '../src/pilot.js';

/**
 * Pilot's own metrics (Istio's names) against a real ADS client that ACKs and,
 * when told to, NACKs listeners: connected proxies, pushes by type, push time,
 * convergence time (push → ACK), rejects counted and the "NACKed now" gauges
 * rising and falling.
 */

const logger = createLogger('pilot-metrics-test', {
  level: process.env.MIZZEN_TEST_LOG === '1' ? 'debug' : 'silent',
});

function serviceEntry(name: string, port: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${port}, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
`;
}

function value(families: Family[], name: string, labels: Record<string, string> = {}): number {
  return families
    .flatMap((f) => f.samples)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

/** Every `route_config_name` in a listener (its HTTP connection managers' RDS names). */
function routeNames(json: unknown): string[] {
  if (!json || typeof json !== 'object') return [];
  if (Array.isArray(json)) return json.flatMap(routeNames);
  return Object.entries(json).flatMap(([k, v]) =>
    k === 'route_config_name' && typeof v === 'string' ? [v] : routeNames(v),
  );
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("pilot's metrics", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-pilot-metrics-'));
  let pilot: Pilot;
  let base = '';
  let xds = '';
  let client: AdsClient | undefined;
  let nackListeners = false;
  const acked = new Map<string, string>();

  const metrics = async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };
  const families = async () => parseExposition(await metrics()).families;
  const apply = async (yaml: string) => {
    const res = await fetch(`${base}/apis/config/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ yaml, source: 'metrics.test.yaml' }),
    });
    expect(res.status, await res.text()).toBe(200);
  };

  beforeAll(async () => {
    pilot = new Pilot({
      logger,
      host: '127.0.0.1',
      xdsPort: 0,
      httpPort: 0,
      configDirs: [],
      storeFile: path.join(dir, 'store.json'),
      registrationsFile: path.join(dir, 'registrations.json'),
      debounceMs: 10,
    });
    const ports = await pilot.start();
    base = `http://127.0.0.1:${ports.httpPort}`;
    xds = `127.0.0.1:${ports.xdsPort}`;
    await apply(serviceEntry('ratings', 9080));
  });

  afterAll(async () => {
    await client?.stop();
    await pilot?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts the connected proxy and the time from push to its ACK', async () => {
    expect(value(await families(), 'pilot_xds')).toBe(0);
    client = new AdsClient({
      address: xds,
      logger,
      node: sidecarNode({
        workload: 'productpage-v1',
        namespace: 'default',
        serviceAccount: 'bookinfo-productpage',
        labels: { app: 'productpage', version: 'v1' },
        ip: '127.0.0.1',
        ports: [],
        outboundPort: 15001,
        adminPort: 15000,
        healthPort: 15021,
      }),
      onResources: async (typeUrl, resources, version) => {
        if (typeUrl === TypeUrl.Listener && nackListeners)
          throw new Error('listener 0.0.0.0_9080: port in use');
        acked.set(typeUrl, version);
        // As a proxy does: endpoints for the EDS clusters, routes the listeners name.
        if (typeUrl === TypeUrl.Cluster)
          ads.subscribe(
            TypeUrl.ClusterLoadAssignment,
            resources.filter((r) => r.json.type === 'EDS').map((r) => r.name),
          );
        if (typeUrl === TypeUrl.Listener)
          ads.subscribe(TypeUrl.RouteConfiguration, [
            ...new Set(resources.flatMap((r) => routeNames(r.json))),
          ]);
      },
    });
    const ads = client;
    ads.subscribe(TypeUrl.Cluster, '*');
    ads.subscribe(TypeUrl.Listener, '*');
    ads.start();
    await until('the proxy to ACK clusters, endpoints, listeners and routes', async () =>
      [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration].every(
        (t) => acked.has(t),
      ),
    );
    const f = await families();
    expect(value(f, 'pilot_xds')).toBe(1);
    expect(value(f, 'pilot_proxy_convergence_time_count')).toBeGreaterThanOrEqual(4);
    // Histogram buckets are cumulative and end in +Inf = count.
    expect(value(f, 'pilot_proxy_convergence_time_bucket', { le: '+Inf' })).toBe(
      value(f, 'pilot_proxy_convergence_time_count'),
    );
    expect(value(f, 'pilot_xds_push_time_count')).toBeGreaterThanOrEqual(1);
  });

  it('counts pushes by type when config changes what the proxy gets', async () => {
    const before = await families();
    const listenersBefore = acked.get(TypeUrl.Listener);
    await apply(serviceEntry('details', 9081));
    await until('the new listener ACKed', async () => acked.get(TypeUrl.Listener) !== listenersBefore);
    const after = await families();
    for (const type of ['cds', 'eds', 'lds'])
      expect(
        value(after, 'pilot_xds_pushes', { type }) - value(before, 'pilot_xds_pushes', { type }),
        type,
      ).toBe(1);
    expect(value(after, 'pilot_xds_push_time_count')).toBeGreaterThan(
      value(before, 'pilot_xds_push_time_count'),
    );
    expect(value(after, 'pilot_proxy_convergence_time_count')).toBeGreaterThan(
      value(before, 'pilot_proxy_convergence_time_count'),
    );
  });

  it('counts a rejected push (NACK) by type, and shows it as rejected until the proxy accepts a later one', async () => {
    nackListeners = true;
    await apply(serviceEntry('reviews', 9082));
    await until(
      'the listener NACK counted',
      async () => value(await families(), 'pilot_total_xds_rejects') > 0,
    );
    let f = await families();
    expect(value(f, 'pilot_total_xds_rejects', { type: 'lds' })).toBe(1);
    expect(value(f, 'pilot_total_xds_rejects', { type: 'cds' })).toBe(0);
    expect(value(f, 'pilot_xds_lds_reject')).toBe(1);
    expect(value(f, 'pilot_xds_cds_reject')).toBe(0);

    nackListeners = false;
    const listenersBefore = acked.get(TypeUrl.Listener);
    await apply(serviceEntry('bookinfo-extra', 9083));
    await until('the next listener push ACKed', async () => acked.get(TypeUrl.Listener) !== listenersBefore);
    await until(
      'the reject gauge back to 0',
      async () => value(await families(), 'pilot_xds_lds_reject') === 0,
    );
    f = await families();
    // The counter keeps the history; the gauge says what is rejected now.
    expect(value(f, 'pilot_total_xds_rejects', { type: 'lds' })).toBe(1);
  });

  it('passes promtool check metrics but for Istio’s names, and forgets the proxy when it disconnects', async () => {
    const text = await metrics();
    // The real promtool flags only Istio's own names (istiod's counters without _total).
    expect(explainProblems(await promtoolCheckMetrics(text), ISTIO_LINT_EXCEPTIONS)).toEqual({
      unexplained: [],
      explained: [
        'pilot_total_xds_rejects counter metrics should have "_total" suffix',
        'pilot_xds_pushes counter metrics should have "_total" suffix',
      ],
    });
    await client?.stop();
    client = undefined;
    await until('the proxy gone', async () => value(await families(), 'pilot_xds') === 0);
    expect(value(await families(), 'pilot_services')).toBeGreaterThanOrEqual(4);
  });
});
