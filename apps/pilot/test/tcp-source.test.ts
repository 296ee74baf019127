import { describe, expect, it } from 'vitest';
import { build, pushFor, sidecarNode, tcpTargets } from './scoping.js';

const MESH = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db, namespace: default }
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 5432, name: tcp, protocol: TCP }, { number: 6379, name: tcp-cache, protocol: TCP }]
  workloadSelector: { labels: { app: db } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db, namespace: default }
spec:
  host: db
  subsets: [{ name: primary, labels: { role: primary } }, { name: replica, labels: { role: replica } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db]
  tcp:
    - match: [{ sourceLabels: { app: writer } }]
      route: [{ destination: { host: db, subset: primary } }]
    - match: [{ sourceNamespace: batch, port: 5432 }]
      route:
        - { destination: { host: db, subset: primary }, weight: 20 }
        - { destination: { host: db, subset: replica }, weight: 80 }
    - route: [{ destination: { host: db, subset: replica } }]
`;

const WRITER = sidecarNode('writer', 'default', { app: 'writer', version: 'v1' });
const READER = sidecarNode('reader', 'default', { app: 'reader' });
const BATCH = sidecarNode('job', 'batch', { app: 'job' });

const targets = (node = READER, port = 5432) =>
  tcpTargets(build(pushFor(MESH), node).listener(`0.0.0.0_${port}`));

describe('VirtualService tcp routes matched by source', () => {
  it('sourceLabels: only workloads with those labels take the route', () => {
    expect(targets(WRITER)).toEqual(['outbound|5432|primary|db.default.svc.cluster.local']);
    expect(targets(READER)).toEqual(['outbound|5432|replica|db.default.svc.cluster.local']);
  });

  it('sourceNamespace (with port): workloads of that namespace take the weighted route on that port only', () => {
    expect(targets(BATCH)).toEqual([
      [
        'outbound|5432|primary|db.default.svc.cluster.local@20',
        'outbound|5432|replica|db.default.svc.cluster.local@80',
      ],
    ]);
    expect(targets(BATCH, 6379)).toEqual(['outbound|6379|replica|db.default.svc.cluster.local']);
    expect(targets(WRITER, 6379)).toEqual(['outbound|6379|primary|db.default.svc.cluster.local']);
  });
});
