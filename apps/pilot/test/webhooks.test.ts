import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { formatIssue, parseConfig } from '@mizzen/api';
import { applyPatch, type PatchOperation, type PodLike } from '@mizzen/inject';
import { createRootCa } from '@mizzen/pki';
import { createLogger } from '@mizzen/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { WebhookServer } from '../src/webhooks/server.js';

const GOLDEN = path.join(import.meta.dirname, 'golden', 'injected-pod.json');
const logger = createLogger('webhook-test', { level: 'silent' });

interface ReviewResponse {
  apiVersion: string;
  kind: string;
  response: {
    uid: string;
    allowed: boolean;
    patchType?: string;
    patch?: string;
    status?: { code: number; message: string };
    warnings?: string[];
  };
}

/** A pod as the API server sends it for a Deployment's replica: generateName, owner, no name yet. */
function productpagePod(annotations: Record<string, string> = {}): PodLike {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'productpage-v1-7d9c8f6b5-',
      namespace: 'bookinfo',
      labels: { app: 'productpage', version: 'v1', 'pod-template-hash': '7d9c8f6b5' },
      annotations,
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'productpage-v1-7d9c8f6b5', controller: true },
      ],
    },
    spec: {
      serviceAccountName: 'bookinfo-productpage',
      containers: [
        {
          name: 'productpage',
          image: 'mizzen/bookinfo-productpage:0.1.0',
          ports: [{ containerPort: 9080, name: 'http' }],
          readinessProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 5 },
          livenessProbe: { tcpSocket: { port: 9080 }, timeoutSeconds: 3 },
        },
      ],
      volumes: [{ name: 'tmp', emptyDir: {} }],
    },
  };
}

function review(object: unknown, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `uid-${Math.random().toString(16).slice(2)}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'bookinfo',
      operation: 'CREATE',
      object,
      ...extra,
    },
  };
}

describe('admission webhooks over real HTTPS with AdmissionReview v1 JSON', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-webhook-'));
  const namespaces: Record<string, Record<string, string>> = {
    bookinfo: { 'istio-injection': 'enabled' },
    legacy: { 'istio-injection': 'disabled' },
    canary: { 'istio.io/rev': 'default' },
    plain: {},
  };
  let server: WebhookServer;
  let port = 0;
  let ca = '';

  async function post(pathname: string, body: unknown): Promise<ReviewResponse> {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path: pathname,
          method: 'POST',
          ca,
          // The test certificate names no host; the chain itself is verified against it.
          checkServerIdentity: () => undefined,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
          timeout: 5000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              resolve(JSON.parse(Buffer.concat(chunks).toString()) as ReviewResponse);
            } catch (err) {
              reject(err);
            }
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async function inject(pod: PodLike, namespace = 'bookinfo') {
    const r = await post('/inject', review(pod, { namespace }));
    const patch = r.response.patch
      ? (JSON.parse(Buffer.from(r.response.patch, 'base64').toString()) as PatchOperation[])
      : undefined;
    return { response: r, patch, pod: patch ? applyPatch(pod, patch) : pod };
  }

  beforeAll(async () => {
    const cert = await createRootCa({ subject: 'CN=istiod.istio-system.svc' });
    ca = cert.certificate;
    fs.writeFileSync(path.join(dir, 'tls.crt'), cert.certificate);
    fs.writeFileSync(path.join(dir, 'tls.key'), cert.privateKeyPem);
    server = new WebhookServer({
      port: 0,
      certFile: path.join(dir, 'tls.crt'),
      keyFile: path.join(dir, 'tls.key'),
      logger,
      injection: {
        proxyImage: 'mizzen/sidecar-agent:0.1.0',
        discoveryAddress: 'istiod.istio-system.svc:15010',
        caAddress: 'istio-citadel.istio-system.svc:8060',
      },
      namespaceLabels: (ns) => namespaces[ns],
      certPollMs: 50,
    });
    port = await server.listen('127.0.0.1');
  });

  afterAll(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('injects a pod in an istio-injection=enabled namespace (golden file)', async () => {
    const { response, patch, pod } = await inject(productpagePod());
    expect(response).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
    expect(response.response).toMatchObject({ allowed: true, patchType: 'JSONPatch' });
    expect(patch!.length).toBeGreaterThan(0);
    const text = `${JSON.stringify(pod, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN === '1' || !fs.existsSync(GOLDEN)) {
      fs.mkdirSync(path.dirname(GOLDEN), { recursive: true });
      fs.writeFileSync(GOLDEN, text);
    }
    expect(text).toBe(fs.readFileSync(GOLDEN, 'utf8'));
    const containers = pod.spec!.containers!;
    expect(containers.map((c) => c.name)).toEqual(['productpage', 'istio-proxy']);
    expect(pod.spec!.initContainers!.map((c) => c.name)).toEqual(['mizzen-init']);
    const sidecar = containers[1]!;
    expect(sidecar).toMatchObject({
      securityContext: { runAsUser: 1337, runAsNonRoot: true },
      readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021 } },
    });
    expect((sidecar.ports ?? []).map((p) => p.containerPort)).toEqual([
      15001, 15006, 15000, 15020, 15021, 15090,
    ]);
    const env = Object.fromEntries(
      (sidecar.env ?? []).map((e) => [e.name, e.value ?? (e.valueFrom as Record<string, unknown>)]),
    );
    expect(env.POD_NAME).toEqual({ fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } });
    expect(env.SERVICE_ACCOUNT).toEqual({
      fieldRef: { apiVersion: 'v1', fieldPath: 'spec.serviceAccountName' },
    });
    expect(env.ISTIO_META_WORKLOAD_NAME).toBe('productpage-v1');
    expect(pod.spec!.volumes).toContainEqual({
      name: 'istio-token',
      projected: {
        sources: [
          { serviceAccountToken: { audience: 'istio-ca', expirationSeconds: 43200, path: 'istio-token' } },
        ],
      },
    });
    expect(pod.spec!.volumes).toContainEqual({
      name: 'istiod-ca-cert',
      configMap: { name: 'istio-ca-root-cert' },
    });
    expect(pod.metadata!.labels).toMatchObject({
      'security.istio.io/tlsMode': 'istio',
      'service.istio.io/canonical-name': 'productpage',
      'service.istio.io/canonical-revision': 'v1',
    });
  });

  it('rewrites app probes to the agent on 15020 and hands the originals over in ISTIO_KUBE_APP_PROBERS', async () => {
    const { pod } = await inject(productpagePod());
    const app = pod.spec!.containers![0]!;
    expect(app.readinessProbe).toEqual({
      periodSeconds: 5,
      httpGet: { path: '/app-health/productpage/readyz', port: 15020, scheme: 'HTTP' },
    });
    expect(app.livenessProbe).toEqual({
      timeoutSeconds: 3,
      httpGet: { path: '/app-health/productpage/livez', port: 15020, scheme: 'HTTP' },
    });
    const probers = pod.spec!.containers![1]!.env!.find((e) => e.name === 'ISTIO_KUBE_APP_PROBERS')!;
    expect(JSON.parse(probers.value as string)).toEqual({
      '/app-health/productpage/readyz': { httpGet: { path: '/health', port: 9080 }, timeoutSeconds: 1 },
      '/app-health/productpage/livez': { tcpSocket: { port: 9080 }, timeoutSeconds: 3 },
    });
    // Opting out of the rewrite leaves the probes as they were.
    const kept = await inject(productpagePod({ 'sidecar.istio.io/rewriteAppHTTPProbers': 'false' }));
    expect(kept.pod.spec!.containers![0]!.readinessProbe).toEqual(
      productpagePod().spec!.containers![0]!.readinessProbe,
    );
  });

  it('honours the traffic and resource annotations', async () => {
    const { pod } = await inject(
      productpagePod({
        'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.96.0.0/12,10.244.0.0/16',
        'traffic.sidecar.istio.io/excludeOutboundPorts': '5432,6379',
        'traffic.sidecar.istio.io/excludeInboundPorts': '9999',
        'sidecar.istio.io/proxyCPU': '250m',
        'sidecar.istio.io/proxyMemory': '256Mi',
        'sidecar.istio.io/proxyCPULimit': '1',
        'sidecar.istio.io/proxyMemoryLimit': '512Mi',
      }),
    );
    const init = pod.spec!.initContainers![0]!;
    expect(init.args).toEqual([
      'iptables',
      '-p',
      '15001',
      '-z',
      '15006',
      '-u',
      '1337',
      '-m',
      'REDIRECT',
      '-i',
      '10.96.0.0/12,10.244.0.0/16',
      '-x',
      '',
      '-b',
      '*',
      '-d',
      '15090,15021,15020,9999',
      '-o',
      '5432,6379',
    ]);
    const resources = { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } };
    expect(pod.spec!.containers![1]!.resources).toEqual(resources);
    expect(init.resources).toEqual(resources);
  });

  it('is idempotent: an injected pod comes back without a patch', async () => {
    const first = await inject(productpagePod());
    const second = await inject(first.pod);
    expect(second.response.response).toEqual({ uid: expect.any(String), allowed: true });
  });

  it('leaves alone a pod with an istio-proxy container added by hand (no sidecar.istio.io/status annotation)', async () => {
    const byHand = productpagePod();
    byHand.spec!.containers!.push({ name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.24.0' });
    expect(byHand.metadata!.annotations!['sidecar.istio.io/status']).toBeUndefined();
    const r = await inject(byHand);
    expect(r.response.response).toEqual({ uid: expect.any(String), allowed: true });
    expect(r.pod.spec!.containers!.map((c) => c.name)).toEqual(['productpage', 'istio-proxy']);
    expect(r.pod.spec!.initContainers).toBeUndefined();
  });

  it('leaves out pods that opt out, host-network pods and namespaces not labelled for injection', async () => {
    const optOut = await inject(productpagePod({ 'sidecar.istio.io/inject': 'false' }));
    expect(optOut.patch).toBeUndefined();
    const labelled = productpagePod();
    labelled.metadata!.labels!['sidecar.istio.io/inject'] = 'false';
    expect((await inject(labelled)).patch).toBeUndefined();
    const hostNet = productpagePod();
    hostNet.spec!.hostNetwork = true;
    expect((await inject(hostNet)).patch).toBeUndefined();
    expect((await inject(productpagePod(), 'legacy')).patch).toBeUndefined();
    expect((await inject(productpagePod(), 'plain')).patch).toBeUndefined();
    expect((await inject(productpagePod(), 'canary')).patch).toBeDefined();
    // A pod may ask for injection in a namespace that is not labelled.
    const asks = productpagePod();
    asks.metadata!.labels!['sidecar.istio.io/inject'] = 'true';
    expect((await inject(asks, 'plain')).patch).toBeDefined();
  });

  it('/validate rejects an invalid VirtualService with the message mizzen apply gives', async () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews, subset: v1 }
          weight: 120
`;
    // What `mizzen apply -f bad-reviews.yaml` prints: pilot's config API formats parseConfig's issues.
    const applyMessage = formatIssue(parseConfig(yaml, 'bad-reviews.yaml').issues[0]!);
    expect(applyMessage).toContain(
      '(VirtualService bookinfo/reviews): spec.http[0].route[0].weight: must be between 0 and 100, got 120',
    );
    const object = parseYaml(yaml) as unknown;
    const r = await post(
      '/validate',
      review(object, {
        kind: { group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' },
        resource: { group: 'networking.istio.io', version: 'v1', resource: 'virtualservices' },
        name: 'reviews',
      }),
    );
    expect(r.response.allowed).toBe(false);
    expect(r.response.status).toEqual({
      code: 400,
      reason: 'BadRequest',
      message:
        'configuration is invalid: VirtualService bookinfo/reviews: spec.http[0].route[0].weight: must be between 0 and 100, got 120',
    });
    // The same sentence as apply's, less the file and document an admission request has none of.
    expect(
      applyMessage.replace(/^bad-reviews\.yaml: document 1 \((.*?)\): (.*) \(line \d+\)$/, '$1: $2'),
    ).toBe(r.response.status!.message.replace('configuration is invalid: ', ''));
  });

  it('serves a rotated certificate without a restart', async () => {
    const peerSerial = () =>
      new Promise<string>((resolve, reject) => {
        const req = https.request(
          { host: '127.0.0.1', port, path: '/ready', rejectUnauthorized: false, agent: false },
          (res) => {
            resolve((res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber);
            res.resume();
          },
        );
        req.on('error', reject);
        req.end();
      });
    const before = await peerSerial();
    const next = await createRootCa({ subject: 'CN=istiod.istio-system.svc' });
    // cert-manager writes the key and the certificate; the server picks up the pair.
    fs.writeFileSync(path.join(dir, 'tls.key'), next.privateKeyPem);
    fs.writeFileSync(path.join(dir, 'tls.crt'), next.certificate);
    const deadline = Date.now() + 5000;
    let after = before;
    while (after === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      after = await peerSerial();
    }
    expect(after).not.toBe(before);
    ca = next.certificate;
    const r = await post('/validate', review(undefined, { operation: 'DELETE' }));
    expect(r.response.allowed).toBe(true);
  });

  it('/validate admits valid resources, deletes and kinds it does not know', async () => {
    const ok = await post(
      '/validate',
      review(
        {
          apiVersion: 'networking.istio.io/v1',
          kind: 'DestinationRule',
          metadata: { name: 'reviews', namespace: 'bookinfo' },
          spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] },
        },
        { kind: { group: 'networking.istio.io', version: 'v1', kind: 'DestinationRule' } },
      ),
    );
    expect(ok.response.allowed).toBe(true);
    const del = await post('/validate', review(undefined, { operation: 'DELETE' }));
    expect(del.response.allowed).toBe(true);
    const other = await post(
      '/validate',
      review({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }),
    );
    expect(other.response.allowed).toBe(true);
  });
});
