import { type ConfigResource, parseConfig } from '@mizzen/api';
import type { XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { analyzeChange } from '../src/analysis/change.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
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
    expect(warnings).toContainEqual(
      expect.stringContaining('subset "v2" of reviews.default.svc.cluster.local'),
    );
  });

  it('says nothing once the subset exists', () => {
    const warnings = warningsFor(
      MESH('{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }'),
    );
    expect(warnings.filter((w) => w.includes('subset'))).toEqual([]);
  });
});

/** Resources from YAML, checked valid. */
function resources(yaml: string): ConfigResource[] {
  const parsed = parseConfig(yaml, 'change.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return parsed.resources;
}

const rule = (name: string, host: string, subsets: string[]) => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name}, namespace: default }
spec:
  host: ${host}
  subsets: [${subsets.map((s) => `{ name: ${s}, labels: { version: ${s} } }`).join(', ')}]
`;

describe('what a change makes the analyzer say (mizzen apply and delete)', () => {
  const settings = { domainSuffix: 'cluster.local' };
  // In force: reviews routes to v2, which the rule defines.
  const current = resources(
    MESH('{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }'),
  );
  const codes = (messages: { code: string; resources: string[] }[]) =>
    messages.map((m) => `${m.code} ${m.resources.join(', ')}`);

  it('a DestinationRule that drops a subset a VirtualService still routes to: IST0101 on that VirtualService', () => {
    const messages = analyzeChange(
      current,
      { applied: resources(rule('reviews', 'reviews', ['v1'])) },
      settings,
    );
    expect(codes(messages)).toEqual(['IST0101 VirtualService default/reviews']);
    expect(messages[0]!.message).toContain('routes to subset "v2" of reviews.default.svc.cluster.local');
  });

  it('deleting that DestinationRule: the same message', () => {
    const messages = analyzeChange(current, { deleted: ['DestinationRule/default/reviews'] }, settings);
    expect(codes(messages)).toEqual(['IST0101 VirtualService default/reviews']);
  });

  it('a rule that keeps the subset, or a rule for another host, says nothing', () => {
    expect(
      analyzeChange(current, { applied: resources(rule('reviews', 'reviews', ['v2'])) }, settings),
    ).toEqual([]);
    expect(analyzeChange(current, { applied: resources(rule('ratings', 'ratings', [])) }, settings)).toEqual(
      [],
    );
    expect(analyzeChange(current, { deleted: ['DestinationRule/default/ratings'] }, settings)).toEqual([]);
  });

  it('a rule whose host moves away leaves its old host’s routes behind', () => {
    const moved = analyzeChange(
      current,
      { applied: resources(rule('reviews', 'ratings', ['v1', 'v2'])) },
      settings,
    );
    expect(codes(moved)).toEqual(['IST0101 VirtualService default/reviews']);
  });
});
