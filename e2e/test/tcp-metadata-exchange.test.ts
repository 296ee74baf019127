import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLogLines } from '../src/access-log.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { samples, scrapeFamilies, sum } from '../src/metrics.js';
import { startTcpEcho, tcpExchange } from '../src/tcp.js';

/**
 * Istio's TCP metadata exchange between real sidecars: three workloads
 * (client v1, v2, v3, as Bookinfo's reviews) run as one service account and
 * call a TCP server through their sidecars and its, over mutual TLS. The
 * certificate cannot tell the callers apart — pilot's endpoints name three
 * workloads for that identity — so only the exchanged metadata can: the
 * server's istio_tcp_* name each caller exactly, the clients' name the
 * server, and the access logs carry the node ids only the exchange conveys.
 */
const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-echo, namespace: default }
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9000, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: tcp-echo } }
`;

const TARGET = 'tcp-echo.default.svc.cluster.local:9000';
const SHARED_ACCOUNT = 'shared-client';
/** How many connections each client version opens: distinct, so a mix-up shows in the counts. */
const CONNECTIONS: Record<string, number> = { v1: 1, v2: 2, v3: 3 };

describe('TCP metadata exchange: callers sharing a service account told apart', () => {
  const mesh = new TestMesh();
  let echo: Awaited<ReturnType<typeof startTcpEcho>>;
  let server: SidecarHandle;
  const clients: Record<string, SidecarHandle> = {};

  beforeAll(async () => {
    echo = await startTcpEcho('v1');
    mesh.writeConfig('services.yaml', SERVICES);
    const meshConfig = path.join(mesh.dir, 'mesh-config.yaml');
    fs.writeFileSync(meshConfig, 'accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n');
    await mesh.startCitadel();
    await mesh.startPilot(['--mesh-config', meshConfig, '--registration-grace-ms', '30000']);
    server = await mesh.startSidecar({
      workload: 'tcp-echo-v1',
      service: 'tcp-echo',
      labels: { app: 'tcp-echo', version: 'v1' },
      appPort: echo.port,
      servicePort: 9000,
      portName: 'tcp',
    });
    for (const version of Object.keys(CONNECTIONS)) {
      // Each serves a port, so pilot's endpoints name all three workloads as running under the one identity.
      clients[version] = await mesh.startSidecar({
        workload: `client-${version}`,
        service: 'client',
        serviceAccount: SHARED_ACCOUNT,
        labels: { app: 'client', version },
        appPort: await mesh.ports.take(),
      });
    }
    await mesh.waitForSync([server.id, ...Object.values(clients).map((c) => c.id)]);
    for (const [version, client] of Object.entries(clients))
      await eventually(
        `tcp-echo reachable from client-${version}`,
        async () => (await tcpExchange(client.outboundPort, TARGET, 'hello')) === 'v1',
      );
  });

  afterAll(async () => {
    await mesh.stop();
    await echo?.close();
  });

  const opened = async (proxy: SidecarHandle, match: Record<string, string>) =>
    sum(samples(await scrapeFamilies(proxy.statsPort), 'istio_tcp_connections_opened_total'), match);
  const closed = async (proxy: SidecarHandle, match: Record<string, string>) =>
    sum(samples(await scrapeFamilies(proxy.statsPort), 'istio_tcp_connections_closed_total'), match);

  const caller = (version: string) => ({
    reporter: 'destination',
    source_workload: `client-${version}`,
    source_workload_namespace: 'default',
    source_app: 'client',
    source_version: version,
    source_canonical_service: 'client',
    source_canonical_revision: version,
    source_cluster: 'Kubernetes',
    source_principal: `spiffe://cluster.local/ns/default/sa/${SHARED_ACCOUNT}`,
    destination_workload: 'tcp-echo-v1',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/tcp-echo',
    connection_security_policy: 'mutual_tls',
    request_protocol: 'tcp',
    response_flags: '-',
  });
  const callee = (version: string) => ({
    reporter: 'source',
    source_workload: `client-${version}`,
    source_version: version,
    destination_workload: 'tcp-echo-v1',
    destination_workload_namespace: 'default',
    destination_app: 'tcp-echo',
    destination_version: 'v1',
    destination_canonical_service: 'tcp-echo',
    destination_canonical_revision: 'v1',
    destination_cluster: 'Kubernetes',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/tcp-echo',
    destination_service: 'tcp-echo.default.svc.cluster.local',
    request_protocol: 'tcp',
    response_flags: '-',
  });

  it("the server's istio_tcp_connections_opened_total names each caller exactly; each client's names the server", async () => {
    const before: Record<string, { server: number; client: number }> = {};
    for (const version of Object.keys(CONNECTIONS))
      before[version] = {
        server: await opened(server, caller(version)),
        client: await opened(clients[version]!, callee(version)),
      };
    const unknownBefore = await opened(server, { reporter: 'destination', source_workload: 'unknown' });
    const closedBefore = await closed(server, { reporter: 'destination', source_app: 'client' });
    for (const [version, n] of Object.entries(CONNECTIONS))
      for (let i = 0; i < n; i++)
        expect(await tcpExchange(clients[version]!.outboundPort, TARGET, `${version}-${i}`)).toBe('v1');
    // A connection is counted opened once its peer is known, closed once both its sides are: wait for the last.
    const total = Object.values(CONNECTIONS).reduce((a, n) => a + n, 0);
    await eventually('the server closed all of them', async () => {
      const c = (await closed(server, { reporter: 'destination', source_app: 'client' })) - closedBefore;
      return c === total || `closed ${c} of ${total}`;
    });
    for (const [version, n] of Object.entries(CONNECTIONS)) {
      expect(await opened(server, caller(version)), `server, caller client-${version}`).toBe(
        before[version]!.server + n,
      );
      expect(await opened(clients[version]!, callee(version)), `client-${version}`).toBe(
        before[version]!.client + n,
      );
    }
    // No caller was left anonymous, which is what the certificate alone would give here.
    expect(await opened(server, { reporter: 'destination', source_workload: 'unknown' })).toBe(unknownBefore);
  });

  it("the access logs carry each peer's node id, which only the exchange conveys", async () => {
    expect(await tcpExchange(clients.v2!.outboundPort, TARGET, 'logged')).toBe('v1');
    const isTcp = (l: Record<string, unknown>) => l.protocol === null && l.response_code === 0;
    await eventually('a TCP line from client-v2 on each proxy', async () => {
      const atServer = accessLogLines(server.proc).filter(isTcp);
      const atClient = accessLogLines(clients.v2!.proc).filter(isTcp);
      return (
        atServer.some((l) => (l.downstream_peer as { id?: string } | null)?.id === clients.v2!.id) &&
        atClient.some((l) => (l.upstream_peer as { id?: string } | null)?.id === server.id)
      );
    });
    const line = accessLogLines(server.proc)
      .filter(isTcp)
      .find((l) => (l.downstream_peer as { id?: string } | null)?.id === clients.v2!.id)!;
    expect(line.downstream_peer).toMatchObject({ workload: 'client-v2', app: 'client', version: 'v2' });
    expect(line.upstream_peer).toBeNull();
  });
});
