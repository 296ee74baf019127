import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { compileCluster, compileListener } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { mergeRegistries } from '../src/kube/merged-registry.js';
import { buildKubeRegistry } from '../src/kube/registry.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
type Json = Record<string, unknown>;

/** What `sidecar-agent --capture-mode iptables` (the injected sidecar) tells pilot: no ports, its pod IP. */
const NODE: XdsNode = {
  id: 'sidecar~10.1.0.5~web-v1-6b9f7c-x2k4q.default~default.svc.cluster.local',
  metadata: {
    NAMESPACE: 'default',
    LABELS: { app: 'web', version: 'v1', 'security.istio.io/tlsMode': 'istio' },
    SERVICE_ACCOUNT: 'web',
    WORKLOAD_NAME: 'web-v1',
    INSTANCE_IPS: '10.1.0.5',
    MIZZEN_CAPTURE_MODE: 'iptables',
    MIZZEN_OUTBOUND_PORT: 15001,
    MIZZEN_WORKLOAD_CERTS: true,
    MIZZEN_PORTS: [],
  },
};

const ROOT_CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

function build(): Record<string, Json[]> {
  const text = fs.readFileSync(path.join(here, 'fixtures', 'iptables-mesh.yaml'), 'utf8');
  const parsed = parseConfig(text, 'iptables-mesh.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  const push = new PushContext(
    1,
    parsed.resources,
    buildRegistry(parsed.resources),
    DEFAULT_MESH_CONFIG,
    ROOT_CERT,
  );
  return generateResources(push, proxyFromNode(NODE)) as unknown as Record<string, Json[]>;
}

/** Each chain of a listener as `name: match → network filters`, for readable assertions. */
function chains(listener: Json): Record<string, { match: Json; filters: string[]; tls: boolean }> {
  const out: Record<string, { match: Json; filters: string[]; tls: boolean }> = {};
  for (const c of listener.filter_chains as Json[]) {
    out[String(c.name)] = {
      match: (c.filter_chain_match as Json | undefined) ?? {},
      filters: (c.filters as { name: string }[]).map((f) => f.name.replace(/^envoy\.filters\.network\./, '')),
      tls: c.transport_socket !== undefined,
    };
  }
  return out;
}

/**
 * A sidecar in iptables capture mode (what the injector gives every pod)
 * gets Istio's Kubernetes layout for its inbound side: one virtualInbound
 * listener on 15006 whose chains are picked by the port the caller dialled,
 * built by the same chain builder as local mode's per-port listeners.
 */
describe('iptables-mode sidecar: virtualInbound from the registry, as Istio builds it', () => {
  it('matches the golden file, and every resource encodes as Envoy and compiles in the proxy', () => {
    const resources = build();
    expect(() => Snapshot.build(resources as never)).not.toThrow();
    for (const l of resources[TypeUrl.Listener] ?? [])
      expect(() => compileListener(l as never)).not.toThrow();
    for (const c of resources[TypeUrl.Cluster] ?? []) expect(() => compileCluster(c as never)).not.toThrow();
    const file = path.join(here, 'golden', 'sidecar-iptables.json');
    const actual = `${JSON.stringify(resources, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
    expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
    expect(actual).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('one bound inbound listener, virtualInbound on 0.0.0.0:15006, beside virtualOutbound; no per-port inbound listeners', () => {
    const listeners = build()[TypeUrl.Listener]!;
    const inbound = listeners.filter((l) => l.traffic_direction === 'INBOUND');
    expect(inbound.map((l) => l.name)).toEqual(['virtualInbound']);
    const vi = inbound[0]!;
    expect(vi.address).toEqual({ socket_address: { address: '0.0.0.0', port_value: 15006 } });
    expect((vi.listener_filters as { name: string }[]).map((f) => f.name)).toEqual([
      'envoy.filters.listener.original_dst',
      'envoy.filters.listener.tls_inspector',
      'envoy.filters.listener.http_inspector',
    ]);
    expect(listeners.find((l) => l.name === 'virtualOutbound')?.address).toEqual({
      socket_address: { address: '0.0.0.0', port_value: 15001 },
    });
  });

  it('chains per target port under PeerAuthentication, passthrough chains for the rest, a blackhole for 15006', () => {
    const vi = build()[TypeUrl.Listener]!.find((l) => l.name === 'virtualInbound')!;
    const c = chains(vi);
    expect(c['virtualInbound-blackhole']).toEqual({
      match: { destination_port: 15006 },
      // Istio's stats filter before every tcp_proxy: connections to the blackhole are counted too.
      filters: ['istio.stats', 'tcp_proxy'],
      tls: false,
    });
    // HTTP 8080 → 18080, STRICT: mTLS only, RBAC in the connection manager.
    expect(c['inbound|18080||-mtls']).toEqual({
      match: { destination_port: 18080, transport_protocol: 'tls' },
      filters: ['http_connection_manager'],
      tls: true,
    });
    expect(c['inbound|18080||']).toBeUndefined();
    // gRPC 7070, STRICT.
    expect(c['inbound|7070||-mtls']?.match).toEqual({ destination_port: 7070, transport_protocol: 'tls' });
    // Port 5000 of unknown protocol: HTTP or TCP by the first bytes, inside mTLS.
    expect(c['inbound|5000||-http-mtls']?.match).toEqual({
      destination_port: 5000,
      transport_protocol: 'tls',
      application_protocols: ['h2', 'http/1.1'],
    });
    expect(c['inbound|5000||-tcp-mtls']?.match).toEqual({
      destination_port: 5000,
      transport_protocol: 'tls',
    });
    // TCP 9000, port-level DISABLE: plaintext only; Istio's metadata exchange (idle without TLS), network
    // RBAC and the stats filter before the TCP proxy.
    expect(c['inbound|9000||']).toEqual({
      match: { destination_port: 9000 },
      filters: ['istio.metadata_exchange', 'rbac', 'istio.stats', 'tcp_proxy'],
      tls: false,
    });
    // Every other port: the passthrough under the workload's STRICT mode ...
    expect(c['virtualInbound-catchall-http-mtls']?.match).toEqual({
      transport_protocol: 'tls',
      application_protocols: ['h2', 'http/1.1'],
    });
    expect(c['virtualInbound-mtls']?.match).toEqual({ transport_protocol: 'tls' });
    expect(c.virtualInbound).toBeUndefined();
    // ... and port 3000, PERMISSIVE at port level, its own passthrough chains taking plaintext too.
    expect(c['virtualInbound_3000']?.match).toEqual({
      destination_port: 3000,
      transport_protocol: 'raw_buffer',
    });
    expect(c['virtualInbound-catchall-http_3000']?.match).toEqual({
      destination_port: 3000,
      application_protocols: ['http/1.1', 'h2c'],
      transport_protocol: 'raw_buffer',
    });
    expect(c['virtualInbound-catchall-http_3000-mtls']?.tls).toBe(true);
  });

  it('the HTTP chains are the connection manager local mode builds: XFCC, upgrades, RBAC, stats, the inbound route', () => {
    const vi = build()[TypeUrl.Listener]!.find((l) => l.name === 'virtualInbound')!;
    const chain = (vi.filter_chains as Json[]).find((x) => x.name === 'inbound|18080||-mtls')!;
    const hcm = ((chain.filters as Json[])[0] as { typed_config: Json }).typed_config;
    expect(hcm.stat_prefix).toBe('inbound_0.0.0.0_18080');
    expect(hcm.forward_client_cert_details).toBe('APPEND_FORWARD');
    expect(hcm.upgrade_configs).toEqual([{ upgrade_type: 'websocket' }]);
    expect((hcm.http_filters as { name: string }[]).map((f) => f.name)).toEqual([
      'envoy.filters.http.rbac',
      'istio.stats',
      'envoy.filters.http.router',
    ]);
    const routes = hcm.route_config as { name: string; virtual_hosts: Json[] };
    expect(routes.name).toBe('inbound|18080||');
    expect(routes.virtual_hosts[0]).toMatchObject({
      name: 'inbound|http|8080',
      routes: [{ route: { cluster: 'inbound|18080||' } }],
    });
  });

  it("inbound clusters go to the original destination (the pod's own IP and port) from 127.0.0.6", () => {
    const clusters = build()[TypeUrl.Cluster]!;
    const byName = new Map(clusters.map((c) => [String(c.name), c]));
    const bind = { source_address: { address: '127.0.0.6', port_value: 0 } };
    for (const name of ['inbound|18080||', 'inbound|7070||', 'inbound|5000||', 'inbound|9000||']) {
      expect(byName.get(name)).toMatchObject({
        type: 'ORIGINAL_DST',
        lb_policy: 'CLUSTER_PROVIDED',
        upstream_bind_config: bind,
      });
      expect(byName.get(name)?.load_assignment).toBeUndefined();
    }
    expect(byName.get('InboundPassthroughCluster')).toMatchObject({
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
      upstream_bind_config: bind,
    });
    // gRPC is spoken over HTTP/2 to the app, as in local mode.
    expect(JSON.stringify(byName.get('inbound|7070||'))).toContain('http2_protocol_options');
    // A service whose endpoints are elsewhere gets no inbound cluster.
    expect([...byName.keys()].filter((n) => n.startsWith('inbound|'))).toHaveLength(4);
  });
});

describe('iptables-mode sidecar with Sidecar ingress listeners', () => {
  it('captured ingress ports become virtualInbound chains, captureMode NONE ones bound listeners; defaultEndpoints as given', () => {
    const text = `${fs.readFileSync(path.join(here, 'fixtures', 'iptables-mesh.yaml'), 'utf8')}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: web, namespace: default, creationTimestamp: "2026-01-01T00:00:06Z" }
spec:
  workloadSelector: { labels: { app: web } }
  ingress:
    - port: { number: 8080, protocol: HTTP, name: http }
      defaultEndpoint: 0.0.0.0:18080
    - port: { number: 9090, protocol: TCP, name: tcp-admin }
      captureMode: NONE
      bind: 0.0.0.0
      defaultEndpoint: 127.0.0.1:19090
`;
    const parsed = parseConfig(text, 'sidecar-ingress.yaml');
    expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
    const push = new PushContext(
      1,
      parsed.resources,
      buildRegistry(parsed.resources),
      DEFAULT_MESH_CONFIG,
      ROOT_CERT,
    );
    const resources = generateResources(push, proxyFromNode(NODE)) as unknown as Record<string, Json[]>;
    const inbound = resources[TypeUrl.Listener]!.filter((l) => l.traffic_direction === 'INBOUND');
    expect(inbound.map((l) => l.name)).toEqual(['virtualInbound', 'inbound_0.0.0.0_9090']);
    const vi = chains(inbound[0]!);
    expect(vi['inbound|8080||-mtls']?.match).toEqual({ destination_port: 8080, transport_protocol: 'tls' });
    expect(Object.keys(vi).filter((n) => n.startsWith('inbound|'))).toEqual(['inbound|8080||-mtls']);
    expect(inbound[1]!.address).toEqual({ socket_address: { address: '0.0.0.0', port_value: 9090 } });
    const clusters = new Map(resources[TypeUrl.Cluster]!.map((c) => [String(c.name), c]));
    // The instance IP, from 127.0.0.6; loopback as it is.
    expect(clusters.get('inbound|8080||')).toMatchObject({
      type: 'STATIC',
      upstream_bind_config: { source_address: { address: '127.0.0.6' } },
    });
    expect(JSON.stringify(clusters.get('inbound|8080||'))).toContain('10.1.0.5');
    expect(clusters.get('inbound|9090||')?.type).toBe('STATIC');
    expect(clusters.get('inbound|9090||')?.upstream_bind_config).toBeUndefined();
  });
});

describe("a sidecar's service targets, found by its IP", () => {
  it('Kubernetes: the Services selecting the pod at that IP, ready or not, named target ports resolved; merged with ServiceEntries', () => {
    const kube = buildKubeRegistry({
      services: [
        {
          metadata: { name: 'web', namespace: 'shop' },
          spec: {
            selector: { app: 'web' },
            ports: [
              { name: 'http', port: 80, targetPort: 'http-app' as never },
              { name: 'tcp-db', port: 5432 },
            ],
          },
        },
        {
          metadata: { name: 'other', namespace: 'shop' },
          spec: { selector: { app: 'other' }, ports: [{ port: 80 }] },
        },
      ],
      // Not ready: its EndpointSlice entry does not serve yet, but its listeners must be there for it to become ready.
      endpointSlices: [],
      pods: [
        {
          metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
          spec: { containers: [{ name: 'app', ports: [{ name: 'http-app', containerPort: 8080 }] }] },
          status: { podIP: '10.2.0.7' },
        },
      ],
      nodes: [],
      namespaces: [],
    });
    const entries = parseConfig(
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: vm, namespace: shop }
spec:
  hosts: [legacy.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7000, name: tcp-legacy }]
  endpoints: [{ address: 10.2.0.7 }, { address: 10.2.0.8 }]
`,
      'vm.yaml',
    );
    const merged = mergeRegistries([kube, buildRegistry(entries.resources)]);
    expect(merged.serviceTargets('10.2.0.7')).toEqual([
      {
        hostname: 'legacy.shop.svc.cluster.local',
        name: 'tcp-legacy',
        port: 7000,
        targetPort: 7000,
        protocol: 'TCP',
      },
      { hostname: 'web.shop.svc.cluster.local', name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' },
      {
        hostname: 'web.shop.svc.cluster.local',
        name: 'tcp-db',
        port: 5432,
        targetPort: 5432,
        protocol: 'TCP',
      },
    ]);
    expect(merged.serviceTargets('10.2.0.99')).toEqual([]);
  });
});
