import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { compileCluster, compileListener, compileLoadAssignment } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { proxyFromNode } from '../src/model/proxy.js';
import { gatewayNotices } from '../src/networking/gateway.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../src/networking/mesh-config.js';
import { parseMeshNetworks } from '../src/networking/mesh-networks.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
type Json = Record<string, unknown>;
const read = (name: string) => fs.readFileSync(path.join(here, 'fixtures', name), 'utf8');

const MESH: MeshConfig = {
  ...DEFAULT_MESH_CONFIG,
  meshNetworks: parseMeshNetworks(read('mesh-networks.yaml')),
};

function push(extraYaml = '', mesh = MESH): PushContext {
  const parsed = parseConfig(`${read('multi-network.yaml')}\n---\n${extraYaml}`, 'multi-network.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  // A root certificate: proxies with a workload certificate speak the mesh's mTLS.
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), mesh, 'ROOT');
}

const sidecar = (name: string, metadata: Json): XdsNode => ({
  id: `sidecar~10.9.9.9~${name}.default~default.svc.cluster.local`,
  metadata: { NAMESPACE: 'default', LABELS: { app: name }, INSTANCE_IPS: '10.9.9.9', ...metadata },
});

const EASTWEST: XdsNode = {
  id: 'router~192.0.2.20~istio-eastwestgateway.istio-system~istio-system.svc.cluster.local',
  metadata: {
    NAMESPACE: 'istio-system',
    LABELS: { istio: 'eastwestgateway', 'topology.istio.io/network': 'network2' },
    INSTANCE_IPS: '192.0.2.20',
    NETWORK: 'network2',
    MIZZEN_WORKLOAD_CERTS: true,
    MIZZEN_GATEWAY_PORTS: { 15443: 25443 },
  },
};

/** Proxies on different networks, and one that cannot speak mTLS. */
const NODES: Record<string, XdsNode> = {
  'sidecar on network1': sidecar('client', { NETWORK: 'network1', MIZZEN_WORKLOAD_CERTS: true }),
  // No NETWORK: its address falls in meshNetworks' network1 range.
  'sidecar on network1 by fromCidr': {
    ...sidecar('cidr-client', { MIZZEN_WORKLOAD_CERTS: true }),
    id: 'sidecar~10.1.7.7~cidr-client.default~default.svc.cluster.local',
    metadata: {
      NAMESPACE: 'default',
      LABELS: { app: 'cidr-client' },
      INSTANCE_IPS: '10.1.7.7',
      MIZZEN_WORKLOAD_CERTS: true,
    },
  },
  'sidecar on network2 (label)': sidecar('client2', {
    LABELS: { app: 'client2', 'topology.istio.io/network': 'network2' },
    MIZZEN_WORKLOAD_CERTS: true,
  }),
  'sidecar on network1 without a certificate': sidecar('plain', { NETWORK: 'network1' }),
  'east-west gateway of network2': EASTWEST,
};

const mine = (name: string) =>
  name.endsWith('.reviews.default.svc.cluster.local') ||
  name.includes('|reviews.') ||
  name.includes('|ratings.');

function address(e: Json): string {
  const sa = (e.endpoint as Json).address as { socket_address: { address: string; port_value: number } };
  return `${sa.socket_address.address}:${sa.socket_address.port_value}`;
}

/** What split horizon decides: per cluster, each locality's endpoints with their weights. */
function endpointsOf(resources: Record<string, Json[]>): Json {
  const out: Json = {};
  for (const cla of resources[TypeUrl.ClusterLoadAssignment] ?? []) {
    if (!mine(cla.cluster_name as string)) continue;
    out[cla.cluster_name as string] = (cla.endpoints as Json[]).map((g) => {
      const l = g.locality as Json;
      return {
        locality: [l.region, l.zone].filter(Boolean).join('/'),
        weight: g.load_balancing_weight,
        endpoints: (g.lb_endpoints as Json[]).map((e) => {
          const tls = ((e.metadata as Json).filter_metadata as Json)['envoy.transport_socket_match'];
          return `${address(e)} x${e.load_balancing_weight}${tls ? ' mtls' : ''}`;
        }),
      };
    });
  }
  return out;
}

/** The gateway's AUTO_PASSTHROUGH listener: each chain's SNI and the cluster it forwards to, and those clusters. */
function eastWestParts(resources: Record<string, Json[]>): Json {
  const listener = resources[TypeUrl.Listener]!.find((l) => l.name === '0.0.0.0_25443')!;
  const chains = (listener.filter_chains as Json[]).map((c) => {
    const tcp = (
      (c.filters as Json[]).find((f) => f.name === 'envoy.filters.network.tcp_proxy')!.typed_config as Json
    ).cluster;
    return {
      server_names: (c.filter_chain_match as Json).server_names,
      cluster: tcp,
      tls: 'transport_socket' in c,
    };
  });
  const clusters = resources[TypeUrl.Cluster]!.filter((c) => (c.name as string).startsWith('outbound_.')).map(
    (c) => ({
      name: c.name,
      type: c.type,
      eds: (c.eds_cluster_config as Json).service_name,
      tls: 'transport_socket' in c || 'transport_socket_matches' in c,
      protocolOptions: 'typed_extension_protocol_options' in c,
    }),
  );
  return {
    listener_filters: (listener.listener_filters as Json[]).map((f) => f.name),
    chains,
    clusters,
  };
}

/**
 * Golden file for split-horizon EDS and the east-west gateway: what each
 * proxy gets for reviews (local, behind network2's labelled gateway,
 * network3 without a gateway, network4 behind two meshNetworks gateways,
 * network5 behind a registryServiceName), ratings (TLS off: no crossing),
 * and the gateway's SNI chains and SNI-DNAT clusters. UPDATE_GOLDEN=1 rewrites it.
 */
describe('multi-network: split-horizon EDS and AUTO_PASSTHROUGH (golden)', () => {
  it('translates for each proxy into config Envoy and the proxy accept', () => {
    const p = push();
    const all: Json = {};
    for (const [where, node] of Object.entries(NODES)) {
      const resources = generateResources(p, proxyFromNode(node)) as unknown as Record<string, Json[]>;
      expect(() => Snapshot.build(resources)).not.toThrow();
      for (const c of resources[TypeUrl.Cluster] ?? [])
        expect(() => compileCluster(c as never)).not.toThrow();
      for (const l of resources[TypeUrl.Listener] ?? [])
        expect(() => compileListener(l as never)).not.toThrow();
      for (const cla of resources[TypeUrl.ClusterLoadAssignment] ?? [])
        expect(() => compileLoadAssignment(cla as never, String(cla.cluster_name))).not.toThrow();
      all[where] = {
        endpoints: endpointsOf(resources),
        ...(node === EASTWEST ? { eastWest: eastWestParts(resources) } : {}),
      };
    }
    const file = path.join(here, 'golden', 'multi-network.json');
    const actual = `${JSON.stringify(all, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
    expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
    expect(actual).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('replaces network2 endpoints by its gateway, weighted by how many stand behind it', () => {
    const resources = generateResources(
      push(),
      proxyFromNode(NODES['sidecar on network1']!),
    ) as unknown as Record<string, Json[]>;
    const cla = resources[TypeUrl.ClusterLoadAssignment]!.find(
      (c) => c.cluster_name === 'outbound|9080||reviews.default.svc.cluster.local',
    )!;
    const zoneA = (cla.endpoints as Json[]).find((g) => (g.locality as Json).zone === 'zone-a')!;
    // network4's endpoint is split over two gateways, so every weight is doubled: local 1 → 2, network2's 1+2 → 6.
    expect((zoneA.lb_endpoints as Json[]).map((e) => [address(e), e.load_balancing_weight])).toEqual([
      ['10.1.0.1:19080', 2],
      ['192.0.2.20:25443', 6],
    ]);
    const everywhere = (cla.endpoints as Json[]).flatMap((g) => (g.lb_endpoints as Json[]).map(address));
    // Never a remote workload's own address, nor network3's (no gateway).
    for (const remote of ['10.2.0.1', '10.2.0.2', '10.2.0.3', '10.3.0.1', '10.4.0.1', '10.5.0.1'])
      expect(everywhere.some((a) => a.startsWith(`${remote}:`))).toBe(false);
  });

  it('gives every endpoint to a mesh without networks, as before', () => {
    const resources = generateResources(
      push('', DEFAULT_MESH_CONFIG),
      proxyFromNode(sidecar('client', { MIZZEN_WORKLOAD_CERTS: true })),
    ) as unknown as Record<string, Json[]>;
    const cla = resources[TypeUrl.ClusterLoadAssignment]!.find(
      (c) => c.cluster_name === 'outbound|9080||reviews.default.svc.cluster.local',
    )!;
    const addresses = (cla.endpoints as Json[])
      .flatMap((g) => (g.lb_endpoints as Json[]).map(address))
      .sort();
    // The proxy names no network: every endpoint with an address is reachable; the address-less one is not.
    expect(addresses).toEqual([
      '10.1.0.1:19080',
      '10.2.0.1:19080',
      '10.2.0.2:19080',
      '10.2.0.3:19080',
      '10.3.0.1:19080',
      '10.4.0.1:19080',
      '10.5.0.1:19080',
    ]);
  });

  it('says why a gateway named by registryServiceName gives no address', () => {
    const p = push();
    generateResources(p, proxyFromNode(NODES['sidecar on network1']!));
    expect([...p.warnings]).toContain(
      'meshNetworks networks.network6.gateways[0]: service missing.istio-system.svc.cluster.local has no ready endpoint on port 15443; network network6 is unreachable through it',
    );
  });

  it('opens AUTO_PASSTHROUGH only on TLS servers, saying why otherwise', () => {
    const p = push(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: wrong-protocol, namespace: istio-system }
spec:
  selector: { istio: eastwestgateway }
  servers:
    - port: { number: 16443, name: https, protocol: HTTPS }
      tls: { mode: AUTO_PASSTHROUGH }
      hosts: ["*.local"]
`);
    expect(gatewayNotices(p, proxyFromNode(EASTWEST))).toEqual([
      "Gateway istio-system/wrong-protocol server https (port 16443) not opened: tls mode AUTO_PASSTHROUGH needs protocol TLS (the mesh's mTLS passed through), got HTTPS",
    ]);
  });
});

describe('meshNetworks parsing', () => {
  it('reads networks, endpoints and gateways', () => {
    expect(MESH.meshNetworks!.networks.network4).toEqual({
      endpoints: [{ fromCidr: '10.4.0.0/16' }],
      gateways: [
        { address: '192.0.2.41', port: 15443 },
        { address: '192.0.2.42', port: 15443 },
      ],
    });
    expect(parseMeshNetworks('')).toEqual({ networks: {} });
  });

  it.each([
    ['networks: [a]', 'meshNetworks: networks: must be a mapping'],
    ['netwrks: {}', 'meshNetworks: (top level).netwrks: unknown field (expected one of networks)'],
    [
      'networks: { n1: { endpoints: [{ fromCidr: 10.0.0.0/33 }] } }',
      'meshNetworks: networks.n1.endpoints[0].fromCidr: must be an address range such as 10.0.0.0/16, got "10.0.0.0/33"',
    ],
    [
      'networks: { n1: { endpoints: [{ fromCidr: 10.0.0.0/8, fromRegistry: Kubernetes }] } }',
      'meshNetworks: networks.n1.endpoints[0]: must set exactly one of fromRegistry and fromCidr',
    ],
    [
      'networks: { n1: { gateways: [{ address: 1.2.3.4 }] } }',
      'meshNetworks: networks.n1.gateways[0].port: must be a port number (1-65535), got null',
    ],
    [
      'networks: { n1: { gateways: [{ address: 1.2.3.4, port: 70000 }] } }',
      'meshNetworks: networks.n1.gateways[0].port: must be a port number (1-65535), got 70000',
    ],
    [
      'networks: { n1: { gateways: [{ address: gw.example.com, port: 15443 }] } }',
      'meshNetworks: networks.n1.gateways[0].address: must be an IP address, got "gw.example.com"',
    ],
    [
      'networks: { n1: { gateways: [{ address: 1.2.3.4, registryServiceName: a.b.svc.cluster.local, port: 1 }] } }',
      'meshNetworks: networks.n1.gateways[0]: must set exactly one of address and registryServiceName',
    ],
    [
      'networks: { n1: { gateways: [{ registryServiceName: "Not A Host", port: 15443 }] } }',
      'meshNetworks: networks.n1.gateways[0].registryServiceName: must be a service\'s host name such as istio-eastwestgateway.istio-system.svc.cluster.local, got "Not A Host"',
    ],
    [
      'networks: { n1: { gateways: [{ address: 1.2.3.4, port: 15443, weight: 2 }] } }',
      'meshNetworks: networks.n1.gateways[0].weight: unknown field (expected one of address, registryServiceName, port, locality)',
    ],
    [
      'networks: { "bad name!": { endpoints: [] } }',
      'meshNetworks: networks.bad name!: a network name must be a label value (letters, digits, -, _ and ., at most 63)',
    ],
  ])('%s is refused in one sentence naming the field', (yaml, message) => {
    expect(() => parseMeshNetworks(yaml)).toThrow(message);
  });
});
