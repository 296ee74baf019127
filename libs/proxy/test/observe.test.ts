import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createLogger, PortAllocator } from '@mizzen/runtime';
import { AdsServer, type ResourceSet, Snapshot, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshProxy } from '../src/agent/proxy.js';
import type { HttpRequestRecord, ProxyObserver, TcpConnectionRecord } from '../src/observe/records.js';
import {
  type Backend,
  backend,
  HCM,
  outboundListeners,
  PASSTHROUGH,
  ROUTER,
  staticCluster,
  svcRoutes,
  TCP,
} from './harness.js';

/**
 * Two real proxies (client sidecar → server sidecar → app) with observers:
 * each sees every request with its flags, bytes and peer, learned through
 * Istio's metadata exchange; TCP connections report their bytes.
 */
describe('observation and metadata exchange between two proxies', () => {
  const log = createLogger('observe-test', { level: 'silent' });
  const ports = new PortAllocator();
  let ads: AdsServer;
  let app: Backend;
  let echo: net.Server;
  const proxies: MeshProxy[] = [];
  const client: {
    outbound: number;
    records: HttpRequestRecord[];
    tcp: TcpConnectionRecord[];
    tcpProgress: TcpConnectionRecord[];
    tcpFlushes: TcpConnectionRecord[];
  } = { outbound: 0, records: [], tcp: [], tcpProgress: [], tcpFlushes: [] };
  const server: { inbound: number; tcpIn: number; records: HttpRequestRecord[] } = {
    inbound: 0,
    tcpIn: 0,
    records: [],
  };
  const CLIENT = 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local';
  const SERVER = 'sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local';

  const request = (path: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      http
        .request(
          {
            host: '127.0.0.1',
            port: client.outbound,
            path: `http://svc:9080${path}`,
            headers: { host: 'svc:9080' },
            agent: false,
          },
          (res) => {
            let body = '';
            res.on('data', (c) => {
              body += c;
            });
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          },
        )
        .on('error', reject)
        .end();
    });

  let hung = 0;
  const until = async (check: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (!check()) throw new Error('timed out');
  };

  beforeAll(async () => {
    app = await backend('app', (req, res) => {
      if (req.url?.endsWith('/fail')) {
        res.writeHead(503).end('nope');
        return true;
      }
      if (req.url === '/reset') {
        req.socket.destroy();
        return true;
      }
      if (req.url === '/hang') {
        hung++;
        return true;
      }
      return false;
    });
    echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    [client.outbound, server.inbound, server.tcpIn] = await ports.takeMany(3);
    // A port nothing listens on: connecting to it fails (Envoy's UF).
    const closedPort = await ports.take();
    const tcpListener = (port: number, cluster: string, extra: Record<string, unknown> = {}) => ({
      name: `0.0.0.0_${port}`,
      address: { socket_address: { address: '0.0.0.0', port_value: port } },
      bind_to_port: false,
      traffic_direction: 'OUTBOUND',
      filter_chains: [
        { filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster, ...extra } }] },
      ],
    });
    // tcp_proxy's access logs: a line when the upstream is up and every 100 ms (the observers' flush).
    const accessLog = {
      name: 'envoy.access_loggers.file',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
        path: '/dev/null',
      },
    };
    ads = new AdsServer({ logger: log });
    const adsPort = await ads.listen(0, '127.0.0.1');
    const serverSet: ResourceSet = {
      [TypeUrl.Cluster]: [
        staticCluster('inbound|9080||', [app.port]),
        staticCluster('inbound|7000||', [(echo.address() as AddressInfo).port]),
      ],
      [TypeUrl.Listener]: [
        {
          name: 'inbound_9080',
          traffic_direction: 'INBOUND',
          address: { socket_address: { address: '127.0.0.1', port_value: server.inbound } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'hcm',
                  typed_config: {
                    '@type': HCM,
                    stat_prefix: 'in',
                    route_config: {
                      name: 'inbound|9080||',
                      virtual_hosts: [
                        {
                          name: 'in',
                          domains: ['*'],
                          routes: [
                            { match: { prefix: '/' }, route: { cluster: 'inbound|9080||', timeout: '0s' } },
                          ],
                        },
                      ],
                    },
                    http_filters: [{ name: 'r', typed_config: { '@type': ROUTER } }],
                  },
                },
              ],
            },
          ],
        },
        {
          name: 'inbound_7000',
          traffic_direction: 'INBOUND',
          address: { socket_address: { address: '127.0.0.1', port_value: server.tcpIn } },
          filter_chains: [
            {
              filters: [
                { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster: 'inbound|7000||' } },
              ],
            },
          ],
        },
      ],
      [TypeUrl.RouteConfiguration]: [],
    };
    const sidecarEndpoint = (port: number) => ({
      endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
      metadata: { filter_metadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' } } },
    });
    const clientSet: ResourceSet = {
      [TypeUrl.Cluster]: [
        {
          ...staticCluster('reviews', []),
          load_assignment: {
            cluster_name: 'reviews',
            endpoints: [{ lb_endpoints: [sidecarEndpoint(server.inbound)] }],
          },
        },
        {
          ...staticCluster('tcp-echo', []),
          load_assignment: {
            cluster_name: 'tcp-echo',
            endpoints: [
              {
                lb_endpoints: [
                  {
                    endpoint: {
                      address: { socket_address: { address: '127.0.0.1', port_value: server.tcpIn } },
                    },
                    // Who runs there, as pilot says it: what the client reports as the destination workload.
                    metadata: {
                      filter_metadata: {
                        istio: {
                          workload: 'echo-v1;default;echo;v1;Kubernetes',
                          labels: { app: 'echo', version: 'v1' },
                          principal: 'spiffe://cluster.local/ns/default/sa/echo',
                        },
                      },
                    },
                  },
                ],
              },
            ],
          },
        },
        staticCluster('no-hosts', []),
        staticCluster('refusing', [closedPort]),
        PASSTHROUGH,
      ],
      [TypeUrl.Listener]: [
        ...outboundListeners(client.outbound),
        tcpListener(7000, 'tcp-echo'),
        tcpListener(7001, 'no-such-cluster'),
        tcpListener(7002, 'no-hosts'),
        tcpListener(7003, 'refusing'),
        tcpListener(7004, 'tcp-echo', {
          access_log: [accessLog],
          access_log_options: { access_log_flush_interval: '0.1s', flush_access_log_on_connected: true },
        }),
        tcpListener(7005, 'tcp-echo', { max_downstream_connection_duration: '0.2s' }),
      ],
      [TypeUrl.RouteConfiguration]: [
        svcRoutes([
          {
            match: { prefix: '/retried/' },
            route: {
              cluster: 'reviews',
              timeout: '0s',
              retry_policy: {
                retry_on: 'gateway-error',
                num_retries: 1,
                retry_back_off: { base_interval: '0.001s' },
              },
            },
          },
          { match: { prefix: '/' }, route: { cluster: 'reviews', timeout: '0s' } },
        ]),
      ],
    };
    ads.setSnapshot(SERVER, Snapshot.build(serverSet));
    ads.setSnapshot(CLIENT, Snapshot.build(clientSet));
    const start = async (id: string, labels: Record<string, string>, observer: ProxyObserver) => {
      const [admin, health] = await ports.takeMany(2);
      const p = new MeshProxy({
        node: {
          id,
          metadata: {
            NAMESPACE: 'default',
            WORKLOAD_NAME: id.split('~')[2]!.split('.')[0],
            LABELS: labels,
            SERVICE_ACCOUNT: 'sa',
          },
        },
        pilot: `127.0.0.1:${adsPort}`,
        logger: log,
        adminHost: '127.0.0.1',
        adminPort: admin!,
        healthPort: health!,
        observer,
      });
      await p.start();
      proxies.push(p);
      await until(() => p.isReady());
    };
    await start(
      SERVER,
      { app: 'reviews', version: 'v2' },
      { startHttp: () => ({ end: (r) => server.records.push(r) }) },
    );
    await start(
      CLIENT,
      { app: 'productpage', version: 'v1' },
      {
        startHttp: (s) => {
          s.headers.traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
          return { end: (r) => client.records.push(r) };
        },
        startTcp: () => ({
          progress: (r) => client.tcpProgress.push(r),
          flush: (r) => client.tcpFlushes.push(r),
          end: (r) => client.tcp.push(r),
        }),
      },
    );
  });

  afterAll(async () => {
    for (const p of proxies.splice(0)) await p.stop();
    await ads.close();
    await app.close();
    echo.close();
  });

  it('each side learns the other through metadata exchange, and the app sees none of it', async () => {
    const r = await request('/reviews/0');
    expect(r.status).toBe(200);
    expect(r.headers['x-envoy-peer-metadata']).toBeUndefined();
    expect(app.lastHeaders?.['x-envoy-peer-metadata']).toBeUndefined();
    expect(app.lastHeaders?.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    await until(() => client.records.length === 1 && server.records.length === 1);
    const [c, s] = [client.records[0]!, server.records[0]!];
    expect(c).toMatchObject({
      direction: 'outbound',
      responseCode: 200,
      responseFlags: '-',
      upstreamCluster: 'reviews',
      method: 'GET',
      path: '/reviews/0',
    });
    expect(c.peer).toMatchObject({
      id: SERVER,
      workload: 'reviews-v2',
      namespace: 'default',
      labels: { app: 'reviews', version: 'v2' },
    });
    expect(s).toMatchObject({ direction: 'inbound', responseCode: 200, upstreamCluster: 'inbound|9080||' });
    expect(s.peer).toMatchObject({
      id: CLIENT,
      workload: 'productpage-v1',
      labels: { app: 'productpage', version: 'v1' },
    });
    expect(c.responseBytes).toBe(Buffer.byteLength(r.body));
  });

  it('records failures with their codes and flags on both sides', async () => {
    const failure = async (
      path: string,
      expected: { client: string; server: string[]; attempts: number },
    ) => {
      client.records.length = 0;
      server.records.length = 0;
      expect((await request(path)).status).toBe(503);
      await until(() => client.records.length === 1 && server.records.length === expected.server.length);
      expect(client.records[0]).toMatchObject({
        responseCode: 503,
        responseFlags: expected.client,
        attempts: expected.attempts,
      });
      expect(server.records.map((r) => [r.responseCode, r.responseFlags])).toEqual(
        expected.server.map((flags) => [503, flags]),
      );
    };
    // The app's own 503 is an answer, not a failure of the proxies: no flag on either side.
    await failure('/fail', { client: '-', server: ['-'], attempts: 1 });
    // The app drops the connection: the server's sidecar answers 503 UC; the client sees that 503.
    await failure('/reset', { client: '-', server: ['UC'], attempts: 1 });
    // Retried once on gateway-error and failing again: the client gives up with URX.
    await failure('/retried/fail', { client: 'URX', server: ['-', '-'], attempts: 2 });
  });

  /**
   * Opens a tunnel through the client's sidecar to `svc:port`, writes
   * `payload`, and resolves when the connection closes (a refused upstream
   * resets it).
   */
  const tunnel = (port: number, payload: string) =>
    new Promise<void>((resolve) => {
      const s = net.connect(client.outbound, '127.0.0.1', () =>
        s.write(`CONNECT svc:${port} HTTP/1.1\r\nhost: svc:${port}\r\n\r\n`),
      );
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        if (buf.endsWith('\r\n\r\n')) s.write(payload);
        if (buf.endsWith(payload)) s.end();
      });
      s.on('close', () => resolve());
      s.on('error', () => s.destroy());
    });

  it('reports a TCP connection once it is up and when it closes, with its bytes and the workload behind the host', async () => {
    client.tcp.length = 0;
    client.tcpProgress.length = 0;
    await tunnel(7000, 'twelve bytes');
    await until(() => client.tcp.length === 1);
    expect(client.tcp[0]).toMatchObject({
      upstreamCluster: 'tcp-echo',
      upstreamHost: `127.0.0.1:${server.tcpIn}`,
      receivedBytes: 12,
      sentBytes: 12,
      responseFlags: '-',
      peer: { workload: 'echo-v1', namespace: 'default', labels: { app: 'echo', version: 'v1' } },
    });
    // The first report comes when the upstream is up, before any byte moved.
    expect(client.tcpProgress[0]).toMatchObject({
      upstreamCluster: 'tcp-echo',
      receivedBytes: 0,
      sentBytes: 0,
    });
  });

  it("reports connections tcp_proxy could not proxy, with Envoy's flags: NC, UH, UF", async () => {
    client.tcp.length = 0;
    for (const port of [7001, 7002, 7003]) await tunnel(port, 'never delivered');
    await until(() => client.tcp.length === 3);
    expect(client.tcp.map((r) => [r.upstreamCluster, r.responseFlags, r.sentBytes])).toEqual([
      ['no-such-cluster', 'NC', 0],
      ['no-hosts', 'UH', 0],
      ['refusing', 'UF', 0],
    ]);
    expect(client.tcp[2]!.upstreamHost).toMatch(/^127\.0\.0\.1:\d+$/);
    // Why connecting failed, for %UPSTREAM_TRANSPORT_FAILURE_REASON%.
    expect(client.tcp[2]!.upstreamTransportFailureReason).toMatch(/ECONNREFUSED/);
  });

  /** A tunnel through the client's sidecar to `svc:port`, held open: resolves with it once it is up. */
  const openTunnel = (port: number) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(client.outbound, '127.0.0.1', () =>
        s.write(`CONNECT svc:${port} HTTP/1.1\r\nhost: svc:${port}\r\n\r\n`),
      );
      s.once('data', (d) =>
        d.toString().startsWith('HTTP/1.1 200') ? resolve(s) : reject(new Error(d.toString())),
      );
      s.once('error', reject);
    });

  it("tcp_proxy's access_log_options reach the observers: a flush every interval with the bytes so far, none after the end", async () => {
    client.tcp.length = 0;
    client.tcpFlushes.length = 0;
    const s = await openTunnel(7004);
    s.write('abc');
    await until(() => client.tcpFlushes.some((r) => r.receivedBytes === 3));
    const seen = client.tcpFlushes.length;
    s.write('defgh');
    await until(() => client.tcpFlushes.length >= seen + 2 && client.tcpFlushes.at(-1)!.receivedBytes === 8);
    s.end();
    await until(() => client.tcp.length === 1);
    const flushed = client.tcpFlushes.length;
    expect(client.tcp[0]).toMatchObject({
      receivedBytes: 8,
      sentBytes: 8,
      responseFlags: '-',
      telemetry: { accessLogFlushIntervalMs: 100, flushAccessLogOnConnected: true },
    });
    // Bytes only grow from one flush to the next, and flushing stops with the connection.
    const bytes = client.tcpFlushes.map((r) => r.receivedBytes);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    await new Promise((r) => setTimeout(r, 250));
    expect(client.tcpFlushes.length).toBe(flushed);
  });

  it('flags DT when max_downstream_connection_duration closes a connection', async () => {
    client.tcp.length = 0;
    const s = await openTunnel(7005);
    s.write('still talking');
    await new Promise((r) => s.once('close', r));
    await until(() => client.tcp.length === 1);
    expect(client.tcp[0]).toMatchObject({ responseFlags: 'DT', receivedBytes: 13 });
  });

  // Last: it stops the server's proxy.
  it('flags LR when the proxy resets its own upstream request (its connections torn down as it stops)', async () => {
    server.records.length = 0;
    const answer = request('/hang').catch((err: Error) => ({ status: 0, headers: {}, body: err.message }));
    await until(() => hung === 1);
    const serverProxy = proxies.shift()!;
    await serverProxy.stop();
    await until(() => server.records.length === 1);
    expect(server.records[0]).toMatchObject({ responseFlags: 'LR', attempts: 1 });
    // Never sent again: the request was in flight when the proxy cut it.
    expect(hung).toBe(1);
    await answer;
  });
});
