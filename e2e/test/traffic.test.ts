import net from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, requestWithHost, startBackend } from '../src/http.js';
import { eventually, steadyLoad } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Pilot, sidecars and backends as real processes: app → sidecar → sidecar →
 * app, configured only by Istio YAML that pilot serves as Envoy xDS.
 */
const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
    - { name: v3, labels: { version: v3 } }
`;

/** Istio's traffic-shifting task: reviews between v1 and v3. */
function shiftToV3(v1: number, v3: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: ${v1} }
        - { destination: { host: reviews, subset: v3 }, weight: ${v3} }
`;
}

function split(v1: number, v2: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: ${v1} }
        - { destination: { host: reviews, subset: v2 }, weight: ${v2} }
`;
}

const JASON_TO_V2 = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews, subset: v2 } }]
    - route: [{ destination: { host: reviews, subset: v1 } }]
`;

describe('traffic through pilot and real sidecars', () => {
  const mesh = new TestMesh();
  const backends: Record<string, Backend> = {};
  let client: SidecarHandle;
  let http: ProxyClient;

  const version = async (headers: Record<string, string> = {}, url = 'http://reviews:9080/reviews/0') => {
    const r = await http.request(url, headers);
    if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body}`);
    return (JSON.parse(r.body) as { version: string }).version;
  };

  const tally = async (n: number, headers: Record<string, string> = {}) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const v = await version(headers);
      counts[v] = (counts[v] ?? 0) + 1;
    }
    return counts;
  };

  const loadOnReviews = () =>
    steadyLoad(
      async () => {
        const r = await http.request('http://reviews:9080/reviews/0');
        return {
          ok: r.status === 200,
          detail: `${r.status} ${r.headers['x-envoy-response-flags'] ?? ''} ${r.body.slice(0, 120)}`,
        };
      },
      { concurrency: 4, maxMs: 60_000, maxRequests: 50_000 },
    );

  beforeAll(async () => {
    mesh.writeConfig('services.yaml', SERVICES);
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    for (const v of ['v1', 'v2', 'v3']) backends[v] = await startBackend('reviews', v);
    const sidecars = [
      await mesh.startSidecar({
        workload: 'reviews-v1',
        service: 'reviews',
        labels: { app: 'reviews', version: 'v1' },
        appPort: backends.v1!.port,
      }),
      await mesh.startSidecar({
        workload: 'reviews-v2',
        service: 'reviews',
        labels: { app: 'reviews', version: 'v2' },
        appPort: backends.v2!.port,
      }),
      await mesh.startSidecar({
        workload: 'reviews-v3',
        service: 'reviews',
        labels: { app: 'reviews', version: 'v3' },
        appPort: backends.v3!.port,
      }),
    ];
    client = await mesh.startSidecar({
      workload: 'productpage-v1',
      service: 'productpage',
      labels: { app: 'productpage', version: 'v1' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([...sidecars.map((s) => s.id), client.id], 120_000);
    http = new ProxyClient(client.outboundPort);
    // Every reviews endpoint must be registered and pushed before traffic tests start.
    await eventually(
      'every reviews version reachable',
      async () => {
        const seen = await tally(15);
        return Object.keys(seen).length === 3 || JSON.stringify(seen);
      },
      60_000,
    );
  });

  afterAll(async () => {
    http?.close();
    await mesh.stop();
    await Promise.all(Object.values(backends).map((b) => b.close()));
  });

  it('reaches a service by short name, namespace-qualified name and FQDN, through both sidecars', async () => {
    for (const host of ['reviews', 'reviews.default', 'reviews.default.svc.cluster.local']) {
      const r = await http.request(`http://${host}:9080/reviews/0`);
      expect(r.status, `${host}: ${r.body}`).toBe(200);
    }
    // The request went app → client sidecar → server sidecar → app: the backend sees the mesh's request id.
    expect(
      backends.v1!.lastHeaders?.['x-request-id'] ?? backends.v2!.lastHeaders?.['x-request-id'],
    ).toBeTruthy();
  });

  it('splits traffic 80/20 by weight over 1,000 requests within ±5 points', async () => {
    expect((await mesh.apply(split(80, 20))).status).toBe(200);
    await eventually('the 80/20 route to be in force', async () => {
      const seen = await tally(40);
      return (seen.v1 ?? 0) > 20 || JSON.stringify(seen);
    });
    const counts = await tally(1000);
    const v1Share = ((counts.v1 ?? 0) / 1000) * 100;
    expect(v1Share).toBeGreaterThanOrEqual(75);
    expect(v1Share).toBeLessThanOrEqual(85);
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(1000);
  });

  it('routes end-user: jason to v2 and everyone else to v1', async () => {
    expect((await mesh.apply(JASON_TO_V2)).status).toBe(200);
    await eventually(
      'the header route to be in force',
      async () => (await tally(20, { 'end-user': 'jason' })).v2 === 20,
    );
    expect(await tally(100, { 'end-user': 'jason' })).toEqual({ v2: 100 });
    expect(await tally(100)).toEqual({ v1: 100 });
    expect(await tally(50, { 'end-user': 'jasonx' })).toEqual({ v1: 50 });
  });

  it('changes a VirtualService under steady load with zero failed requests', async () => {
    expect((await mesh.apply(split(100, 0))).status).toBe(200);
    await eventually('all traffic on v1', async () => JSON.stringify(await tally(20)) === '{"v1":20}');
    const load = loadOnReviews();
    await eventually('load running', async () => load.sent() > 200);
    expect((await mesh.apply(split(0, 100))).status).toBe(200);
    await eventually('all traffic on v2', async () => JSON.stringify(await tally(20)) === '{"v2":20}');
    const before = load.sent();
    await eventually('more load after the switch', async () => load.sent() > before + 200);
    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.sent).toBeGreaterThan(400);
  });

  it("shifts traffic as Istio's task does — all to v1, 50/50 to v1 and v3, then 100 to v3 — with zero failed requests", async () => {
    expect((await mesh.apply(shiftToV3(100, 0))).status).toBe(200);
    await eventually('all traffic on v1', async () => JSON.stringify(await tally(20)) === '{"v1":20}');
    const load = loadOnReviews();
    await eventually('load running', async () => load.sent() > 100);
    expect((await mesh.apply(shiftToV3(50, 50))).status).toBe(200);
    await eventually('v3 taking a share', async () => ((await tally(20)).v3 ?? 0) > 0);
    const half = await tally(400);
    // Binomial(400, 0.5): σ = 10, so ±5σ; nothing reaches v2.
    expect(half.v3 ?? 0).toBeGreaterThan(150);
    expect(half.v3 ?? 0).toBeLessThan(250);
    expect((half.v1 ?? 0) + (half.v3 ?? 0)).toBe(400);
    expect((await mesh.apply(shiftToV3(0, 100))).status).toBe(200);
    await eventually('all traffic on v3', async () => JSON.stringify(await tally(20)) === '{"v3":20}');
    const before = load.sent();
    await eventually('more load on v3', async () => load.sent() > before + 100);
    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
    expect(JSON.stringify(await tally(50))).toBe('{"v3":50}');
    // Back to where the previous case left reviews (all on v2), for the ones after.
    expect((await mesh.apply(split(0, 100))).status).toBe(200);
    await eventually('back on v2', async () => JSON.stringify(await tally(20)) === '{"v2":20}');
  });

  it('keeps serving with zero failed requests while pilot is killed and restarted, then re-syncs', async () => {
    const load = loadOnReviews();
    await eventually('load running', async () => load.sent() > 200);
    await mesh.pilot!.restart({ hard: true, downMs: 1500 });
    const ids = [
      client.id,
      'sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local',
      'sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local',
      'sidecar~127.0.0.1~reviews-v3.default~default.svc.cluster.local',
    ];
    await mesh.waitForSync(ids, 30_000);
    // Config applied before the restart survived it (persistent store) and new config still flows.
    expect(JSON.stringify(await tally(10))).toBe('{"v2":10}');
    expect((await mesh.apply(split(100, 0))).status).toBe(200);
    await eventually(
      'new config after restart reaches the proxies',
      async () => JSON.stringify(await tally(20)) === '{"v1":20}',
    );
    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
  });

  it('injects faults from a VirtualService: aborts at the given share, delays, and leaves other routes alone', async () => {
    const faulty = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
    - match: [{ headers: { x-test: { exact: abort-half } } }]
      fault: { abort: { httpStatus: 503, percentage: { value: 50 } } }
      route: [{ destination: { host: reviews, subset: v1 } }]
    - match: [{ headers: { x-test: { exact: delay } } }]
      fault: { delay: { fixedDelay: 400ms, percentage: { value: 100 } } }
      route: [{ destination: { host: reviews, subset: v1 } }]
    - route: [{ destination: { host: reviews, subset: v1 } }]
`;
    expect((await mesh.apply(faulty)).status).toBe(200);
    await eventually('the fault route to be in force', async () => {
      const r = await http.request('http://reviews:9080/reviews/0', { 'x-test': 'abort-half' });
      return r.status === 503 && r.body === 'fault filter abort';
    });
    let aborted = 0;
    for (let i = 0; i < 400; i++) {
      const r = await http.request('http://reviews:9080/reviews/0', { 'x-test': 'abort-half' });
      if (r.status === 503) aborted++;
      else expect(r.status).toBe(200);
    }
    // Binomial(400, 0.5): σ = 10, so ±5σ.
    expect(aborted).toBeGreaterThan(150);
    expect(aborted).toBeLessThan(250);
    const started = performance.now();
    expect((await http.request('http://reviews:9080/reviews/0', { 'x-test': 'delay' })).status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
    for (let i = 0; i < 20; i++)
      expect((await http.request('http://reviews:9080/reviews/0')).status).toBe(200);
    expect((await mesh.apply(split(100, 0))).status).toBe(200);
  });

  it('serves a gateway route, answers 404 for unknown hosts, and keeps old listeners when a bad update is NACKed', async () => {
    const [httpPort, busyPort] = await mesh.ports.takeMany(2);
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(busyPort, '127.0.0.1', r));
    try {
      const gw = await mesh.startGateway({ portMap: { 80: httpPort } });
      expect(
        (
          await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: reviews-gateway, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 80, name: http, protocol: HTTP }
      hosts: [reviews.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-public, namespace: default }
spec:
  hosts: [reviews.example.com]
  gateways: [reviews-gateway]
  http:
    - route: [{ destination: { host: reviews, subset: v1, port: { number: 9080 } } }]
`)
        ).status,
      ).toBe(200);
      await mesh.waitForSync([gw.id]);
      const viaGateway = (host: string) => requestWithHost(`http://127.0.0.1:${httpPort}/reviews/0`, host);
      await eventually(
        'gateway route serving',
        async () => (await viaGateway('reviews.example.com')).status === 200,
      );
      expect(JSON.parse((await viaGateway('reviews.example.com')).body).version).toBe('v1');
      expect((await viaGateway('unknown.example.com')).status).toBe(404);

      // A second server on a port something else holds: the gateway cannot bind it and must NACK.
      const load = steadyLoad(
        async () => {
          const r = await viaGateway('reviews.example.com');
          return { ok: r.status === 200, detail: `${r.status} ${r.body.slice(0, 100)}` };
        },
        { concurrency: 2, maxMs: 60_000 },
      );
      expect(
        (
          await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: busy-gateway, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: ${busyPort}, name: http-busy, protocol: HTTP }
      hosts: ["*"]
`)
        ).status,
      ).toBe(200);
      await eventually('the gateway to NACK the listener it cannot bind', async () => {
        const entry = (await mesh.syncz()).find((e) => e.proxy === gw.id);
        return (
          (entry?.sync?.LDS === 'NACKED' && (entry.errors?.LDS ?? '').includes(String(busyPort))) ||
          JSON.stringify(entry?.sync)
        );
      });
      const before = load.sent();
      await eventually('traffic after the NACK', async () => load.sent() > before + 100);
      const result = await load.stop();
      expect(result.failures).toEqual([]);
      expect((await viaGateway('reviews.example.com')).status).toBe(200);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});
