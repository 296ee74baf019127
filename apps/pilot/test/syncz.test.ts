import type { StreamStatus } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { adminAddress, syncEntry } from '../src/http/debug.js';
import { proxyFromNode } from '../src/model/proxy.js';

const node = (ip: string) => ({
  id: `sidecar~${ip}~reviews-v1.default~default.svc.cluster.local`,
  metadata: {
    NAMESPACE: 'default',
    CLUSTER_ID: 'Kubernetes',
    MIZZEN_ADMIN_PORT: 15000,
    WORKLOAD_NAME: 'reviews-v1',
  },
  user_agent_name: 'mizzen',
  user_agent_version: '0.1.0',
});

describe('/debug/syncz entries', () => {
  it("say where each proxy's admin API is, its cluster, its version and which pilot serves it", () => {
    const proxy = proxyFromNode(node('10.0.0.7'));
    const stream: StreamStatus = {
      streamId: 1,
      node: node('10.0.0.7'),
      peer: 'ipv4:10.0.0.7:40000',
      connectedAt: '2026-01-01T00:00:00Z',
      types: [
        {
          type: 'CDS',
          typeUrl: 'x',
          resourceNames: '*',
          state: 'ACKED',
          sentVersion: 'v1',
          ackedVersion: 'v1',
        },
      ],
    };
    expect(syncEntry(stream, proxy, [], 'pilot-abc')).toMatchObject({
      proxy: stream.node.id,
      admin: '10.0.0.7:15000',
      cluster_id: 'Kubernetes',
      proxy_version: '0.1.0',
      istiod: 'pilot-abc',
      cluster_sent: 'v1',
      cluster_acked: 'v1',
      sync: { CDS: 'ACKED' },
    });
    expect(adminAddress(proxyFromNode(node('fd00::7')))).toBe('[fd00::7]:15000');
    expect(adminAddress(undefined)).toBeUndefined();
  });
});
