import { type CaFiles, certificateInfo, createIntermediateCa, createRootCa } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, getJson, ProxyClient, startBackend } from '../src/http.js';
import { eventually, steadyLoad } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { presented } from '../src/tls.js';

/**
 * Rotating the mesh's root of trust under traffic, as an operator does with
 * Istio's plug-in CA (cert-manager renewing the `cacerts` secret): citadel
 * signs with the new CA at once but keeps the old root in the trust bundle,
 * pilot carries the bundle to every proxy, and each agent re-issues when the
 * bundle changes — so no request fails while the certificates move over.
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
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
`;

interface CertsView {
  certificates: { ca_cert?: { serial_number: string }[] }[];
  workload?: { serial?: string; rootSerial?: string; lastError?: string };
}

/** An operator's CA in Istio's plug-in layout: a root and the intermediate citadel signs with. */
async function plugInCa(name: string): Promise<{ files: CaFiles; root: string; serial: string }> {
  const root = await createRootCa({ subject: `O=cluster.local, CN=${name} Root` });
  const int = await createIntermediateCa({
    issuer: root,
    subject: `O=cluster.local, CN=${name} Intermediate`,
    ttlSeconds: 86_400,
  });
  return {
    files: {
      caCert: int.certificate,
      caKey: int.privateKeyPem,
      certChain: int.certificate + root.certificate,
      rootCert: root.certificate,
    },
    root: root.certificate,
    serial: certificateInfo(root.certificate).serialNumber,
  };
}

describe('plug-in CA files replaced under a running mesh', () => {
  const mesh = new TestMesh();
  let reviews: Backend;
  let server: SidecarHandle;
  let client: SidecarHandle;
  let http: ProxyClient;
  let oldCa: Awaited<ReturnType<typeof plugInCa>>;

  const certs = (proxy: SidecarHandle) => getJson<CertsView>(`http://127.0.0.1:${proxy.adminPort}/certs`);

  beforeAll(async () => {
    oldCa = await plugInCa('Old');
    mesh.writePlugInCa(oldCa.files);
    mesh.writeConfig('services.yaml', SERVICES);
    await mesh.startCitadel();
    // pilot re-reads citadel's trust bundle every second, so the test does not wait for the default 10 s.
    await mesh.startPilot(['--root-cert-refresh', '1s']);
    reviews = await startBackend('reviews', 'v1');
    server = await mesh.startSidecar({
      workload: 'reviews-v1',
      service: 'reviews',
      labels: { app: 'reviews', version: 'v1' },
      appPort: reviews.port,
    });
    const app = await startBackend('productpage', 'v1');
    client = await mesh.startSidecar({
      workload: 'productpage-v1',
      service: 'productpage',
      labels: { app: 'productpage', version: 'v1' },
      appPort: app.port,
    });
    await mesh.waitForSync([server.id, client.id]);
    http = new ProxyClient(client.outboundPort);
    await eventually(
      'reviews through the mesh over mTLS',
      async () =>
        (await http.request('http://reviews:9080/warm')).status === 200 &&
        String(reviews.lastHeaders?.['x-forwarded-client-cert']).includes('URI=spiffe://'),
      30_000,
    );
  }, 90_000);

  afterAll(async () => {
    http?.close();
    await reviews?.close();
    await mesh.stop();
  });

  it('loses no request, and afterwards every workload certificate chains to the new root', async () => {
    for (const proxy of [server, client])
      expect((await certs(proxy)).workload?.rootSerial).toBe(oldCa.serial);
    const before = (await certs(server)).workload?.serial;

    // Steady load (bounded: 4 workers, at most 20 000 requests or 90 s) across the whole rotation.
    const load = steadyLoad(
      async () => {
        const r = await http.request('http://reviews:9080/load');
        return { ok: r.status === 200, detail: `${r.status} ${r.body.slice(0, 100)}` };
      },
      { concurrency: 4, maxRequests: 20_000, maxMs: 90_000, pauseMs: 5 },
    );
    await eventually('some load', async () => load.sent() > 50, 10_000);

    const newCa = await plugInCa('New');
    mesh.writePlugInCa(newCa.files);
    // The agents re-issue by themselves once the new bundle reaches them (the certificates last 24 h).
    await eventually(
      'both sidecars on the new root',
      async () => {
        const views = await Promise.all([certs(server), certs(client)]);
        return (
          views.every((v) => v.workload?.rootSerial === newCa.serial) ||
          JSON.stringify(views.map((v) => v.workload))
        );
      },
      60_000,
    );
    const sentAtSwitch = load.sent();
    await eventually(
      'more load on the new certificates',
      async () => load.sent() > sentAtSwitch + 200,
      20_000,
    );
    const result = await load.stop();
    expect(result.failures).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.sent).toBeGreaterThan(400);

    // From outside: the server now presents a certificate that verifies against the new root alone.
    const cert = await presented(server.inboundPort, newCa.root);
    expect(cert).toMatchObject({ authorized: true, san: 'URI:spiffe://cluster.local/ns/default/sa/reviews' });
    expect(cert.serial.toLowerCase()).not.toBe(before);
    await expect(presented(server.inboundPort, oldCa.root)).rejects.toThrow(
      /unable to get local issuer certificate/,
    );
    // The trust bundle still holds the old root (certificates issued under it have not all expired): new first.
    const bundle = await (await fetch(`${mesh.citadel!.base}/root-cert.pem`)).text();
    expect(bundle).toBe(newCa.root + oldCa.root);
    const ca = (await certs(client)).certificates.flatMap((c) => c.ca_cert ?? []).map((c) => c.serial_number);
    expect(ca).toEqual([newCa.serial, oldCa.serial]);
    // Mesh traffic is still mutual TLS, the caller's identity proved by its new certificate.
    expect((await http.request('http://reviews:9080/after')).status).toBe(200);
    expect(String(reviews.lastHeaders?.['x-forwarded-client-cert'])).toMatch(
      /;URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/productpage$/,
    );
  }, 150_000);
});
