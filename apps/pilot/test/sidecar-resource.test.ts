import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, httpService, type Json, pushFor, sidecarNode, tcpTargets } from './scoping.js';

/** Services in three namespaces, an external host and the egress gateway, as a mesh registers them. */
const MESH = `
${httpService('reviews', 'default')}
${httpService('ratings', 'other')}
${httpService('prometheus', 'istio-system', 9090)}
${httpService('istio-egressgateway', 'istio-system', 80)}
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db, namespace: other }
spec:
  hosts: [db.other.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 5432, name: tcp, protocol: TCP }]
  endpoints: [{ address: 127.0.0.1, ports: { tcp: 45432 } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: httpbin, namespace: default }
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{ number: 80, name: http, protocol: HTTP }]
---
`;

const PRODUCTPAGE = sidecarNode('productpage-v1', 'default', { app: 'productpage', version: 'v1' });
const REVIEWS = sidecarNode('reviews-v1', 'default', { app: 'reviews', version: 'v1' });
const RATINGS = sidecarNode('ratings-v1', 'other', { app: 'ratings' });

function sidecar(name: string, namespace: string, spec: string): string {
  return `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: ${name}, namespace: ${namespace} }
spec:
${spec
  .trim()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}
---
`;
}

const ALL = [
  'outbound|80||httpbin.org',
  'outbound|80||istio-egressgateway.istio-system.svc.cluster.local',
  'outbound|5432||db.other.svc.cluster.local',
  'outbound|9080||ratings.other.svc.cluster.local',
  'outbound|9080||reviews.default.svc.cluster.local',
  'outbound|9090||prometheus.istio-system.svc.cluster.local',
].sort();

describe('Sidecar egress hosts', () => {
  it('without a Sidecar, a proxy gets every service exported to its namespace', () => {
    const b = build(pushFor(MESH), PRODUCTPAGE);
    expect(b.outboundClusters()).toEqual(ALL);
    expect(b.vhosts('9080')).toEqual([
      'ratings.other.svc.cluster.local:9080',
      'reviews.default.svc.cluster.local:9080',
      'allow_any',
    ]);
  });

  it('"./*" and "istio-system/*" keep its own namespace and the control plane, nothing else', () => {
    const b = build(
      pushFor(MESH + sidecar('default', 'default', `egress: [{ hosts: ["./*", "istio-system/*"] }]`)),
      PRODUCTPAGE,
    );
    expect(b.outboundClusters()).toEqual([
      'outbound|80||httpbin.org',
      'outbound|80||istio-egressgateway.istio-system.svc.cluster.local',
      'outbound|9080||reviews.default.svc.cluster.local',
      'outbound|9090||prometheus.istio-system.svc.cluster.local',
    ]);
    expect(b.vhosts('9080')).toEqual(['reviews.default.svc.cluster.local:9080', 'allow_any']);
    // No listener at all for the other namespace's TCP port: it falls to the capture listener's catch-all.
    expect(b.listeners.map((l) => l.name)).not.toContain('0.0.0.0_5432');
    expect(b.endpoints.map((e) => e.cluster_name)).not.toContain(
      'outbound|9080||ratings.other.svc.cluster.local',
    );
  });

  it('"*/host" imports one host from any namespace, "ns/host" only from that namespace, "~/*" nothing', () => {
    const one = build(
      pushFor(
        MESH +
          sidecar(
            'default',
            'default',
            `egress: [{ hosts: ["*/ratings.other.svc.cluster.local", "other/db.other.svc.cluster.local", "default/ratings.other.svc.cluster.local"] }]`,
          ),
      ),
      PRODUCTPAGE,
    );
    expect(one.outboundClusters()).toEqual([
      'outbound|5432||db.other.svc.cluster.local',
      'outbound|9080||ratings.other.svc.cluster.local',
    ]);
    const wildcard = build(
      pushFor(MESH + sidecar('default', 'default', `egress: [{ hosts: ["*/*.org"] }]`)),
      PRODUCTPAGE,
    );
    expect(wildcard.outboundClusters()).toEqual(['outbound|80||httpbin.org']);
    const none = build(
      pushFor(MESH + sidecar('default', 'default', `egress: [{ hosts: ["~/*"] }]`)),
      PRODUCTPAGE,
    );
    expect(none.outboundClusters()).toEqual([]);
    expect(none.routes).toEqual([]);
  });

  it('imports the VirtualServices of the namespaces it names, and gives their destinations clusters', () => {
    const toRatings = `${MESH}
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-to-ratings, namespace: default }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: ratings.other.svc.cluster.local } }] }]
---
${sidecar('default', 'default', `egress: [{ hosts: ["./*"] }]`)}`;
    const b = build(pushFor(toRatings), PRODUCTPAGE);
    const vh = b.route('9080').virtual_hosts[0];
    expect(vh.name).toBe('reviews.default.svc.cluster.local:9080');
    // The VirtualService in default is imported (./*) and routes to a service the listener does not import:
    // the cluster exists (Istio adds VirtualService destinations), the host gets no virtual host of its own.
    expect(vh.routes[0].route.cluster).toBe('outbound|9080||ratings.other.svc.cluster.local');
    expect(b.outboundClusters()).toContain('outbound|9080||ratings.other.svc.cluster.local');
    expect(b.vhosts('9080')).not.toContain('ratings.other.svc.cluster.local:9080');

    // A VirtualService for reviews written in namespace other applies only where other/… is imported.
    const fromOther = (hosts: string) => `${MESH}
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-from-other, namespace: other }
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{ route: [{ destination: { host: reviews.default.svc.cluster.local }, headers: { request: { set: { x-from: other } } } }] }]
---
${sidecar('default', 'default', `egress: [{ hosts: [${hosts}] }]`)}`;
    const routeOf = (yaml: string) =>
      build(pushFor(yaml), PRODUCTPAGE)
        .route('9080')
        .virtual_hosts.find((v: Json) => v.name.startsWith('reviews.')).routes[0];
    expect(routeOf(fromOther('"./*"')).request_headers_to_add).toBeUndefined();
    expect(routeOf(fromOther('"./*", "other/*"')).request_headers_to_add[0].header).toEqual({
      key: 'x-from',
      value: 'other',
    });
  });

  it('a port-specific egress listener claims its port for the hosts it names; captureMode NONE binds 127.0.0.1', () => {
    const yaml =
      MESH +
      sidecar(
        'default',
        'default',
        `
egress:
  - port: { number: 9080, protocol: HTTP, name: http }
    captureMode: NONE
    hosts: ["./reviews.default.svc.cluster.local"]
  - port: { number: 8080, protocol: HTTP, name: http-alias }
    hosts: ["other/*"]
  - hosts: ["*/*"]`,
      );
    const b = build(pushFor(yaml), PRODUCTPAGE);
    const bound = b.listener('127.0.0.1_9080');
    expect(bound.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 9080 });
    expect(bound.bind_to_port).toBeUndefined();
    // Port 9080 belongs to the first listener: ratings (also on 9080) is not routed there even though */* imports it.
    expect(b.vhosts('9080')).toEqual(['reviews.default.svc.cluster.local:9080', 'allow_any']);
    expect(b.listeners.map((l) => l.name)).not.toContain('0.0.0.0_9080');
    // Port 8080: ratings (single port 9080) is aliased — reached as ratings…:8080, sent to its port 9080.
    const alias = b.route('8080').virtual_hosts[0];
    expect(alias.domains).toContain('ratings.other.svc.cluster.local:8080');
    expect(alias.routes[0].route.cluster).toBe('outbound|9080||ratings.other.svc.cluster.local');
    expect(b.listener('0.0.0.0_8080').bind_to_port).toBe(false);
    // The catch-all still serves the other ports.
    expect(b.listeners.map((l) => l.name)).toEqual(
      expect.arrayContaining(['0.0.0.0_80', '0.0.0.0_5432', '0.0.0.0_9090']),
    );
  });
});

describe('Sidecar selection', () => {
  const scoped = (yaml: string, node = PRODUCTPAGE) => build(pushFor(MESH + yaml), node).outboundClusters();

  it('root namespace default, then namespace default, then workloadSelector — oldest first at each step', () => {
    const root = sidecar('default', 'istio-system', `egress: [{ hosts: ["./*", "istio-system/*"] }]`);
    // The root default's "." is the workload's own namespace.
    expect(scoped(root)).toContain('outbound|9080||reviews.default.svc.cluster.local');
    expect(scoped(root)).not.toContain('outbound|9080||ratings.other.svc.cluster.local');
    expect(scoped(root, RATINGS)).toEqual([
      'outbound|5432||db.other.svc.cluster.local',
      'outbound|80||istio-egressgateway.istio-system.svc.cluster.local',
      'outbound|9080||ratings.other.svc.cluster.local',
      'outbound|9090||prometheus.istio-system.svc.cluster.local',
    ]);
    const ns = sidecar('ns-default', 'default', `egress: [{ hosts: ["other/*"] }]`);
    expect(scoped(root + ns)).toEqual([
      'outbound|5432||db.other.svc.cluster.local',
      'outbound|9080||ratings.other.svc.cluster.local',
    ]);
    // The namespace default does not reach other namespaces: ratings still gets the root default.
    expect(scoped(root + ns, RATINGS)).toContain('outbound|9080||ratings.other.svc.cluster.local');
    const selecting = sidecar(
      'productpage',
      'default',
      `workloadSelector: { labels: { app: productpage } }\negress: [{ hosts: ["istio-system/prometheus.istio-system.svc.cluster.local"] }]`,
    );
    expect(scoped(root + ns + selecting)).toEqual([
      'outbound|9090||prometheus.istio-system.svc.cluster.local',
    ]);
    // reviews is not selected: the namespace default applies to it.
    expect(scoped(root + ns + selecting, REVIEWS)).toEqual([
      'outbound|5432||db.other.svc.cluster.local',
      'outbound|9080||ratings.other.svc.cluster.local',
    ]);
    // A root-namespace Sidecar with a selector applies to nobody outside the root namespace.
    const rootSelecting = sidecar(
      'root-selecting',
      'istio-system',
      `workloadSelector: { labels: { app: productpage } }\negress: [{ hosts: ["~/*"] }]`,
    );
    expect(scoped(rootSelecting)).toEqual(
      expect.arrayContaining(['outbound|9080||ratings.other.svc.cluster.local']),
    );
  });

  it('warns, as Istio’s analyzer does, about ambiguous Sidecars and applies the oldest', () => {
    const two = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: b-newer, namespace: default, creationTimestamp: "2024-02-01T00:00:00Z" }
spec: { egress: [{ hosts: ["other/*"] }] }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: a-older, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z" }
spec: { egress: [{ hosts: ["./*"] }] }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: sel-1, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z" }
spec: { workloadSelector: { labels: { app: reviews } }, egress: [{ hosts: ["istio-system/*"] }] }
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: sel-2, namespace: default, creationTimestamp: "2024-02-01T00:00:00Z" }
spec: { workloadSelector: { labels: { app: reviews, version: v1 } }, egress: [{ hosts: ["other/*"] }] }
`;
    const push = pushFor(MESH + two);
    expect(build(push, PRODUCTPAGE).outboundClusters()).toContain(
      'outbound|9080||reviews.default.svc.cluster.local',
    );
    expect(build(push, REVIEWS).outboundClusters()).toEqual([
      'outbound|80||istio-egressgateway.istio-system.svc.cluster.local',
      'outbound|9090||prometheus.istio-system.svc.cluster.local',
    ]);
    expect([...push.warnings].sort()).toEqual([
      'Error [IST0110] (Sidecar default/sel-1) The Sidecars [default/sel-1 default/sel-2] in namespace "default" select the same workload pod "reviews-v1", which can lead to undefined behavior.',
      'Error [IST0110] (Sidecar default/sel-2) The Sidecars [default/sel-1 default/sel-2] in namespace "default" select the same workload pod "reviews-v1", which can lead to undefined behavior.',
      'Error [IST0111] (Sidecar default/a-older) The Sidecars [default/a-older default/b-newer] in namespace "default" have no workload selector, which can lead to undefined behavior.',
      'Error [IST0111] (Sidecar default/b-newer) The Sidecars [default/a-older default/b-newer] in namespace "default" have no workload selector, which can lead to undefined behavior.',
      // The fixture's TCP ServiceEntry without addresses, which Istio's analyzer flags too.
      'Warning [IST0134] (ServiceEntry other/db) ServiceEntry addresses are required for this protocol.',
    ]);
  });

  it('applies to proxyless gRPC clients; gateways are not scoped', () => {
    const yaml = MESH + sidecar('default', 'default', `egress: [{ hosts: ["./*"] }]`);
    const grpc = build(pushFor(yaml), {
      id: 'sidecar~10.1.1.1~client.default~default.svc.cluster.local',
      metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' },
    });
    expect(grpc.listeners.map((l) => l.name)).toEqual([
      'httpbin.org:80',
      'reviews.default.svc.cluster.local:9080',
    ]);
    const gw = build(
      pushFor(
        yaml.replace('namespace: default }\nspec:\n  egress', 'namespace: istio-system }\nspec:\n  egress'),
      ),
      {
        id: 'router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local',
        metadata: {
          NAMESPACE: 'istio-system',
          LABELS: { istio: 'ingressgateway' },
          INSTANCE_IPS: '127.0.0.1',
          MIZZEN_CAPTURE_MODE: 'proxy',
          MIZZEN_GATEWAY_PORTS: { '80': 8080 },
        },
      },
    );
    expect(gw.outboundClusters()).toEqual(ALL);
  });
});

describe('Sidecar outboundTrafficPolicy', () => {
  const catchAll = (b: ReturnType<typeof build>) => ({
    tcp: tcpTargets(b.listener('virtualOutbound')),
    http: b.route('9080').virtual_hosts.at(-1),
  });

  it('REGISTRY_ONLY for one workload: unknown destinations get 502 (HTTP) or the BlackHoleCluster (TCP)', () => {
    const yaml = MESH + sidecar('default', 'default', `outboundTrafficPolicy: { mode: REGISTRY_ONLY }`);
    const blocked = catchAll(build(pushFor(yaml), PRODUCTPAGE));
    expect(blocked.tcp).toEqual(['BlackHoleCluster']);
    expect(blocked.http).toEqual({
      name: 'block_all',
      domains: ['*'],
      routes: [{ name: 'block_all', match: { prefix: '/' }, direct_response: { status: 502 } }],
    });
    // Other namespaces keep the mesh's ALLOW_ANY.
    expect(catchAll(build(pushFor(yaml), RATINGS)).tcp).toEqual(['PassthroughCluster']);
  });

  it('ALLOW_ANY in a Sidecar overrides a REGISTRY_ONLY mesh', () => {
    const yaml = MESH + sidecar('default', 'default', `outboundTrafficPolicy: { mode: ALLOW_ANY }`);
    const b = build(pushFor(yaml, { outboundTrafficPolicy: 'REGISTRY_ONLY' }), PRODUCTPAGE);
    expect(catchAll(b).tcp).toEqual(['PassthroughCluster']);
    expect(catchAll(b).http.routes[0].route.cluster).toBe('PassthroughCluster');
    expect(catchAll(build(pushFor(yaml, { outboundTrafficPolicy: 'REGISTRY_ONLY' }), RATINGS)).tcp).toEqual([
      'BlackHoleCluster',
    ]);
  });

  it('egressProxy sends unknown destinations to the egress gateway instead of passing them through', () => {
    const yaml =
      MESH +
      sidecar(
        'default',
        'default',
        `
egress: [{ hosts: ["./*"] }]
outboundTrafficPolicy:
  mode: ALLOW_ANY
  egressProxy: { host: istio-egressgateway.istio-system.svc.cluster.local, port: { number: 80 } }`,
      );
    const b = build(pushFor(yaml), PRODUCTPAGE);
    const egress = 'outbound|80||istio-egressgateway.istio-system.svc.cluster.local';
    expect(catchAll(b).tcp).toEqual([egress]);
    expect(catchAll(b).http.routes[0].route.cluster).toBe(egress);
    // The egress proxy's cluster exists even though ./* does not import istio-system.
    expect(b.outboundClusters()).toContain(egress);
  });
});

describe('Sidecar ingress listeners', () => {
  const inbound = (b: ReturnType<typeof build>) =>
    b.listeners.filter((l) => l.traffic_direction === 'INBOUND');
  const inboundClusters = (b: ReturnType<typeof build>) =>
    b.clusters
      .filter((c) => c.name.startsWith('inbound|'))
      .map((c) => [c.name, c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address]);

  it('without ingress listeners, each workload port forwards to the app on 127.0.0.1', () => {
    const b = build(pushFor(MESH), REVIEWS);
    expect(inbound(b).map((l) => l.name)).toEqual(['inbound_127.0.0.1_15006']);
    expect(inboundClusters(b)).toEqual([['inbound|19080||', { address: '127.0.0.1', port_value: 19080 }]]);
  });

  it('defaultEndpoint redirects a port to another app port; a port the workload does not declare gets its own listener', () => {
    const yaml =
      MESH +
      sidecar(
        'reviews',
        'default',
        `
workloadSelector: { labels: { app: reviews } }
ingress:
  - port: { number: 9080, protocol: HTTP, name: http }
    defaultEndpoint: 127.0.0.1:8080
  - port: { number: 7070, protocol: TCP, name: tcp-admin }
    defaultEndpoint: 0.0.0.0:17070
    captureMode: NONE
inboundConnectionPool: { tcp: { maxConnections: 7 } }`,
      );
    const b = build(pushFor(yaml), REVIEWS);
    expect(inbound(b).map((l) => l.name)).toEqual(['inbound_127.0.0.1_15006', 'inbound_127.0.0.1_7070']);
    expect(inboundClusters(b)).toEqual([
      ['inbound|9080||', { address: '127.0.0.1', port_value: 8080 }],
      ['inbound|7070||', { address: '127.0.0.1', port_value: 17070 }],
    ]);
    const http = b.listener('inbound_127.0.0.1_15006');
    const hcm = http.filter_chains[0].filters.at(-1).typed_config;
    expect(hcm.route_config.virtual_hosts[0].routes[0].route.cluster).toBe('inbound|9080||');
    // The local-mode listener stands for workload port 9080 (what policies name).
    expect(http.metadata.filter_metadata['mizzen.io/listener'].workload_port).toBe(9080);
    expect(tcpTargets(b.listener('inbound_127.0.0.1_7070'))).toEqual(['inbound|7070||']);
    const pool = b.clusters.find((c) => c.name === 'inbound|7070||').circuit_breakers.thresholds[0];
    expect(pool.max_connections).toBe(7);
  });

  it('bind, per-listener connectionPool over inboundConnectionPool; Unix socket listeners and endpoints', () => {
    const yaml =
      MESH +
      sidecar(
        'reviews',
        'default',
        `
workloadSelector: { labels: { app: reviews } }
ingress:
  - port: { number: 9080, protocol: HTTP, name: http }
    bind: 127.0.0.2
    connectionPool: { tcp: { maxConnections: 3 } }
  - port: { number: 7070, protocol: HTTP, name: http-uds }
    defaultEndpoint: unix:///var/run/app.sock
egress:
  - port: { number: 8081, protocol: HTTP, name: http-local }
    captureMode: NONE
    bind: 127.0.0.3
    hosts: ["./*"]
  - port: { number: 0 }
    captureMode: NONE
    bind: unix:///var/run/egress.sock
    hosts: ["./*"]
  - hosts: ["./*"]
inboundConnectionPool: { tcp: { maxConnections: 7 } }`,
      );
    const push = pushFor(yaml);
    const b = build(push, REVIEWS);
    expect(inbound(b).map((l) => l.name)).toEqual(['inbound_127.0.0.2_15006', 'inbound_127.0.0.1_7070']);
    expect(inbound(b)[0].address.socket_address.address).toBe('127.0.0.2');
    // The app port stays the workload's own when defaultEndpoint is not given; a unix:// one is a pipe endpoint.
    expect(
      b.clusters
        .filter((c) => c.name.startsWith('inbound|'))
        .map((c) => [c.name, c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address]),
    ).toEqual([
      ['inbound|9080||', { socket_address: { address: '127.0.0.1', port_value: 19080 } }],
      ['inbound|7070||', { pipe: { path: '/var/run/app.sock' } }],
    ]);
    // A unix:// egress listener is a pipe the app connects to, routing by Host to every HTTP port it imports.
    expect(b.listener('unix:///var/run/egress.sock_0').address).toEqual({
      pipe: { path: '/var/run/egress.sock' },
    });
    const uds = b.routes.find((r) => r.name === 'unix:///var/run/egress.sock');
    expect(uds.virtual_hosts.map((v: { name: string }) => v.name)).toEqual([
      'httpbin.org:80',
      'reviews.default.svc.cluster.local:9080',
      'allow_any',
    ]);
    expect(uds.virtual_hosts[1].domains).toContain('reviews:9080');
    const pool = b.clusters.find((c) => c.name === 'inbound|9080||').circuit_breakers.thresholds[0];
    expect(pool.max_connections).toBe(3);
    expect(b.listener('127.0.0.3_8081').address.socket_address).toEqual({
      address: '127.0.0.3',
      port_value: 8081,
    });
    expect([...push.warnings]).toEqual([
      'Warning [IST0134] (ServiceEntry other/db) ServiceEntry addresses are required for this protocol.',
    ]);
  });

  // Real files: the proxy reads them when it compiles the listener.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-sidecar-tls-'));
  beforeAll(async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const leaf = await issueTlsCertificate({ dnsNames: ['reviews.default'], issuer: ca, ttlSeconds: 600 });
    fs.writeFileSync(path.join(dir, 'cert.pem'), leaf.certificate);
    fs.writeFileSync(path.join(dir, 'key.pem'), leaf.privateKeyPem);
    fs.writeFileSync(path.join(dir, 'ca.pem'), ca.certificate);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('tls terminates SIMPLE or MUTUAL TLS from files in place of mesh mTLS', () => {
    const yaml =
      MESH +
      sidecar(
        'reviews',
        'default',
        `
workloadSelector: { labels: { app: reviews } }
ingress:
  - port: { number: 9080, protocol: HTTPS, name: https }
    defaultEndpoint: 127.0.0.1:8080
    tls: { mode: SIMPLE, serverCertificate: ${dir}/cert.pem, privateKey: ${dir}/key.pem }
  - port: { number: 9443, protocol: HTTP, name: http-mutual }
    tls:
      mode: MUTUAL
      serverCertificate: ${dir}/cert.pem
      privateKey: ${dir}/key.pem
      caCertificates: ${dir}/ca.pem
      minProtocolVersion: TLSV1_2`,
      );
    const b = build(pushFor(yaml), REVIEWS);
    const simple = b.listener('inbound_127.0.0.1_15006');
    expect(simple.filter_chains).toHaveLength(1);
    expect(simple.filter_chains[0].filter_chain_match).toEqual({ transport_protocol: 'tls' });
    expect(simple.listener_filters.map((f: Json) => f.name)).toEqual([
      'envoy.filters.listener.tls_inspector',
    ]);
    const simpleTls = simple.filter_chains[0].transport_socket.typed_config;
    expect(simpleTls.require_client_certificate).toBe(false);
    expect(simpleTls.common_tls_context.tls_certificates).toEqual([
      { certificate_chain: { filename: `${dir}/cert.pem` }, private_key: { filename: `${dir}/key.pem` } },
    ]);
    const mutual = b.listener('inbound_127.0.0.1_9443').filter_chains[0].transport_socket.typed_config;
    expect(mutual.require_client_certificate).toBe(true);
    expect(mutual.common_tls_context.validation_context).toEqual({
      trusted_ca: { filename: `${dir}/ca.pem` },
    });
    expect(mutual.common_tls_context.tls_params).toEqual({ tls_minimum_protocol_version: 'TLSv1_2' });
  });
});
