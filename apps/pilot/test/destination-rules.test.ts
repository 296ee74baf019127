import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { compileCluster, compileListener } from '@mizzen/proxy';
import { encodeResource, Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../src/kube/mesh-config.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
type Json = Record<string, unknown>;

/** grpc-js-xds's own CDS validation: what a proxyless client would say about a cluster. */
const { ClusterResourceType } = createRequire(import.meta.url)(
  '@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type.js',
) as {
  ClusterResourceType: {
    get(): { decode(ctx: unknown, any: unknown): { name: string; error?: string } };
  };
};

function grpcVerdict(cluster: Json): string | undefined {
  const any = encodeResource(TypeUrl.Cluster, cluster).any;
  return ClusterResourceType.get().decode(
    { bootstrap: { certificateProviders: {} }, server: {} },
    { type_url: any.type_url, value: Buffer.from(any.value) },
  ).error;
}

const SIDECAR: XdsNode = {
  id: 'sidecar~10.9.9.9~client.default~default.svc.cluster.local',
  metadata: { NAMESPACE: 'default', LABELS: { app: 'client' }, INSTANCE_IPS: '10.9.9.9' },
};
const GRPC: XdsNode = {
  id: 'sidecar~10.9.9.8~grpc-client.default~default.svc.cluster.local',
  metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' },
};

const HOSTS = [
  'pool.default',
  'upgrade.default',
  'tcp-pool.default',
  'lb.default',
  'outlier.default',
  'egress-proxy.example.com',
  'haproxy.default',
  'budget.default',
];
const mine = (name: string) => HOSTS.some((h) => name.includes(`|${h}`));

/** A mesh-wide keepalive: probes after 10 minutes idle, every 75 s, 7 times. */
const MESH_KEEPALIVE = 'tcpKeepalive: { time: 600s, interval: 75s, probes: 7 }';

function push(mesh: MeshConfig = DEFAULT_MESH_CONFIG): PushContext {
  const text = fs.readFileSync(path.join(here, 'fixtures', 'destination-rules.yaml'), 'utf8');
  const parsed = parseConfig(text, 'destination-rules.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), mesh);
}

function resourcesFor(p: PushContext, node: XdsNode): Record<string, Json[]> {
  return generateResources(p, proxyFromNode(node)) as unknown as Record<string, Json[]>;
}

/** The clusters, TCP proxies and hash policies the fixture's DestinationRules turn into for one proxy. */
function translated(resources: Record<string, Json[]>): Json {
  const clusters: Json = {};
  for (const c of resources[TypeUrl.Cluster] ?? []) {
    if (!mine(c.name as string)) continue;
    const { name, metadata, ...rest } = c;
    const { istio: _istio, ...ours } = ((metadata as Json | undefined)?.filter_metadata ?? {}) as Json;
    clusters[name as string] = Object.keys(ours).length ? { ...rest, filter_metadata: ours } : rest;
  }
  const tcpProxies: Json = {};
  for (const l of resources[TypeUrl.Listener] ?? []) {
    for (const chain of (l.filter_chains as Json[] | undefined) ?? []) {
      for (const f of (chain.filters as Json[] | undefined) ?? []) {
        const typed = f.typed_config as Json | undefined;
        if (!String(typed?.['@type']).endsWith('TcpProxy')) continue;
        const { '@type': _t, stat_prefix: _s, ...rest } = typed!;
        const target = (rest.cluster as string | undefined) ?? JSON.stringify(rest.weighted_clusters);
        if (mine(target)) tcpProxies[`${l.name}`] = rest;
      }
    }
  }
  const hashPolicies: Json = {};
  for (const rc of resources[TypeUrl.RouteConfiguration] ?? []) {
    for (const vh of (rc.virtual_hosts as Json[]) ?? []) {
      for (const r of (vh.routes as Json[]) ?? []) {
        const action = r.route as Json | undefined;
        if (action?.hash_policy && mine(String(action.cluster)))
          hashPolicies[String(action.cluster)] = action.hash_policy;
      }
    }
  }
  return { clusters, tcpProxies, hashPolicies };
}

/**
 * Golden file for every DestinationRule field's translation (connection pool,
 * protocol upgrade, load balancing, consistent hashing, outlier detection,
 * tunnel, PROXY protocol, retry budget, port-level and per-subset policies),
 * for a sidecar, under the mesh's default and explicit h2UpgradePolicy.
 * UPDATE_GOLDEN=1 rewrites it; read the diff.
 */
describe('DestinationRule translation (golden)', () => {
  it('translates each field into config the proxy compiles and Envoy encodes', () => {
    const meshes: Record<string, MeshConfig> = {
      'mesh default': DEFAULT_MESH_CONFIG,
      'mesh h2UpgradePolicy UPGRADE': parseMeshConfig('h2UpgradePolicy: UPGRADE', DEFAULT_MESH_CONFIG),
      'mesh h2UpgradePolicy DO_NOT_UPGRADE': parseMeshConfig(
        'h2UpgradePolicy: DO_NOT_UPGRADE',
        DEFAULT_MESH_CONFIG,
      ),
      'mesh tcpKeepalive': parseMeshConfig(MESH_KEEPALIVE, DEFAULT_MESH_CONFIG),
    };
    const all: Json = {};
    for (const [name, mesh] of Object.entries(meshes)) {
      const resources = resourcesFor(push(mesh), SIDECAR);
      expect(() => Snapshot.build(resources)).not.toThrow();
      for (const c of resources[TypeUrl.Cluster] ?? [])
        expect(() => compileCluster(c as never)).not.toThrow();
      for (const l of resources[TypeUrl.Listener] ?? [])
        expect(() => compileListener(l as never)).not.toThrow();
      all[name] = translated(resources);
    }
    const file = path.join(here, 'golden', 'destination-rules.json');
    const actual = `${JSON.stringify(all, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
    expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
    expect(actual).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('gives proxyless gRPC clients clusters grpc-js-xds accepts, from the same rules', () => {
    const resources = resourcesFor(push(), GRPC);
    const clusters = (resources[TypeUrl.Cluster] ?? []).filter((c) => mine(c.name as string));
    expect(clusters.length).toBeGreaterThan(10);
    const refused = clusters.map((c) => [c.name, grpcVerdict(c)]).filter(([, error]) => error !== undefined);
    expect(refused).toEqual([]);
  });

  it('MeshConfig tcpKeepalive: every upstream cluster without its own keepalive gets it, a rule replaces it field by field', () => {
    const iptables: XdsNode = {
      id: 'sidecar~10.9.9.7~web.default~default.svc.cluster.local',
      metadata: {
        NAMESPACE: 'default',
        LABELS: { app: 'web' },
        INSTANCE_IPS: '10.9.9.7',
        MIZZEN_CAPTURE_MODE: 'iptables',
        MIZZEN_PORTS: [{ name: 'http', port: 8080, targetPort: 8080, listenPort: 15006, protocol: 'HTTP' }],
      },
    };
    const keepaliveOf = (mesh: MeshConfig) => {
      const clusters = resourcesFor(push(mesh), iptables)[TypeUrl.Cluster] ?? [];
      return Object.fromEntries(
        clusters.map((c) => [
          c.name,
          (c.upstream_connection_options as Json | undefined)?.tcp_keepalive ?? 'none',
        ]),
      );
    };
    const mesh = { keepalive_time: 600, keepalive_interval: 75, keepalive_probes: 7 };
    const withMesh = keepaliveOf(parseMeshConfig(MESH_KEEPALIVE, DEFAULT_MESH_CONFIG));
    for (const name of [
      'outbound|8080||lb.default.svc.cluster.local',
      'inbound|8080||',
      'PassthroughCluster',
      'InboundPassthroughCluster',
    ])
      expect(withMesh[name], name).toEqual(mesh);
    // The black hole connects nowhere; Istio leaves it alone too.
    expect(withMesh.BlackHoleCluster).toBe('none');
    // The rule's own keepalive wins for each field it sets, the mesh's fills the rest.
    expect(withMesh['outbound|8080||pool.default.svc.cluster.local']).toEqual({
      keepalive_time: 30,
      keepalive_interval: 5,
      keepalive_probes: 4,
    });
    expect(withMesh['outbound|9090||pool.default.svc.cluster.local']).toEqual({
      ...mesh,
      keepalive_time: 45,
    });
    // Without it, only the rules' own.
    const without = keepaliveOf(DEFAULT_MESH_CONFIG);
    expect(without['outbound|8080||lb.default.svc.cluster.local']).toBe('none');
    expect(without.PassthroughCluster).toBe('none');
    expect(without['outbound|9090||pool.default.svc.cluster.local']).toEqual({ keepalive_time: 45 });
  });

  it('reads MeshConfig tcpKeepalive as Istio checks it, and refuses a bad value naming the field', () => {
    expect(parseMeshConfig(MESH_KEEPALIVE, DEFAULT_MESH_CONFIG).tcpKeepalive).toEqual({
      time: '600s',
      interval: '75s',
      probes: 7,
    });
    expect(parseMeshConfig('{}', DEFAULT_MESH_CONFIG).tcpKeepalive).toBeUndefined();
    expect(() => parseMeshConfig('tcpKeepalive: { probes: 200 }', DEFAULT_MESH_CONFIG)).toThrow(
      'mesh config: tcpKeepalive.probes: must be at most 127, got 200',
    );
    expect(() => parseMeshConfig('tcpKeepalive: { time: soon }', DEFAULT_MESH_CONFIG)).toThrow(
      /^mesh config: tcpKeepalive\.time: /,
    );
    expect(() => parseMeshConfig('tcpKeepalive: { tme: 5s }', DEFAULT_MESH_CONFIG)).toThrow(
      /^mesh config: tcpKeepalive/,
    );
  });

  it('reads MeshConfig h2UpgradePolicy, and refuses a value Istio does not have in one sentence', () => {
    expect(parseMeshConfig('h2UpgradePolicy: UPGRADE', DEFAULT_MESH_CONFIG).h2UpgradePolicy).toBe('UPGRADE');
    expect(parseMeshConfig('{}', DEFAULT_MESH_CONFIG).h2UpgradePolicy).toBeUndefined();
    expect(() => parseMeshConfig('h2UpgradePolicy: ALWAYS', DEFAULT_MESH_CONFIG)).toThrow(
      'mesh config: h2UpgradePolicy must be UPGRADE or DO_NOT_UPGRADE, got "ALWAYS"',
    );
  });
});
