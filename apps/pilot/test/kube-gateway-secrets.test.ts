import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { gatewayNode, MeshProxy } from '@mizzen/proxy';
import { createLogger, PortAllocator } from '@mizzen/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pilot } from '../src/pilot.js';
import { FakeKubeApi } from './fake-kube-api.js';

/**
 * A gateway's credential in Kubernetes mode, end to end: pilot watches the
 * API server (a fake one speaking the real list/watch protocol — no cluster
 * runs here), a real gateway (the proxy engine with Istio's ingress defaults)
 * gets the Secret over SDS, and a real TLS client sees the certificate change
 * when the Secret is updated — as cert-manager renews it — while a connection
 * opened before keeps working on the old one.
 */
const logger = createLogger('kube-gateway-test', {
  level: process.env.MIZZEN_TEST_LOG === '1' ? 'debug' : 'silent',
});
const b64 = (s: string) => Buffer.from(s).toString('base64');

function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'pilot', token: 'pilot' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'pilot' }],
    currentContext: 'fake',
  });
  return kc;
}

async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

describe('a gateway credential from a Kubernetes Secret, rotated by updating the Secret', {
  timeout: 60_000,
}, () => {
  const api = new FakeKubeApi();
  const ports = new PortAllocator();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-kube-gw-'));
  let pilot: Pilot;
  let gateway: MeshProxy;
  let backend: http.Server;
  let httpsPort = 0;
  let ca: Awaited<ReturnType<typeof createRootCa>>;

  const secret = (c: { certificate: string; privateKeyPem: string }) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'edge-credential', namespace: 'istio-system' },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': b64(c.certificate), 'tls.key': b64(c.privateKeyPem) },
  });

  beforeAll(async () => {
    ca = await createRootCa({ ttlSeconds: 3600 });
    backend = http.createServer((_req, res) => res.end('from the backend'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    await api.start();
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    api.apply(
      secret(await issueTlsCertificate({ dnsNames: ['edge.example.com'], issuer: ca, ttlSeconds: 3600 })),
    );
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        hosts: ['web.default.svc.cluster.local'],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [{ number: 8000, name: 'http', protocol: 'HTTP' }],
        endpoints: [{ address: '127.0.0.1', ports: { http: (backend.address() as AddressInfo).port } }],
      },
    });
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: 'edge', namespace: 'istio-system' },
      spec: {
        selector: { istio: 'ingressgateway' },
        servers: [
          {
            port: { number: 443, name: 'https', protocol: 'HTTPS' },
            hosts: ['edge.example.com'],
            tls: { mode: 'SIMPLE', credentialName: 'edge-credential' },
          },
        ],
      },
    });
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        hosts: ['edge.example.com'],
        gateways: ['istio-system/edge'],
        http: [
          { route: [{ destination: { host: 'web.default.svc.cluster.local', port: { number: 8000 } } }] },
        ],
      },
    });
    pilot = new Pilot({
      logger,
      host: '127.0.0.1',
      xdsPort: 0,
      httpPort: 0,
      configDirs: [],
      storeFile: path.join(dir, 'store.json'),
      registrationsFile: path.join(dir, 'registrations.json'),
      debounceMs: 10,
      kubernetes: {
        kubeConfig: kubeConfigFor(api.url),
        identity: 'pilot-gw',
        leaseDurationMs: 1000,
        renewDeadlineMs: 800,
        retryPeriodMs: 150,
        initialBackoffMs: 50,
        maxBackoffMs: 400,
        rootCert: { file: path.join(dir, 'root-cert.pem') },
      },
    });
    const { xdsPort } = await pilot.start();
    const [adminPort, healthPort] = await ports.takeMany(2);
    httpsPort = await ports.take();
    gateway = new MeshProxy({
      node: gatewayNode({
        name: 'istio-ingressgateway',
        namespace: 'istio-system',
        labels: { istio: 'ingressgateway' },
        ip: '127.0.0.1',
        portMap: { 443: httpsPort },
        adminPort,
        healthPort,
      }),
      pilot: `127.0.0.1:${xdsPort}`,
      logger,
      adminHost: '127.0.0.1',
      adminPort,
      healthPort,
    });
    await gateway.start();
    await until(
      'the gateway to be ready',
      async () => gateway.isReady(),
      (ok) => ok,
    );
  }, 60_000);

  afterAll(async () => {
    await gateway?.stop();
    await pilot?.stop().catch(() => undefined);
    await api.stop();
    await new Promise((r) => backend?.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  /** One GET on a kept-alive connection: the status and the serial of the certificate that connection saw. */
  const get = (agent: https.Agent) =>
    new Promise<{ status: number; serial: string; body: string }>((resolve, reject) => {
      const req = https.get(
        {
          host: '127.0.0.1',
          port: httpsPort,
          servername: 'edge.example.com',
          headers: { host: 'edge.example.com' },
          path: '/',
          ca: ca.certificate,
          agent,
        },
        (res) => {
          const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.once('end', () => resolve({ status: res.statusCode ?? 0, serial, body }));
        },
      );
      req.once('error', reject);
    });

  it('serves the Secret’s certificate, then the updated one to new connections, keeping the open one', async () => {
    const kept = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const before = await until(
        'HTTPS through the gateway',
        () => get(kept),
        (r) => r.status === 200,
      );
      expect(before.body).toBe('from the backend');
      const renewed = await issueTlsCertificate({
        dnsNames: ['edge.example.com'],
        issuer: ca,
        ttlSeconds: 3600,
      });
      const renewedSerial = new X509Certificate(renewed.certificate).serialNumber.toUpperCase();
      expect(before.serial.toUpperCase()).not.toBe(renewedSerial);
      api.apply(secret(renewed));
      await until(
        'new handshakes to present the renewed certificate',
        async () => {
          const fresh = new https.Agent({ keepAlive: false });
          try {
            return (await get(fresh)).serial.toUpperCase();
          } finally {
            fresh.destroy();
          }
        },
        (serial) => serial === renewedSerial,
      );
      // The connection opened before the update is still up, on the certificate it was opened with.
      const after = await get(kept);
      expect(after).toEqual({ status: 200, serial: before.serial, body: 'from the backend' });
    } finally {
      kept.destroy();
    }
  });
});
