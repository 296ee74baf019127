import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { MeshProxy, sidecarNode } from '@mizzen/proxy';
import { createLogger, freePort } from '@mizzen/runtime';
import { AdsClient, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pilot } from '../src/pilot.js';
import { FakeKubeApi } from './fake-kube-api.js';

const logger = createLogger('pilot-test', {
  level: process.env.MIZZEN_TEST_LOG === '1' ? 'debug' : 'silent',
});
const ROOT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfakefakefake\n-----END CERTIFICATE-----\n';

function kubeConfigFor(url: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: token, token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: token }],
    currentContext: 'fake',
  });
  return kc;
}

async function eventually<T>(
  what: string,
  fn: () => T | Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 8_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `timed out waiting for ${what}; last value ${JSON.stringify(last)}${lastErr ? `, error ${String(lastErr)}` : ''}`,
  );
}

/** A plain HTTP server on one loopback address answering with its name. */
async function backend(host: string, port: number, name: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${name} ${req.url}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}

/** A request through the sidecar as an app using HTTP_PROXY sends it. */
function viaProxy(proxyPort: number, url: string): Promise<{ status: number; body: string }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: target.href,
        headers: { host: target.host, connection: 'close' },
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

interface Sidecar {
  proxy: MeshProxy;
  outboundPort: number;
  adminPort: number;
}

/** A real sidecar (the proxy engine, HTTP_PROXY capture) for productpage, connected to one pilot replica. */
async function startSidecar(xdsPort: number, pod: string): Promise<Sidecar> {
  const [outboundPort, adminPort, healthPort] = [await freePort(), await freePort(), await freePort()];
  const proxy = new MeshProxy({
    node: sidecarNode({
      workload: pod,
      namespace: 'default',
      serviceAccount: 'bookinfo-productpage',
      labels: { app: 'productpage', version: 'v1' },
      ip: '127.0.0.1',
      ports: [],
      outboundPort,
      adminPort,
      healthPort,
    }),
    pilot: `127.0.0.1:${xdsPort}`,
    logger,
    adminHost: '127.0.0.1',
    adminPort,
    healthPort,
  });
  await proxy.start();
  return { proxy, outboundPort, adminPort };
}

/** The sidecar's clusters and their endpoints as its admin API lists them (`cluster::ip:port::…` lines). */
async function clustersOf(adminPort: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${adminPort}/clusters`)).text();
}

function seedCluster(api: FakeKubeApi, backendPort: number): void {
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
  api.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'default', labels: { 'istio-injection': 'enabled' } },
  });
  api.apply({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: 'node-a',
      labels: { 'topology.kubernetes.io/region': 'us-east1', 'topology.kubernetes.io/zone': 'us-east1-b' },
    },
  });
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'reviews', namespace: 'default', labels: { app: 'reviews' } },
    spec: {
      selector: { app: 'reviews' },
      clusterIP: '10.96.0.20',
      ports: [{ name: 'http', port: 9080, targetPort: 9080, protocol: 'TCP' }],
    },
  });
  for (const [version, ip] of [
    ['v1', '127.0.0.2'],
    ['v2', '127.0.0.3'],
  ] as const) {
    api.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `reviews-${version}-abc`, namespace: 'default', labels: { app: 'reviews', version } },
      spec: { serviceAccountName: 'bookinfo-reviews', nodeName: 'node-a', containers: [{ name: 'reviews' }] },
      status: { podIP: ip, podIPs: [{ ip }], phase: 'Running' },
    });
  }
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'reviews-x1',
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'reviews' },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }],
    endpoints: [
      {
        addresses: ['127.0.0.2'],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'node-a',
        targetRef: { kind: 'Pod', name: 'reviews-v1-abc', namespace: 'default' },
      },
      {
        addresses: ['127.0.0.3'],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'node-a',
        targetRef: { kind: 'Pod', name: 'reviews-v2-abc', namespace: 'default' },
      },
    ],
  });
  api.apply({
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: {
      host: 'reviews',
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
    },
  });
  api.apply({
    apiVersion: 'networking.istio.io/v1beta1',
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v2' } }] }] },
  });
}

describe('pilot in Kubernetes mode against a fake API server (no cluster runs on this machine)', {
  timeout: 20_000,
}, () => {
  const api = new FakeKubeApi();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-kube-'));
  const rootCertFile = path.join(dir, 'root-cert.pem');
  const servers: http.Server[] = [];
  const pilots: Pilot[] = [];
  const sidecars: Sidecar[] = [];
  let outboundPort = 0;
  let adminPort = 0;
  let xdsPortA = 0;
  let backendPort = 0;
  let debugBase = '';

  function startPilot(name: string): Pilot {
    const pilot = new Pilot({
      logger,
      host: '127.0.0.1',
      xdsPort: 0,
      httpPort: 0,
      configDirs: [],
      storeFile: path.join(dir, `${name}-store.json`),
      registrationsFile: path.join(dir, `${name}-registrations.json`),
      debounceMs: 10,
      kubernetes: {
        kubeConfig: kubeConfigFor(api.url, name),
        identity: name,
        leaseDurationMs: 1000,
        renewDeadlineMs: 800,
        retryPeriodMs: 150,
        initialBackoffMs: 50,
        maxBackoffMs: 400,
        rootCert: { file: rootCertFile },
      },
    });
    pilots.push(pilot);
    return pilot;
  }

  beforeAll(async () => {
    fs.writeFileSync(rootCertFile, ROOT_PEM);
    await api.start();
    backendPort = await freePort();
    servers.push(await backend('127.0.0.2', backendPort, 'reviews-v1'));
    servers.push(await backend('127.0.0.3', backendPort, 'reviews-v2'));
    seedCluster(api, backendPort);
    const pilot = startPilot('pilot-a');
    const { xdsPort, httpPort } = await pilot.start();
    debugBase = `http://127.0.0.1:${httpPort}`;
    xdsPortA = xdsPort;
    const sidecar = await startSidecar(xdsPort, 'productpage-v1-xyz');
    outboundPort = sidecar.outboundPort;
    adminPort = sidecar.adminPort;
    sidecars.push(sidecar);
  }, 30_000);

  afterAll(async () => {
    for (const sc of sidecars) await sc.proxy.stop();
    for (const p of pilots) await p.stop().catch(() => undefined);
    for (const s of servers) await new Promise((r) => s.close(r));
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  const pilotA = () => pilots[0]!;

  it('builds the registry from Services, EndpointSlices, Pods and Nodes', () => {
    const registry = pilotA().kube!.registry();
    const svc = registry.service('reviews.default.svc.cluster.local');
    expect(svc).toMatchObject({
      namespace: 'default',
      addresses: ['10.96.0.20'],
      ports: [{ name: 'http', port: 9080, protocol: 'HTTP' }],
      origin: 'Kubernetes Service default/reviews',
    });
    const eps = registry.endpoints('reviews.default.svc.cluster.local', 9080);
    expect(eps.map((e) => [e.address, e.labels.version, e.serviceAccount, e.locality, e.healthy])).toEqual([
      ['127.0.0.2', 'v1', 'bookinfo-reviews', 'us-east1/us-east1-b', true],
      ['127.0.0.3', 'v2', 'bookinfo-reviews', 'us-east1/us-east1-b', true],
    ]);
  });

  it('reports leadership and every informer on /debug/kubez', async () => {
    await eventually(
      'pilot-a to lead',
      () => pilotA().kube!.isLeader(),
      (l) => l,
    );
    const res = await fetch(`${debugBase}/debug/kubez`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      leader: boolean;
      identity: string;
      informers: Record<string, { synced: boolean; lists: number }>;
    };
    expect(body).toMatchObject({ leader: true, identity: 'pilot-a' });
    for (const name of [
      'services',
      'pods',
      'virtualservices.networking.istio.io',
      'endpointslices.discovery.k8s.io',
    ]) {
      expect(body.informers[name], name).toMatchObject({ synced: true, lists: 1 });
    }
  });

  it('tells which service ports a pod serves (for inbound listeners of iptables-mode sidecars)', () => {
    expect(pilotA().kube!.workloadPorts('default', 'reviews-v1-abc')).toEqual([
      {
        service: 'reviews.default.svc.cluster.local',
        name: 'http',
        port: 9080,
        targetPort: 9080,
        protocol: 'HTTP',
      },
    ]);
    expect(pilotA().kube!.workloadPorts('default', 'nope')).toBeUndefined();
  });

  it('serves xDS to a real sidecar that routes to the EndpointSlice backends by pod-label subsets', async () => {
    const reply = await eventually(
      'the sidecar to route reviews to v2',
      () => viaProxy(outboundPort, 'http://reviews.default.svc.cluster.local:9080/r'),
      (r) => r.status === 200,
    );
    expect(reply.body).toBe('reviews-v2 /r');
    for (let i = 0; i < 5; i++) {
      expect((await viaProxy(outboundPort, 'http://reviews:9080/x')).body).toBe('reviews-v2 /x');
    }
  });

  it('propagates a VirtualService change made in the cluster to the sidecar', async () => {
    const vs = api.get('networking.istio.io/v1', 'VirtualService', 'reviews', 'default')!;
    api.apply({
      ...vs,
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
    });
    await eventually(
      'traffic to move to v1',
      () => viaProxy(outboundPort, 'http://reviews.default.svc.cluster.local:9080/'),
      (r) => r.body === 'reviews-v1 /',
    );
  });

  it('follows endpoints that stop being ready', async () => {
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] },
    });
    const slice = api.get('discovery.k8s.io/v1', 'EndpointSlice', 'reviews-x1', 'default')!;
    const endpoints = (slice.endpoints as { conditions: Record<string, boolean> }[]).map((e, i) =>
      i === 0 ? { ...e, conditions: { ready: false, serving: false, terminating: true } } : e,
    );
    api.apply({ ...slice, endpoints });
    await eventually(
      'only v2 to stay in the registry',
      () =>
        pilotA()
          .kube!.registry()
          .endpoints('reviews.default.svc.cluster.local', 9080)
          .map((e) => e.address),
      (a) => a.length === 1 && a[0] === '127.0.0.3',
    );
    const bodies = new Set<string>();
    await eventually(
      'the sidecar to send everything to v2',
      async () => {
        bodies.clear();
        for (let i = 0; i < 6; i++) bodies.add((await viaProxy(outboundPort, 'http://reviews:9080/')).body);
        return [...bodies];
      },
      (b) => b.length === 1 && b[0] === 'reviews-v2 /',
    );
  });

  it('moves a pod between subsets when its labels change, and drops endpoints whose slice goes away', async () => {
    // Route to subset v1 only; relabel the v2 pod as v1: both backends then serve subset v1.
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
    });
    const slice = api.get('discovery.k8s.io/v1', 'EndpointSlice', 'reviews-x1', 'default')!;
    const ready = (slice.endpoints as { conditions: Record<string, boolean> }[]).map((e) => ({
      ...e,
      conditions: { ready: true, serving: true, terminating: false },
    }));
    api.apply({ ...slice, endpoints: ready });
    const pod = api.get('v1', 'Pod', 'reviews-v2-abc', 'default')!;
    api.apply({ ...pod, metadata: { ...pod.metadata, labels: { app: 'reviews', version: 'v1' } } });
    const seen = new Set<string>();
    await eventually(
      'both backends to answer for subset v1',
      async () => {
        for (let i = 0; i < 4; i++) seen.add((await viaProxy(outboundPort, 'http://reviews:9080/')).body);
        return [...seen].sort();
      },
      (b) => b.length === 2 && b[0] === 'reviews-v1 /' && b[1] === 'reviews-v2 /',
    );
    api.apply({ ...pod, metadata: { ...pod.metadata, labels: { app: 'reviews', version: 'v2' } } });
    // The slice disappears: the sidecar has nowhere to send reviews traffic.
    api.remove('discovery.k8s.io/v1', 'EndpointSlice', 'reviews-x1', 'default');
    await eventually(
      'the sidecar to answer 503 (no healthy upstream)',
      () => viaProxy(outboundPort, 'http://reviews:9080/'),
      (r) => r.status === 503,
    );
    api.apply({ ...slice, endpoints: ready });
    await eventually(
      'the endpoints to come back',
      () => viaProxy(outboundPort, 'http://reviews:9080/'),
      (r) => r.status === 200,
    );
  });

  it('follows a Service and its endpoints appearing, moving and disappearing, at the sidecar (xDS and traffic)', async () => {
    const cluster = 'outbound|9080||shipping.default.svc.cluster.local';
    const servers_ = [
      await backend('127.0.0.4', backendPort, 'shipping-a'),
      await backend('127.0.0.5', backendPort, 'shipping-b'),
    ];
    servers.push(...servers_);
    const slice = (ip: string, pod: string) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'shipping-x1',
        namespace: 'default',
        labels: { 'kubernetes.io/service-name': 'shipping' },
      },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: backendPort, protocol: 'TCP' }],
      endpoints: [
        {
          addresses: [ip],
          conditions: { ready: true, serving: true, terminating: false },
          targetRef: { kind: 'Pod', name: pod, namespace: 'default' },
        },
      ],
    });
    const get = () => viaProxy(outboundPort, 'http://shipping.default.svc.cluster.local:9080/s');
    // The Service appears with no endpoints: the sidecar has the cluster, and nowhere to send to.
    api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'shipping', namespace: 'default' },
      spec: { selector: { app: 'shipping' }, clusterIP: '10.96.0.50', ports: [{ name: 'http', port: 9080 }] },
    });
    await eventually(
      'the sidecar to get the shipping cluster',
      () => clustersOf(adminPort),
      (t) => t.includes(cluster),
    );
    await eventually('503 without endpoints', get, (r) => r.status === 503);
    // Its endpoints appear.
    api.apply(slice('127.0.0.4', 'shipping-a'));
    await eventually('traffic to shipping-a', get, (r) => r.body === 'shipping-a /s');
    expect(await clustersOf(adminPort)).toContain(`${cluster}::127.0.0.4:${backendPort}::`);
    // The endpoint moves (its pod replaced at another address).
    api.apply(slice('127.0.0.5', 'shipping-b'));
    await eventually('traffic to move to shipping-b', get, (r) => r.body === 'shipping-b /s');
    const moved = await clustersOf(adminPort);
    expect(moved).toContain(`${cluster}::127.0.0.5:${backendPort}::`);
    expect(moved).not.toContain(`${cluster}::127.0.0.4:`);
    // The endpoints disappear, then the Service.
    api.remove('discovery.k8s.io/v1', 'EndpointSlice', 'shipping-x1', 'default');
    await eventually('503 once the endpoints are gone', get, (r) => r.status === 503);
    api.remove('v1', 'Service', 'shipping', 'default');
    await eventually(
      'the cluster to leave the sidecar',
      () => clustersOf(adminPort),
      (t) => !t.includes(cluster),
    );
  });

  it("gives an iptables-mode sidecar virtualInbound chains for its pod's Service ports, as they come and go", async () => {
    // reviews-v1-abc gets a named container port, and a second Service targets it by that name.
    const pod = api.get('v1', 'Pod', 'reviews-v1-abc', 'default')!;
    api.apply({
      ...pod,
      spec: {
        ...(pod.spec as object),
        containers: [{ name: 'reviews', ports: [{ name: 'admin', containerPort: 18000, protocol: 'TCP' }] }],
      },
    });
    api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'reviews-admin', namespace: 'default' },
      spec: {
        selector: { app: 'reviews', version: 'v1' },
        clusterIP: '10.96.0.60',
        ports: [{ name: 'http-admin', port: 8000, targetPort: 'admin' }],
      },
    });
    // What the injected agent (--capture-mode iptables, no ports) tells pilot: its pod name and IP.
    const listeners = new Map<string, Record<string, unknown>>();
    const ads = new AdsClient({
      address: `127.0.0.1:${xdsPortA}`,
      node: {
        id: 'sidecar~127.0.0.2~reviews-v1-abc.default~default.svc.cluster.local',
        metadata: {
          NAMESPACE: 'default',
          LABELS: { app: 'reviews', version: 'v1' },
          SERVICE_ACCOUNT: 'bookinfo-reviews',
          WORKLOAD_NAME: 'reviews-v1',
          INSTANCE_IPS: '127.0.0.2',
          MIZZEN_CAPTURE_MODE: 'iptables',
          MIZZEN_OUTBOUND_PORT: 15001,
          MIZZEN_PORTS: [],
        },
      },
      logger,
      onResources: async (typeUrl, resources) => {
        if (typeUrl !== TypeUrl.Listener) return;
        listeners.clear();
        for (const r of resources) listeners.set(r.name, r.json);
      },
    });
    ads.subscribe(TypeUrl.Listener, '*');
    ads.start();
    const inboundPorts = () => {
      const vi = listeners.get('virtualInbound') as {
        filter_chains?: { filter_chain_match?: { destination_port?: number } }[];
      };
      return [...new Set((vi?.filter_chains ?? []).map((c) => c.filter_chain_match?.destination_port))]
        .filter((p): p is number => p !== undefined && p !== 15006)
        .sort((a, b) => a - b);
    };
    try {
      // The target ports: reviews' 9080, and 18000 resolved from the container port named admin.
      await eventually(
        'virtualInbound chains for 9080 and 18000',
        inboundPorts,
        (p) => p.join() === '9080,18000',
      );
      api.remove('v1', 'Service', 'reviews-admin', 'default');
      await eventually('the 18000 chains to go with the Service', inboundPorts, (p) => p.join() === '9080');
    } finally {
      await ads.stop();
      api.apply({ ...pod });
    }
  });

  it('reads mesh config from the istio ConfigMap (REGISTRY_ONLY blocks unknown hosts)', async () => {
    const unknown = 'http://unknown.example.org:8081/';
    const before = await viaProxy(outboundPort, unknown).catch(() => ({ status: 0, body: '' }));
    expect(before.body).not.toContain('not in the mesh registry');
    api.apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'istio', namespace: 'istio-system' },
      data: { mesh: 'outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\ntrustDomain: cluster.local\n' },
    });
    await eventually(
      'pilot to read the mesh config',
      () => pilotA().kube!.meshConfig().outboundTrafficPolicy,
      (m) => m === 'REGISTRY_ONLY',
    );
    await eventually(
      'the sidecar to block unknown destinations',
      () => viaProxy(outboundPort, unknown),
      (r) => r.status === 502,
    );
    // A broken mesh config is refused; the last good one stays.
    const cm = api.get('v1', 'ConfigMap', 'istio', 'istio-system')!;
    api.apply({ ...cm, data: { mesh: 'outboundTrafficPolicy:\n  mode: SOMETIMES\n' } });
    await new Promise((r) => setTimeout(r, 200));
    expect(pilotA().kube!.meshConfig().outboundTrafficPolicy).toBe('REGISTRY_ONLY');
    api.apply({ ...cm, data: { mesh: 'outboundTrafficPolicy:\n  mode: ALLOW_ANY\n' } });
    await eventually(
      'ALLOW_ANY again',
      () => pilotA().kube!.meshConfig().outboundTrafficPolicy,
      (m) => m === 'ALLOW_ANY',
    );
  });

  it('looks up gateway credentials from Secrets (kubernetes.io/tls and generic, with a -cacert secret)', async () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    api.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'bookinfo-credential', namespace: 'istio-system' },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64('CERT'), 'tls.key': b64('KEY') },
    });
    api.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'bookinfo-credential-cacert', namespace: 'istio-system' },
      type: 'Opaque',
      data: { cacert: b64('CA') },
    });
    api.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'generic', namespace: 'istio-system' },
      type: 'Opaque',
      data: { cert: b64('C2'), key: b64('K2'), cacert: b64('CA2') },
    });
    const credentials = pilotA().kube!.credentials;
    await eventually(
      'the secrets to arrive',
      () => credentials.lookup('istio-system', 'generic'),
      (c) => c !== undefined,
    );
    expect(credentials.lookup('istio-system', 'bookinfo-credential')).toEqual({
      certificateChain: 'CERT',
      privateKey: 'KEY',
      caCertificate: 'CA',
    });
    expect(credentials.lookup('istio-system', 'generic')).toEqual({
      certificateChain: 'C2',
      privateKey: 'K2',
      caCertificate: 'CA2',
    });
    // Only the gateway's own namespace counts.
    expect(credentials.lookup('default', 'bookinfo-credential')).toBeUndefined();
  });

  it('writes status.validationMessages on an invalid VirtualService and leaves it out of the config', async () => {
    await eventually(
      'pilot-a to lead',
      () => pilotA().kube!.isLeader(),
      (l) => l,
    );
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'bad', namespace: 'default' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' }, weight: 120 }] }] },
    });
    const status = await eventually(
      'the status write',
      () =>
        api.get('networking.istio.io/v1', 'VirtualService', 'bad', 'default')?.status as
          | { validationMessages?: { level: string; description: string; type: { code: string } }[] }
          | undefined,
      (s) => (s?.validationMessages?.length ?? 0) > 0,
    );
    expect(status!.validationMessages![0]).toMatchObject({
      level: 'ERROR',
      type: { code: 'IST0106', name: 'SchemaValidationError' },
      description: 'spec.http[0].route[0].weight: must be between 0 and 100, got 120',
    });
    expect(status).toMatchObject({ observedGeneration: 1 });
    expect(
      pilotA()
        .kube!.configSource.list()
        .some((r) => r.metadata.name === 'bad'),
    ).toBe(false);
    // Fixing it clears the messages.
    const bad = api.get('networking.istio.io/v1', 'VirtualService', 'bad', 'default')!;
    api.apply({
      ...bad,
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] },
    });
    await eventually(
      'the messages to clear',
      () =>
        api.get('networking.istio.io/v1', 'VirtualService', 'bad', 'default')?.status as Record<
          string,
          unknown
        >,
      (s) => s !== undefined && s.validationMessages === undefined && s.observedGeneration === 2,
    );
    api.remove('networking.istio.io/v1', 'VirtualService', 'bad', 'default');
  });

  it('keeps istio-ca-root-cert in every namespace, new ones included', async () => {
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookinfo' } });
    for (const ns of ['default', 'istio-system', 'bookinfo']) {
      await eventually(
        `the root cert ConfigMap in ${ns}`,
        () =>
          api.get('v1', 'ConfigMap', 'istio-ca-root-cert', ns)?.data as Record<string, string> | undefined,
        (d) => d?.['root-cert.pem'] === ROOT_PEM,
      );
    }
    // Someone edits it: the leader puts it back.
    const cm = api.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'bookinfo')!;
    api.apply({ ...cm, data: { 'root-cert.pem': 'tampered' } });
    await eventually(
      'the root cert to be restored',
      () => api.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'bookinfo')?.data as Record<string, string>,
      (d) => d['root-cert.pem'] === ROOT_PEM,
    );
  });

  it('re-establishes watches the server drops, without losing the events made while no watch was open', async () => {
    const before = pilotA().kube!.stats().informers as Record<string, { connects: number; lists: number }>;
    // The server goes away for watches: the open ones end and new ones get no answer yet.
    api.holdWatches();
    expect(api.dropWatches()).toBeGreaterThan(0);
    await eventually(
      'the services informer to try again',
      () => api.heldWatchCount('services'),
      (n) => n > 0,
    );
    expect(api.watchCount('services')).toBe(0);
    // The change lands while no watch is open ...
    api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'ratings', namespace: 'default' },
      spec: { clusterIP: '10.96.0.30', ports: [{ name: 'http', port: 9080 }] },
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(pilotA().kube!.registry().service('ratings.default.svc.cluster.local')).toBeUndefined();
    // ... and arrives once the watch resumes from the resourceVersion it had reached.
    api.releaseWatches();
    await eventually(
      'ratings to reach the registry',
      () => pilotA().kube!.registry().service('ratings.default.svc.cluster.local') !== undefined,
      (v) => v,
    );
    const after = pilotA().kube!.stats().informers as Record<string, { connects: number; lists: number }>;
    expect(after.services!.connects).toBeGreaterThan(before.services!.connects);
    // Resumed from its resourceVersion: no relist.
    expect(after.services!.lists).toBe(before.services!.lists);
  });

  it('relists after 410 Gone when the history it would resume from is compacted', async () => {
    const before = pilotA().kube!.stats().informers as Record<string, { lists: number }>;
    api.dropWatches();
    api.remove('v1', 'Service', 'ratings', 'default');
    api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'details', namespace: 'default' },
      spec: { clusterIP: '10.96.0.40', ports: [{ name: 'http', port: 9080 }] },
    });
    api.compact();
    await eventually(
      'the relist to bring details and drop ratings',
      () => {
        const r = pilotA().kube!.registry();
        return [
          r.service('details.default.svc.cluster.local') !== undefined,
          r.service('ratings.default.svc.cluster.local') !== undefined,
        ];
      },
      ([details, ratings]) => details === true && ratings === false,
    );
    const after = pilotA().kube!.stats().informers as Record<string, { lists: number }>;
    expect(after.services!.lists).toBeGreaterThan(before.services!.lists);
  });

  it('runs two replicas that both serve xDS, with one leader writing, and hands over when it stops', async () => {
    const b = startPilot('pilot-b');
    const { xdsPort } = await b.start();
    expect(b.kube!.registry().service('reviews.default.svc.cluster.local')).toBeDefined();
    // A second sidecar takes its config from the follower and routes with it.
    const onB = await startSidecar(xdsPort, 'productpage-v1-abc');
    sidecars.push(onB);
    const viaB = () => viaProxy(onB.outboundPort, 'http://reviews.default.svc.cluster.local:9080/b');
    await eventually("the follower's sidecar to route reviews", viaB, (r) => r.status === 200);
    expect((await viaB()).body).toMatch(/^reviews-v[12] \/b$/);
    await new Promise((r) => setTimeout(r, 600));
    expect(pilotA().kube!.isLeader()).toBe(true);
    expect(b.kube!.isLeader()).toBe(false);
    const writesBefore = api.writes.length;
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'broken', namespace: 'default' },
      spec: { host: 'reviews', trafficPolicy: { loadBalancer: { simple: 'NOT_A_POLICY' } } },
    });
    await eventually(
      'the leader to write status',
      () => api.get('networking.istio.io/v1', 'DestinationRule', 'broken', 'default')?.status,
      (s) => s !== undefined,
    );
    const statusWriters = new Set(
      api.writes
        .slice(writesBefore)
        .filter((w) => w.path.endsWith('/status'))
        .map((w) => w.token),
    );
    expect([...statusWriters]).toEqual(['pilot-a']);
    // Every write the follower made is a Lease request (campaigning), never config or status.
    expect(api.writes.filter((w) => w.token === 'pilot-b').every((w) => w.kind === 'Lease')).toBe(true);

    await pilotA().stop();
    await eventually(
      'pilot-b to take over',
      () => b.kube!.isLeader(),
      (l) => l,
      10_000,
    );
    // The sidecar on pilot-b never depended on the leader.
    expect((await viaB()).status).toBe(200);
    const lease = api.get('coordination.k8s.io/v1', 'Lease', 'istio-leader', 'istio-system')!;
    expect(lease.spec).toMatchObject({ holderIdentity: 'pilot-b', leaseTransitions: 1 });
    // The new leader does the writes now.
    const writesAt = api.writes.length;
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Gateway',
      metadata: { name: 'gw-bad', namespace: 'default' },
      spec: { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: [] }] },
    });
    await eventually(
      'pilot-b to write the Gateway status',
      () => api.get('networking.istio.io/v1', 'Gateway', 'gw-bad', 'default')?.status,
      (s) => s !== undefined,
    );
    expect(
      api.writes
        .slice(writesAt)
        .filter((w) => w.path.endsWith('/status'))
        .every((w) => w.token === 'pilot-b'),
    ).toBe(true);
  }, 30_000);
});
