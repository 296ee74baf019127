import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runMizzen } from '../src/cli.js';
import { type Backend, getJson, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * `mizzen proxy-config` and `mizzen proxy-status` as a user runs them — the
 * real binary as a child process — against citadel, pilot, three sidecars
 * and an ingress gateway: istioctl's tables from what the proxies really run.
 */
const CONFIG = `
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
kind: ServiceEntry
metadata: { name: productpage, namespace: default }
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: productpage } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 2, interval: 200ms, baseEjectionTime: 120s, maxEjectionPercent: 100 }
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews, subset: v2 } }]
    - route: [{ destination: { host: reviews } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: bookinfo-gateway, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: bookinfo, namespace: default }
spec:
  hosts: ["*"]
  gateways: [bookinfo-gateway]
  http: [{ route: [{ destination: { host: productpage, port: { number: 9080 } } }] }]
`;

const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';
const TYPE = 'type.googleapis.com/envoy.config';

describe('mizzen proxy-config and proxy-status against real proxies', () => {
  const mesh = new TestMesh();
  const backends: Backend[] = [];
  let v2Failing = false;
  let reviewsV1: SidecarHandle;
  let reviewsV2: SidecarHandle;
  let productpage: SidecarHandle;
  let gateway: SidecarHandle;
  let http: ProxyClient;
  const mizzen = (...args: string[]): Promise<CliResult> => runMizzen([...args, '--pilot', mesh.pilot!.base]);

  beforeAll(async () => {
    mesh.writeConfig('mesh.yaml', CONFIG);
    await mesh.startCitadel();
    await mesh.startPilot();
    const v1 = await startBackend('reviews', 'v1');
    const v2 = await startBackend('reviews', 'v2', (_req, res) => {
      if (!v2Failing) return false;
      res.writeHead(503).end('down');
      return true;
    });
    const pp = await startBackend('productpage', 'v1');
    backends.push(v1, v2, pp);
    const sidecar = (service: string, version: string, backend: Backend) =>
      mesh.startSidecar({
        workload: `${service}-${version}`,
        service,
        labels: { app: service, version },
        appPort: backend.port,
      });
    reviewsV1 = await sidecar('reviews', 'v1', v1);
    reviewsV2 = await sidecar('reviews', 'v2', v2);
    productpage = await sidecar('productpage', 'v1', pp);
    gateway = await mesh.startGateway({ portMap: { 80: await mesh.ports.take() } });
    await mesh.waitForSync([reviewsV1.id, reviewsV2.id, productpage.id, gateway.id], 120_000);
    http = new ProxyClient(productpage.outboundPort);
    await eventually('reviews reachable from productpage', async () => {
      const r = await http.request('http://reviews:9080/');
      return r.status === 200 || `${r.status}`;
    });
  });

  afterAll(async () => {
    http?.close();
    await mesh.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  it('proxy-status (ps): every proxy SYNCED, in istioctl columns', async () => {
    const ps = await mizzen('ps');
    expect(ps.stderr).toBe('');
    expect(ps.status).toBe(0);
    const [header, ...rows] = ps.stdout.trimEnd().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual([
      'NAME',
      'CLUSTER',
      'CDS',
      'LDS',
      'EDS',
      'RDS',
      'ECDS',
      'ISTIOD',
      'VERSION',
    ]);
    expect(rows.map((r) => r.split(/\s{2,}/)[0])).toEqual([
      'istio-ingressgateway.istio-system',
      'productpage-v1.default',
      'reviews-v1.default',
      'reviews-v2.default',
    ]);
    for (const row of rows)
      expect(row).toMatch(
        /^\S+\s+Kubernetes\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED\s+NOT SENT\s+pilot-\S+\s+\S+$/,
      );
    expect((await mizzen('proxy-status')).stdout).toBe(ps.stdout);
  });

  it('proxy-status PROXY: what pilot sent matches what the proxy runs', async () => {
    for (const name of ['productpage-v1', 'reviews-v1.default', productpage.id]) {
      const r = await mizzen('ps', name);
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(
        /^Clusters Match\nListeners Match\nRoutes Match \(RDS last loaded at .+ GMT\)\n$/,
      );
    }
  });

  it('proxy-config clusters: every subset with the DestinationRule that made it, and the filters', async () => {
    const pc = await mizzen('pc', 'clusters', 'productpage-v1');
    expect(pc.status).toBe(0);
    expect(pc.stdout.split('\n')[0]!.split(/\s{2,}/)).toEqual([
      'SERVICE FQDN',
      'PORT',
      'SUBSET',
      'DIRECTION',
      'TYPE',
      'DESTINATION RULE',
    ]);
    for (const subset of ['-', 'v1', 'v2'])
      expect(pc.stdout).toMatch(
        new RegExp(
          `^reviews\\.default\\.svc\\.cluster\\.local\\s+9080\\s+${subset}\\s+outbound\\s+EDS\\s+reviews\\.default$`,
          'm',
        ),
      );
    expect(pc.stdout).toMatch(/^productpage\.default\.svc\.cluster\.local\s+9080\s+-\s+outbound\s+EDS$/m);
    expect(pc.stdout).toMatch(/^PassthroughCluster\s+-\s+-\s+-\s+ORIGINAL_DST$/m);
    expect(pc.stdout).toMatch(/^\s+\d+\s+-\s+inbound\s+STATIC$/m);

    const v1 = await mizzen('pc', 'cluster', 'productpage-v1.default', '--fqdn', 'reviews', '--subset', 'v1');
    expect(v1.stdout.trimEnd().split('\n')).toHaveLength(2);
    expect(v1.stdout).toContain('v1');
    const inbound = await mizzen('pc', 'c', 'productpage-v1', '--direction', 'inbound');
    expect(inbound.stdout.trimEnd().split('\n').slice(1)).toEqual([
      expect.stringMatching(/inbound\s+STATIC$/),
    ]);

    const json = await mizzen('pc', 'clusters', 'productpage-v1', '--fqdn', 'reviews', '-o', 'json');
    const clusters = JSON.parse(json.stdout) as { '@type': string; name: string }[];
    expect(clusters.map((c) => c.name).sort()).toEqual(
      [
        REVIEWS,
        'outbound|9080|v1|reviews.default.svc.cluster.local',
        'outbound|9080|v2|reviews.default.svc.cluster.local',
      ].sort(),
    );
    for (const c of clusters) expect(c['@type']).toBe(`${TYPE}.cluster.v3.Cluster`);
    const yaml = await mizzen('pc', 'clusters', 'productpage-v1', '--subset', 'v2', '-o', 'yaml');
    expect(yaml.stdout).toMatch(/^- "@type": type\.googleapis\.com\/envoy\.config\.cluster\.v3\.Cluster$/m);
  });

  it('proxy-config listeners and routes: the route tables and the VirtualService behind each route', async () => {
    const listeners = await mizzen('pc', 'listeners', 'productpage-v1');
    expect(listeners.status).toBe(0);
    expect(listeners.stdout.split('\n')[0]!.split(/\s{2,}/)).toEqual([
      'ADDRESSES',
      'PORT',
      'MATCH',
      'DESTINATION',
    ]);
    expect(listeners.stdout).toMatch(/^0\.0\.0\.0\s+9080\s+ALL\s+Route: 9080$/m);
    expect(listeners.stdout).toMatch(
      new RegExp(`^127\\.0\\.0\\.1\\s+${productpage.outboundPort}\\s+ALL\\s+PassthroughCluster$`, 'm'),
    );
    const http9080 = await mizzen('pc', 'l', 'productpage-v1', '--port', '9080', '--type', 'http');
    expect(http9080.stdout.trimEnd().split('\n').slice(1)).toEqual([expect.stringMatching(/Route: 9080$/)]);
    const asJson = JSON.parse((await mizzen('pc', 'listeners', 'productpage-v1', '-o', 'json')).stdout) as {
      '@type': string;
    }[];
    expect(asJson.length).toBeGreaterThan(1);
    for (const l of asJson) expect(l['@type']).toBe(`${TYPE}.listener.v3.Listener`);

    const routes = await mizzen('pc', 'routes', 'productpage-v1', '--name', '9080');
    expect(routes.status).toBe(0);
    const [header, ...rows] = routes.stdout.trimEnd().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE']);
    const reviews = rows.filter((r) => r.includes('reviews.default.svc.cluster.local:9080'));
    expect(reviews).toHaveLength(2);
    for (const r of reviews)
      expect(r).toMatch(
        /^9080\s+reviews\.default\.svc\.cluster\.local:9080\s+reviews\.default, reviews\s+\/\*\s+reviews\.default$/,
      );
    expect(rows.every((r) => r.startsWith('9080 '))).toBe(true);
    const gw = await mizzen('pc', 'routes', 'istio-ingressgateway.istio-system');
    expect(gw.stdout).toMatch(/^http\.\d+\s+\*:80\s+\*\s+\/\*\s+bookinfo\.default$/m);
    const routeJson = JSON.parse((await mizzen('pc', 'r', 'productpage-v1', '-o', 'json')).stdout) as {
      '@type': string;
      name: string;
    }[];
    expect(routeJson.map((r) => r['@type'])).toContain(`${TYPE}.route.v3.RouteConfiguration`);
  });

  it('proxy-config secret: the SPIFFE workload certificate and ROOTCA the proxy holds', async () => {
    const secret = await mizzen('pc', 'secret', 'productpage-v1');
    expect(secret.status).toBe(0);
    const [header, ...rows] = secret.stdout.trimEnd().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual([
      'RESOURCE NAME',
      'TYPE',
      'STATUS',
      'VALID CERT',
      'SERIAL NUMBER',
      'NOT AFTER',
      'NOT BEFORE',
    ]);
    const certs = await getJson<{ certificates: { cert_chain?: { serial_number: string }[] }[] }>(
      `http://127.0.0.1:${productpage.adminPort}/certs`,
    );
    const serial = certs.certificates
      .find((c) => c.cert_chain)!
      .cert_chain![0]!.serial_number.replace(/^0+/, '');
    const time = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ';
    expect(rows[0]).toMatch(
      new RegExp(`^default\\s+Cert Chain\\s+ACTIVE\\s+true\\s+${serial}\\s+${time}\\s+${time}$`),
    );
    expect(rows[1]).toMatch(
      new RegExp(`^ROOTCA\\s+CA\\s+ACTIVE\\s+true\\s+[0-9a-f]+\\s+${time}\\s+${time}$`),
    );

    const dump = JSON.parse((await mizzen('pc', 'secret', 'productpage-v1', '-o', 'json')).stdout) as {
      '@type': string;
      dynamic_active_secrets: {
        name: string;
        secret: { tls_certificate?: Record<string, { inline_bytes?: string; inline_string?: string }> };
      }[];
    };
    expect(dump['@type']).toBe('type.googleapis.com/envoy.admin.v3.SecretsConfigDump');
    const workload = dump.dynamic_active_secrets.find((s) => s.name === 'default')!.secret.tls_certificate!;
    expect(workload.private_key).toEqual({ inline_string: '[redacted]' });
    const leaf = new X509Certificate(
      Buffer.from(workload.certificate_chain!.inline_bytes!, 'base64').toString(),
    );
    expect(leaf.subjectAltName).toContain('URI:spiffe://cluster.local/ns/default/sa/productpage');
  });

  it('proxy-config all and bootstrap: the whole config dump as Envoy prints it', async () => {
    const all = JSON.parse((await mizzen('pc', 'all', 'productpage-v1', '-o', 'json')).stdout) as {
      configs: { '@type': string }[];
    };
    expect(all.configs.map((c) => c['@type'].split('.').pop())).toEqual([
      'BootstrapConfigDump',
      'ClustersConfigDump',
      'ListenersConfigDump',
      'RoutesConfigDump',
      'SecretsConfigDump',
      'EndpointsConfigDump',
    ]);
    const bootstrap = JSON.parse((await mizzen('pc', 'bootstrap', 'productpage-v1')).stdout) as {
      bootstrap: { node: { id: string } };
    };
    expect(bootstrap.bootstrap.node.id).toBe(productpage.id);
    const tables = await mizzen('pc', 'all', 'productpage-v1');
    for (const h of ['SERVICE FQDN', 'ADDRESSES', 'VHOST NAME', 'OUTLIER CHECK', 'RESOURCE NAME'])
      expect(tables.stdout).toContain(h);
  });

  it('proxy-config endpoints: healthy endpoints, then one that outlier detection ejects', async () => {
    const v1Endpoint = `127.0.0.1:${reviewsV1.inboundPort}`;
    const v2Endpoint = `127.0.0.1:${reviewsV2.inboundPort}`;
    const endpoints = () => mizzen('pc', 'endpoints', 'productpage-v1', '--cluster', REVIEWS);
    const before = await endpoints();
    expect(before.status).toBe(0);
    const lines = before.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ENDPOINT\s+STATUS\s+OUTLIER CHECK\s+CLUSTER$/);
    expect(lines.slice(1).sort()).toEqual(
      [v1Endpoint, v2Endpoint]
        .sort()
        .map((e) => expect.stringMatching(new RegExp(`^${e}\\s+HEALTHY\\s+OK\\s+`))),
    );

    v2Failing = true;
    await eventually('outlier detection to eject reviews-v2', async () => {
      for (let i = 0; i < 4; i++) await http.request('http://reviews:9080/');
      const r = await endpoints();
      return new RegExp(`^${v2Endpoint}\\s+HEALTHY\\s+FAILED\\s`, 'm').test(r.stdout) || r.stdout;
    });
    const after = await endpoints();
    expect(after.stdout).toMatch(
      new RegExp(`^${v1Endpoint}\\s+HEALTHY\\s+OK\\s+${REVIEWS.replaceAll('|', '\\|')}$`, 'm'),
    );
    expect(after.stdout).toMatch(
      new RegExp(`^${v2Endpoint}\\s+HEALTHY\\s+FAILED\\s+${REVIEWS.replaceAll('|', '\\|')}$`, 'm'),
    );
    const byAddress = await mizzen(
      'pc',
      'ep',
      'productpage-v1',
      '--address',
      '127.0.0.1',
      '--port',
      String(reviewsV2.inboundPort),
    );
    // Outlier state is per cluster: only the subset-less cluster carried the failing requests.
    expect(byAddress.stdout.trimEnd().split('\n').slice(1)).toEqual([
      expect.stringMatching(
        new RegExp(`^${v2Endpoint}\\s+HEALTHY\\s+FAILED\\s+${REVIEWS.replaceAll('|', '\\|')}$`),
      ),
      expect.stringMatching(new RegExp(`^${v2Endpoint}\\s+HEALTHY\\s+OK\\s+outbound\\|9080\\|v2\\|reviews`)),
    ]);
    const unhealthy = await mizzen('pc', 'endpoints', 'productpage-v1', '--status', 'unhealthy');
    expect(unhealthy.stdout.trimEnd().split('\n')).toHaveLength(1);
    const json = JSON.parse(
      (await mizzen('pc', 'endpoints', 'productpage-v1', '--cluster', REVIEWS, '-o', 'json')).stdout,
    ) as {
      name: string;
      host_statuses: { health_status: { failed_outlier_check?: boolean } }[];
    }[];
    expect(json.map((c) => c.name)).toEqual([REVIEWS]);
    expect(json[0]!.host_statuses.filter((h) => h.health_status.failed_outlier_check)).toHaveLength(1);
  });

  it('names a proxy it cannot find, with candidates, and exits 1; --admin reaches a proxy without pilot', async () => {
    const unknown = await mizzen('pc', 'clusters', 'ratings-v1');
    expect(unknown.status).toBe(1);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toBe(
      `error: proxy "ratings-v1" not found among the proxies connected to pilot at ${mesh.pilot!.base}; candidates: istio-ingressgateway.istio-system, productpage-v1.default, reviews-v1.default, reviews-v2.default\n`,
    );
    const wrongNs = await mizzen('ps', 'productpage-v1', '-n', 'prod');
    expect(wrongNs.status).toBe(1);
    expect(wrongNs.stderr).toContain('proxy "productpage-v1" in namespace "prod" not found');
    const direct = await runMizzen([
      'pc',
      'clusters',
      '--admin',
      `http://127.0.0.1:${reviewsV1.adminPort}`,
      '--pilot',
      'http://127.0.0.1:9',
    ]);
    expect(direct.status).toBe(0);
    expect(direct.stdout).toMatch(/^SERVICE FQDN/);
    const gone = await runMizzen(['pc', 'routes', '--admin', 'http://127.0.0.1:9']);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toBe(
      'error: cannot reach the admin API of the proxy at http://127.0.0.1:9 (connection refused); is the proxy running?\n',
    );
  });

  it('a proxy that rejects config shows NACKED with its reason, and proxy-status PROXY shows the difference', async () => {
    const busyPort = await mesh.ports.take();
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(busyPort, '127.0.0.1', r));
    try {
      const applied = await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: busy-gateway, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: ${busyPort}, name: http-busy, protocol: HTTP }, hosts: ["*"] }]
`);
      expect(applied.status).toBe(200);
      await eventually('the gateway to NACK a listener it cannot bind', async () => {
        const entry = (await mesh.syncz()).find((e) => e.proxy === gateway.id);
        return entry?.sync?.LDS === 'NACKED' || JSON.stringify(entry?.sync);
      });
      const ps = await mizzen('ps');
      expect(ps.status).toBe(0);
      expect(ps.stdout).toMatch(
        /^istio-ingressgateway\.istio-system\s+Kubernetes\s+SYNCED\s+NACKED\s+SYNCED\s+SYNCED\s+NOT SENT\s/m,
      );
      expect(ps.stdout).toMatch(
        /^productpage-v1\.default\s+Kubernetes\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED\s/m,
      );
      expect(ps.stdout).toMatch(
        new RegExp(`^istio-ingressgateway\\.istio-system LDS NACKED: .*${busyPort}`, 'm'),
      );
      const diff = await mizzen('ps', 'istio-ingressgateway');
      expect(diff.status).toBe(0);
      expect(diff.stdout).toMatch(/^Clusters Match$/m);
      expect(diff.stdout).toMatch(/^--- Pilot Listeners\n\+\+\+ Proxy Listeners\n@@ /m);
      // Pilot sent a listener for the busy port; the proxy kept running the listeners it had.
      expect(diff.stdout).toMatch(new RegExp(`^-.*${busyPort}`, 'm'));
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});
