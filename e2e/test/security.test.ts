import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { importPrivateKeyPem, issueTlsCertificate } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, getJson, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { presented, tlsVersionTap } from '../src/tls.js';

/**
 * Istio's mutual TLS tasks through citadel, pilot and real sidecars: every
 * proxy fetches a workload certificate for its service account, sidecars
 * talk mTLS to each other (auto mTLS), PeerAuthentication decides what an
 * inbound port accepts, and certificates rotate under load without a
 * failed request. Checked from outside: TLS handshakes, plaintext clients,
 * the caller identity the app sees, and the proxies' metrics.
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
kind: ServiceEntry
metadata: { name: ratings, namespace: default }
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: ratings } }
`;

interface CertsView {
  workload?: { identity: string; serial?: string; rotations: number };
}

/** What a client without a sidecar gets from a port: an HTTP status, or the connection refused/reset. */
async function plaintextGet(port: number): Promise<number | 'refused'> {
  return fetch(`http://127.0.0.1:${port}/plain`, { signal: AbortSignal.timeout(5000) }).then(
    (r) => r.status,
    () => 'refused',
  );
}

describe('mutual TLS between sidecars (citadel, PeerAuthentication, rotation)', () => {
  const mesh = new TestMesh();
  let reviews: Backend;
  let server: SidecarHandle;
  let client: SidecarHandle;
  let http: ProxyClient;
  let root = '';

  beforeAll(async () => {
    mesh.writeConfig('services.yaml', SERVICES);
    await mesh.startCitadel();
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    reviews = await startBackend('reviews', 'v1');
    // Certificates of a few seconds, so the whole suite runs across rotations.
    server = await mesh.startSidecar({
      workload: 'reviews-v1',
      service: 'reviews',
      labels: { app: 'reviews', version: 'v1' },
      appPort: reviews.port,
      extraArgs: ['--cert-ttl', '6s'],
    });
    const app = await startBackend('productpage', 'v1');
    client = await mesh.startSidecar({
      workload: 'productpage-v1',
      service: 'productpage',
      labels: { app: 'productpage', version: 'v1' },
      appPort: app.port,
    });
    await mesh.waitForSync([server.id, client.id]);
    root = await (await fetch(`${mesh.citadel!.base}/root-cert.pem`)).text();
    http = new ProxyClient(client.outboundPort);
    await eventually(
      'reviews through the mesh',
      async () => (await http.request('http://reviews:9080/warm')).status === 200,
      30_000,
    );
  }, 90_000);

  afterAll(async () => {
    http?.close();
    await reviews?.close();
    await mesh.stop();
  });

  it('every proxy holds a certificate for its service account, issued by citadel', async () => {
    const view = await getJson<CertsView>(`http://127.0.0.1:${server.adminPort}/certs`);
    expect(view.workload?.identity).toBe('spiffe://cluster.local/ns/default/sa/reviews');
    const cert = await presented(server.inboundPort, root);
    expect(cert.authorized).toBe(true);
    expect(cert.san).toBe('URI:spiffe://cluster.local/ns/default/sa/reviews');
    expect(new X509Certificate(root).subject).toContain('cluster.local');
  });

  it('the CA itself is reached over TLS: citadel presents a certificate for its address under the mesh root', async () => {
    const [host, port] = mesh.citadel!.address.split(':') as [string, string];
    const r = spawnSync(
      'openssl',
      ['s_client', '-connect', `${host}:${port}`, '-CAfile', path.join(mesh.caDir, 'root-cert.pem')].concat([
        '-verify_return_error',
        '-verify_ip',
        host,
        '-alpn',
        'h2',
      ]),
      { input: '', encoding: 'utf8', timeout: 10_000 },
    );
    expect(`${r.stdout}${r.stderr}`).toMatch(/Verify return code: 0 \(ok\)/);
    // A client speaking plaintext HTTP/2 (as an agent with --ca-plaintext would) gets no gRPC answer.
    const plain = await new Promise<string>((resolve) => {
      const s = net.connect(Number(port), host, () => s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
      let got = '';
      s.on('data', (d) => {
        got += d.toString('latin1');
      });
      s.once('close', () => resolve(got));
      s.once('error', () => resolve(got));
      s.setTimeout(5_000, () => s.destroy());
    });
    expect(plain).not.toContain('PRI');
    expect(plain.charCodeAt(0)).not.toBe(0);
  });

  it('sidecar to sidecar is mutual TLS: the app sees its caller’s verified identity', async () => {
    const r = await http.request('http://reviews:9080/who', {
      'x-forwarded-client-cert': 'By=spiffe://forged;URI=spiffe://cluster.local/ns/default/sa/admin',
    });
    expect(r.status).toBe(200);
    const xfcc = String(reviews.lastHeaders?.['x-forwarded-client-cert']);
    // The outbound sidecar drops what the app sent; the inbound one adds what the handshake proved.
    expect(xfcc).toMatch(
      /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/reviews;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/,
    );
  });

  it('both reporters name both principals; the destination reports the hop as mutual_tls', async () => {
    await http.request('http://reviews:9080/metrics-check');
    await eventually(
      'istio_requests_total with principals',
      async () => {
        const source = await (await fetch(`http://127.0.0.1:${client.statsPort}/stats/prometheus`)).text();
        const dest = await (await fetch(`http://127.0.0.1:${server.statsPort}/stats/prometheus`)).text();
        // As in Istio, only the destination reporter knows the connection's security policy.
        const ok = (text: string, reporter: string, policy: string) =>
          text
            .split('\n')
            .some(
              (l) =>
                l.startsWith('istio_requests_total{') &&
                l.includes(`reporter="${reporter}"`) &&
                l.includes('source_principal="spiffe://cluster.local/ns/default/sa/productpage"') &&
                l.includes('destination_principal="spiffe://cluster.local/ns/default/sa/reviews"') &&
                l.includes(`connection_security_policy="${policy}"`),
            );
        return ok(source, 'source', 'unknown') && ok(dest, 'destination', 'mutual_tls');
      },
      10_000,
    );
  });

  it('PERMISSIVE (the default) also serves clients without a sidecar, and gives them no identity', async () => {
    expect(await plaintextGet(server.inboundPort)).toBe(200);
    expect(reviews.lastHeaders?.['x-forwarded-client-cert']).toBeUndefined();
  });

  it('STRICT refuses plaintext and certificate-less TLS while mesh traffic keeps flowing; DISABLE turns mTLS off', async () => {
    const strict = await mesh.apply(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec: { mtls: { mode: STRICT } }
`);
    expect(strict.status).toBe(200);
    await eventually(
      'plaintext refused',
      async () => (await plaintextGet(server.inboundPort)) === 'refused',
      15_000,
    );
    // TLS without a client certificate is refused too.
    const noCert = await new Promise<string>((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port: server.inboundPort,
        ca: root,
        checkServerIdentity: () => undefined,
      });
      s.once('secureConnect', () => {
        s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
        s.once('data', (d) => resolve(d.toString().slice(0, 12)));
        s.once('close', () => resolve('closed'));
      });
      s.once('error', () => resolve('closed'));
    });
    expect(noCert).toBe('closed');
    expect((await http.request('http://reviews:9080/strict')).status).toBe(200);

    // A client whose DestinationRule turns TLS off cannot reach a STRICT workload…
    await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: { tls: { mode: DISABLE } }
`);
    await eventually(
      'plaintext hop refused by STRICT',
      async () => (await http.request('http://reviews:9080/dr-off')).status === 503,
      15_000,
    );
    // …until the workload allows plaintext (a workload policy beats the namespace one).
    await mesh.apply(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: reviews, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  mtls: { mode: DISABLE }
`);
    await eventually(
      'plaintext accepted again',
      async () => (await http.request('http://reviews:9080/disabled')).status === 200,
      15_000,
    );
    expect(reviews.lastHeaders?.['x-forwarded-client-cert']).toBeUndefined();
    // A raw TCP connect still works on the port; TLS is simply not offered any more.
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(server.inboundPort, '127.0.0.1', () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });

    // Back to auto mTLS and PERMISSIVE for the next test.
    await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: reviews, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  mtls: { mode: STRICT }
`);
    await eventually(
      'mTLS again',
      async () => {
        const r = await http.request('http://reviews:9080/back');
        return r.status === 200 && String(reviews.lastHeaders?.['x-forwarded-client-cert']).includes('URI=');
      },
      15_000,
    );
  }, 90_000);

  it('sidecar to sidecar negotiates TLS 1.3 (read on the wire); TLS 1.0 and 1.1 clients are refused on the mTLS port, 1.2 accepted', async () => {
    // A relay in front of reviews' sidecar, reached by address: it reads each connection's ServerHello.
    const tap = await tlsVersionTap(server.inboundPort);
    const entries = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews-tap, namespace: default }
spec:
  hosts: [reviews-tap.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${tap.port} } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews-tap, namespace: default }
spec:
  host: reviews-tap.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`;
    try {
      expect((await mesh.apply(entries)).status).toBe(200);
      await eventually(
        'reviews through the tap',
        async () => (await http.request('http://reviews-tap:9080/tapped')).status === 200,
        15_000,
      );
      expect(tap.versions.length).toBeGreaterThan(0);
      expect(new Set(tap.versions)).toEqual(new Set(['TLSv1.3']));
    } finally {
      await mesh.remove(entries);
      await tap.close();
    }

    // From outside with openssl: a client offering only TLS 1.1 or 1.0 gets a protocol_version alert.
    for (const version of ['-tls1_1', '-tls1']) {
      const r = spawnSync(
        'openssl',
        [
          's_client',
          '-connect',
          `127.0.0.1:${server.inboundPort}`,
          version,
          '-cipher',
          'DEFAULT:@SECLEVEL=0',
        ],
        { input: '', encoding: 'utf8', timeout: 10_000 },
      );
      expect(r.status, version).not.toBe(0);
      expect(`${r.stdout}${r.stderr}`, version).toMatch(/alert protocol version/);
    }
    // A mesh client certificate (signed by the root, a SPIFFE id) gets TLS 1.3 by default and 1.2 when capped there.
    const ca = {
      certificate: fs.readFileSync(path.join(mesh.caDir, 'ca-cert.pem'), 'utf8'),
      privateKey: await importPrivateKeyPem(fs.readFileSync(path.join(mesh.caDir, 'ca-key.pem'), 'utf8')),
    };
    const tester = await issueTlsCertificate({
      dnsNames: [],
      uris: ['spiffe://cluster.local/ns/default/sa/tester'],
      issuer: ca,
      ttlSeconds: 600,
    });
    for (const maxVersion of [undefined, 'TLSv1.2'] as const) {
      const protocol = await new Promise<string | null>((resolve, reject) => {
        const s = tls.connect({
          host: '127.0.0.1',
          port: server.inboundPort,
          ca: root,
          cert: tester.certificate,
          key: tester.privateKeyPem,
          checkServerIdentity: () => undefined,
          ...(maxVersion ? { maxVersion } : {}),
        });
        s.once('secureConnect', () => {
          resolve(s.getProtocol());
          s.destroy();
        });
        s.once('error', reject);
      });
      expect(protocol).toBe(maxVersion ?? 'TLSv1.3');
    }
  }, 60_000);

  it('rotates short-lived certificates under load without failing a request', async () => {
    const first = await getJson<CertsView>(`http://127.0.0.1:${server.adminPort}/certs`);
    const failures: string[] = [];
    let sent = 0;
    const deadline = Date.now() + 30_000;
    let rotated = false;
    // Bounded: at most 3000 requests or 30 s (paced, ~100/s), stopping after three rotations of the server's certificate.
    while (Date.now() < deadline && sent < 3000 && !rotated) {
      const batch = await Promise.all(
        Array.from({ length: 5 }, () =>
          http.request(`http://reviews:9080/load/${sent++}`).then(
            (r) => (r.status === 200 ? undefined : `status ${r.status}: ${r.body.slice(0, 80)}`),
            (err: Error) => err.message,
          ),
        ),
      );
      for (const f of batch) if (f) failures.push(f);
      const now = await getJson<CertsView>(`http://127.0.0.1:${server.adminPort}/certs`);
      rotated = (now.workload?.rotations ?? 0) >= (first.workload?.rotations ?? 0) + 3;
      await new Promise((r) => setTimeout(r, 40));
    }
    expect(rotated, `the 6 s certificate should rotate three times within 30 s (sent ${sent})`).toBe(true);
    expect(
      (await getJson<CertsView>(`http://127.0.0.1:${server.adminPort}/certs`)).workload?.serial,
    ).not.toBe(first.workload?.serial);
    expect(failures).toEqual([]);
    // What the port presents now is a current certificate, still for the same identity.
    const cert = await presented(server.inboundPort, root);
    expect(cert.authorized).toBe(true);
    expect(cert.san).toBe('URI:spiffe://cluster.local/ns/default/sa/reviews');
  }, 60_000);

  it('a sidecar with an RSA workload key (--cert-key-type rsa) and ECDSA ones talk mutual TLS both ways', async () => {
    const ratings = await startBackend('ratings', 'v1');
    const rsa = await mesh.startSidecar({
      workload: 'ratings-v1',
      service: 'ratings',
      labels: { app: 'ratings', version: 'v1' },
      appPort: ratings.port,
      extraArgs: ['--cert-key-type', 'rsa'],
    });
    const viaRsa = new ProxyClient(rsa.outboundPort);
    try {
      await mesh.waitForSync([rsa.id]);
      await eventually(
        'the RSA sidecar’s certificate',
        async () =>
          (await getJson<CertsView>(`http://127.0.0.1:${rsa.adminPort}/certs`)).workload?.serial !==
          undefined,
        30_000,
      );
      // Seen from outside: the RSA sidecar presents an RSA 2048 certificate, reviews' sidecar an ECDSA P-256 one.
      expect(await presented(rsa.inboundPort, root)).toMatchObject({
        authorized: true,
        key: 'RSA 2048',
        san: 'URI:spiffe://cluster.local/ns/default/sa/ratings',
      });
      expect((await presented(server.inboundPort, root)).key).toBe('EC prime256v1');

      // RSA client → ECDSA server: reviews' app sees the caller's identity from the RSA certificate.
      await eventually(
        'ratings (RSA) → reviews (ECDSA)',
        async () => (await viaRsa.request('http://reviews:9080/from-rsa')).status === 200,
        15_000,
      );
      expect(String(reviews.lastHeaders?.['x-forwarded-client-cert'])).toMatch(
        /;URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings$/,
      );
      // ECDSA client → RSA server.
      await eventually(
        'productpage (ECDSA) → ratings (RSA)',
        async () => (await http.request('http://ratings:9080/from-ecdsa')).status === 200,
        15_000,
      );
      expect(String(ratings.lastHeaders?.['x-forwarded-client-cert'])).toMatch(
        /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings;.*;URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/,
      );
    } finally {
      viaRsa.close();
      await rsa.proc.kill();
      await ratings.close();
    }
  }, 60_000);

  it('ISTIO_MUTUAL to an address pilot knows no service account for accepts any SPIFFE id of the trust domain, never a DNS-only certificate', async () => {
    // A server signed by the mesh root itself, but for a DNS name only: no mesh identity.
    const ca = {
      certificate: fs.readFileSync(path.join(mesh.caDir, 'ca-cert.pem'), 'utf8'),
      privateKey: await importPrivateKeyPem(fs.readFileSync(path.join(mesh.caDir, 'ca-key.pem'), 'utf8')),
    };
    const dnsOnly = await issueTlsCertificate({
      dnsNames: ['legacy.default.svc.cluster.local'],
      issuer: ca,
      ttlSeconds: 3600,
    });
    let reached = 0;
    const imposter = https.createServer(
      { cert: dnsOnly.certificate, key: dnsOnly.privateKeyPem, ALPNProtocols: ['http/1.1'] },
      (_req, res) => {
        reached++;
        res.end('imposter');
      },
    );
    await new Promise<void>((r) => imposter.listen(0, '127.0.0.1', r));
    const imposterPort = (imposter.address() as AddressInfo).port;
    // Plain addresses, as a ServiceEntry lists them: no workload, so no service account for pilot to name.
    const entries = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews-direct, namespace: default }
spec:
  hosts: [reviews-direct.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${server.inboundPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: legacy, namespace: default }
spec:
  hosts: [legacy.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${imposterPort} } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews-direct, namespace: default }
spec:
  host: reviews-direct.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: legacy, namespace: default }
spec:
  host: legacy.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`;
    try {
      expect((await mesh.apply(entries)).status).toBe(200);
      // reviews' sidecar proves spiffe://cluster.local/ns/default/sa/reviews: accepted.
      await eventually(
        'reviews reached by address over mTLS',
        async () => (await http.request('http://reviews-direct:9080/by-address')).status === 200,
        15_000,
      );
      expect(String(reviews.lastHeaders?.['x-forwarded-client-cert'])).toMatch(
        /;URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/,
      );
      // The DNS-only certificate chains to the same root, but names no identity of the trust domain.
      const refused = await http.request('http://legacy:9080/x');
      expect(refused.status).toBe(503);
      expect(reached).toBe(0);
    } finally {
      await mesh.remove(entries);
      await new Promise((r) => imposter.close(r));
    }
  }, 60_000);
});
