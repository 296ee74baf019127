import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { createCrl, createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl, sClient } from '../src/clients.js';
import { ECHO, echoUnary, grpcServer, tcpEcho } from '../src/echo-servers.js';
import { type Backend, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Gateway servers as users write them, through pilot and a real ingress
 * gateway, with real clients: every protocol a server takes (HTTP2 with prior
 * knowledge and over TLS, GRPC, TCP, TLS terminated to a TCP backend),
 * wildcard hosts and `namespace/host` scoping, every client-certificate mode
 * (OPTIONAL_MUTUAL, ISTIO_MUTUAL with citadel's certificates, a CRL, SPKI
 * and hash pins), minProtocolVersion, certificates from files and lists of
 * certificates (an RSA and an ECDSA one), the health port before and
 * after the gateway has its config, and the edge's limits on what a client
 * may make it hold (header size, slow headers) in plaintext and over TLS.
 */
type Ca = Awaited<ReturnType<typeof createRootCa>>;
type Pem = { certificate: string; privateKeyPem: string };

const GATEWAY_ID = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account';

async function issue(ca: Ca, host: string, keyType?: 'RSA-2048'): Promise<Pem> {
  return issueTlsCertificate({
    dnsNames: [host],
    issuer: ca,
    ttlSeconds: 3600,
    ...(keyType ? { keyType } : {}),
  });
}

const asCredential = (c: Pem, ca?: Ca, caCrl?: string) => ({
  certificateChain: c.certificate,
  privateKey: c.privateKeyPem,
  ...(ca ? { caCertificate: ca.certificate } : {}),
  ...(caCrl ? { caCrl } : {}),
});

/**
 * A slowloris: sends a request line and then one header a second, never
 * finishing the headers (bounded at 30 headers). Resolves with what the
 * gateway answered once it closed the connection.
 */
function dribble(socket: net.Socket, host: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    let sent = 0;
    socket.write(`GET /slow HTTP/1.1\r\nhost: ${host}\r\n`);
    const timer = setInterval(() => {
      if (++sent > 30 || socket.destroyed) clearInterval(timer);
      else socket.write(`x-dribble-${sent}: 1\r\n`);
    }, 1_000);
    socket.on('data', (d: Buffer) => {
      answer += d.toString();
    });
    socket.on('error', () => {});
    socket.once('close', () => {
      clearInterval(timer);
      resolve(answer);
    });
  });
}

/** An HTTPS GET with Node's client (a new connection): the status and what the app saw, or the error. */
function httpsGet(
  port: number,
  host: string,
  opts: { ca: string; client?: Pem; checkServerIdentity?: tls.ConnectionOptions['checkServerIdentity'] },
): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = https.get(
      {
        host: '127.0.0.1',
        port,
        servername: host,
        path: '/hello',
        headers: { host },
        agent: false,
        ca: opts.ca,
        ...(opts.client ? { cert: opts.client.certificate, key: opts.client.privateKeyPem } : {}),
        ...(opts.checkServerIdentity ? { checkServerIdentity: opts.checkServerIdentity } : {}),
        timeout: 10_000,
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.once('timeout', () => req.destroy(new Error('timed out')));
    req.once('error', (err) => resolve({ error: err.message }));
  });
}

describe('Gateway servers at a real ingress: protocols, hosts, client certificates, health', () => {
  const mesh = new TestMesh();
  let web: Backend;
  let evil: Backend;
  let grpcBackend: Awaited<ReturnType<typeof grpcServer>>;
  let echo: Awaited<ReturnType<typeof tcpEcho>>;
  let gateway: SidecarHandle;
  let serverCa: Ca;
  let clientCa: Ca;
  let otherCa: Ca;
  let good: Pem;
  let unpinned: Pem;
  let revoked: Pem;
  let foreign: Pem;
  const port: Record<string, number> = {};
  let healthBeforeConfig = 0;
  const file = (name: string, text?: string) => {
    const p = path.join(mesh.dir, 'certs', name);
    if (text !== undefined) {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, text);
    }
    return p;
  };
  const resolve = (host: string, p: number) => ['--resolve', `${host}:${p}:127.0.0.1`];
  const keyTypeOf = (out: string) => {
    const bits = /Server public key is (\d+) bit/.exec(out)?.[1];
    return bits === '2048' ? 'RSA' : bits === '256' ? 'EC' : `unknown (${bits})`;
  };

  beforeAll(async () => {
    [serverCa, clientCa, otherCa] = await Promise.all(
      [1, 2, 3].map(() => createRootCa({ ttlSeconds: 3600 })),
    );
    [good, unpinned, revoked] = await Promise.all(
      ['good', 'unpinned', 'revoked'].map((n) => issue(clientCa, `${n}.client.example.com`)),
    );
    foreign = await issue(otherCa, 'foreign.client.example.com');
    const crl = await createCrl({
      issuer: clientCa,
      revokedSerials: [new X509Certificate(revoked.certificate).serialNumber],
    });
    const spkiPin = (await import('node:crypto'))
      .createHash('sha256')
      .update(new X509Certificate(good.certificate).publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64');
    const hashPin = new X509Certificate(good.certificate).fingerprint256;

    // Certificates as files on the gateway (Istio's serverCertificate/privateKey, tlsCertificates).
    const filesRsa = await issue(serverCa, 'files.example.com', 'RSA-2048');
    const filesEc = await issue(serverCa, 'files.example.com');
    const crlServer = await issue(serverCa, 'crl.example.com');
    file('files-rsa.crt', filesRsa.certificate);
    file('files-rsa.key', filesRsa.privateKeyPem);
    file('files-ec.crt', filesEc.certificate);
    file('files-ec.key', filesEc.privateKeyPem);
    file('crl.crt', crlServer.certificate);
    file('crl.key', crlServer.privateKeyPem);
    file('clients-ca.crt', clientCa.certificate);
    file('clients.crl', crl);

    mesh.writeCredential('opt-cred', asCredential(await issue(serverCa, 'opt.example.com'), clientCa));
    mesh.writeCredential('modern-cred', asCredential(await issue(serverCa, 'modern.example.com')));
    mesh.writeCredential('tcp-cred', asCredential(await issue(serverCa, 'tcp.example.com')));
    mesh.writeCredential('pin-cred', asCredential(await issue(serverCa, '*.pins.example.com'), clientCa));
    mesh.writeCredential(
      'crl-cred',
      asCredential(await issue(serverCa, 'crlcred.example.com'), clientCa, crl),
    );
    mesh.writeCredential('names-rsa', asCredential(await issue(serverCa, 'names.example.com', 'RSA-2048')));
    mesh.writeCredential('names-ec', asCredential(await issue(serverCa, 'names.example.com')));

    web = await startBackend('web', 'v1');
    evil = await startBackend('evil', 'v1');
    grpcBackend = await grpcServer();
    echo = await tcpEcho('tcp-v1');
    const names = ['xds', 'http', 'https', 'h2', 'grpc', 'tcp', 'tlsTcp', 'mesh'];
    for (const [i, p] of (await mesh.ports.takeMany(names.length)).entries()) port[names[i]!] = p;
    const service = (name: string, p: number, protocol: string, backendPort: number) => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${p}, name: ${protocol.toLowerCase()}, protocol: ${protocol} }]
  endpoints: [{ address: 127.0.0.1, ports: { ${protocol.toLowerCase()}: ${backendPort} } }]
---`;
    const route = (name: string, p: number) =>
      `[{ route: [{ destination: { host: ${name}.default.svc.cluster.local, port: { number: ${p} } } }] }]`;
    mesh.writeConfig(
      'servers.yaml',
      `${service('web', 8000, 'HTTP', web.port)}
${service('evil', 8000, 'HTTP', evil.port)}
${service('grpc-echo', 7070, 'GRPC', grpcBackend.port)}
${service('tcp-echo', 7000, 'TCP', echo.port)}
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 80, name: http, protocol: HTTP }
      hosts: ["*.example.com", "team-a/*.scoped.test"]
    - port: { number: 443, name: https-optional, protocol: HTTPS }
      hosts: [opt.example.com]
      tls: { mode: OPTIONAL_MUTUAL, credentialName: opt-cred }
    - port: { number: 443, name: https-modern, protocol: HTTPS }
      hosts: [modern.example.com]
      tls: { mode: SIMPLE, credentialName: modern-cred, minProtocolVersion: TLSV1_3 }
    - port: { number: 443, name: https-files, protocol: HTTPS }
      hosts: [files.example.com]
      tls:
        mode: SIMPLE
        tlsCertificates:
          - { serverCertificate: ${file('files-rsa.crt')}, privateKey: ${file('files-rsa.key')} }
          - { serverCertificate: ${file('files-ec.crt')}, privateKey: ${file('files-ec.key')} }
    - port: { number: 443, name: https-broken, protocol: HTTPS }
      hosts: [broken.example.com]
      tls: { mode: SIMPLE, serverCertificate: ${file('missing.crt')}, privateKey: ${file('missing.key')} }
    - port: { number: 443, name: https-names, protocol: HTTPS }
      hosts: [names.example.com]
      tls: { mode: SIMPLE, credentialNames: [names-rsa, names-ec] }
    - port: { number: 443, name: https-crl, protocol: HTTPS }
      hosts: [crl.example.com]
      tls:
        mode: MUTUAL
        serverCertificate: ${file('crl.crt')}
        privateKey: ${file('crl.key')}
        caCertificates: ${file('clients-ca.crt')}
        caCrl: ${file('clients.crl')}
    - port: { number: 443, name: https-crl-cred, protocol: HTTPS }
      hosts: [crlcred.example.com]
      tls: { mode: MUTUAL, credentialName: crl-cred }
    - port: { number: 443, name: https-spki, protocol: HTTPS }
      hosts: [spki.pins.example.com]
      tls: { mode: MUTUAL, credentialName: pin-cred, verifyCertificateSpki: ["${spkiPin}"] }
    - port: { number: 443, name: https-hash, protocol: HTTPS }
      hosts: [hash.pins.example.com]
      tls: { mode: MUTUAL, credentialName: pin-cred, verifyCertificateHash: ["${hashPin}"] }
    - port: { number: 8081, name: http2, protocol: HTTP2 }
      hosts: [h2.example.com]
    - port: { number: 8082, name: grpc, protocol: GRPC }
      hosts: [grpc.internal.test]
    - port: { number: 9000, name: tcp, protocol: TCP }
      hosts: ["*"]
    - port: { number: 9443, name: tls-tcp, protocol: TLS }
      hosts: [tcp.example.com]
      tls: { mode: SIMPLE, credentialName: tcp-cred }
    - port: { number: 15443, name: https-mesh, protocol: HTTPS }
      hosts: ["*.example.com"]
      tls: { mode: ISTIO_MUTUAL }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: default }
spec:
  hosts: ["*.example.com"]
  gateways: [istio-system/edge]
  http:
    # Answered by the gateway itself: what reaches it is bounded by the gateway's limits alone.
    - match: [{ uri: { prefix: /edge } }]
      directResponse: { status: 200, body: { string: edge } }
    - route: [{ destination: { host: web.default.svc.cluster.local, port: { number: 8000 } } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: grpc-echo, namespace: default }
spec:
  hosts: [grpc.internal.test]
  gateways: [istio-system/edge]
  http: ${route('grpc-echo', 7070)}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: tcp-echo, namespace: default }
spec:
  hosts: [tcp.example.com]
  gateways: [istio-system/edge]
  tcp:
    - match: [{ port: 9000 }]
      route: [{ destination: { host: tcp-echo.default.svc.cluster.local, port: { number: 7000 } } }]
    - match: [{ port: 9443 }]
      route: [{ destination: { host: tcp-echo.default.svc.cluster.local, port: { number: 7000 } } }]
---
# The server admits *.scoped.test from team-a only.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: allowed, namespace: team-a }
spec:
  hosts: [a.scoped.test]
  gateways: [istio-system/edge]
  http: ${route('web', 8000)}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: intruder, namespace: team-b }
spec:
  hosts: [b.scoped.test, a.scoped.test]
  gateways: [istio-system/edge]
  http: ${route('evil', 8000)}
`,
    );
    // The gateway comes up before pilot: its health port must say it is not ready yet.
    await mesh.startCitadel();
    gateway = await mesh.startGateway({
      pilot: `127.0.0.1:${port.xds}`,
      portMap: {
        80: port.http!,
        443: port.https!,
        8081: port.h2!,
        8082: port.grpc!,
        9000: port.tcp!,
        9443: port.tlsTcp!,
        15443: port.mesh!,
      },
    });
    await eventually('the gateway health port to answer', async () => {
      healthBeforeConfig = (await fetch(`http://127.0.0.1:${gateway.healthPort}/healthz/ready`)).status;
      return true;
    });
    await mesh.startPilot([], { xdsPort: port.xds });
    await mesh.waitForSync([gateway.id]);
  });

  afterAll(async () => {
    await mesh.stop();
    await Promise.all([web?.close(), evil?.close(), echo?.close()]);
    grpcBackend?.stop();
  });

  it('health: /healthz/ready is 503 before the gateway has its config and 200 once it has', async () => {
    expect(healthBeforeConfig).toBe(503);
    await eventually('the gateway to be ready', async () => {
      const r = await fetch(`http://127.0.0.1:${gateway.healthPort}/healthz/ready`);
      return r.status === 200 || `${r.status}`;
    });
  });

  it('serves wildcard server hosts: *.example.com is routed, any other host gets 404', async () => {
    const get = (host: string) =>
      curl([...resolve(host, port.http!), '-w', '\n%{http_code}', `http://${host}:${port.http}/x`]);
    for (const host of ['foo.example.com', 'deep.bar.example.com']) {
      const r = await get(host);
      expect(r.stdout.split('\n').pop()).toBe('200');
      expect(JSON.parse(r.stdout.split('\n')[0]!)).toMatchObject({ name: 'web' });
    }
    for (const host of ['example.com', 'foo.example.org'])
      expect((await get(host)).stdout.split('\n').pop()).toBe('404');
  });

  it('binds only VirtualServices from the namespace a `namespace/host` server host allows', async () => {
    const get = (host: string) =>
      curl([...resolve(host, port.http!), '-w', '\n%{http_code}', `http://${host}:${port.http}/x`]);
    const allowed = await get('a.scoped.test');
    expect(allowed.stdout.split('\n').pop()).toBe('200');
    expect(JSON.parse(allowed.stdout.split('\n')[0]!)).toMatchObject({ name: 'web' });
    // team-b's VirtualService names a.scoped.test and b.scoped.test too, but the server admits neither from team-b.
    expect((await get('b.scoped.test')).stdout.split('\n').pop()).toBe('404');
    expect(evil.hits).toBe(0);
  });

  it('OPTIONAL_MUTUAL: a client certificate is verified and passed on in XFCC, none is fine, one from another CA is refused', async () => {
    const ca = file('server-ca.pem', serverCa.certificate);
    const url = `https://opt.example.com:${port.https}/opt`;
    const base = [...resolve('opt.example.com', port.https!), '--cacert', ca, '-w', '\n%{http_code}'];
    const withCert = await curl([
      ...base,
      '--cert',
      file('good.crt', good.certificate),
      '--key',
      file('good.key', good.privateKeyPem),
      url,
    ]);
    expect(withCert.stdout.split('\n').pop()).toBe('200');
    expect(web.lastHeaders?.['x-forwarded-client-cert']).toContain('DNS=good.client.example.com');
    const without = await curl([...base, '-H', 'x-forwarded-client-cert: By=forged', url]);
    expect(without.stdout.split('\n').pop()).toBe('200');
    // Sanitized: nothing the client claims reaches the app when it proved nothing.
    expect(web.lastHeaders?.['x-forwarded-client-cert']).toBeUndefined();
    const other = await curl([
      ...base,
      '--cert',
      file('foreign.crt', foreign.certificate),
      '--key',
      file('foreign.key', foreign.privateKeyPem),
      url,
    ]);
    expect(other.code).not.toBe(0);
  });

  it('minProtocolVersion TLSV1_3: a TLS 1.2 client is refused, TLS 1.3 is served; other servers still take 1.2', async () => {
    expect(sClient(port.https!, ['-servername', 'modern.example.com', '-tls1_2']).ok).toBe(false);
    expect(sClient(port.https!, ['-servername', 'modern.example.com', '-tls1_3']).ok).toBe(true);
    const ca = file('server-ca.pem', serverCa.certificate);
    const tls12 = await curl([
      ...resolve('modern.example.com', port.https!),
      '--cacert',
      ca,
      '--tls-max',
      '1.2',
      `https://modern.example.com:${port.https}/`,
    ]);
    expect(tls12.code).not.toBe(0);
    expect(sClient(port.https!, ['-servername', 'opt.example.com', '-tls1_2']).ok).toBe(true);
  });

  it('HTTP2: h2 with prior knowledge on an HTTP2 server, and h2 chosen by ALPN on an HTTPS server', async () => {
    const h2c = await curl([
      '--http2-prior-knowledge',
      ...resolve('h2.example.com', port.h2!),
      '-o',
      '/dev/null',
      '-w',
      '%{http_version} %{http_code}',
      `http://h2.example.com:${port.h2}/h2`,
    ]);
    expect(h2c.stdout).toBe('2 200');
    const alpn = await curl([
      '--http2',
      ...resolve('opt.example.com', port.https!),
      '--cacert',
      file('server-ca.pem', serverCa.certificate),
      '-o',
      '/dev/null',
      '-w',
      '%{http_version} %{http_code}',
      `https://opt.example.com:${port.https}/h2`,
    ]);
    expect(alpn.stdout).toBe('2 200');
  });

  it('GRPC: a grpc-js client through the ingress reaches the gRPC backend, trailers and status intact', async () => {
    const Client = grpc.makeGenericClientConstructor(ECHO, 'Echo');
    const client = new Client(`127.0.0.1:${port.grpc}`, grpc.credentials.createInsecure(), {
      'grpc.default_authority': 'grpc.internal.test',
    });
    try {
      await eventually(
        'a gRPC answer through the gateway',
        async () => (await echoUnary(client, 'hi')).value === 'echo:hi',
      );
      expect(await echoUnary(client, 'through the edge')).toEqual({
        value: 'echo:through the edge',
        code: grpc.status.OK,
        trailer: 'kept',
      });
      expect((await echoUnary(client, 'fail')).code).toBe(grpc.status.FAILED_PRECONDITION);
    } finally {
      client.close();
    }
  });

  it('TCP: opaque bytes both ways on a TCP server; TLS terminated on a TLS server and sent on as TCP', async () => {
    const exchange = (socket: net.Socket | tls.TLSSocket, send: string) =>
      new Promise<string>((resolve, reject) => {
        let got = '';
        const timer = setTimeout(() => reject(new Error(`only got ${JSON.stringify(got)}`)), 10_000);
        socket.on('data', (d: Buffer) => {
          got += d.toString();
          if (got === `tcp-v1\n${send}`) {
            clearTimeout(timer);
            socket.end();
            resolve(got);
          }
        });
        socket.on('error', reject);
        socket.write(send);
      });
    const bytes = '\u0000\u0001binary\r\n\u00ff';
    const plain = net.connect(port.tcp!, '127.0.0.1');
    expect(await exchange(plain, bytes)).toBe(`tcp-v1\n${bytes}`);
    const secure = tls.connect({
      host: '127.0.0.1',
      port: port.tlsTcp!,
      servername: 'tcp.example.com',
      ca: serverCa.certificate,
    });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    expect(secure.getPeerCertificate().subject.CN).toBe('tcp.example.com');
    // The backend is plain TCP: the greeting arriving proves the gateway terminated the TLS.
    expect(await exchange(secure, 'over tls')).toBe('tcp-v1\nover tls');
  });

  it('ISTIO_MUTUAL: a client with a citadel certificate is served and named in XFCC; others are refused', async () => {
    const client = await mesh.workloadCertificate('default', 'curl-client');
    // The gateway proves the mesh identity of its service account, signed by the same root.
    const checkServerIdentity = (_host: string, cert: tls.PeerCertificate) =>
      cert.subjectaltname === `URI:${GATEWAY_ID}`
        ? undefined
        : new Error(`unexpected ${cert.subjectaltname}`);
    const ok = await httpsGet(port.mesh!, 'mesh.example.com', {
      ca: client.root,
      client,
      checkServerIdentity,
    });
    expect(ok).toEqual({ status: 200 });
    expect(web.lastHeaders?.['x-forwarded-client-cert']).toContain(
      'URI=spiffe://cluster.local/ns/default/sa/curl-client',
    );
    const outsider = await httpsGet(port.mesh!, 'mesh.example.com', {
      ca: client.root,
      client: foreign,
      checkServerIdentity,
    });
    expect('error' in outsider).toBe(true);
    const anonymous = await httpsGet(port.mesh!, 'mesh.example.com', {
      ca: client.root,
      checkServerIdentity,
    });
    expect('error' in anonymous).toBe(true);
  });

  it('serves an RSA or an ECDSA certificate by the client’s signature algorithms (tlsCertificates files, credentialNames)', () => {
    for (const host of ['files.example.com', 'names.example.com']) {
      const ec = sClient(port.https!, ['-servername', host, '-sigalgs', 'ECDSA+SHA256']);
      expect(ec.ok).toBe(true);
      expect(keyTypeOf(ec.out)).toBe('EC');
      const rsa = sClient(port.https!, ['-servername', host, '-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256']);
      expect(rsa.ok).toBe(true);
      expect(keyTypeOf(rsa.out)).toBe('RSA');
    }
  });

  it('keeps a server whose certificate files cannot be read closed, says why, and serves the others on the port', async () => {
    expect(sClient(port.https!, ['-servername', 'broken.example.com']).ok).toBe(false);
    expect(sClient(port.https!, ['-servername', 'files.example.com']).ok).toBe(true);
    expect(gateway.proc.output()).toContain(`cannot read ${file('missing.crt')}: ENOENT`);
    const r = await curl([
      ...resolve('files.example.com', port.https!),
      '--cacert',
      file('server-ca.pem', serverCa.certificate),
      '-w',
      '\n%{http_code}',
      `https://files.example.com:${port.https}/`,
    ]);
    expect(r.stdout.split('\n').pop()).toBe('200');
  });

  it('refuses a client certificate its CRL revokes (caCrl file, or the credential’s ca.crl) and accepts the others', async () => {
    for (const host of ['crl.example.com', 'crlcred.example.com']) {
      const get = (c: Pem, name: string) =>
        curl([
          ...resolve(host, port.https!),
          '--cacert',
          file('server-ca.pem', serverCa.certificate),
          '--cert',
          file(`${name}.crt`, c.certificate),
          '--key',
          file(`${name}.key`, c.privateKeyPem),
          '-w',
          '\n%{http_code}',
          `https://${host}:${port.https}/`,
        ]);
      expect((await get(good, 'good')).stdout.split('\n').pop()).toBe('200');
      expect((await get(revoked, 'revoked')).code).not.toBe(0);
    }
  });

  it('accepts only the pinned client certificate (verifyCertificateSpki, verifyCertificateHash)', async () => {
    for (const host of ['spki.pins.example.com', 'hash.pins.example.com']) {
      const pinned = await httpsGet(port.https!, host, { ca: serverCa.certificate, client: good });
      expect(pinned).toEqual({ status: 200 });
      // Same trusted CA, not pinned.
      const other = await httpsGet(port.https!, host, { ca: serverCa.certificate, client: unpinned });
      expect('error' in other).toBe(true);
    }
  });

  it('edge limits: 60 KiB of headers pass and more get 431; a slowloris is closed with 408 while others are served — plaintext and TLS', async () => {
    const ca = file('server-ca.pem', serverCa.certificate);
    const plain = (extra: string[]) =>
      curl([
        ...resolve('foo.example.com', port.http!),
        ...extra,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        `http://foo.example.com:${port.http}/edge`,
      ]);
    const secure = (extra: string[]) =>
      curl([
        ...resolve('opt.example.com', port.https!),
        '--cacert',
        ca,
        ...extra,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        `https://opt.example.com:${port.https}/edge`,
      ]);
    const header = (kib: number) => ['-H', `x-big: ${'a'.repeat(kib * 1024)}`];
    const senders = {
      plaintext: plain,
      'HTTP/1.1 over TLS': (extra: string[]) => secure(['--http1.1', ...extra]),
      'HTTP/2 over TLS': (extra: string[]) => secure(['--http2', ...extra]),
    };
    for (const [how, send] of Object.entries(senders)) {
      // Envoy's default limit, set explicitly by pilot: well above Node's own 16 KiB.
      expect((await send(header(50))).stdout, how).toBe('200');
      expect((await send(header(61))).stdout, how).toBe('431');
    }
    const slowPlain = dribble(net.connect(port.http!, '127.0.0.1'), 'foo.example.com');
    const tlsSocket = tls.connect({
      host: '127.0.0.1',
      port: port.https!,
      servername: 'opt.example.com',
      ca: serverCa.certificate,
      ALPNProtocols: ['http/1.1'],
    });
    await new Promise<void>((r, reject) => {
      tlsSocket.once('secureConnect', r);
      tlsSocket.once('error', reject);
    });
    const slowTls = dribble(tlsSocket, 'opt.example.com');
    // While both dribble, other clients are served on the same ports.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1_000));
      expect((await plain([])).stdout).toBe('200');
      expect((await secure([])).stdout).toBe('200');
    }
    const [plainAnswer, tlsAnswer] = await Promise.all([slowPlain, slowTls]);
    expect(plainAnswer).toMatch(/^HTTP\/1\.1 408 /);
    expect(tlsAnswer).toMatch(/^HTTP\/1\.1 408 /);
  });
});
