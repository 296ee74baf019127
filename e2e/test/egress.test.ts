import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../src/clients.js';
import { type Backend, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Istio's egress tasks with a real sidecar and a real egress gateway, the
 * "external" hosts served by this test on loopback and registered by
 * ServiceEntry: REGISTRY_ONLY blocking what is not registered (502, counted
 * as BlackHoleCluster) while registered hosts work, exportTo hiding an entry
 * from other namespaces, sidecar → egress gateway → external host with
 * `gateways: [mesh, istio-egressgateway]`, TLS origination with a client
 * certificate at the egress gateway (the app speaks HTTP, the backend sees
 * mutual TLS), and TLS passed through the egress gateway by SNI.
 */
type Ca = Awaited<ReturnType<typeof createRootCa>>;

/** An HTTPS server standing for an external service; `clientCa` makes it require a client certificate. */
async function externalHttps(
  ca: Ca,
  host: string,
  clientCa?: Ca,
): Promise<{
  port: number;
  seen: { tls: boolean; client?: string; sni?: string }[];
  close: () => Promise<void>;
}> {
  const cert = await issueTlsCertificate({ dnsNames: [host], issuer: ca, ttlSeconds: 3600 });
  const seen: { tls: boolean; client?: string; sni?: string }[] = [];
  const server = https.createServer(
    {
      cert: cert.certificate,
      key: cert.privateKeyPem,
      ...(clientCa ? { ca: clientCa.certificate, requestCert: true, rejectUnauthorized: true } : {}),
    },
    (req, res) => {
      const socket = req.socket as tls.TLSSocket;
      const cn = socket.getPeerCertificate()?.subject?.CN;
      seen.push({
        tls: socket.encrypted === true,
        client: Array.isArray(cn) ? cn[0] : cn,
        sni: (socket as unknown as { servername?: string }).servername,
      });
      res.end(`${host} over TLS`);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('egress: ServiceEntry, REGISTRY_ONLY and the egress gateway', () => {
  const mesh = new TestMesh();
  let app: Backend;
  let plain: Backend;
  let hidden: Backend;
  let client: SidecarHandle;
  let egress: SidecarHandle;
  let http: ProxyClient;
  let externalCa: Ca;
  let origination: Awaited<ReturnType<typeof externalHttps>>;
  let passthrough: Awaited<ReturnType<typeof externalHttps>>;

  beforeAll(async () => {
    externalCa = await createRootCa({ ttlSeconds: 3600 });
    const clientCa = await createRootCa({ ttlSeconds: 3600 });
    app = await startBackend('client', 'v1');
    plain = await startBackend('plain-external', 'v1');
    hidden = await startBackend('hidden-external', 'v1');
    origination = await externalHttps(externalCa, 'secure.external.test', clientCa);
    passthrough = await externalHttps(externalCa, 'tls.external.test');
    const clientCert = await issueTlsCertificate({
      dnsNames: ['egress.mesh.local'],
      issuer: clientCa,
      ttlSeconds: 3600,
    });
    // The egress gateway's client certificate for the external service, and the CA it trusts the service by.
    mesh.writeCredential('secure-external', {
      certificateChain: clientCert.certificate,
      privateKey: clientCert.privateKeyPem,
      caCertificate: externalCa.certificate,
    });
    const [egressHttp, egressTls] = await mesh.ports.takeMany(2);
    mesh.writeConfig(
      'egress.yaml',
      `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: plain-external, namespace: default }
spec:
  hosts: [plain.external.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${plain.port} } }]
---
# Only for its own namespace: sidecars in default do not see it, so REGISTRY_ONLY blocks it there.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: hidden-external, namespace: other }
spec:
  hosts: [hidden.external.test]
  exportTo: ["."]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${hidden.port} } }]
---
# Resolved by DNS (localhost), as a real external name would be.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: secure-external, namespace: default }
spec:
  hosts: [secure.external.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{ number: 80, name: http, protocol: HTTP }, { number: 443, name: https, protocol: HTTPS }]
  endpoints: [{ address: localhost, ports: { http: 1, https: ${origination.port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tls-external, namespace: default }
spec:
  hosts: [tls.external.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 443, name: tls, protocol: TLS }]
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${passthrough.port} } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: istio-egressgateway, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers:
    - port: { number: 80, name: http, protocol: HTTP }
      hosts: [secure.external.test]
    - port: { number: 443, name: tls, protocol: TLS }
      hosts: [tls.external.test]
      tls: { mode: PASSTHROUGH }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: secure-through-egress, namespace: default }
spec:
  hosts: [secure.external.test]
  gateways: [mesh, istio-system/istio-egressgateway]
  http:
    - match: [{ gateways: [mesh], port: 80 }]
      route: [{ destination: { host: istio-egressgateway.istio-system.svc.cluster.local, port: { number: 80 } } }]
    - match: [{ gateways: [istio-system/istio-egressgateway], port: 80 }]
      route: [{ destination: { host: secure.external.test, port: { number: 443 } } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: tls-through-egress, namespace: default }
spec:
  hosts: [tls.external.test]
  gateways: [mesh, istio-system/istio-egressgateway]
  tls:
    - match: [{ gateways: [mesh], port: 443, sniHosts: [tls.external.test] }]
      route: [{ destination: { host: istio-egressgateway.istio-system.svc.cluster.local, port: { number: 443 } } }]
    - match: [{ gateways: [istio-system/istio-egressgateway], port: 443, sniHosts: [tls.external.test] }]
      route: [{ destination: { host: tls.external.test, port: { number: 443 } } }]
---
# TLS origination at the egress gateway, with a client certificate (Istio's credentialName).
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: originate-mtls, namespace: istio-system }
spec:
  host: secure.external.test
  # Only the egress gateway (istio-system) originates; sidecars send this host to it as plain HTTP.
  exportTo: ["."]
  trafficPolicy:
    portLevelSettings:
      - port: { number: 443 }
        tls: { mode: MUTUAL, credentialName: secure-external }
`,
    );
    await mesh.startPilot(['--outbound-traffic-policy', 'REGISTRY_ONLY']);
    egress = await mesh.startGateway({ egress: true, portMap: { 80: egressHttp, 443: egressTls } });
    client = await mesh.startSidecar({
      workload: 'client-v1',
      service: 'client',
      labels: { app: 'client', version: 'v1' },
      appPort: app.port,
    });
    await mesh.waitForSync([client.id, egress.id]);
    http = new ProxyClient(client.outboundPort);
    // The egress gateway registers itself (a WorkloadEntry) as istio-egressgateway.istio-system.svc.cluster.local.
    await eventually('the sidecar to reach secure.external.test through the egress gateway', async () => {
      const r = await http.request('http://secure.external.test/hello');
      return r.status === 200 || `${r.status} ${r.body}`;
    });
  });

  afterAll(async () => {
    http?.close();
    await mesh.stop();
    await Promise.all([app, plain, hidden, origination, passthrough].map((b) => b?.close()));
  });

  it('REGISTRY_ONLY: a registered external host works, an unknown one gets 502 and is counted as BlackHoleCluster', async () => {
    const ok = await http.request('http://plain.external.test/x');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ name: 'plain-external' });
    const blocked = await http.request('http://unknown.example.org/x');
    expect(blocked.status).toBe(502);
    // exportTo ["."] in another namespace: not in this sidecar's registry, so blocked too.
    expect((await http.request('http://hidden.external.test/x')).status).toBe(502);
    expect(hidden.hits).toBe(0);
    await eventually('the 502s in istio_requests_total as BlackHoleCluster', async () => {
      const stats = await (await fetch(`http://127.0.0.1:${client.statsPort}/stats/prometheus`)).text();
      const line = stats
        .split('\n')
        .find(
          (l) =>
            l.startsWith('istio_requests_total{') &&
            l.includes('destination_service_name="BlackHoleCluster"') &&
            l.includes('response_code="502"'),
        );
      return (line !== undefined && Number(line.split(' ').pop()) >= 2) || 'not counted yet';
    });
  });

  it('originates mutual TLS at the egress gateway: the app speaks HTTP, the backend sees TLS and the client certificate', async () => {
    const before = origination.seen.length;
    const r = await http.request('http://secure.external.test/hello');
    expect(r.status).toBe(200);
    expect(r.body).toBe('secure.external.test over TLS');
    const seen = origination.seen.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(
      seen.every((s) => s.tls && s.client === 'egress.mesh.local' && s.sni === 'secure.external.test'),
    ).toBe(true);
  });

  it('passes TLS through the egress gateway by SNI: the client verifies the external certificate end to end', async () => {
    const caFile = path.join(mesh.dir, 'external-ca.pem');
    fs.writeFileSync(caFile, externalCa.certificate);
    // curl through the sidecar as HTTPS_PROXY: a CONNECT tunnel, then TLS with the external host itself.
    const r = await curl([
      '--proxy',
      `http://127.0.0.1:${client.outboundPort}`,
      '--cacert',
      caFile,
      'https://tls.external.test/',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('tls.external.test over TLS');
    expect(passthrough.seen.at(-1)).toMatchObject({ tls: true, sni: 'tls.external.test' });
  });
});
