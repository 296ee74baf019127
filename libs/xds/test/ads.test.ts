import { createLogger } from '@mizzen/runtime';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdsClient } from '../src/ads-client.js';
import { AdsServer } from '../src/ads-server.js';
import type { DecodedResource } from '../src/codec.js';
import { Snapshot } from '../src/snapshot.js';
import { TypeUrl } from '../src/type-urls.js';

const logger = createLogger('xds-test', { level: 'silent' });

function cluster(name: string, timeout = '1s') {
  return { name, type: 'EDS', connect_timeout: timeout, eds_cluster_config: { eds_config: { ads: {} } } };
}

function endpoints(name: string, ports: number[]) {
  return {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: ports.map((port) => ({
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
        })),
      },
    ],
  };
}

interface Harness {
  server: AdsServer;
  port: number;
  client: AdsClient;
  applied: { typeUrl: string; version: string; names: string[] }[];
  reject: { current?: (typeUrl: string, resources: DecodedResource[]) => string | undefined };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function startServer(port = 0) {
  const server = new AdsServer({ logger });
  const bound = await server.listen(port, '127.0.0.1');
  cleanups.push(() => server.close());
  return { server, port: bound };
}

async function harness(nodeId = 'sidecar~127.0.0.1~a.default~default.svc.cluster.local'): Promise<Harness> {
  const { server, port } = await startServer();
  const applied: Harness['applied'] = [];
  const reject: Harness['reject'] = {};
  const client = new AdsClient({
    address: `127.0.0.1:${port}`,
    node: { id: nodeId, metadata: { NAMESPACE: 'default', LABELS: { app: 'a' } } },
    logger,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
    onResources: async (typeUrl, resources, version) => {
      const why = reject.current?.(typeUrl, resources);
      if (why) throw new Error(why);
      applied.push({ typeUrl, version, names: resources.map((r) => r.name) });
    },
  });
  cleanups.push(() => client.stop());
  return { server, port, client, applied, reject };
}

function stateOf(server: AdsServer, type: string) {
  return server.status()[0]?.types.find((t) => t.type === type);
}

describe('ADS server and client', () => {
  it('serves a wildcard CDS subscription and records the ACK by version and nonce', async () => {
    const h = await harness();
    const nodeId = 'sidecar~127.0.0.1~a.default~default.svc.cluster.local';
    h.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('c1'), cluster('c2')] }));
    h.client.subscribe(TypeUrl.Cluster, '*');
    h.client.start();
    await vi.waitFor(() => expect(stateOf(h.server, 'CDS')?.state).toBe('ACKED'));
    expect(h.applied[0]?.names.sort()).toEqual(['c1', 'c2']);
    expect(h.server.status()[0]?.node.metadata).toEqual({ NAMESPACE: 'default', LABELS: { app: 'a' } });
    const version = stateOf(h.server, 'CDS')?.ackedVersion;
    expect(version).toBe(h.applied[0]?.version);

    // Same content again: no push. New content: pushed and ACKed under a new version.
    h.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('c2'), cluster('c1')] }));
    h.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('c1', '2s')] }));
    await vi.waitFor(() => expect(h.applied).toHaveLength(2));
    expect(h.applied[1]?.names).toEqual(['c1']);
    await vi.waitFor(() => expect(stateOf(h.server, 'CDS')?.ackedVersion).toBe(h.applied[1]?.version));
    expect(h.applied[1]?.version).not.toBe(version);
  });

  it('sends only the named resources of a non-wildcard type and follows subscription changes', async () => {
    const h = await harness();
    const nodeId = 'sidecar~127.0.0.1~a.default~default.svc.cluster.local';
    h.server.setSnapshot(
      nodeId,
      Snapshot.build({
        [TypeUrl.ClusterLoadAssignment]: [endpoints('a', [1]), endpoints('b', [2]), endpoints('c', [3])],
      }),
    );
    h.client.subscribe(TypeUrl.ClusterLoadAssignment, ['a']);
    h.client.start();
    await vi.waitFor(() => expect(h.applied.at(-1)?.names).toEqual(['a']));
    h.client.subscribe(TypeUrl.ClusterLoadAssignment, ['a', 'c']);
    await vi.waitFor(() => expect(h.applied.at(-1)?.names.sort()).toEqual(['a', 'c']));
    await vi.waitFor(() => expect(stateOf(h.server, 'EDS')?.resourceNames).toEqual(['a', 'c']));
  });

  it('records a NACK with the proxy reason, keeps serving, and clears it once a good version is ACKed', async () => {
    const h = await harness();
    const nodeId = 'sidecar~127.0.0.1~a.default~default.svc.cluster.local';
    h.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('good')] }));
    h.client.subscribe(TypeUrl.Cluster, '*');
    h.client.start();
    await vi.waitFor(() => expect(stateOf(h.server, 'CDS')?.state).toBe('ACKED'));
    const goodVersion = stateOf(h.server, 'CDS')?.ackedVersion;

    h.reject.current = (_t, resources) =>
      resources.some((r) => r.name === 'bad') ? 'cluster bad: unsupported load balancing policy' : undefined;
    h.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('good'), cluster('bad')] }));
    await vi.waitFor(() => expect(stateOf(h.server, 'CDS')?.state).toBe('NACKED'));
    const status = stateOf(h.server, 'CDS')!;
    expect(status.error).toBe('cluster bad: unsupported load balancing policy');
    expect(status.ackedVersion).toBe(goodVersion);
    expect(h.client.status().types.CDS?.version).toBe(goodVersion);

    h.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('good'), cluster('better')] }));
    await vi.waitFor(() => expect(stateOf(h.server, 'CDS')?.state).toBe('ACKED'));
    expect(stateOf(h.server, 'CDS')?.error).toBeUndefined();
  });

  it('reconnects after the server goes away and resyncs from a new server on the same port', async () => {
    const h = await harness();
    const nodeId = 'sidecar~127.0.0.1~a.default~default.svc.cluster.local';
    h.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('v1')] }));
    h.client.subscribe(TypeUrl.Cluster, '*');
    h.client.start();
    await vi.waitFor(() => expect(h.applied).toHaveLength(1));
    await h.server.close();
    await vi.waitFor(() => expect(h.client.isConnected()).toBe(false));
    expect(h.client.status().types.CDS?.version).toBe(h.applied[0]?.version);

    const next = await startServer(h.port);
    next.server.setSnapshot(nodeId, Snapshot.build({ [TypeUrl.Cluster]: [cluster('v2')] }));
    await vi.waitFor(() => expect(h.applied.at(-1)?.names).toEqual(['v2']), { timeout: 5000 });
    await vi.waitFor(() => expect(next.server.status()[0]?.types[0]?.state).toBe('ACKED'));
    expect(h.client.status().reconnects).toBeGreaterThan(0);
  });

  it('tells the server who connected and who left', async () => {
    const opened: string[] = [];
    const closed: string[] = [];
    const server = new AdsServer({
      logger,
      onStreamOpen: (node) => opened.push(node.id),
      onStreamClose: (node) => closed.push(node.id),
    });
    const port = await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close());
    const client = new AdsClient({
      address: `127.0.0.1:${port}`,
      node: { id: 'router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local' },
      logger,
      onResources: async () => {},
    });
    client.subscribe(TypeUrl.Listener, '*');
    client.start();
    await vi.waitFor(() =>
      expect(opened).toEqual(['router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local']),
    );
    await client.stop();
    await vi.waitFor(() => expect(closed).toHaveLength(1));
    expect(server.status()).toHaveLength(0);
  });
});
