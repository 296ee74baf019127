import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { samples, scrapeFamilies, sum } from '../src/metrics.js';

/**
 * Istio's multi-network mesh on one machine: a client sidecar on network1,
 * echo's workloads (each with its sidecar) on network2, reachable only
 * through network2's east-west gateway — an ingress gateway started with
 * `--role eastwest`, selected by a Gateway with an AUTO_PASSTHROUGH server.
 * The gateway is network2's because its auto-registered service carries the
 * `topology.istio.io/network` label and port 15443; no meshNetworks needed.
 */
const CONFIG = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: echo } }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: cross-network-gateway, namespace: istio-system }
spec:
  selector: { istio: eastwestgateway }
  servers:
    - port: { number: 15443, name: tls, protocol: TLS }
      tls: { mode: AUTO_PASSTHROUGH }
      hosts: ["*.local"]
`;

const ECHO_CLUSTER = 'outbound|9080||echo.default.svc.cluster.local';
const ECHO_SNI = 'outbound_.9080_._.echo.default.svc.cluster.local';
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/client';

/** The hosts of a cluster in a proxy's admin `/clusters`, with their weights (`127.0.0.1:PORT` → weight). */
async function clusterHosts(adminPort: number, cluster: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/clusters`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^(.+)::([^:]+:\d+)::weight::(\d+)$/);
    if (m && m[1] === cluster) out[m[2]!] = Number(m[3]);
  }
  return out;
}

/** A TLS handshake with the gateway for `sni`: the certificate that answers, or how the connection ended. */
function handshake(
  port: number,
  sni: string,
  opts: { cert?: string; key?: string; ca?: string } = {},
): Promise<{ san: string } | { closed: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername: sni,
      ...opts,
      rejectUnauthorized: opts.ca !== undefined,
      checkServerIdentity: () => undefined,
    });
    s.setTimeout(5_000, () => s.destroy(new Error('timed out')));
    s.once('secureConnect', () => {
      resolve({ san: s.getPeerCertificate().subjectaltname ?? '' });
      s.destroy();
    });
    s.once('error', (err) => resolve({ closed: (err as NodeJS.ErrnoException).code ?? err.message }));
    s.once('close', () => resolve({ closed: 'closed' }));
  });
}

describe('multi-network: split-horizon EDS through an east-west gateway (AUTO_PASSTHROUGH)', () => {
  const mesh = new TestMesh();
  const backends: Backend[] = [];
  let client: SidecarHandle;
  let gateway: SidecarHandle;
  let gatewayPort: number;
  const remote: SidecarHandle[] = [];
  let http: ProxyClient;

  /** An echo workload with its sidecar on `network`. */
  async function echo(name: string, network: string): Promise<SidecarHandle> {
    const backend = await startBackend(name, network);
    backends.push(backend);
    return mesh.startSidecar({
      workload: name,
      service: 'echo',
      labels: { app: 'echo' },
      appPort: backend.port,
      extraArgs: ['--network', network],
    });
  }

  /** Which workloads answered `n` requests from the client. */
  async function tally(n: number): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await http.request('http://echo:9080/who');
      const key = r.status === 200 ? (JSON.parse(r.body) as { name: string }).name : `status ${r.status}`;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  beforeAll(async () => {
    mesh.writeConfig('mesh.yaml', CONFIG);
    await mesh.startCitadel();
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    remote.push(await echo('echo-remote-1', 'network2'), await echo('echo-remote-2', 'network2'));
    gatewayPort = await mesh.ports.take();
    gateway = await mesh.startGateway({
      name: 'istio-eastwestgateway',
      portMap: { 15443: gatewayPort },
      extraArgs: ['--role', 'eastwest', '--network', 'network2'],
    });
    const app = await startBackend('client', 'network1');
    backends.push(app);
    client = await mesh.startSidecar({
      workload: 'client',
      service: 'client',
      labels: { app: 'client' },
      appPort: app.port,
      extraArgs: ['--network', 'network1'],
    });
    await mesh.waitForSync([...remote.map((r) => r.id), gateway.id, client.id]);
    http = new ProxyClient(client.outboundPort);
    await eventually(
      'echo through the east-west gateway',
      async () => (await http.request('http://echo:9080/warm')).status === 200,
      30_000,
    );
  }, 120_000);

  afterAll(async () => {
    http?.close();
    for (const b of backends) await b.close();
    await mesh.stop();
  });

  it("the client's EDS holds network2's gateway, weighted by the two endpoints behind it, never their own addresses", async () => {
    await eventually(
      'the gateway in the client’s echo cluster',
      async () => {
        const hosts = await clusterHosts(client.adminPort, ECHO_CLUSTER);
        return (
          JSON.stringify(hosts) === JSON.stringify({ [`127.0.0.1:${gatewayPort}`]: 2 }) ||
          JSON.stringify(hosts)
        );
      },
      20_000,
    );
    const dump = await (await fetch(`http://127.0.0.1:${client.adminPort}/config_dump?include_eds`)).text();
    for (const r of remote) expect(dump).not.toContain(`"port_value":${r.inboundPort}`);
  });

  it('requests succeed, answered by the remote workloads through the gateway', async () => {
    // The client's HTTP/2 connection to the gateway endpoint is passed through whole to one remote sidecar:
    // as in Istio, the gateway balances connections, not requests.
    const t = await tally(20);
    expect((t['echo-remote-1'] ?? 0) + (t['echo-remote-2'] ?? 0)).toBe(20);
  });

  it("the server sidecar sees the client sidecar's own mTLS: the gateway never terminates it", async () => {
    await http.request('http://echo:9080/identity');
    // The app behind the server's sidecar gets the identity the handshake proved: the client's, not the gateway's.
    const seen = backends
      .filter((b) => b.version === 'network2')
      .map((b) => String(b.lastHeaders?.['x-forwarded-client-cert'] ?? ''));
    expect(seen.some((x) => x.includes(`URI=${CLIENT_ID}`))).toBe(true);
    expect(seen.some((x) => x.includes('istio-eastwestgateway'))).toBe(false);
    await eventually(
      'the destination reports the client principal over mutual_tls',
      async () => {
        let total = 0;
        for (const r of remote)
          total += sum(samples(await scrapeFamilies(r.statsPort), 'istio_requests_total'), {
            reporter: 'destination',
            source_principal: CLIENT_ID,
            connection_security_policy: 'mutual_tls',
          });
        return total > 0 || 'no mutual_tls request from the client reported';
      },
      10_000,
    );
  });

  it("a handshake through the gateway for echo's SNI is answered by echo's sidecar, with its certificate", async () => {
    const cert = await mesh.workloadCertificate('default', 'probe');
    const answer = await handshake(gatewayPort, ECHO_SNI, {
      cert: cert.certificate,
      key: cert.privateKeyPem,
      ca: cert.root,
    });
    expect(answer).toEqual({ san: 'URI:spiffe://cluster.local/ns/default/sa/echo' });
  });

  it('a connection whose SNI names no cluster is closed without a handshake', async () => {
    const answer = await handshake(gatewayPort, 'outbound_.9080_._.nothing.default.svc.cluster.local');
    expect('closed' in answer).toBe(true);
    const plainName = await handshake(gatewayPort, 'echo.default.svc.cluster.local');
    expect('closed' in plainName).toBe(true);
  });

  it('a local endpoint joins: weighted 1 against the gateway’s 2, traffic splits a third to two thirds', async () => {
    const local = await echo('echo-local', 'network1');
    await mesh.waitForSync([local.id]);
    await eventually(
      'the local endpoint beside the gateway',
      async () => {
        const hosts = await clusterHosts(client.adminPort, ECHO_CLUSTER);
        const want = { [`127.0.0.1:${local.inboundPort}`]: 1, [`127.0.0.1:${gatewayPort}`]: 2 };
        const sorted = (o: Record<string, number>) => JSON.stringify(Object.entries(o).sort());
        return sorted(hosts) === sorted(want) || JSON.stringify(hosts);
      },
      20_000,
    );
    const n = 150;
    const t = await tally(n);
    const viaGateway = (t['echo-remote-1'] ?? 0) + (t['echo-remote-2'] ?? 0);
    expect(viaGateway + (t['echo-local'] ?? 0)).toBe(n);
    expect(t['echo-local'] ?? 0).toBeGreaterThanOrEqual(n * 0.2);
    expect(t['echo-local'] ?? 0).toBeLessThanOrEqual(n * 0.47);
  });
});
