import { type ConfigResource, parseConfig } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import { type AnalysisMessage, analyzeChange, formatMessage } from '../src/index.js';

const MESH = (subsets: string) => `
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
  const codes = (messages: AnalysisMessage[]) =>
    messages.map((m) => `${m.type.code} ${m.origin?.kind} ${m.origin?.namespace}/${m.origin?.name}`);
  const change = (c: Parameters<typeof analyzeChange>[1]) =>
    analyzeChange({ resources: current, settings }, c);

  it('a DestinationRule that drops a subset a VirtualService still routes to: IST0101 on that VirtualService', () => {
    const messages = change({ applied: resources(rule('reviews', 'reviews', ['v1'])) });
    expect(codes(messages)).toEqual(['IST0101 VirtualService default/reviews']);
    expect(messages.map(formatMessage)).toEqual([
      'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v2"',
    ]);
  });

  it('deleting that DestinationRule: the same message', () => {
    const messages = change({ deleted: ['DestinationRule/default/reviews'] });
    expect(codes(messages)).toEqual(['IST0101 VirtualService default/reviews']);
  });

  it('a rule that keeps the subset, or a rule for another host, says nothing', () => {
    expect(change({ applied: resources(rule('reviews', 'reviews', ['v2'])) })).toEqual([]);
    expect(change({ applied: resources(rule('ratings', 'ratings', [])) })).toEqual([]);
    expect(change({ deleted: ['DestinationRule/default/ratings'] })).toEqual([]);
  });

  it('a rule whose host moves away leaves its old host’s routes behind', () => {
    const moved = change({ applied: resources(rule('reviews', 'ratings', ['v1', 'v2'])) });
    expect(codes(moved)).toEqual(['IST0101 VirtualService default/reviews']);
  });
});
