import type { Family } from '@mizzen/telemetry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { type Series, samples, scrapeFamilies, sum } from '../src/metrics.js';
import { startTcpEcho, tcpExchange } from '../src/tcp.js';

/**
 * Istio's TCP metrics from two real sidecars speaking mutual TLS (citadel
 * issues their certificates, pilot configures them): exact connection counts
 * and bytes from both reporters — the metadata exchange's headers never
 * counted — each naming the other side as its sidecar told it in the
 * exchange, principals from the certificates; and a Telemetry override for
 * TCP. (tcp-metadata-exchange.test.ts tells callers sharing an identity apart.)
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

const GREETING = 'v1';
const TARGET = 'tcp-echo.default.svc.cluster.local:9000';
const SERVICE = 'tcp-echo.default.svc.cluster.local';

const TCP_FAMILIES = [
  'istio_tcp_connections_opened_total',
  'istio_tcp_connections_closed_total',
  'istio_tcp_received_bytes_total',
  'istio_tcp_sent_bytes_total',
] as const;

type Counts = Record<(typeof TCP_FAMILIES)[number], number>;

function tcpCounts(families: Family[], match: Record<string, string>): Counts {
  const out = {} as Counts;
  for (const name of TCP_FAMILIES) out[name] = sum(samples(families, name), match);
  return out;
}

function grown(after: Counts, before: Counts): Counts {
  const out = {} as Counts;
  for (const name of TCP_FAMILIES) out[name] = after[name] - before[name];
  return out;
}

describe('TCP metrics through two sidecars over mutual TLS', () => {
  const mesh = new TestMesh();
  let echo: Awaited<ReturnType<typeof startTcpEcho>>;
  let client: SidecarHandle;
  let server: SidecarHandle;

  beforeAll(async () => {
    echo = await startTcpEcho(GREETING);
    mesh.writeConfig('services.yaml', SERVICES);
    await mesh.startCitadel();
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    server = await mesh.startSidecar({
      workload: 'tcp-echo-v1',
      service: 'tcp-echo',
      labels: { app: 'tcp-echo', version: 'v1' },
      appPort: echo.port,
      servicePort: 9000,
      portName: 'tcp',
    });
    // The client serves a port too, so pilot's endpoints name the workload that runs as its identity.
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

  const edge = {
    source_workload: 'client-v1',
    source_workload_namespace: 'default',
    source_app: 'client',
    source_version: 'v1',
    source_canonical_service: 'client',
    source_principal: 'spiffe://cluster.local/ns/default/sa/client',
    destination_workload: 'tcp-echo-v1',
    destination_workload_namespace: 'default',
    destination_app: 'tcp-echo',
    destination_version: 'v1',
    destination_canonical_service: 'tcp-echo',
    destination_canonical_revision: 'v1',
    destination_principal: 'spiffe://cluster.local/ns/default/sa/tcp-echo',
    destination_service: SERVICE,
    destination_service_name: 'tcp-echo',
    destination_service_namespace: 'default',
    request_protocol: 'tcp',
    response_flags: '-',
  };
  const fromClient = { ...edge, reporter: 'source', connection_security_policy: 'unknown' };
  const atServer = { ...edge, reporter: 'destination', connection_security_policy: 'mutual_tls' };

  it('counts connections and bytes exactly, from both reporters, each naming the other side', async () => {
    const before = {
      client: tcpCounts(await scrapeFamilies(client.statsPort), fromClient),
      server: tcpCounts(await scrapeFamilies(server.statsPort), atServer),
    };
    const payloads = ['a'.repeat(10), 'b'.repeat(100), 'c'.repeat(1000)];
    for (const p of payloads) expect(await tcpExchange(client.outboundPort, TARGET, p)).toBe(GREETING);
    const fromApp = payloads.reduce((a, p) => a + p.length, 0);
    // The echo server greets each connection with "v1\n", then echoes.
    const toApp = fromApp + payloads.length * (GREETING.length + 1);
    const want = {
      istio_tcp_connections_opened_total: 3,
      istio_tcp_connections_closed_total: 3,
      istio_tcp_received_bytes_total: fromApp,
      istio_tcp_sent_bytes_total: toApp,
    };
    // Both proxies record a connection's end when both its sides have closed: wait for it rather than race it.
    let got: { client: Counts; server: Counts } | undefined;
    await eventually('both reporters counted the three connections', async () => {
      got = {
        client: grown(tcpCounts(await scrapeFamilies(client.statsPort), fromClient), before.client),
        server: grown(tcpCounts(await scrapeFamilies(server.statsPort), atServer), before.server),
      };
      return (
        (got.client.istio_tcp_connections_closed_total === 3 &&
          got.server.istio_tcp_connections_closed_total === 3) ||
        JSON.stringify(got)
      );
    });
    expect(got!.client).toEqual(want);
    expect(got!.server).toEqual(want);
  });

  it('a Telemetry override for TCP disables a metric on the client and adds a tag from a connection attribute', async () => {
    const telemetry = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: client-tcp, namespace: default }
spec:
  selector: { matchLabels: { app: client } }
  metrics:
    - providers: [{ name: prometheus }]
      overrides:
        - match: { metric: TCP_OPENED_CONNECTIONS, mode: CLIENT }
          disabled: true
        - match: { metric: TCP_CLOSED_CONNECTIONS, mode: CLIENT }
          tagOverrides:
            upstream_address: { value: upstream.address }
`;
    expect((await mesh.apply(telemetry)).status).toBe(200);
    try {
      const tagged = (families: Family[]): Series[] =>
        samples(families, 'istio_tcp_connections_closed_total').filter((s) => s.labels.upstream_address);
      await eventually('the override in force at the client', async () => {
        await tcpExchange(client.outboundPort, TARGET, 'probe');
        return tagged(await scrapeFamilies(client.statsPort)).length > 0;
      });
      const opened = (families: Family[], match: Record<string, string>) =>
        sum(samples(families, 'istio_tcp_connections_opened_total'), match);
      const before = {
        clientOpened: opened(await scrapeFamilies(client.statsPort), { reporter: 'source' }),
        clientClosed: sum(tagged(await scrapeFamilies(client.statsPort)), {}),
        serverOpened: opened(await scrapeFamilies(server.statsPort), atServer),
      };
      for (let i = 0; i < 4; i++)
        expect(await tcpExchange(client.outboundPort, TARGET, `n${i}`)).toBe(GREETING);
      await eventually('the client closed four more, tagged', async () => {
        const closed = sum(tagged(await scrapeFamilies(client.statsPort)), {}) - before.clientClosed;
        return closed === 4 || `closed ${closed}`;
      });
      const clientFamilies = await scrapeFamilies(client.statsPort);
      // Disabled: the client counts no opened connection any more; the server, whose side the override skips, does.
      expect(opened(clientFamilies, { reporter: 'source' })).toBe(before.clientOpened);
      await eventually(
        'the server opened four more',
        async () => opened(await scrapeFamilies(server.statsPort), atServer) - before.serverOpened === 4,
      );
      const [series] = tagged(clientFamilies);
      // The tag's value is the upstream host the connection went to: the server sidecar's inbound port.
      expect(series!.labels).toMatchObject({
        ...fromClient,
        upstream_address: `127.0.0.1:${server.inboundPort}`,
      });
      expect(
        samples(await scrapeFamilies(server.statsPort), 'istio_tcp_connections_closed_total').some(
          (s) => s.labels.upstream_address,
        ),
      ).toBe(false);
    } finally {
      expect((await mesh.remove(telemetry)).status).toBe(200);
    }
  });
});
