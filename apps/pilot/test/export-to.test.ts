import { describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../src/kube/mesh-config.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { build, httpService, type Json, pushFor, sidecarNode } from './scoping.js';

const DEFAULT_CLIENT = sidecarNode('client', 'default', { app: 'client' });
const TEAM_CLIENT = sidecarNode('client', 'team', { app: 'client' });
const THIRD_CLIENT = sidecarNode('client', 'third', { app: 'client' });

/** api.team: a service in namespace team, with a VirtualService and DestinationRule of its own there. */
function mesh(opts: { se?: string; vs?: string; dr?: string } = {}): string {
  const exportTo = (list?: string) => (list ? `exportTo: ${list}` : '');
  return `
${httpService('api', 'team', 9080, `  ${exportTo(opts.se)}`)}
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api, namespace: team }
spec:
  hosts: [api]
  ${exportTo(opts.vs)}
  http: [{ route: [{ destination: { host: api, subset: v1 } }], timeout: 7s }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: team }
spec:
  host: api
  ${exportTo(opts.dr)}
  subsets: [{ name: v1, labels: { version: v1 } }]
---
`;
}

const clustersOf = (yaml: string, node = DEFAULT_CLIENT, meshCfg = {}) =>
  build(pushFor(yaml, meshCfg), node).outboundClusters();

const routeOf = (yaml: string, node = DEFAULT_CLIENT, meshCfg = {}): Json =>
  build(pushFor(yaml, meshCfg), node)
    .route('9080')
    .virtual_hosts.find((v: Json) => v.name.startsWith('api.'))?.routes[0];

describe('exportTo', () => {
  it('by default every namespace sees the service, its VirtualService and its DestinationRule', () => {
    expect(clustersOf(mesh())).toEqual(
      ['outbound|9080||api.team.svc.cluster.local', 'outbound|9080|v1|api.team.svc.cluster.local'].sort(),
    );
    expect(routeOf(mesh()).route).toMatchObject({
      cluster: 'outbound|9080|v1|api.team.svc.cluster.local',
      timeout: '7s',
    });
  });

  it('ServiceEntry exportTo "." hides the service from other namespaces; named namespaces see it', () => {
    expect(clustersOf(mesh({ se: '["."]' }))).toEqual([]);
    expect(clustersOf(mesh({ se: '["."]' }), TEAM_CLIENT)).toContain(
      'outbound|9080||api.team.svc.cluster.local',
    );
    expect(clustersOf(mesh({ se: '[default]' }))).toContain('outbound|9080||api.team.svc.cluster.local');
    expect(clustersOf(mesh({ se: '[default]' }), THIRD_CLIENT)).toEqual([]);
    // "~" exports it nowhere, not even to its own namespace.
    expect(clustersOf(mesh({ se: '["~"]' }), TEAM_CLIENT)).toEqual([]);
  });

  it('VirtualService exportTo "." keeps its routing to its own namespace', () => {
    expect(routeOf(mesh({ vs: '["."]' })).route.cluster).toBe('outbound|9080||api.team.svc.cluster.local');
    expect(routeOf(mesh({ vs: '["."]' })).name).toBe('default');
    expect(routeOf(mesh({ vs: '["."]' }), TEAM_CLIENT).route.cluster).toBe(
      'outbound|9080|v1|api.team.svc.cluster.local',
    );
    expect(routeOf(mesh({ vs: '[team, default]' })).route.timeout).toBe('7s');
    expect(routeOf(mesh({ vs: '[team, default]' }), THIRD_CLIENT).route.timeout).toBe('0s');
  });

  it('DestinationRule exportTo "." keeps its subsets and policies to its own namespace', () => {
    const hidden = mesh({ dr: '["."]', vs: '["."]' });
    expect(clustersOf(hidden)).toEqual(['outbound|9080||api.team.svc.cluster.local']);
    expect(clustersOf(hidden, TEAM_CLIENT)).toContain('outbound|9080|v1|api.team.svc.cluster.local');
  });

  it('mesh config defaults apply to resources that set no exportTo; their own exportTo wins', () => {
    const privateByDefault = {
      defaultServiceExportTo: ['.'],
      defaultVirtualServiceExportTo: ['.'],
      defaultDestinationRuleExportTo: ['.'],
    };
    expect(clustersOf(mesh(), DEFAULT_CLIENT, privateByDefault)).toEqual([]);
    expect(clustersOf(mesh(), TEAM_CLIENT, privateByDefault)).toContain(
      'outbound|9080|v1|api.team.svc.cluster.local',
    );
    const seOnly = mesh({ se: '["*"]' });
    expect(clustersOf(seOnly, DEFAULT_CLIENT, privateByDefault)).toEqual([
      'outbound|9080||api.team.svc.cluster.local',
    ]);
    expect(routeOf(seOnly, DEFAULT_CLIENT, privateByDefault).name).toBe('default');
  });

  it('gateways see VirtualServices exported to their namespace, the mesh default included', () => {
    const yaml = `${mesh()}
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: api-gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*/api.example.com"] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api-edge, namespace: team }
spec:
  hosts: [api.example.com]
  gateways: [istio-system/api-gw]
  http: [{ route: [{ destination: { host: api } }] }]
`;
    const gateway = {
      id: 'router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local',
      metadata: {
        NAMESPACE: 'istio-system',
        LABELS: { istio: 'ingressgateway' },
        INSTANCE_IPS: '127.0.0.1',
        MIZZEN_CAPTURE_MODE: 'proxy',
        MIZZEN_GATEWAY_PORTS: { '80': 8080 },
      },
    };
    const domains = (meshCfg = {}) =>
      build(pushFor(yaml, meshCfg), gateway).routes.flatMap((r: Json) =>
        r.virtual_hosts.flatMap((v: Json) => v.domains),
      );
    expect(domains()).toContain('api.example.com');
    expect(domains({ defaultVirtualServiceExportTo: ['.'] })).not.toContain('api.example.com');
  });

  it('reads the defaults from mesh config and rejects bad ones with the field and reason', () => {
    const parsed = parseMeshConfig(
      'defaultServiceExportTo: ["."]\ndefaultVirtualServiceExportTo: ["*"]\ndefaultDestinationRuleExportTo: [team]\n',
      DEFAULT_MESH_CONFIG,
    );
    expect(parsed).toMatchObject({
      defaultServiceExportTo: ['.'],
      defaultVirtualServiceExportTo: ['*'],
      defaultDestinationRuleExportTo: ['team'],
    });
    expect(() => parseMeshConfig('defaultVirtualServiceExportTo: "*"', DEFAULT_MESH_CONFIG)).toThrow(
      'mesh config: defaultVirtualServiceExportTo must be a list of namespaces, "." or "*"',
    );
    expect(() => parseMeshConfig('defaultVirtualServiceExportTo: ["*", team]', DEFAULT_MESH_CONFIG)).toThrow(
      'mesh config: defaultVirtualServiceExportTo: "*" exports to every namespace and cannot be combined with other entries',
    );
    expect(() => parseMeshConfig('defaultDestinationRuleExportTo: ["~"]', DEFAULT_MESH_CONFIG)).toThrow(
      /defaultDestinationRuleExportTo: "~" is not a valid namespace/,
    );
    expect(
      parseMeshConfig('defaultServiceExportTo: ["~"]', DEFAULT_MESH_CONFIG).defaultServiceExportTo,
    ).toEqual(['~']);
  });
});
