import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyClient } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * DestinationRule `tls` through a real sidecar to real TLS servers: the app
 * speaks plain HTTP to its sidecar, which originates TLS as the rule says —
 * SIMPLE against the rule's caCertificates, MUTUAL with a client certificate
 * and key from files, subjectAltNames and sni, and TLS for one port only.
 * The servers report what the handshake showed them (SNI, client certificate).
 */
type Ca = Awaited<ReturnType<typeof createRootCa>>;

interface TlsServer {
  port: number;
  hits: number;
  close: () => Promise<void>;
}

/** An HTTPS server for api.internal (and alt.internal) answering what it saw of the handshake. */
async function tlsServer(serverCa: Ca, clientCa?: Ca): Promise<TlsServer> {
  const own = await issueTlsCertificate({
    dnsNames: ['api.internal', 'alt.internal'],
    issuer: serverCa,
    ttlSeconds: 3600,
  });
  const state: TlsServer = { port: 0, hits: 0, close: async () => {} };
  const server = https.createServer(
    {
      cert: own.certificate,
      key: own.privateKeyPem,
      ...(clientCa ? { ca: clientCa.certificate, requestCert: true, rejectUnauthorized: true } : {}),
    },
    (req, res) => {
      state.hits++;
      const socket = req.socket as TLSSocket;
      const client = clientCa ? socket.getPeerCertificate().subject?.CN : undefined;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ sni: socket.servername, client: client ?? null, path: req.url }));
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}

describe('DestinationRule tls through a real sidecar', () => {
  const mesh = new TestMesh();
  let serverCa: Ca;
  let clientCa: Ca;
  let otherCa: Ca;
  let simple: TlsServer;
  let mutual: TlsServer;
  let plain: http.Server;
  let plainPort = 0;
  let client: SidecarHandle;
  let app: ProxyClient;
  const files: Record<string, string> = {};

  /** Applies a DestinationRule and waits until `check` holds (pilot pushed, the sidecar took it). */
  const applyAndWait = async (yaml: string, what: string, check: () => Promise<boolean>) => {
    const r = await mesh.apply(yaml);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await eventually(what, check, 15_000);
  };
  const get = (url: string) => app.request(url);
  /** A 503 from the sidecar, and the request never reached the server (the handshake failed). */
  const expectRefusedBeforeTheServer = async (server: TlsServer, url: string) => {
    const hits = server.hits;
    const r = await get(url);
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^upstream connect error/);
    expect(server.hits).toBe(hits);
  };
  const json = async (url: string) => {
    const r = await get(url);
    return {
      status: r.status,
      body: r.status === 200 ? (JSON.parse(r.body) as Record<string, unknown>) : r.body,
    };
  };

  beforeAll(async () => {
    [serverCa, clientCa, otherCa] = await Promise.all(
      [1, 2, 3].map(() => createRootCa({ ttlSeconds: 3600 })),
    );
    simple = await tlsServer(serverCa);
    mutual = await tlsServer(serverCa, clientCa);
    plain = http.createServer((req, res) => res.end(JSON.stringify({ plain: true, path: req.url })));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    plainPort = (plain.address() as AddressInfo).port;
    // Files on the sidecar's filesystem, as a DestinationRule names them (a mounted secret in a pod).
    const clientCert = await issueTlsCertificate({
      dnsNames: ['frontend.internal'],
      issuer: clientCa,
      ttlSeconds: 3600,
    });
    for (const [name, text] of Object.entries({
      'server-ca.pem': serverCa.certificate,
      'other-ca.pem': otherCa.certificate,
      'client.pem': clientCert.certificate,
      'client-key.pem': clientCert.privateKeyPem,
    })) {
      files[name] = path.join(mesh.dir, name);
      fs.writeFileSync(files[name]!, text, { mode: 0o600 });
    }
    mesh.writeConfig(
      'services.yaml',
      `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api, namespace: default }
spec:
  hosts: [api.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${simple.port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api-mtls, namespace: default }
spec:
  hosts: [alt.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${mutual.port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: two-ports, namespace: default }
spec:
  hosts: [two-ports.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
    - { number: 8443, name: http-tls, protocol: HTTP }
    - { number: 8080, name: http, protocol: HTTP }
  endpoints: [{ address: 127.0.0.1, ports: { http-tls: ${simple.port}, http: ${plainPort} } }]
`,
    );
    await mesh.startPilot();
    const backend = http.createServer((_req, res) => res.end('app'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    client = await mesh.startSidecar({
      workload: 'frontend-v1',
      service: 'frontend',
      labels: { app: 'frontend' },
      appPort: (backend.address() as AddressInfo).port,
    });
    await mesh.waitForSync([client.id]);
    app = new ProxyClient(client.outboundPort);
  }, 60_000);

  afterAll(async () => {
    app?.close();
    await simple?.close();
    await mutual?.close();
    await new Promise((r) => plain?.close(r));
    await mesh.stop();
  });

  it('SIMPLE: TLS verified against caCertificates, SNI from the host; a server from another CA is refused', async () => {
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: default }
spec:
  host: api.internal
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: ${files['server-ca.pem']} } }
`,
      'TLS origination to api.internal',
      async () => (await get('http://api.internal/ready')).status === 200,
    );
    expect(await json('http://api.internal/simple')).toEqual({
      status: 200,
      body: { sni: 'api.internal', client: null, path: '/simple' },
    });
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: default }
spec:
  host: api.internal
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: ${files['other-ca.pem']} } }
`,
      'a server the CA does not vouch for refused',
      async () => (await get('http://api.internal/untrusted')).status === 503,
    );
    await expectRefusedBeforeTheServer(simple, 'http://api.internal/untrusted');
  });

  it('subjectAltNames: a listed name is accepted, a certificate without it is refused with 503; sni is sent as set', async () => {
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: default }
spec:
  host: api.internal
  trafficPolicy:
    tls:
      mode: SIMPLE
      caCertificates: ${files['server-ca.pem']}
      subjectAltNames: [alt.internal]
      sni: custom.sni.test
`,
      'the SAN rule and the custom SNI in place',
      async () => {
        const r = await json('http://api.internal/san');
        return r.status === 200 && (r.body as { sni?: string }).sni === 'custom.sni.test';
      },
    );
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: default }
spec:
  host: api.internal
  trafficPolicy:
    tls: { mode: SIMPLE, caCertificates: ${files['server-ca.pem']}, subjectAltNames: [other.internal] }
`,
      'a certificate without the listed SAN refused',
      async () => (await get('http://api.internal/wrong-san')).status === 503,
    );
    await expectRefusedBeforeTheServer(simple, 'http://api.internal/wrong-san');
  });

  it('MUTUAL: the client certificate and key from files are presented; without them the server refuses', async () => {
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api-mtls, namespace: default }
spec:
  host: alt.internal
  trafficPolicy:
    tls:
      mode: MUTUAL
      clientCertificate: ${files['client.pem']}
      privateKey: ${files['client-key.pem']}
      caCertificates: ${files['server-ca.pem']}
`,
      'mutual TLS origination to alt.internal',
      async () => (await get('http://alt.internal/ready')).status === 200,
    );
    expect(await json('http://alt.internal/mutual')).toEqual({
      status: 200,
      body: { sni: 'alt.internal', client: 'frontend.internal', path: '/mutual' },
    });
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api-mtls, namespace: default }
spec:
  host: alt.internal
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: ${files['server-ca.pem']} } }
`,
      'no client certificate, refused by the server',
      async () => (await get('http://alt.internal/no-cert')).status === 503,
    );
    await expectRefusedBeforeTheServer(mutual, 'http://alt.internal/no-cert');
  });

  it('port-level tls: TLS to the one port that asks for it, plaintext to the other', async () => {
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: two-ports, namespace: default }
spec:
  host: two-ports.internal
  trafficPolicy:
    portLevelSettings:
      - port: { number: 8443 }
        tls: { mode: SIMPLE, caCertificates: ${files['server-ca.pem']}, sni: api.internal }
`,
      'TLS on 8443',
      async () => (await get('http://two-ports.internal:8443/tls')).status === 200,
    );
    expect(await json('http://two-ports.internal:8443/tls')).toEqual({
      status: 200,
      body: { sni: 'api.internal', client: null, path: '/tls' },
    });
    expect(await json('http://two-ports.internal:8080/plain')).toEqual({
      status: 200,
      body: { plain: true, path: '/plain' },
    });
  });
});
