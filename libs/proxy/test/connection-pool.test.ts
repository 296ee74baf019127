import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { tcpKeepalive } from '@mizzen/original-dst';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboundListeners, PASSTHROUGH, ProxyHarness, staticCluster, svcRoutes, TCP } from './harness.js';

type Json = Record<string, unknown>;

/**
 * Connection pool settings (Istio's DestinationRule connectionPool, as the
 * Envoy fields pilot emits for it) through a real proxy to real HTTP/1.1,
 * HTTP/2 and TCP servers, checked on the connections themselves: socket
 * options read back from the kernel, and which connection each request
 * arrived on.
 */

/** Every client socket this process opens (the proxy runs in it), so a test can look at the proxy's upstream connections. */
const clientSockets: net.Socket[] = [];
const onClientSocket = (message: unknown) => clientSockets.push((message as { socket: net.Socket }).socket);

/** The proxy's end of the connection a server saw coming from `remotePort`. */
function proxySocket(remotePort: number): net.Socket {
  const found = clientSockets.find((s) => !s.destroyed && s.localPort === remotePort);
  if (!found) throw new Error(`no client socket of this process has local port ${remotePort}`);
  return found;
}

/** A server that records the client port of every request (which connection carried it), HTTP/1.1 or cleartext HTTP/2. */
interface PortRecorder {
  port: number;
  ports: number[];
  close: () => Promise<void>;
}

async function recorder(kind: 'http1' | 'http2'): Promise<PortRecorder> {
  const r: PortRecorder = { port: 0, ports: [], close: async () => {} };
  const handler = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    r.ports.push(req.socket.remotePort ?? 0);
    req.on('data', () => {});
    req.on('end', () => res.end('ok'));
  };
  const server = kind === 'http1' ? http.createServer(handler) : http2.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.port = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  r.close = () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return r;
}

const H2 = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

const KEEPALIVE = {
  upstream_connection_options: {
    tcp_keepalive: { keepalive_time: 7, keepalive_interval: 3, keepalive_probes: 4 },
  },
};

describe('connection pool settings on real upstream connections', () => {
  const h = new ProxyHarness();
  const servers: Record<string, PortRecorder> = {};
  let tcpServer: net.Server;
  let tcpServerPort = 0;
  const tcpClientPorts: number[] = [];
  let tcpListenerPort = 0;

  const clusters = (extra: Record<string, Json> = {}): Json[] => [
    staticCluster('ka-h1', [servers.h1!.port], { ...KEEPALIVE, ...extra['ka-h1'] }),
    staticCluster('ka-h2', [servers.h2!.port], { ...KEEPALIVE, typed_extension_protocol_options: H2 }),
    staticCluster('ka-tcp', [tcpServerPort], KEEPALIVE),
    PASSTHROUGH,
  ];
  const listeners = () => [
    ...outboundListeners(h.outbound),
    {
      name: 'tcp-in',
      address: { socket_address: { address: '127.0.0.1', port_value: tcpListenerPort } },
      filter_chains: [
        { filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'tcp', cluster: 'ka-tcp' } }] },
      ],
    },
  ];
  const routes = () =>
    svcRoutes([
      { match: { prefix: '/h1' }, route: { cluster: 'ka-h1', timeout: '0s' } },
      { match: { prefix: '/h2' }, route: { cluster: 'ka-h2', timeout: '0s' } },
    ]);
  const resources = (extra: Record<string, Json> = {}) => ({
    [TypeUrl.Cluster]: clusters(extra),
    [TypeUrl.Listener]: listeners(),
    [TypeUrl.RouteConfiguration]: [routes()],
  });

  beforeAll(async () => {
    diagnostics.subscribe('net.client.socket', onClientSocket);
    servers.h1 = await recorder('http1');
    servers.h2 = await recorder('http2');
    tcpServer = net.createServer((s) => {
      tcpClientPorts.push(s.remotePort ?? 0);
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => tcpServer.listen(0, '127.0.0.1', r));
    tcpServerPort = (tcpServer.address() as net.AddressInfo).port;
    tcpListenerPort = await h.ports.take();
    await h.start(() => resources());
  });

  afterAll(async () => {
    diagnostics.unsubscribe('net.client.socket', onClientSocket);
    await h.stop();
    for (const s of Object.values(servers)) await s.close();
    await new Promise((r) => tcpServer.close(r));
  });

  it('tcpKeepalive: idle time, probe interval and probe count on HTTP/1.1, HTTP/2 and TCP upstream connections', async () => {
    expect((await h.request('http://svc:9080/h1')).status).toBe(200);
    expect((await h.request('http://svc:9080/h2')).status).toBe(200);
    const client = net.connect(tcpListenerPort, '127.0.0.1');
    await new Promise<void>((resolve) => {
      client.once('data', () => resolve());
      client.write('ping');
    });
    const expected = { enabled: true, time: 7, interval: 3, probes: 4 };
    expect(tcpKeepalive(proxySocket(servers.h1!.ports.at(-1)!))).toEqual(expected);
    expect(tcpKeepalive(proxySocket(servers.h2!.ports.at(-1)!))).toEqual(expected);
    expect(tcpKeepalive(proxySocket(tcpClientPorts.at(-1)!))).toEqual(expected);
    client.destroy();
  });

  it('NACKs keepalive values the kernel cannot take, naming the field, and keeps the old cluster', async () => {
    h.push(
      resources({
        'ka-h1': { upstream_connection_options: { tcp_keepalive: { keepalive_probes: 200 } } },
      }),
    );
    await h.until('CDS NACK', () => h.state(TypeUrl.Cluster)?.state === 'NACKED');
    expect(h.state(TypeUrl.Cluster)?.error).toContain(
      'cluster ka-h1.upstream_connection_options.tcp_keepalive.keepalive_probes: must be a whole number from 1 to 127, got 200',
    );
    expect((await h.request('http://svc:9080/h1')).status).toBe(200);
    await h.apply(resources());
  });
});
