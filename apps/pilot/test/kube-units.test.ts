import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { KubeConfig, type V1EndpointSlice, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { createLogger } from '@mizzen/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeController } from '../src/kube/controller.js';
import { parseMeshConfig } from '../src/kube/mesh-config.js';
import {
  buildKubeRegistry,
  localityOf,
  servicePortProtocol,
  workloadServicePorts,
} from '../src/kube/registry.js';
import { RootCertSource } from '../src/kube/root-cert.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { FakeKubeApi } from './fake-kube-api.js';

function svc(name: string, spec: V1Service['spec'], annotations?: Record<string, string>): V1Service {
  return { metadata: { name, namespace: 'shop', annotations }, spec };
}

describe('Kubernetes registry rules', () => {
  it('chooses port protocols as Istio does: appProtocol, then the port name', () => {
    expect(servicePortProtocol('grpc', 'tcp-x')).toBe('GRPC');
    expect(servicePortProtocol('kubernetes.io/h2c', undefined)).toBe('HTTP2');
    expect(servicePortProtocol('kubernetes.io/ws', undefined)).toBe('HTTP');
    expect(servicePortProtocol(undefined, 'http-web')).toBe('HTTP');
    expect(servicePortProtocol(undefined, 'grpc-web')).toBe('GRPC-WEB');
    expect(servicePortProtocol(undefined, 'db')).toBe('UNKNOWN');
  });

  it('takes locality from istio-locality, else the node topology labels', () => {
    const node = {
      metadata: {
        name: 'n',
        labels: {
          'topology.kubernetes.io/region': 'eu-west1',
          'topology.kubernetes.io/zone': 'eu-west1-c',
          'topology.istio.io/subzone': 'rack7',
        },
      },
    };
    expect(localityOf(undefined, node)).toBe('eu-west1/eu-west1-c/rack7');
    expect(localityOf({ metadata: { labels: { 'istio-locality': 'us.us-a.r1' } } }, node)).toBe('us/us-a/r1');
    expect(localityOf(undefined, { metadata: { name: 'bare' } })).toBeUndefined();
  });

  it('places endpoints on the network of their pod’s label, else their namespace’s, and keeps Service labels', () => {
    const pod = (name: string, ip: string, labels: Record<string, string>, namespace = 'shop'): V1Pod => ({
      metadata: { name, namespace, labels },
      status: { podIP: ip },
    });
    const registry = buildKubeRegistry({
      services: [
        {
          metadata: { name: 'cart', namespace: 'shop', labels: { 'topology.istio.io/network': 'network9' } },
          spec: { ports: [{ name: 'http', port: 80 }] },
        },
      ],
      endpointSlices: [
        {
          metadata: { name: 'cart-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'cart' } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: 8080 }],
          endpoints: [
            { addresses: ['10.1.0.1'], targetRef: { kind: 'Pod', name: 'a', namespace: 'shop' } },
            { addresses: ['10.1.0.2'], targetRef: { kind: 'Pod', name: 'b', namespace: 'shop' } },
          ],
        },
      ],
      pods: [pod('a', '10.1.0.1', { 'topology.istio.io/network': 'network2' }), pod('b', '10.1.0.2', {})],
      nodes: [],
      namespaces: [{ metadata: { name: 'shop', labels: { 'topology.istio.io/network': 'network1' } } }],
    });
    expect(registry.endpoints('cart.shop.svc.cluster.local', 80).map((e) => [e.address, e.network])).toEqual([
      ['10.1.0.1', 'network2'],
      ['10.1.0.2', 'network1'],
    ]);
    expect(registry.service('cart.shop.svc.cluster.local')?.labels).toEqual({
      'topology.istio.io/network': 'network9',
    });
  });

  it('builds services, exportTo, ExternalName and endpoint health from slices', () => {
    const pods: V1Pod[] = [
      {
        metadata: { name: 'cart-1', namespace: 'shop', labels: { app: 'cart', version: 'v1' } },
        spec: { serviceAccountName: 'cart', nodeName: 'n', containers: [] },
        status: { podIP: '10.1.0.5' },
      },
    ];
    const slices: V1EndpointSlice[] = [
      {
        metadata: { name: 'cart-a', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'cart' } },
        addressType: 'IPv4',
        ports: [
          { name: 'http', port: 8080 },
          { name: 'grpc', port: 9090 },
        ],
        endpoints: [
          { addresses: ['10.1.0.5'], conditions: { ready: true } },
          // Terminating but still serving: kept, not healthy.
          { addresses: ['10.1.0.6'], conditions: { ready: false, serving: true, terminating: true } },
          // Terminating and no longer serving: gone.
          { addresses: ['10.1.0.7'], conditions: { ready: false, serving: false, terminating: true } },
        ],
      },
      {
        // The same endpoint in a second slice (the controller moving it) counts once.
        metadata: { name: 'cart-b', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'cart' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080 }],
        endpoints: [{ addresses: ['10.1.0.5'], conditions: { ready: true } }],
      },
    ];
    const registry = buildKubeRegistry({
      services: [
        svc(
          'cart',
          {
            clusterIP: '10.96.1.1',
            ports: [
              { name: 'http', port: 80, targetPort: 8080 },
              { name: 'grpc', port: 9090, appProtocol: 'grpc' },
              { name: 'dns', port: 53, protocol: 'UDP' },
            ],
          },
          { 'networking.istio.io/exportTo': '.,payments' },
        ),
        svc('legacy', {
          type: 'ExternalName',
          externalName: 'db.example.com',
          ports: [{ name: 'tcp', port: 5432 }],
        }),
        svc('headless', { clusterIP: 'None', ports: [{ name: 'http', port: 80 }] }),
      ],
      endpointSlices: slices,
      pods,
      nodes: [],
      namespaces: [],
    });
    const cart = registry.service('cart.shop.svc.cluster.local')!;
    expect(cart.ports.map((p) => [p.name, p.port, p.protocol])).toEqual([
      ['http', 80, 'HTTP'],
      ['grpc', 9090, 'GRPC'],
    ]);
    expect(cart.exportTo).toEqual(['.', 'payments']);
    expect(cart.addresses).toEqual(['10.96.1.1']);
    expect(
      registry
        .endpoints('cart.shop.svc.cluster.local', 80)
        .map((e) => [e.address, e.port, e.healthy, e.serviceAccount]),
    ).toEqual([
      ['10.1.0.5', 8080, true, 'cart'],
      ['10.1.0.6', 8080, false, undefined],
    ]);
    expect(registry.endpoints('cart.shop.svc.cluster.local', 9090).map((e) => e.port)).toEqual([9090, 9090]);
    const legacy = registry.service('legacy.shop.svc.cluster.local')!;
    expect(legacy.resolution).toBe('DNS');
    expect(registry.endpoints('legacy.shop.svc.cluster.local', 5432)[0]).toMatchObject({
      address: 'db.example.com',
      port: 5432,
    });
    expect(registry.service('headless.shop.svc.cluster.local')!.addresses).toEqual([]);
  });
});

describe('the service ports a pod serves (service targets for inbound listeners)', () => {
  it('finds the Services that select the pod and resolves named target ports', () => {
    const pod: V1Pod = {
      metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web', tier: 'front' } },
      spec: {
        containers: [
          {
            name: 'web',
            ports: [
              { name: 'http', containerPort: 8080 },
              { name: 'metrics', containerPort: 9102 },
            ],
          },
        ],
      },
    };
    const services: V1Service[] = [
      svc('web', {
        selector: { app: 'web' },
        ports: [
          { name: 'http', port: 80, targetPort: 'http' },
          { name: 'grpc', port: 9000, appProtocol: 'grpc' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      }),
      svc('web-metrics', {
        selector: { app: 'web', tier: 'front' },
        ports: [{ name: 'http-metrics', port: 9102, targetPort: 9102 }],
      }),
      svc('other', { selector: { app: 'other' }, ports: [{ name: 'http', port: 80 }] }),
      svc('no-selector', { ports: [{ name: 'http', port: 80 }] }),
      {
        metadata: { name: 'web', namespace: 'elsewhere' },
        spec: { selector: { app: 'web' }, ports: [{ port: 1 }] },
      },
    ];
    expect(workloadServicePorts(pod, services)).toEqual([
      {
        service: 'web-metrics.shop.svc.cluster.local',
        name: 'http-metrics',
        port: 9102,
        targetPort: 9102,
        protocol: 'HTTP',
      },
      { service: 'web.shop.svc.cluster.local', name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' },
      { service: 'web.shop.svc.cluster.local', name: 'grpc', port: 9000, targetPort: 9000, protocol: 'GRPC' },
    ]);
  });
});

describe('mesh config from the istio ConfigMap', () => {
  it('reads the fields pilot acts on and keeps the rest at their defaults', () => {
    const mesh = parseMeshConfig(
      'trustDomain: example.org\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\ndefaultConfig:\n  discoveryAddress: x:15010\n',
      DEFAULT_MESH_CONFIG,
    );
    expect(mesh).toMatchObject({ trustDomain: 'example.org', outboundTrafficPolicy: 'REGISTRY_ONLY' });
    expect(mesh.connectTimeout).toBe(DEFAULT_MESH_CONFIG.connectTimeout);
    expect(parseMeshConfig(undefined, DEFAULT_MESH_CONFIG)).toEqual(DEFAULT_MESH_CONFIG);
  });

  it('refuses wrong types with a sentence naming the field', () => {
    expect(() => parseMeshConfig('trustDomain: 5\n', DEFAULT_MESH_CONFIG)).toThrow(
      'mesh config: trustDomain must be a string',
    );
    expect(() => parseMeshConfig('- a\n', DEFAULT_MESH_CONFIG)).toThrow('must be a YAML mapping');
    expect(() => parseMeshConfig('outboundTrafficPolicy: { mode: NEVER }\n', DEFAULT_MESH_CONFIG)).toThrow(
      'outboundTrafficPolicy.mode must be ALLOW_ANY or REGISTRY_ONLY, got "NEVER"',
    );
  });
});

describe('the controller against a fake API server (no cluster runs here) that denies some permissions', () => {
  const api = new FakeKubeApi();
  const lines: Record<string, unknown>[] = [];
  let controller: KubeController;

  beforeAll(async () => {
    await api.start();
    api.forbidden.add('secrets');
    api.forbidden.add('virtualservices');
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: api.url, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'rbac-test' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
      currentContext: 'fake',
    });
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    controller = new KubeController({
      kubeConfig: kc,
      logger: createLogger('rbac-test', { level: 'info', destination: sink }),
      meshDefaults: DEFAULT_MESH_CONFIG,
      initialBackoffMs: 10,
      maxBackoffMs: 40,
      retryPeriodMs: 100,
      syncTimeoutMs: 1500,
    });
  });

  afterAll(async () => {
    await controller.stop();
    await api.stop();
  });

  it('logs each missing permission once, naming the resource, while it keeps retrying', async () => {
    await controller.start();
    await controller.configSource.start();
    const waiting = lines.find((l) => String(l.msg).startsWith('starting before these caches synced'));
    expect(waiting?.waiting).toEqual(['secrets']);
    const started = api.requests.length;
    await new Promise((r) => setTimeout(r, 500));
    const denied = api.requests.slice(started).filter((r) => r.url.startsWith('/api/v1/secrets'));
    expect(denied.length).toBeGreaterThan(3);
    const rbac = lines.filter((l) => String(l.msg).startsWith('missing RBAC permission'));
    expect(rbac.map((l) => l.resource).sort()).toEqual(['secrets', 'virtualservices.networking.istio.io']);
    expect(rbac.find((l) => l.resource === 'secrets')!.msg).toBe(
      'missing RBAC permission: cannot list/watch secrets (/api/v1/secrets); grant "list" and "watch" on it to pilot\'s service account',
    );
    // Granted later: the informer lists and the message is not repeated.
    api.forbidden.delete('secrets');
    api.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'gw', namespace: 'istio-system' },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from('C').toString('base64'),
        'tls.key': Buffer.from('K').toString('base64'),
      },
    });
    const deadline = Date.now() + 5000;
    while (!controller.credentials.lookup('istio-system', 'gw') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(controller.credentials.lookup('istio-system', 'gw')).toEqual({
      certificateChain: 'C',
      privateKey: 'K',
    });
  });
});

/** Waits for a condition a test cannot await as an event (what a fake API server saw), bounded. */
async function until(what: string, check: () => boolean, timeoutMs = 8_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("the controller's writes against a fake API server (no cluster runs here) that denies them, then grants them", () => {
  const api = new FakeKubeApi();
  const lines: Record<string, unknown>[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-rbac-writes-'));
  const PEM = '-----BEGIN CERTIFICATE-----\nMIIBwrites\n-----END CERTIFICATE-----\n';
  let controller: KubeController;
  let rootCert: RootCertSource;
  const rbac = (text: string) =>
    lines.filter((l) => String(l.msg).startsWith(`missing RBAC permission: cannot ${text}`));
  const requests = (method: string, pathname: string) =>
    api.requests.filter((r) => r.method === method && r.url.split('?')[0] === pathname).length;
  const badVs = (name: string) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: 'shop' },
    spec: { hosts: ['cart'], http: [{ route: [{ destination: { host: 'cart' }, weight: 120 }] }] },
  });

  beforeAll(async () => {
    await api.start();
    for (const ns of ['istio-system', 'shop', 'web'])
      api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    api.apply(badVs('bad-1'));
    api.apply(badVs('bad-2'));
    // Read-only RBAC: pilot can list and watch everything but write nothing.
    for (const rule of ['get leases', 'patch virtualservices/status', 'create configmaps'])
      api.denied.add(rule);
    fs.writeFileSync(path.join(dir, 'root-cert.pem'), PEM);
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: api.url, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'rbac-writes' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
      currentContext: 'fake',
    });
    const logger = createLogger('rbac-writes', {
      level: 'info',
      destination: new Writable({
        write(chunk, _enc, done) {
          for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
          done();
        },
      }),
    });
    rootCert = new RootCertSource({ file: path.join(dir, 'root-cert.pem') }, logger);
    await rootCert.start();
    controller = new KubeController({
      kubeConfig: kc,
      logger,
      meshDefaults: DEFAULT_MESH_CONFIG,
      identity: 'pilot-rbac',
      leaseDurationMs: 1000,
      renewDeadlineMs: 800,
      retryPeriodMs: 50,
      // Every informer re-delivers its cache this often: failed writes are retried then.
      resyncMs: 100,
      initialBackoffMs: 10,
      maxBackoffMs: 40,
      syncTimeoutMs: 3000,
      rootCert,
    });
    await controller.start();
    await controller.configSource.start();
  });

  afterAll(async () => {
    await controller.stop();
    rootCert.stop();
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('Lease: campaigns every retry period but logs the missing "get" once, and leads once granted', async () => {
    const lease = '/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/istio-leader';
    await until('ten denied Lease reads', () => requests('GET', lease) >= 10);
    expect(rbac('get leases.coordination.k8s.io')).toHaveLength(1);
    expect(rbac('get leases.coordination.k8s.io')[0]).toMatchObject({
      verb: 'get',
      resource: 'leases.coordination.k8s.io',
      lease: 'istio-system/istio-leader',
      msg: 'missing RBAC permission: cannot get leases.coordination.k8s.io; grant "get" on it to pilot\'s service account (retried quietly until then)',
    });
    expect(controller.isLeader()).toBe(false);
    expect((controller.stats() as { missingPermissions: string[] }).missingPermissions).toEqual([
      'get leases.coordination.k8s.io',
    ]);
    api.denied.delete('get leases');
    await until('pilot to lead', () => controller.isLeader());
    expect(rbac('get leases')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'leader election request failed')).toEqual([]);
  });

  it('status: retried at every resync for each invalid object, the missing "patch" logged once; written by a resync once granted', async () => {
    const statusPatches = () =>
      api.writes.filter((w) => w.method === 'PATCH' && w.path.endsWith('/status')).length;
    await until('status patches over several resyncs', () => statusPatches() >= 8);
    expect(rbac('patch virtualservices.networking.istio.io/status')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'status write failed; retried on the next resync')).toEqual([]);
    expect(api.get('networking.istio.io/v1', 'VirtualService', 'bad-1', 'shop')?.status).toBeUndefined();
    // No event about these objects follows: only the periodic resync writes their status now.
    api.denied.delete('patch virtualservices/status');
    for (const name of ['bad-1', 'bad-2']) {
      await until(`${name}'s validationMessages`, () => {
        const status = api.get('networking.istio.io/v1', 'VirtualService', name, 'shop')?.status as
          | { validationMessages?: { description: string }[] }
          | undefined;
        return (
          status?.validationMessages?.[0]?.description ===
          'spec.http[0].route[0].weight: must be between 0 and 100, got 120'
        );
      });
    }
    expect(rbac('patch virtualservices')).toHaveLength(1);
  });

  it('istio-ca-root-cert: retried per namespace at every resync, the missing "create" logged once; created everywhere once granted', async () => {
    const creates = () => api.writes.filter((w) => w.method === 'POST' && w.kind === 'ConfigMap').length;
    await until('root cert creations over several resyncs', () => creates() >= 9);
    expect(rbac('create configmaps')).toHaveLength(1);
    expect(rbac('create configmaps')[0]).toMatchObject({ verb: 'create', resource: 'configmaps' });
    expect(lines.filter((l) => String(l.msg).startsWith('cannot write ConfigMap'))).toEqual([]);
    api.denied.delete('create configmaps');
    for (const ns of ['istio-system', 'shop', 'web']) {
      await until(
        `the root cert in ${ns}`,
        () => api.get('v1', 'ConfigMap', 'istio-ca-root-cert', ns)?.data?.['root-cert.pem' as never] === PEM,
      );
    }
    expect(rbac('create configmaps')).toHaveLength(1);
    expect((controller.stats() as { missingPermissions: string[] }).missingPermissions).toEqual([]);
  });
});
