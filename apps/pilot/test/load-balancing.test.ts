import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { compileCluster, compileLoadAssignment } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../src/kube/mesh-config.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
type Json = Record<string, unknown>;

const sidecar = (name: string, locality: XdsNode['locality'], labels: Record<string, string>): XdsNode => ({
  id: `sidecar~10.9.9.9~${name}.default~default.svc.cluster.local`,
  ...(locality ? { locality } : {}),
  metadata: { NAMESPACE: 'default', LABELS: { app: 'client', ...labels }, INSTANCE_IPS: '10.9.9.9' },
});

/** Proxies in different places: what each gets depends on where it runs. */
const NODES: Record<string, XdsNode> = {
  'us-east/zone-a/rack1': sidecar(
    'east',
    { region: 'us-east', zone: 'zone-a', sub_zone: 'rack1' },
    { tier: 'gold' },
  ),
  'us-west/zone-a': sidecar('west', { region: 'us-west', zone: 'zone-a' }, { tier: 'silver' }),
  'no locality': sidecar('nowhere', undefined, {}),
  'proxyless gRPC in us-east/zone-a/rack1': {
    id: 'sidecar~10.9.9.8~grpc-client.default~default.svc.cluster.local',
    locality: { region: 'us-east', zone: 'zone-a', sub_zone: 'rack1' },
    metadata: { GENERATOR: 'grpc', NAMESPACE: 'default', LABELS: { tier: 'gold' } },
  },
};

const SERVICES = ['proximity', 'failover', 'labels', 'distribute', 'warmup', 'no-outlier'];
const mine = (name: string) => SERVICES.some((s) => name.includes(`|${s}.default.svc.cluster.local`));

function push(mesh = DEFAULT_MESH_CONFIG): PushContext {
  const text = fs.readFileSync(path.join(here, 'fixtures', 'load-balancing.yaml'), 'utf8');
  const parsed = parseConfig(text, 'load-balancing.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), mesh);
}

const CLUSTER_FIELDS = [
  'lb_policy',
  'common_lb_config',
  'round_robin_lb_config',
  'least_request_lb_config',
  'ring_hash_lb_config',
  'outlier_detection',
];

/** What load balancing puts in a proxy's config: cluster LB fields, each assignment's localities, retry policies. */
function lbParts(resources: Record<string, Json[]>): Json {
  const clusters: Json = {};
  for (const c of resources[TypeUrl.Cluster] ?? []) {
    if (!mine(c.name as string)) continue;
    clusters[c.name as string] = Object.fromEntries(
      CLUSTER_FIELDS.filter((f) => c[f] !== undefined).map((f) => [f, c[f]]),
    );
  }
  const endpoints: Json = {};
  for (const cla of resources[TypeUrl.ClusterLoadAssignment] ?? []) {
    if (!mine(cla.cluster_name as string)) continue;
    endpoints[cla.cluster_name as string] = (cla.endpoints as Json[]).map((g) => {
      const l = g.locality as Json;
      return {
        locality: [l.region, l.zone, l.sub_zone].filter(Boolean).join('/'),
        priority: g.priority ?? 0,
        weight: g.load_balancing_weight,
        endpoints: (g.lb_endpoints as Json[]).map(
          (e) => ((e.endpoint as Json).address as { socket_address: Json }).socket_address.address,
        ),
      };
    });
  }
  const retries: Json = {};
  for (const rc of resources[TypeUrl.RouteConfiguration] ?? []) {
    for (const vh of (rc.virtual_hosts as Json[]) ?? []) {
      for (const r of (vh.routes as Json[]) ?? []) {
        const policy = (r.route as Json | undefined)?.retry_policy as Json | undefined;
        if (policy?.retry_priority) retries[`${rc.name}/${vh.name}`] = policy;
      }
    }
  }
  return { clusters, endpoints, retries };
}

/**
 * Golden file for DestinationRule localityLbSetting (distribute, failover,
 * failoverPriority, enabled), warmup / warmupDurationSecs and
 * VirtualService retryRemoteLocalities, seen from proxies in different
 * localities. UPDATE_GOLDEN=1 rewrites it; read the diff.
 */
describe('locality load balancing, warmup and retryRemoteLocalities (golden)', () => {
  it('translates each field for each proxy, into config Envoy, the proxy and gRPC accept', () => {
    const p = push();
    const all: Json = {};
    for (const [where, node] of Object.entries(NODES)) {
      const resources = generateResources(p, proxyFromNode(node)) as unknown as Record<string, Json[]>;
      expect(() => Snapshot.build(resources)).not.toThrow();
      // A proxyless client's config is gRPC's (failure-percentage ejection…), not the proxy's.
      const proxyless = (node.metadata as Json | undefined)?.GENERATOR === 'grpc';
      for (const c of proxyless ? [] : (resources[TypeUrl.Cluster] ?? []))
        expect(() => compileCluster(c as never)).not.toThrow();
      for (const cla of resources[TypeUrl.ClusterLoadAssignment] ?? [])
        expect(() => compileLoadAssignment(cla as never, String(cla.cluster_name))).not.toThrow();
      all[where] = lbParts(resources);
    }
    const file = path.join(here, 'golden', 'load-balancing.json');
    const actual = `${JSON.stringify(all, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
    expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
    expect(actual).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('warns that failover needs outlier detection, as Istio does', () => {
    const text = fs.readFileSync(path.join(here, 'fixtures', 'load-balancing.yaml'), 'utf8');
    const warnings = parseConfig(text, 'load-balancing.yaml').issues.filter((i) => i.severity === 'warning');
    expect(warnings.map((w) => w.message)).toEqual([
      'locality failover only happens with outlierDetection set in the same traffic policy',
    ]);
  });

  it('takes MeshConfig localityLbSetting for rules without their own, and rejects a bad one in one sentence', () => {
    const east = proxyFromNode(NODES['us-east/zone-a/rack1']!);
    const localities = (p: PushContext, service: string) => {
      const resources = generateResources(p, east) as unknown as Record<string, Json[]>;
      const cla = resources[TypeUrl.ClusterLoadAssignment]!.find(
        (c) => c.cluster_name === `outbound|5000||${service}.default.svc.cluster.local`,
      )!;
      return (cla.endpoints as Json[]).map((g) => [g.priority ?? 0, g.load_balancing_weight]);
    };
    // Turned off mesh-wide: no failover by proximity for a rule with only outlierDetection…
    const off = push(parseMeshConfig('localityLbSetting: { enabled: false }', DEFAULT_MESH_CONFIG));
    expect(localities(off, 'proximity')).toEqual([
      [0, 1],
      [0, 1],
      [0, 1],
      [0, 3],
      [0, 1],
    ]);
    // …while a rule's own setting still applies.
    expect(localities(off, 'failover').map(([p]) => p)).toEqual([0, 1, 2, 3, 4]);
    // A mesh-wide distribute for every rule that has none.
    const split = push(
      parseMeshConfig(
        'localityLbSetting: { distribute: [{ from: "us-east/*", to: { "us-east/*": 90, "eu-west/*": 10 } }] }',
        DEFAULT_MESH_CONFIG,
      ),
    );
    expect(localities(split, 'proximity')).toEqual([
      [0, 30],
      [0, 30],
      [0, 30],
      [0, 10],
      [0, 1],
    ]);
    expect(() =>
      parseMeshConfig(
        'localityLbSetting: { distribute: [{ from: "a/*", to: { "a/*": 60 } }] }',
        DEFAULT_MESH_CONFIG,
      ),
    ).toThrow('mesh config: localityLbSetting.distribute[0].to: locality weights must add up to 100, got 60');
  });
});
