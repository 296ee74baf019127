import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Istio's locality load balancing tasks with their YAML unchanged, through
 * pilot and real sidecars that each know where they run (`--locality`): the
 * caller in region1/zone1/subzone1, helloworld in its own subzone, another
 * subzone of its zone, region2 and region3.
 */
const LOCALITIES = {
  local: 'region1/zone1/subzone1',
  zone: 'region1/zone1/subzone2',
  region2: 'region2/zone3/subzone4',
  region3: 'region3/zone4/subzone5',
} as const;
type Where = keyof typeof LOCALITIES;

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
  workloadSelector: { labels: { app: helloworld } }
`;
}

const RULES = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: helloworld, namespace: default }
spec:
  host: helloworld
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover: [{ from: region1, to: region2 }]
    outlierDetection: { consecutive5xxErrors: 1, interval: 200ms, baseEjectionTime: 3s, maxEjectionPercent: 100 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: hw-split, namespace: default }
spec:
  host: hw-split
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
        distribute:
          - from: region1/zone1/*
            to: { "region1/zone1/*": 70, "region2/*": 20, "region3/*": 10 }
---
# Priorities by locality (outlier detection on) but nothing ever ejected: only retries can leave a locality.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: hw-retry, namespace: default }
spec:
  host: hw-retry
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 0 }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: hw-retry, namespace: default }
spec:
  hosts: [hw-retry]
  http:
    - match: [{ headers: { x-remote: { exact: "yes" } } }]
      route: [{ destination: { host: hw-retry } }]
      retries: { attempts: 3, retryOn: 5xx, retryRemoteLocalities: true }
    - route: [{ destination: { host: hw-retry } }]
      retries: { attempts: 3, retryOn: 5xx }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: hw-warm, namespace: default }
spec:
  host: hw-warm
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN, warmup: { duration: 120s, minimumPercent: 10 } }
`;

describe('locality load balancing through pilot and real sidecars', () => {
  const mesh = new TestMesh();
  const backends: Partial<Record<Where | 'late', Backend>> = {};
  const down = new Set<string>();
  let client: SidecarHandle;
  let http: ProxyClient;

  const nameOf = async (service: string, headers: Record<string, string> = {}) => {
    const r = await http.request(`http://${service}:8000/`, headers);
    return r.status === 200 ? (JSON.parse(r.body).version as string) : `status ${r.status}`;
  };
  const tally = async (service: string, n: number) => {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const v = await nameOf(service);
      out[v] = (out[v] ?? 0) + 1;
    }
    return out;
  };

  const workload = (where: Where | 'late', backend: Backend, locality: string) =>
    mesh.startSidecar({
      workload: `helloworld-${where}`,
      service: 'helloworld',
      labels: { app: 'helloworld', version: where },
      appPort: backend.port,
      servicePort: 8000,
      extraArgs: ['--locality', locality],
    });

  beforeAll(async () => {
    mesh.writeConfig(
      'services.yaml',
      ['helloworld', 'hw-split', 'hw-retry', 'hw-warm'].map(serviceEntry).join('---\n'),
    );
    mesh.writeConfig('rules.yaml', RULES);
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    const sidecars: SidecarHandle[] = [];
    for (const [where, locality] of Object.entries(LOCALITIES) as [Where, string][]) {
      backends[where] = await startBackend('helloworld', where, (_req, res) => {
        if (!down.has(where)) return false;
        res.writeHead(503).end('down');
        return true;
      });
      sidecars.push(await workload(where, backends[where]!, locality));
    }
    client = await mesh.startSidecar({
      workload: 'sleep',
      service: 'sleep',
      labels: { app: 'sleep' },
      appPort: await mesh.ports.take(),
      extraArgs: ['--locality', LOCALITIES.local],
    });
    try {
      await mesh.waitForSync([...sidecars.map((s) => s.id), client.id], 90_000);
    } catch (err) {
      for (const s of [...sidecars, client]) console.error(s.workload, s.proc.output().slice(-2000));
      console.error('pilot', mesh.pilot?.proc.output().slice(-3000));
      throw err;
    }
    http = new ProxyClient(client.outboundPort);
    await eventually('every locality registered and routed to by priority', async () => {
      const t = await tally('hw-split', 20);
      return (t.region3 ?? 0) > 0 || JSON.stringify(t);
    });
  });

  afterAll(async () => {
    http?.close();
    await mesh.stop();
    await Promise.all(Object.values(backends).map((b) => b.close()));
  });

  it('failover: traffic stays local, moves to the next locality as each one fails, and comes back', async () => {
    await eventually('everything to the local subzone', async () => {
      const t = await tally('helloworld', 10);
      return t.local === 10 || JSON.stringify(t);
    });
    // The local endpoint fails: ejected on its first 503 (the default retry hides it), the rest of its zone takes over.
    down.add('local');
    expect(await tally('helloworld', 20)).toEqual({ zone: 20 });
    // Its whole zone fails: region2 is next (failover: region1 → region2), never region3.
    down.add('zone');
    expect(await tally('helloworld', 20)).toEqual({ region2: 20 });
    const clusters = await (await fetch(`http://127.0.0.1:${client.adminPort}/clusters`)).text();
    expect(clusters).toMatch(
      /outbound\|8000\|\|helloworld\.default\.svc\.cluster\.local::[^\n]*::health_flags::\/failed_outlier_check/,
    );
    // Healthy again: once their ejection time is over, the local subzone gets everything again.
    down.clear();
    await eventually(
      'the local subzone back',
      async () => {
        const t = await tally('helloworld', 5);
        return t.local === 5 || JSON.stringify(t);
      },
      20_000,
    );
  });

  it('distribute: 70% to the own zone, 20% to region2, 10% to region3', async () => {
    const n = 400;
    const t = await tally('hw-split', n);
    const pct = (k: string) => ((t[k] ?? 0) * 100) / n;
    expect(pct('local') + pct('zone')).toBeGreaterThanOrEqual(65);
    expect(pct('local') + pct('zone')).toBeLessThanOrEqual(75);
    expect(pct('region2')).toBeGreaterThanOrEqual(15);
    expect(pct('region2')).toBeLessThanOrEqual(25);
    expect(pct('region3')).toBeGreaterThanOrEqual(6);
    expect(pct('region3')).toBeLessThanOrEqual(14);
  });

  it('retryRemoteLocalities: retries of a failing local endpoint reach the next locality, and only with it', async () => {
    down.add('local');
    try {
      const before = backends.local!.hits;
      const remote = await nameOf('hw-retry', { 'x-remote': 'yes' });
      expect(remote).toBe('zone');
      // Envoy's previous_priorities as Istio configures it (update_frequency 2): two local attempts, then the next.
      expect(backends.local!.hits - before).toBe(2);
      expect(await nameOf('hw-retry')).toBe('status 503');
      expect(backends.local!.hits - before).toBe(2 + 4);
    } finally {
      down.delete('local');
    }
  });

  it('warmup: a new endpoint gets a small share at first', async () => {
    backends.late = await startBackend('helloworld', 'late');
    const late = await workload('late', backends.late, LOCALITIES.local);
    await mesh.waitForSync([late.id]);
    await eventually('the new endpoint in the caller’s hw-warm cluster', async () => {
      const clusters = await (await fetch(`http://127.0.0.1:${client.adminPort}/clusters`)).text();
      return clusters.includes(
        `outbound|8000||hw-warm.default.svc.cluster.local::127.0.0.1:${late.inboundPort}::`,
      );
    });
    const n = 210;
    const t = await tally('hw-warm', n);
    // Five endpoints: without warmup the newcomer would take a fifth (42); at 10% weight it takes about 5.
    expect(t.late ?? 0).toBeGreaterThan(0);
    expect(t.late ?? 0).toBeLessThan(n * 0.08);
    expect(t['status 503']).toBeUndefined();
  });
});
