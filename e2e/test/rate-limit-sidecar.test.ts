import { type RedisServer, startRedisServer } from '@mizzen/ratelimit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, type Reply, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * A RateLimitPolicy on a workload's sidecar, chosen by its labels: citadel
 * gives every sidecar a certificate for its service account, two client
 * sidecars call the server over mutual TLS, and the server's sidecar keeps
 * one counter per caller identity (sourcePrincipal) in a real Redis — one
 * caller spent, the other untouched, and a workload the selector does not
 * name unlimited.
 */
const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api, namespace: default }
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: api } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: other, namespace: default }
spec:
  hosts: [other.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: other } }
`;

const PER_CALLER = `
apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: per-caller, namespace: default }
spec:
  selector: { matchLabels: { app: api } }
  failureMode: DENY
  rules:
  - name: per-caller
    descriptors: [{ sourcePrincipal: {} }]
    limit: { requests: 3, unit: HOUR }
`;

describe('RateLimitPolicy on a sidecar by workload selector, one counter per mTLS caller', () => {
  const mesh = new TestMesh();
  let redis: RedisServer;
  const backends: Backend[] = [];
  let api: SidecarHandle;
  let other: SidecarHandle;
  const callers: Record<string, { sidecar: SidecarHandle; http: ProxyClient }> = {};

  beforeAll(async () => {
    redis = await startRedisServer();
    mesh.writeConfig('services.yaml', SERVICES);
    mesh.writeConfig('limits.yaml', PER_CALLER);
    await mesh.startCitadel();
    await mesh.startPilot();
    const env = { REDIS_URL: redis.url };
    const sidecar = async (workload: string, app: string) => {
      const backend = await startBackend(app, 'v1');
      backends.push(backend);
      return mesh.startSidecar({
        workload,
        service: app,
        labels: { app, version: 'v1' },
        appPort: backend.port,
        env,
      });
    };
    api = await sidecar('api-v1', 'api');
    other = await sidecar('other-v1', 'other');
    for (const name of ['client-a', 'client-b']) {
      const s = await sidecar(`${name}-v1`, name);
      callers[name] = { sidecar: s, http: new ProxyClient(s.outboundPort) };
    }
    await mesh.waitForSync([api.id, other.id, ...Object.values(callers).map((c) => c.sidecar.id)]);
    await eventually('the policy on api’s sidecar', async () => {
      const dump = await (await fetch(`http://127.0.0.1:${api.adminPort}/config_dump`)).text();
      return dump.includes('per-caller') || 'not yet';
    });
  }, 120_000);

  afterAll(async () => {
    for (const c of Object.values(callers)) c.http.close();
    await mesh.stop();
    await Promise.all(backends.map((b) => b.close()));
    await redis?.stop();
  });

  const call = (caller: string, url: string): Promise<Reply> => callers[caller]!.http.request(url);

  it('counts each caller’s SPIFFE identity apart: one spent, the other still served', async () => {
    // Each caller's sidecar proves its service account to api's sidecar over mutual TLS.
    await eventually('client-a to reach api over mTLS', async () => {
      const r = await call('client-a', 'http://api:9080/warm');
      return r.status === 200 || `${r.status}`;
    });
    const a: number[] = [(await call('client-a', 'http://api:9080/x')).status];
    for (let i = 0; i < 2; i++) a.push((await call('client-a', 'http://api:9080/x')).status);
    // warm + 2 = 3 allowed; the next is over.
    expect(a).toEqual([200, 200, 429]);
    const spent = await call('client-a', 'http://api:9080/x');
    expect(spent.status).toBe(429);
    expect(spent.headers['ratelimit-limit']).toBe('3');
    const b: number[] = [];
    for (let i = 0; i < 3; i++) b.push((await call('client-b', 'http://api:9080/x')).status);
    expect(b).toEqual([200, 200, 200]);
    expect((await call('client-b', 'http://api:9080/x')).status).toBe(429);
    // What api's app saw: the caller's verified identity, the same one the counter is keyed by.
    expect(backends[0]!.lastHeaders?.['x-forwarded-client-cert']).toContain(
      'URI=spiffe://cluster.local/ns/default/sa/client-b',
    );
  });

  it('leaves workloads the selector does not name alone; the counters are in Redis', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await call('client-a', 'http://other:9080/x')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    const stats = await (await fetch(`http://127.0.0.1:${api.statsPort}/stats/prometheus`)).text();
    expect(stats).toMatch(/^mizzen_ratelimit_store_up 1$/m);
    const overLimit = stats
      .split('\n')
      .find((l) => l.startsWith('mizzen_ratelimit_decisions_total{') && l.includes('decision="over_limit"'));
    expect(Number(overLimit?.split(' ').pop())).toBe(3);
  });
});
