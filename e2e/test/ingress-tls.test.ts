import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl, sClient } from '../src/clients.js';
import { type Backend, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Istio's secure ingress tasks through pilot and a real ingress gateway,
 * driven with real clients — curl with --resolve, openssl s_client, Node's
 * tls: certificates picked by SNI, TLS versions and ciphers, mutual TLS,
 * passthrough to a backend that terminates its own TLS, httpsRedirect,
 * rotation with connections open, a missing credential, a conflicting
 * Gateway, and PROXY protocol with trusted hops from a load balancer.
 */
type Ca = Awaited<ReturnType<typeof createRootCa>>;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function credential(ca: Ca, host: string) {
  const c = await issueTlsCertificate({ dnsNames: [host], issuer: ca, ttlSeconds: 3600 });
  return { certificateChain: c.certificate, privateKey: c.privateKeyPem };
}

describe('TLS at the ingress gateway (Istio secure ingress, through pilot)', () => {
  const mesh = new TestMesh();
  let app: Backend;
  let tlsBackend: https.Server;
  let gateway: SidecarHandle;
  let httpPort = 0;
  let httpsPort = 0;
  let lbPort = 0;
  let serverCa: Ca;
  let clientCa: Ca;
  let otherCa: Ca;
  let backendCa: Ca;
  const pem = (name: string, text: string) => {
    const file = path.join(mesh.dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  beforeAll(async () => {
    [serverCa, clientCa, otherCa, backendCa] = await Promise.all(
      [1, 2, 3, 4].map(() => createRootCa({ ttlSeconds: 3600 })),
    );
    app = await startBackend('productpage', 'v1');
    // A backend that terminates its own TLS: passthrough must deliver the client's handshake to it untouched.
    const own = await issueTlsCertificate({
      dnsNames: ['secure-db.example.com'],
      issuer: backendCa,
      ttlSeconds: 3600,
    });
    tlsBackend = https.createServer({ cert: own.certificate, key: own.privateKeyPem }, (_req, res) =>
      res.end('from the TLS backend'),
    );
    await new Promise<void>((r) => tlsBackend.listen(0, '127.0.0.1', r));
    const tlsBackendPort = (tlsBackend.address() as net.AddressInfo).port;
    [httpPort, httpsPort, lbPort] = await mesh.ports.takeMany(3);

    mesh.writeCredential('a-cred', await credential(serverCa, 'a.example.com'));
    mesh.writeCredential('b-cred', await credential(serverCa, 'b.example.com'));
    mesh.writeCredential('mtls-cred', {
      ...(await credential(serverCa, 'mtls.example.com')),
      caCertificate: clientCa.certificate,
    });
    mesh.writeConfig(
      'edge.yaml',
      `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: productpage, namespace: default }
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${app.port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: secure-db, namespace: default }
spec:
  hosts: [secure-db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8443, name: tls, protocol: TLS }]
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${tlsBackendPort} } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 80, name: http, protocol: HTTP }
      hosts: [a.example.com]
      tls: { httpsRedirect: true }
    - port: { number: 80, name: http-plain, protocol: HTTP }
      hosts: [plain.example.com]
    - port: { number: 443, name: https-a, protocol: HTTPS }
      hosts: [a.example.com]
      tls: { mode: SIMPLE, credentialName: a-cred }
    - port: { number: 443, name: https-b, protocol: HTTPS }
      hosts: [b.example.com]
      tls:
        mode: SIMPLE
        credentialName: b-cred
        maxProtocolVersion: TLSV1_2
        cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256]
    - port: { number: 443, name: https-mtls, protocol: HTTPS }
      hosts: [mtls.example.com]
      tls: { mode: MUTUAL, credentialName: mtls-cred }
    - port: { number: 443, name: https-late, protocol: HTTPS }
      hosts: [late.example.com]
      tls: { mode: SIMPLE, credentialName: late-cred }
    - port: { number: 443, name: tls-db, protocol: TLS }
      hosts: [secure-db.example.com]
      tls: { mode: PASSTHROUGH }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: other-edge, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 443, name: https, protocol: HTTPS }
      hosts: [a.example.com]
      tls: { mode: SIMPLE, credentialName: b-cred }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: edge, namespace: default }
spec:
  hosts: [a.example.com, b.example.com, mtls.example.com, late.example.com, plain.example.com]
  gateways: [edge]
  http:
    - route: [{ destination: { host: productpage, port: { number: 9080 } } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: secure-db, namespace: default }
spec:
  hosts: [secure-db.example.com]
  gateways: [edge]
  tls:
    - match: [{ port: 443, sniHosts: [secure-db.example.com] }]
      route: [{ destination: { host: secure-db, port: { number: 8443 } } }]
`,
    );
    await mesh.startPilot();
    gateway = await mesh.startGateway({ portMap: { 80: httpPort, 443: httpsPort } });
    // A second replica behind a load balancer that speaks PROXY protocol and is trusted for one hop.
    const lb = await mesh.startGateway({
      name: 'istio-ingressgateway-lb',
      portMap: { 80: lbPort },
      extraArgs: [
        '--labels',
        'istio=ingressgateway',
        '--proxy-config',
        '{"gatewayTopology":{"numTrustedProxies":1,"proxyProtocol":{}}}',
      ],
    });
    await mesh.waitForSync([gateway.id, lb.id]);
  });

  afterAll(async () => {
    await mesh.stop();
    await app?.close();
    await new Promise((r) => tlsBackend?.close(r));
  });

  const resolve = (host: string, port = httpsPort) => ['--resolve', `${host}:${port}:127.0.0.1`];

  it('picks the certificate by SNI, and curl verifies it against the CA', async () => {
    const ca = pem('server-ca.pem', serverCa.certificate);
    await eventually('HTTPS on a.example.com', async () => {
      const r = await curl([
        ...resolve('a.example.com'),
        '--cacert',
        ca,
        `https://a.example.com:${httpsPort}/productpage`,
      ]);
      return r.code === 0 || r.stderr;
    });
    for (const host of ['a.example.com', 'b.example.com']) {
      const r = await curl([
        ...resolve(host),
        '--cacert',
        ca,
        '-w',
        '\n%{http_code}',
        `https://${host}:${httpsPort}/p`,
      ]);
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n').pop()).toBe('200');
      expect(sClient(httpsPort, ['-servername', host]).subject).toBe(`CN = ${host}`);
    }
    expect(app.lastHeaders?.['x-forwarded-proto']).toBe('https');
    // No chain for a name no server has: the handshake is refused.
    expect(sClient(httpsPort, ['-servername', 'unknown.example.com']).ok).toBe(false);
  });

  it('enforces maxProtocolVersion and cipherSuites per server', () => {
    expect(sClient(httpsPort, ['-servername', 'b.example.com', '-tls1_3']).ok).toBe(false);
    expect(sClient(httpsPort, ['-servername', 'b.example.com', '-tls1_2']).ok).toBe(true);
    const other = sClient(httpsPort, [
      '-servername',
      'b.example.com',
      '-tls1_2',
      '-cipher',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
    ]);
    expect(other.ok).toBe(false);
    // a.example.com has no such limits: TLS 1.3 works there.
    expect(sClient(httpsPort, ['-servername', 'a.example.com', '-tls1_3']).ok).toBe(true);
  });

  it('accepts a client certificate from the trusted CA at a MUTUAL server and refuses others', async () => {
    const ca = pem('server-ca.pem', serverCa.certificate);
    const good = await issueTlsCertificate({
      dnsNames: ['client.example.com'],
      issuer: clientCa,
      ttlSeconds: 600,
    });
    const rogue = await issueTlsCertificate({
      dnsNames: ['client.example.com'],
      issuer: otherCa,
      ttlSeconds: 600,
    });
    const url = `https://mtls.example.com:${httpsPort}/p`;
    const ok = await curl([
      ...resolve('mtls.example.com'),
      '--cacert',
      ca,
      '--cert',
      pem('good.crt', good.certificate),
      '--key',
      pem('good.key', good.privateKeyPem),
      '-w',
      '\n%{http_code}',
      url,
    ]);
    expect(ok.stdout.split('\n').pop()).toBe('200');
    expect(app.lastHeaders?.['x-forwarded-client-cert']).toContain('DNS=client.example.com');
    const refused = await curl([
      ...resolve('mtls.example.com'),
      '--cacert',
      ca,
      '--cert',
      pem('rogue.crt', rogue.certificate),
      '--key',
      pem('rogue.key', rogue.privateKeyPem),
      url,
    ]);
    expect(refused.code).not.toBe(0);
    const none = await curl([...resolve('mtls.example.com'), '--cacert', ca, url]);
    expect(none.code).not.toBe(0);
  });

  it('passes TLS through by SNI to a backend whose certificate the client verifies end to end', async () => {
    const r = await curl([
      ...resolve('secure-db.example.com'),
      '--cacert',
      pem('backend-ca.pem', backendCa.certificate),
      `https://secure-db.example.com:${httpsPort}/`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('from the TLS backend');
  });

  it('redirects plaintext HTTP to HTTPS (httpsRedirect), to the port HTTPS listens on', async () => {
    const r = await curl([
      ...resolve('a.example.com', httpPort),
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{redirect_url}',
      `http://a.example.com:${httpPort}/productpage?x=1`,
    ]);
    expect(r.stdout).toBe(`301 https://a.example.com:${httpsPort}/productpage?x=1`);
  });

  it('rotates a certificate without a restart, keeping connections that are open', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<{ status: number; serial: string }>((resolve, reject) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port: httpsPort,
            servername: 'a.example.com',
            path: '/p',
            agent,
            ca: serverCa.certificate,
            headers: { host: 'a.example.com' },
          },
          (res) => {
            // The socket goes back to the agent once the body is read: ask it now.
            const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
            res.resume();
            res.once('end', () => resolve({ status: res.statusCode ?? 0, serial }));
          },
        );
        req.once('error', reject);
      });
    const before = await get();
    const fresh = await credential(serverCa, 'a.example.com');
    mesh.writeCredential('a-cred', fresh);
    const newSerial = new X509Certificate(fresh.certificateChain).serialNumber;
    await eventually('new handshakes to present the rotated certificate', async () => {
      const s = sClient(httpsPort, ['-servername', 'a.example.com', '-showcerts']);
      return s.out.includes(fresh.certificateChain.split('\n')[1]!) || 'old certificate still served';
    });
    // The connection opened before the rotation is still up, on the old certificate.
    const after = await get();
    expect(after).toEqual({ status: 200, serial: before.serial });
    expect(after.serial.toUpperCase()).not.toBe(newSerial.toUpperCase());
    agent.destroy();
  });

  it('leaves a server whose credential is missing closed, says why, and opens it once the credential exists', async () => {
    const status = (...args: string[]) =>
      spawnSync('npx', ['mizzen', 'status', ...args, '--pilot', mesh.pilot!.base], {
        cwd: root,
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, MIZZEN_HOME: mesh.dir },
      });
    const r = status('--output', 'json');
    expect(r.status, r.stderr).toBe(0);
    const proxy = (JSON.parse(r.stdout) as { proxies: { id: string; warnings?: string[] }[] }).proxies.find(
      (p) => p.id === gateway.id,
    );
    expect(proxy?.warnings).toEqual([
      'Gateway default/edge server https-late (port 443) not opened: credential istio-system/late-cred not found in the local credential store ' +
        `${mesh.credentialsDir}`,
      'Gateway default/other-edge server https (port 443) not opened: conflicts with Gateway default/edge server https-a on port 443 for a.example.com (IST0145 ConflictingGateways)',
    ]);
    expect(gateway.proc.output()).toContain('credential istio-system/late-cred not found');
    // The human-readable form the README shows: the sync table, then one line per closed server.
    const text = status();
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^PROXY\s+KIND\s+CDS\s+LDS\s+EDS\s+RDS$/m);
    expect(text.stdout).toMatch(
      new RegExp(
        `^${gateway.id.replace(/[.~]/g, '\\$&')}\\s+ingress\\s+ACKED\\s+ACKED\\s+ACKED\\s+ACKED$`,
        'm',
      ),
    );
    expect(text.stdout).toContain(
      `${gateway.id}: Gateway default/edge server https-late (port 443) not opened: credential istio-system/late-cred not found in the local credential store ${mesh.credentialsDir}\n`,
    );
    expect(sClient(httpsPort, ['-servername', 'late.example.com']).ok).toBe(false);
    // The others keep serving; then the credential arrives and the server opens, no restart.
    expect(sClient(httpsPort, ['-servername', 'a.example.com']).ok).toBe(true);
    mesh.writeCredential('late-cred', await credential(serverCa, 'late.example.com'));
    await eventually(
      'late.example.com to be served',
      async () => sClient(httpsPort, ['-servername', 'late.example.com']).ok,
    );
  });

  it('closes malformed ClientHellos without disturbing other clients', async () => {
    const garbage = await new Promise<string>((resolve) => {
      const s = net.connect(httpsPort, '127.0.0.1', () =>
        s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20, 0x01, ...Array(32).fill(0xee)])),
      );
      let got = '';
      s.on('data', (d) => {
        got += d.toString('hex');
      });
      s.on('error', () => {});
      s.on('close', () => resolve(got));
    });
    expect(garbage).toBe('');
    expect(sClient(httpsPort, ['-servername', 'a.example.com']).ok).toBe(true);
  });

  it('behind a PROXY-protocol load balancer, trusts one hop of X-Forwarded-For', async () => {
    const r = await curl([
      '--haproxy-protocol',
      '-H',
      'x-forwarded-for: 203.0.113.9',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      ...resolve('plain.example.com', lbPort),
      `http://plain.example.com:${lbPort}/productpage`,
    ]);
    expect(r.stdout).toBe('200');
    // The balancer (the PROXY header's source) vouches for the client it saw.
    expect(app.lastHeaders?.['x-forwarded-for']).toBe('203.0.113.9,127.0.0.1');
    expect(app.lastHeaders?.['x-envoy-external-address']).toBe('203.0.113.9');
    // Without the header the load balancer would have sent, the connection is closed.
    const direct = await curl([
      ...resolve('plain.example.com', lbPort),
      `http://plain.example.com:${lbPort}/productpage`,
    ]);
    expect(direct.code).not.toBe(0);
  });
});
