import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../src/clients.js';
import { tcpEcho } from '../src/echo-servers.js';
import { type Backend, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { appEntry } from '../src/processes.js';
import { tcpThroughSidecar } from '../src/tcp.js';

/**
 * Istio's egress tasks with a real sidecar and a real egress gateway, the
 * "external" hosts served by this test on loopback and registered by
 * ServiceEntry: REGISTRY_ONLY blocking what is not registered (502, counted
 * as BlackHoleCluster) while registered hosts work, exportTo hiding an entry
 * from other namespaces, sidecar → egress gateway → external host with
 * `gateways: [mesh, istio-egressgateway]`, TLS origination with a client
 * certificate at the egress gateway (the app speaks HTTP, the backend sees
 * mutual TLS; or SIMPLE, verifying the external server by a credential that
 * holds only its CA — made with `mizzen create secret generic --from-file=ca.crt=…`
 * as Istio's docs make it with kubectl — and refusing one whose certificate
 * that CA did not sign), TLS passed through the
 * egress gateway by SNI (the gateway's own stats show the hop), and
 * ServiceEntry resolutions with real traffic: NONE (the original
 * destination), DNS_ROUND_ROBIN, and TCP services on one port told apart by
 * their addresses (a VIP and a CIDR).
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
  let simple: Awaited<ReturnType<typeof externalHttps>>;
  let wrongCa: Awaited<ReturnType<typeof externalHttps>>;
  let original: Backend;
  let roundRobin: Backend;
  let vipDb: Awaited<ReturnType<typeof tcpEcho>>;
  let cidrDb: Awaited<ReturnType<typeof tcpEcho>>;
  let unregisteredPort = 0;

  const stats = async (proxy: SidecarHandle) =>
    (await fetch(`http://127.0.0.1:${proxy.statsPort}/stats/prometheus`)).text();
  /** TCP connections the egress gateway opened to a destination service (istio_tcp_connections_opened_total). */
  const egressTcpConnections = async (service: string) => {
    let sum = 0;
    for (const line of (await stats(egress)).split('\n'))
      if (
        line.startsWith('istio_tcp_connections_opened_total{') &&
        line.includes(`destination_service="${service}"`)
      )
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    return sum;
  };

  beforeAll(async () => {
    externalCa = await createRootCa({ ttlSeconds: 3600 });
    const clientCa = await createRootCa({ ttlSeconds: 3600 });
    app = await startBackend('client', 'v1');
    plain = await startBackend('plain-external', 'v1');
    hidden = await startBackend('hidden-external', 'v1');
    origination = await externalHttps(externalCa, 'secure.external.test', clientCa);
    passthrough = await externalHttps(externalCa, 'tls.external.test');
    simple = await externalHttps(externalCa, 'simple.external.test');
    // Its certificate is for the right name, from a CA the egress gateway was not told to trust.
    wrongCa = await externalHttps(await createRootCa({ ttlSeconds: 3600 }), 'wrongca.external.test');
    original = await startBackend('original-destination', 'v1');
    roundRobin = await startBackend('round-robin', 'v1');
    vipDb = await tcpEcho('vip-db');
    cidrDb = await tcpEcho('cidr-db');
    unregisteredPort = await mesh.ports.take();
    const externalCaFile = path.join(mesh.dir, 'external-ca.pem');
    fs.writeFileSync(externalCaFile, externalCa.certificate);
    // A credential with only the CA that verifies the external servers, stored by the real CLI where pilot reads it.
    const created = spawnSync(
      process.execPath,
      [
        appEntry('@mizzen/cli'),
        'create',
        'secret',
        'generic',
        'external-ca',
        `--from-file=ca.crt=${externalCaFile}`,
      ],
      { encoding: 'utf8', env: { ...process.env, MIZZEN_HOME: mesh.dir }, timeout: 30_000 },
    );
    expect(created.stderr).toBe('');
    expect(created.stdout).toBe('secret/external-ca created\n');
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
      hosts: [secure.external.test, simple.external.test, wrongca.external.test]
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
${['simple', 'wrongca']
  .map(
    (name) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}-external, namespace: default }
spec:
  hosts: [${name}.external.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{ number: 80, name: http, protocol: HTTP }, { number: 443, name: https, protocol: HTTPS }]
  endpoints: [{ address: localhost, ports: { http: 1, https: ${(name === 'simple' ? simple : wrongCa).port} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}-through-egress, namespace: default }
spec:
  hosts: [${name}.external.test]
  gateways: [mesh, istio-system/istio-egressgateway]
  http:
    - match: [{ gateways: [mesh], port: 80 }]
      route: [{ destination: { host: istio-egressgateway.istio-system.svc.cluster.local, port: { number: 80 } } }]
    - match: [{ gateways: [istio-system/istio-egressgateway], port: 80 }]
      route: [{ destination: { host: ${name}.external.test, port: { number: 443 } } }]
---
# TLS origination without a client certificate: the server is verified against the external CA,
# which the credential external-ca holds alone (served to the egress gateway as kubernetes://external-ca-cacert).
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: originate-${name}, namespace: istio-system }
spec:
  host: ${name}.external.test
  exportTo: ["."]
  trafficPolicy:
    portLevelSettings:
      - port: { number: 443 }
        tls: { mode: SIMPLE, credentialName: external-ca }
---`,
  )
  .join('\n')}
# No endpoints, no addresses: connections go where the app sent them (the original destination).
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: original-destination, namespace: default }
spec:
  hosts: [localhost]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{ number: ${original.port}, name: http, protocol: HTTP }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: round-robin, namespace: default }
spec:
  hosts: [rr.external.test]
  location: MESH_EXTERNAL
  resolution: DNS_ROUND_ROBIN
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: localhost, ports: { http: ${roundRobin.port} } }]
---
# Two TCP services on one port, told apart by the address the app dials: a VIP and a CIDR.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: vip-db, namespace: default }
spec:
  hosts: [vip-db.external.test]
  addresses: [240.0.0.10]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 5432, name: tcp, protocol: TCP }]
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${vipDb.port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: cidr-db, namespace: default }
spec:
  hosts: [cidr-db.external.test]
  addresses: [240.0.1.0/24]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 5432, name: tcp, protocol: TCP }]
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${cidrDb.port} } }]
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
    await Promise.all(
      [
        app,
        plain,
        hidden,
        origination,
        passthrough,
        simple,
        wrongCa,
        original,
        roundRobin,
        vipDb,
        cidrDb,
      ].map((b) => b?.close()),
    );
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
    const hops = () => egressTcpConnections('tls.external.test');
    const before = await hops();
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
    // The hop: the egress gateway itself proxied the connection (its own stats count it), not the sidecar directly.
    await eventually('the egress gateway to count the passed-through connection', async () => {
      const after = await hops();
      return after === before + 1 || `${before} → ${after}`;
    });
  });

  it('originates SIMPLE TLS at the egress gateway: the backend sees TLS without a client certificate, verified against the CA-only credential', async () => {
    const before = simple.seen.length;
    const r = await http.request('http://simple.external.test/hello');
    expect(r.status).toBe(200);
    expect(r.body).toBe('simple.external.test over TLS');
    expect(simple.seen.slice(before)).toEqual([
      { tls: true, client: undefined, sni: 'simple.external.test' },
    ]);
  });

  it('refuses an external server whose certificate the credential’s CA did not sign: 503, flagged as an upstream failure', async () => {
    const r = await http.request('http://wrongca.external.test/hello');
    expect(r.status).toBe(503);
    expect(wrongCa.seen).toEqual([]);
    await eventually('the egress gateway to count the 503 with an upstream-failure flag', async () => {
      const line = (await stats(egress))
        .split('\n')
        .find(
          (l) =>
            l.startsWith('istio_requests_total{') &&
            l.includes('destination_service="wrongca.external.test"') &&
            l.includes('response_code="503"'),
        );
      // UF: the TLS handshake to it failed; URX with it when the retries ran out the same way.
      return /response_flags="([A-Z]+,)*UF(,[A-Z]+)*"/.test(line ?? '') || `${line}`;
    });
  });

  it('ServiceEntry resolution NONE: a registered host and port go to the original destination; another port stays blocked', async () => {
    const ok = await http.request(`http://localhost:${original.port}/x`);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ name: 'original-destination', path: '/x' });
    const blocked = await http.request(`http://localhost:${unregisteredPort}/x`);
    expect(blocked.status).toBe(502);
  });

  it('ServiceEntry resolution DNS_ROUND_ROBIN: the endpoint name is resolved and reached', async () => {
    const r = await http.request('http://rr.external.test/rr');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ name: 'round-robin', path: '/rr' });
  });

  it('ServiceEntry addresses: TCP services on one port are told apart by the VIP or CIDR the app dials', async () => {
    expect(await tcpThroughSidecar(client.outboundPort, '240.0.0.10:5432')).toBe('vip-db');
    expect(await tcpThroughSidecar(client.outboundPort, '240.0.1.77:5432')).toBe('cidr-db');
    // An address no ServiceEntry covers: REGISTRY_ONLY gives it nowhere to go.
    await expect(tcpThroughSidecar(client.outboundPort, '240.0.2.1:5432')).rejects.toThrow(
      'closed through the tunnel: ""',
    );
  });
});
