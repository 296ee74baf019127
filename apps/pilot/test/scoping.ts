import { parseConfig } from '@mizzen/api';
import { compileListener, RouteTable } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { expect } from 'vitest';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

/**
 * Helpers shared by the scoping tests (Sidecar, exportTo, delegate
 * VirtualServices, TCP routes by source): a mesh from YAML, a sidecar node,
 * and the Envoy config pilot builds for it — checked as real Envoy messages
 * and compiled by the proxy that will run it.
 */

// biome-ignore lint/suspicious/noExplicitAny: the tests walk Envoy JSON by path, as a reader of config_dump would
export type Json = any;

/** An HTTP service from a ServiceEntry with one inline endpoint. */
export function httpService(name: string, namespace: string, port = 9080, extra = ''): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  hosts: [${name}.${namespace}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${port}, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: 4${port % 10000} }, labels: { app: ${name}, version: v1 } }]
${extra}
---
`;
}

export function sidecarNode(
  workload: string,
  namespace: string,
  labels: Record<string, string>,
  extra: Record<string, unknown> = {},
): XdsNode {
  return {
    id: `sidecar~127.0.0.1~${workload}.${namespace}~${namespace}.svc.cluster.local`,
    metadata: {
      NAMESPACE: namespace,
      LABELS: labels,
      INSTANCE_IPS: '127.0.0.1',
      MIZZEN_CAPTURE_MODE: 'proxy',
      MIZZEN_OUTBOUND_PORT: 15001,
      MIZZEN_PORTS: [{ name: 'http', port: 9080, targetPort: 19080, protocol: 'HTTP', listenPort: 15006 }],
      ...extra,
    },
  };
}

export function pushFor(yaml: string, mesh: Partial<MeshConfig> = {}): PushContext {
  const parsed = parseConfig(yaml, 'mesh.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), {
    ...DEFAULT_MESH_CONFIG,
    ...mesh,
  });
}

export interface Built {
  listeners: Json[];
  routes: Json[];
  clusters: Json[];
  endpoints: Json[];
  push: PushContext;
  listener(name: string): Json;
  route(name: string): Json;
  /** Names of the outbound service clusters (`outbound|…`), sorted. */
  outboundClusters(): string[];
  /** Virtual host names of a route table. */
  vhosts(route: string): string[];
}

/** Builds a proxy's resources, checks they are valid Envoy and that the proxy compiles them. */
export function build(push: PushContext, node: XdsNode): Built {
  const set = generateResources(push, proxyFromNode(node)) as unknown as Record<string, Json[]>;
  expect(() => Snapshot.build(set as never)).not.toThrow();
  const proxyless = (node.metadata as Record<string, unknown> | undefined)?.GENERATOR === 'grpc';
  if (!proxyless) {
    for (const l of set[TypeUrl.Listener] ?? []) expect(() => compileListener(l as never)).not.toThrow();
    for (const r of set[TypeUrl.RouteConfiguration] ?? [])
      expect(() => RouteTable.compile(r as never)).not.toThrow();
  }
  const listeners = set[TypeUrl.Listener] ?? [];
  const routes = set[TypeUrl.RouteConfiguration] ?? [];
  const clusters = set[TypeUrl.Cluster] ?? [];
  return {
    listeners,
    routes,
    clusters,
    endpoints: set[TypeUrl.ClusterLoadAssignment] ?? [],
    push,
    listener: (name) => {
      const l = listeners.find((x) => x.name === name);
      expect(l, `listener ${name} in ${listeners.map((x) => x.name).join(', ')}`).toBeDefined();
      return l;
    },
    route: (name) => {
      const r = routes.find((x) => x.name === name);
      expect(r, `route ${name} in ${routes.map((x) => x.name).join(', ')}`).toBeDefined();
      return r;
    },
    outboundClusters: () =>
      clusters
        .map((c) => c.name as string)
        .filter((n) => n.startsWith('outbound|'))
        .sort(),
    vhosts: (route) =>
      (routes.find((x) => x.name === route)?.virtual_hosts ?? []).map((v: Json) => v.name as string),
  };
}

/** The tcp_proxy cluster (or weighted clusters) of each filter chain of a listener. */
export function tcpTargets(listener: Json): Json[] {
  return (listener.filter_chains as Json[]).map((c) => {
    const tc = c.filters.at(-1).typed_config;
    return tc.cluster ?? tc.weighted_clusters?.clusters.map((w: Json) => `${w.name}@${w.weight}`);
  });
}
