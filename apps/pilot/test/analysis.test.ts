import { parseConfig } from '@mizzen/api';
import type { XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { analyzerMessages, PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

/** What pilot says about config that is valid YAML but does not make sense (Istio's analyzer messages). */
const MESH = (subsets: string) => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets: [${subsets}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: v2 } }] }]
`;

const NODE: XdsNode = {
  id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
  metadata: { NAMESPACE: 'default', INSTANCE_IPS: '127.0.0.1', MIZZEN_OUTBOUND_PORT: 15001 },
};

function warningsFor(yaml: string): string[] {
  const parsed = parseConfig(yaml, 'mesh.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  const push = new PushContext(1, parsed.resources, buildRegistry(parsed.resources), DEFAULT_MESH_CONFIG);
  generateResources(push, proxyFromNode(NODE));
  return [...push.warnings];
}

describe('config analysis warnings', () => {
  it('warns about a route to a subset no DestinationRule defines (IST0101)', () => {
    const warnings = warningsFor(MESH('{ name: v1, labels: { version: v1 } }'));
    // In istioctl's words, from the same module `mizzen analyze` runs.
    expect(warnings).toContain(
      'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v2"',
    );
  });

  it('says nothing once the subset exists', () => {
    const warnings = warningsFor(
      MESH('{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }'),
    );
    expect(warnings.filter((w) => w.includes('IST0101'))).toEqual([]);
  });
});

describe('analysis across pushes', () => {
  const missing = parseConfig(MESH('{ name: v1, labels: { version: v1 } }'), 'mesh.yaml').resources;
  const complete = parseConfig(
    MESH('{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }'),
    'mesh.yaml',
  ).resources;

  it('reuses the messages of the config in force on a registry-only push, and analyzes a new config afresh', () => {
    const first = analyzerMessages(missing, DEFAULT_MESH_CONFIG);
    expect(first.some((m) => m.includes('IST0101'))).toBe(true);
    // Endpoints changed, the config did not: the very same messages, not a second run of every analyzer.
    expect(analyzerMessages(missing, DEFAULT_MESH_CONFIG)).toBe(first);
    const registryPush = new PushContext(2, missing, buildRegistry([]), DEFAULT_MESH_CONFIG);
    expect([...registryPush.warnings]).toEqual(expect.arrayContaining([...first]));
    // A new config (pilot replaces its resource list) and a new mesh config are analyzed again.
    expect(analyzerMessages(complete, DEFAULT_MESH_CONFIG).filter((m) => m.includes('IST0101'))).toEqual([]);
    const otherMesh = { ...DEFAULT_MESH_CONFIG };
    const again = analyzerMessages(missing, otherMesh);
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });
});
