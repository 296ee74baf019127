import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, getJson, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { metricSum } from '../src/stats.js';

/**
 * Istio's resilience tasks with their YAML unchanged, through pilot and real
 * sidecars: circuit breaking, outlier detection, retries, mirroring and
 * consistent-hash affinity.
 */
function serviceEntry(name: string): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: ${name} } }
`;
}

describe('resilience through pilot and real sidecars', () => {
  const mesh = new TestMesh();
  const backends: Record<string, Backend> = {};
  const held: (() => void)[] = [];
  let failEveryThird = false;
  let badDown = false;
  let client: SidecarHandle;
  let http: ProxyClient;

  const workload = async (service: string, name: string, backend: Backend) =>
    mesh.startSidecar({
      workload: name,
      service,
      labels: { app: service, version: name },
      appPort: backend.port,
      servicePort: 8000,
    });

  beforeAll(async () => {
    mesh.writeConfig(
      'services.yaml',
      ['slow', 'pair', 'flaky', 'main', 'shadow', 'sticky'].map(serviceEntry).join('---\n'),
    );
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    backends.slow = await startBackend('slow', 'v1', (_req, res) => {
      held.push(() => res.end('{}'));
      return true;
    });
    backends.good = await startBackend('pair', 'good');
    backends.bad = await startBackend('pair', 'bad', (_req, res) => {
      if (!badDown) return false;
      res.writeHead(503).end('down');
      return true;
    });
    backends.flaky = await startBackend('flaky', 'v1', (_req, res, hit) => {
      if (!failEveryThird || hit % 3 !== 0) return false;
      res.writeHead(503).end('bad luck');
      return true;
    });
    backends.main = await startBackend('main', 'v1');
    backends.shadow = await startBackend('shadow', 'v1');
    for (const n of ['s1', 's2', 's3']) backends[n] = await startBackend('sticky', n);
    const sidecars = [
      await workload('slow', 'slow-v1', backends.slow),
      await workload('pair', 'pair-good', backends.good),
      await workload('pair', 'pair-bad', backends.bad),
      await workload('flaky', 'flaky-v1', backends.flaky),
      await workload('main', 'main-v1', backends.main),
      await workload('shadow', 'shadow-v1', backends.shadow),
      await workload('sticky', 'sticky-s1', backends.s1!),
      await workload('sticky', 'sticky-s2', backends.s2!),
      await workload('sticky', 'sticky-s3', backends.s3!),
    ];
    client = await mesh.startSidecar({
      workload: 'client',
      service: 'client',
      labels: { app: 'client' },
      appPort: await mesh.ports.take(),
    });
    // Ten proxies start at once: give a loaded 2-core machine time to bring them all up.
    await mesh.waitForSync([...sidecars.map((s) => s.id), client.id], 120_000);
    http = new ProxyClient(client.outboundPort);
    await eventually('every service reachable', async () => {
      for (const s of ['pair', 'flaky', 'main', 'shadow', 'sticky']) {
        if ((await http.request(`http://${s}:8000/`)).status !== 200) return s;
      }
      return true;
    });
  });

  afterAll(async () => {
    for (const release of held.splice(0)) release();
    http?.close();
    await mesh.stop();
    await Promise.all(Object.values(backends).map((b) => b.close()));
  });

  /** Requests the client sidecar answered with 503 UO (istio_requests_total by response_flags). */
  const overflowed = () =>
    metricSum(client.statsPort, 'istio_requests_total', {
      reporter: 'source',
      destination_service_name: 'slow',
      response_flags: 'UO',
    });

  /** Applies a DestinationRule for `slow` and waits until the client sidecar has its limits. */
  const slowLimits = async (connectionPool: string, expected: Record<string, number>) => {
    const applied = await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: slow, namespace: default }
spec:
  host: slow
  trafficPolicy:
    connectionPool: ${connectionPool}
`);
    expect(applied.status).toBe(200);
    await eventually('the limits pushed to the client sidecar', async () => {
      const dump = await getJson<{
        configs: { dynamic_active_clusters?: { cluster: Record<string, unknown> }[] }[];
      }>(`http://127.0.0.1:${client.adminPort}/config_dump`);
      const cluster = dump.configs
        .flatMap((c) => c.dynamic_active_clusters ?? [])
        .find((c) => c.cluster.name === 'outbound|8000||slow.default.svc.cluster.local')?.cluster as
        | { circuit_breakers?: { thresholds?: Record<string, number>[] } }
        | undefined;
      const t = cluster?.circuit_breakers?.thresholds?.[0] ?? {};
      return Object.entries(expected).every(([k, v]) => t[k] === v);
    });
  };

  /** Sends `n` requests at once; resolves once each has settled, counting those answered while others are held. */
  const burst = (n: number) => {
    let settled = 0;
    const replies = Array.from({ length: n }, () =>
      http.request('http://slow:8000/').then((r) => {
        settled++;
        return r;
      }),
    );
    return { replies, settled: () => settled };
  };

  /** Releases the held requests as they arrive until `total` were answered by the backend. */
  const drain = async (total: number) => {
    for (let done = 0; done < total; done++) {
      await eventually('a request held at the backend', async () => held.length > 0, 10_000);
      held.shift()!();
    }
  };

  it('circuit breaking (Istio’s task): at the limits nothing overflows; beyond them the excess gets 503 UO at once', async () => {
    await slowLimits('{ tcp: { maxConnections: 2 }, http: { http1MaxPendingRequests: 2 } }', {
      max_connections: 2,
      max_pending_requests: 2,
    });
    const uoBefore = await overflowed();
    // At the limits: two in flight, two waiting — every one of the four is served.
    const atLimit = burst(4);
    await eventually('two requests in flight', async () => held.length === 2, 10_000);
    expect(atLimit.settled()).toBe(0);
    await drain(4);
    expect((await Promise.all(atLimit.replies)).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(await overflowed()).toBe(uoBefore);
    // Beyond them: of seven at once, three are answered 503 UO while the others are still held.
    const over = burst(7);
    await eventually(
      'three overflowed while two are in flight',
      async () => over.settled() === 3 && held.length === 2,
      10_000,
    );
    await drain(4);
    const results = await Promise.all(over.replies);
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 503, 503, 503]);
    for (const r of results.filter((x) => x.status === 503))
      expect(r.headers['x-envoy-overloaded']).toBe('true');
    await eventually(
      'three UO counted',
      async () => (await overflowed()) - uoBefore === 3 || `${(await overflowed()) - uoBefore}`,
    );
  });

  it('http2MaxRequests over HTTP/2: requests in flight are capped and the excess overflows at once, never queued', async () => {
    await slowLimits(
      '{ tcp: { maxConnections: 1 }, http: { h2UpgradePolicy: UPGRADE, http2MaxRequests: 3, http1MaxPendingRequests: 10 } }',
      { max_connections: 1, max_requests: 3, max_pending_requests: 10 },
    );
    const uoBefore = await overflowed();
    // Three streams share the one connection: all in flight at once, none overflowing.
    const atLimit = burst(3);
    await eventually('three requests in flight', async () => held.length === 3, 10_000);
    await drain(3);
    expect((await Promise.all(atLimit.replies)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(await overflowed()).toBe(uoBefore);
    // Five: three in flight, two overflow at once although the pending queue has room.
    const over = burst(5);
    await eventually(
      'two overflowed while three are in flight',
      async () => over.settled() === 2 && held.length === 3,
      10_000,
    );
    await drain(3);
    expect((await Promise.all(over.replies)).map((r) => r.status).sort()).toEqual([200, 200, 200, 503, 503]);
    await eventually(
      'two UO counted',
      async () => (await overflowed()) - uoBefore === 2 || `${(await overflowed()) - uoBefore}`,
    );
  });

  it('outlier detection: an endpoint that starts failing is ejected, then returns', async () => {
    expect(
      (
        await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pair, namespace: default }
spec:
  host: pair
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 2, interval: 200ms, baseEjectionTime: 2s, maxEjectionPercent: 100 }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: pair, namespace: default }
spec:
  hosts: [pair]
  http: [{ route: [{ destination: { host: pair } }], retries: { attempts: 0 } }]
`)
      ).status,
    ).toBe(200);
    await eventually('no retries on pair', async () => {
      badDown = true;
      const seen: number[] = [];
      for (let i = 0; i < 4; i++) seen.push((await http.request('http://pair:8000/')).status);
      return seen.includes(503);
    });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await http.request('http://pair:8000/')).status);
    expect(statuses.slice(-10)).toEqual(Array(10).fill(200));
    const badHits = backends.bad!.hits;
    for (let i = 0; i < 10; i++) await http.request('http://pair:8000/');
    expect(backends.bad!.hits).toBe(badHits);
    badDown = false;
    await eventually('the ejected endpoint serves again', async () => {
      await http.request('http://pair:8000/');
      return backends.bad!.hits > badHits;
    });
  });

  it('retries hide an upstream that fails one request in three', async () => {
    failEveryThird = true;
    expect(
      (
        await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: flaky, namespace: default }
spec:
  hosts: [flaky]
  http: [{ route: [{ destination: { host: flaky } }], retries: { attempts: 2, retryOn: 5xx } }]
`)
      ).status,
    ).toBe(200);
    await eventually('retry policy in force', async () => {
      for (let i = 0; i < 9; i++) if ((await http.request('http://flaky:8000/')).status !== 200) return false;
      return true;
    });
    const before = backends.flaky!.hits;
    for (let i = 0; i < 60; i++) expect((await http.request('http://flaky:8000/')).status).toBe(200);
    // Every third attempt failed and was retried: 60 successes took about 90 attempts.
    expect(backends.flaky!.hits - before).toBeGreaterThanOrEqual(85);
  });

  it('mirroring reaches the shadow without affecting the caller', async () => {
    expect(
      (
        await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: main, namespace: default }
spec:
  hosts: [main]
  http:
    - route: [{ destination: { host: main } }]
      mirror: { host: shadow }
      mirrorPercentage: { value: 100 }
`)
      ).status,
    ).toBe(200);
    await eventually('mirror in force', async () => {
      const before = backends.shadow!.hits;
      await http.request('http://main:8000/m');
      await new Promise((r) => setTimeout(r, 100));
      return backends.shadow!.hits > before;
    });
    const before = backends.shadow!.hits;
    for (let i = 0; i < 20; i++) {
      const r = await http.request('http://main:8000/m');
      expect(JSON.parse(r.body).name).toBe('main');
    }
    await eventually(
      '20 copies at the shadow',
      async () => backends.shadow!.hits - before === 20 || `${backends.shadow!.hits - before} copies`,
    );
    expect(backends.shadow!.lastHeaders?.host).toBe('main-shadow:8000');
  });

  it('consistent hash keeps each user on one endpoint', async () => {
    expect(
      (
        await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: sticky, namespace: default }
spec:
  host: sticky
  trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user } } }
`)
      ).status,
    ).toBe(200);
    const versionFor = async (user: string) =>
      (
        JSON.parse((await http.request('http://sticky:8000/', { 'x-user': user })).body) as {
          version: string;
        }
      ).version;
    await eventually('affinity in force', async () => {
      const first = await versionFor('alice');
      for (let i = 0; i < 10; i++) if ((await versionFor('alice')) !== first) return false;
      return true;
    });
    const endpoints = new Set<string>();
    for (let u = 0; u < 24; u++) {
      const first = await versionFor(`user-${u}`);
      endpoints.add(first);
      for (let i = 0; i < 4; i++) expect(await versionFor(`user-${u}`)).toBe(first);
    }
    expect(endpoints.size).toBe(3);
  });
});
