import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLogLines, appliedAccessLogs } from '../src/access-log.js';
import { getJson } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { connectThroughSidecar, startTcpEcho, tcpExchange, tcpThroughSidecar } from '../src/tcp.js';

/**
 * Istio's TCP access logs through real sidecars: each proxy writes one JSON
 * line per connection (Istio's accessLogEncoding JSON, Envoy's TCP fields)
 * to stdout and sends it to the collector; connections that fail (UH, UF)
 * are logged too; a Telemetry filter and a workload's Telemetry turning the
 * provider off keep lines out, as for HTTP.
 */
const GREETING = 'v1';
const TARGET = 'tcp-echo.default.svc.cluster.local:9000';

function services(refusingPort: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-echo, namespace: default }
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9000, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: tcp-echo } }
---
# No workload runs it: connections to it have no host (UH).
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-nowhere, namespace: default }
spec:
  hosts: [tcp-nowhere.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9100, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: nowhere } }
---
# Its one endpoint refuses connections (UF).
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-refusing, namespace: default }
spec:
  hosts: [tcp-refusing.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9200, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: refusing } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: refusing, namespace: default }
spec:
  address: 127.0.0.1
  ports: { tcp: ${refusingPort} }
  labels: { app: refusing }
`;
}

type Line = Record<string, unknown>;
const isTcp = (l: Line) => l.response_code === 0 && l.protocol === null;

describe('TCP access logs through real sidecars', () => {
  const mesh = new TestMesh();
  let echo: Awaited<ReturnType<typeof startTcpEcho>>;
  let client: SidecarHandle;
  let server: SidecarHandle;
  let api: string;

  beforeAll(async () => {
    echo = await startTcpEcho(GREETING);
    const [apiPort, otlpHttp, otlpGrpc, refusingPort] = await mesh.ports.takeMany(4);
    api = `http://127.0.0.1:${apiPort}`;
    mesh.writeConfig('services.yaml', services(refusingPort!));
    const meshConfig = path.join(mesh.dir, 'mesh-config.yaml');
    fs.writeFileSync(
      meshConfig,
      `accessLogFile: /dev/stdout
accessLogEncoding: JSON
extensionProviders:
  - name: collector-logs
    envoyOtelAls: { service: 127.0.0.1, port: ${otlpHttp}, logName: e2e-tcp-access }
defaultProviders:
  accessLogging: [envoy, collector-logs]
`,
    );
    await mesh.startCitadel();
    await mesh.startPilot(['--mesh-config', meshConfig, '--registration-grace-ms', '30000']);
    await mesh.startCollector({ ports: [apiPort!, otlpHttp!, otlpGrpc!] });
    server = await mesh.startSidecar({
      workload: 'tcp-echo-v1',
      service: 'tcp-echo',
      labels: { app: 'tcp-echo', version: 'v1' },
      appPort: echo.port,
      servicePort: 9000,
      portName: 'tcp',
    });
    client = await mesh.startSidecar({
      workload: 'client-v1',
      service: 'client',
      labels: { app: 'client', version: 'v1' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([server.id, client.id]);
    await eventually(
      'tcp-echo reachable through both sidecars',
      async () => (await tcpExchange(client.outboundPort, TARGET, 'hello')) === GREETING,
    );
  });

  afterAll(async () => {
    await mesh.stop();
    await echo?.close();
  });

  /** The TCP lines a proxy wrote for connections that carried exactly `bytes` from the caller. */
  const linesOf = (proxy: SidecarHandle, bytes: number) =>
    accessLogLines(proxy.proc).filter((l) => isTcp(l) && l.bytes_received === bytes);

  /** A connection through the client's sidecar that the mesh cannot carry: resolves when it is closed. */
  const failedConnection = async (target: string) => {
    const s = await connectThroughSidecar(client.outboundPort, target);
    s.resume();
    if (!s.destroyed) await new Promise((r) => s.once('close', r));
  };

  it("one JSON line per connection on each proxy, with Envoy's TCP fields and each side's peer, and at the collector", async () => {
    const payload = 'x'.repeat(37);
    expect(await tcpExchange(client.outboundPort, TARGET, payload)).toBe(GREETING);
    await eventually(
      'a line on each proxy',
      async () => linesOf(client, 37).length > 0 && linesOf(server, 37).length > 0,
    );
    // Written when the connection ended: exactly one each.
    expect(linesOf(client, 37)).toHaveLength(1);
    expect(linesOf(server, 37)).toHaveLength(1);
    const sent = GREETING.length + 1 + payload.length;
    const [atClient] = linesOf(client, 37);
    expect(atClient).toMatchObject({
      method: null,
      path: null,
      protocol: null,
      response_code: 0,
      response_flags: '-',
      bytes_received: 37,
      bytes_sent: sent,
      upstream_cluster: 'outbound|9000||tcp-echo.default.svc.cluster.local',
      upstream_host: `127.0.0.1:${server.inboundPort}`,
      downstream_local_address: TARGET,
      upstream_peer: { workload: 'tcp-echo-v1', namespace: 'default', app: 'tcp-echo', version: 'v1' },
      downstream_peer: null,
      requested_server_name: null,
    });
    expect(atClient!.downstream_remote_address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(atClient!.upstream_local_address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(typeof atClient!.duration).toBe('number');
    expect(atClient!.start_time).toMatch(/^\d{4}-\d\d-\d\dT/);
    const [atServer] = linesOf(server, 37);
    expect(atServer).toMatchObject({
      response_code: 0,
      response_flags: '-',
      bytes_received: 37,
      bytes_sent: sent,
      // Istio names inbound clusters by the workload's port.
      upstream_cluster: `inbound|${echo.port}||`,
      upstream_host: `127.0.0.1:${echo.port}`,
      downstream_local_address: `127.0.0.1:${server.inboundPort}`,
      // The mesh SNI the client's sidecar sent.
      requested_server_name: 'outbound_.9000_._.tcp-echo.default.svc.cluster.local',
      downstream_peer: { workload: 'client-v1', namespace: 'default', app: 'client', version: 'v1' },
      upstream_peer: null,
    });
    await eventually('the collector has both lines', async () => {
      const { logs } = await getJson<{ logs: { body: Line; service: string }[] }>(
        `${api}/api/logs?q=tcp-echo&lookback=10m&limit=1000`,
      );
      const tcp = logs.filter((l) => isTcp(l.body) && l.body.bytes_received === 37);
      return (
        tcp.some(
          (l) => l.service === 'client.default' && l.body.upstream_cluster === atClient!.upstream_cluster,
        ) &&
        tcp.some(
          (l) => l.service === 'tcp-echo.default' && l.body.upstream_cluster === atServer!.upstream_cluster,
        )
      );
    });
  });

  it('logs connections that could not be proxied: UH (no host) and UF (refused, with why)', async () => {
    const before = accessLogLines(client.proc).filter(isTcp).length;
    await failedConnection('tcp-nowhere.default.svc.cluster.local:9100');
    await failedConnection('tcp-refusing.default.svc.cluster.local:9200');
    const failed = () =>
      accessLogLines(client.proc)
        .filter(isTcp)
        .slice(before)
        .filter((l) => l.response_flags !== '-');
    await eventually('both failures logged', async () => failed().length === 2 || JSON.stringify(failed()));
    const [uh, uf] = failed();
    expect(uh).toMatchObject({
      response_flags: 'UH',
      upstream_cluster: 'outbound|9100||tcp-nowhere.default.svc.cluster.local',
      upstream_host: null,
      bytes_received: 0,
      bytes_sent: 0,
    });
    expect(uf).toMatchObject({
      response_flags: 'UF',
      upstream_cluster: 'outbound|9200||tcp-refusing.default.svc.cluster.local',
      upstream_host: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      upstream_transport_failure_reason: expect.stringContaining('ECONNREFUSED'),
      bytes_sent: 0,
    });
  });

  it('logs a connection an AuthorizationPolicy denies, with why, at the proxy that closed it', async () => {
    const deny = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: tcp-echo-deny-client, namespace: default }
spec:
  selector: { matchLabels: { app: tcp-echo } }
  action: DENY
  rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }] }]
`;
    const denied = () =>
      accessLogLines(server.proc).filter(
        (l) =>
          isTcp(l) &&
          l.connection_termination_details ===
            'rbac_access_denied_matched_policy[ns[default]-policy[tcp-echo-deny-client]-rule[0]]',
      );
    expect((await mesh.apply(deny)).status).toBe(200);
    try {
      /** A connection to tcp-echo: false when it greets (the policy is not in force yet), true once it is closed. */
      const refused = () =>
        tcpThroughSidecar(client.outboundPort, TARGET).then(
          () => false,
          () => true,
        );
      await eventually(
        'the connection closed by the server sidecar and logged there',
        async () => (await refused()) && denied().length > 0,
      );
      // As Envoy's tcp_proxy writes it: no cluster was chosen, nothing was carried, and who was refused.
      expect(denied()[0]).toMatchObject({
        response_code: 0,
        response_flags: '-',
        upstream_cluster: null,
        upstream_host: null,
        bytes_received: 0,
        bytes_sent: 0,
        downstream_local_address: `127.0.0.1:${server.inboundPort}`,
        requested_server_name: 'outbound_.9000_._.tcp-echo.default.svc.cluster.local',
      });
    } finally {
      expect((await mesh.remove(deny)).status).toBe(200);
    }
    await eventually(
      'tcp-echo reachable again',
      async () => (await tcpExchange(client.outboundPort, TARGET, 'again')) === GREETING,
    );
  });

  it("a Telemetry filter keeps successful connections out of the client's log, and a workload's Telemetry turns the server's off", async () => {
    const telemetry = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: client-failures-only, namespace: default }
spec:
  selector: { matchLabels: { app: client } }
  accessLogging:
    - providers: [{ name: envoy }]
      filter: { expression: "response.flags != '-'" }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: server-quiet, namespace: default }
spec:
  selector: { matchLabels: { app: tcp-echo } }
  accessLogging:
    - providers: [{ name: envoy }]
      disabled: true
`;
    expect((await mesh.apply(telemetry)).status).toBe(200);
    try {
      const fileLogs = (logs: Line[][]) =>
        logs.flat().filter((l) => l.name === 'envoy.access_loggers.file') as Line[];
      await eventually('both changes in force', async () => {
        const atClient = fileLogs(await appliedAccessLogs(client.adminPort, 'OUTBOUND', 'TcpProxy'));
        const atServer = fileLogs(await appliedAccessLogs(server.adminPort, 'INBOUND', 'TcpProxy'));
        return atClient.length > 0 && atClient.every((l) => l.filter !== undefined) && atServer.length === 0;
      });
      const payload = 'y'.repeat(41);
      expect(await tcpExchange(client.outboundPort, TARGET, payload)).toBe(GREETING);
      // The collector's provider is untouched: once both proxies sent it their line, both have logged the connection.
      await eventually('both lines at the collector', async () => {
        const { logs } = await getJson<{ logs: { body: Line; service: string }[] }>(
          `${api}/api/logs?q=tcp-echo&lookback=10m&limit=1000`,
        );
        const services = logs
          .filter((l) => isTcp(l.body) && l.body.bytes_received === 41)
          .map((l) => l.service);
        return services.includes('client.default') && services.includes('tcp-echo.default');
      });
      expect(linesOf(client, 41)).toEqual([]);
      expect(linesOf(server, 41)).toEqual([]);
      // A failure passes the client's filter.
      const before = accessLogLines(client.proc).filter(isTcp).length;
      await failedConnection('tcp-nowhere.default.svc.cluster.local:9100');
      await eventually('the UH line', async () =>
        accessLogLines(client.proc)
          .filter(isTcp)
          .slice(before)
          .some((l) => l.response_flags === 'UH'),
      );
    } finally {
      expect((await mesh.remove(telemetry)).status).toBe(200);
    }
  });
});
