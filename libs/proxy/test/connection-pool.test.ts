import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tcpKeepalive } from '@mizzen/original-dst';
import { SIDECAR_H2_UPGRADE_KEY, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HCM,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  ROUTER,
  staticCluster,
  svcRoutes,
  TCP,
} from './harness.js';

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

/** What a server saw of one request: the client port (which connection carried it) and the protocol. */
interface Seen {
  port: number;
  version: string;
  path: string;
}

/**
 * A server recording every request's connection and protocol: HTTP/1.1 only,
 * or HTTP/2 cleartext that also takes HTTP/1.1. Requests to paths with
 * `/hold` wait until the test releases them.
 */
interface Recorder {
  port: number;
  seen: Seen[];
  held: (() => void)[];
  /** Client ports of connections the server has seen close. */
  closed: Set<number>;
  close: () => Promise<void>;
}

/**
 * A recorder for cleartext HTTP/1.1 and HTTP/2 (prior knowledge) on one port,
 * as a sidecar's inbound listener takes both: the first bytes decide.
 */
async function recorder(kind: 'http1' | 'http2' | 'both'): Promise<Recorder> {
  const r: Recorder = { port: 0, seen: [], held: [], closed: new Set(), close: async () => {} };
  const handler = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    r.seen.push({ port: req.socket.remotePort ?? 0, version: req.httpVersion, path: req.url ?? '' });
    req.on('data', () => {});
    req.on('end', () => {
      if (req.url?.includes('/hold')) r.held.push(() => res.end('ok'));
      else res.end('ok');
    });
  };
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  const server =
    kind === 'http1'
      ? h1
      : kind === 'http2'
        ? h2
        : net.createServer((socket) => {
            socket.once('readable', () => {
              const head: Buffer | null = socket.read();
              if (head) socket.unshift(head);
              const target = head?.subarray(0, 3).toString() === 'PRI' ? h2 : h1;
              target.emit('connection', socket);
            });
          });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.port = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    const port = s.remotePort ?? 0;
    s.once('close', () => {
      sockets.delete(s);
      r.closed.add(port);
    });
  });
  r.close = () =>
    new Promise((resolve) => {
      for (const release of r.held.splice(0)) release();
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return r;
}

/** Distinct connections (client ports) among what a server saw. */
const connections = (seen: readonly Seen[]) => new Set(seen.map((x) => x.port)).size;

const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** A cluster's HttpProtocolOptions: its protocol, HTTP/2 options and common options. */
function httpOptions(protocol: 'http1' | 'http2' | 'downstream', common: Json = {}, h2: Json = {}): Json {
  const config =
    protocol === 'http2'
      ? { explicit_http_config: { http2_protocol_options: h2 } }
      : protocol === 'downstream'
        ? { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: h2 } }
        : { explicit_http_config: { http_protocol_options: {} } };
  return {
    typed_extension_protocol_options: {
      [HTTP_OPTIONS]: {
        '@type': `type.googleapis.com/${HTTP_OPTIONS}`,
        ...config,
        ...(Object.keys(common).length ? { common_http_protocol_options: common } : {}),
      },
    },
  };
}

const H2 = httpOptions('http2').typed_extension_protocol_options;

/** A cluster whose one endpoint runs a sidecar (Istio's tlsMode: istio endpoint metadata). */
function sidecarCluster(name: string, port: number, extra: Json = {}): Json {
  return {
    ...staticCluster(name, []),
    load_assignment: {
      cluster_name: name,
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
              metadata: { filter_metadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' } } },
            },
          ],
        },
      ],
    },
    ...extra,
  };
}

/** Pilot's mark on a cluster whose sidecar hosts get HTTP/2 (the mesh's default h2 upgrade). */
const UPGRADE_MARK = (h2: Json = {}) => ({
  metadata: { filter_metadata: { [SIDECAR_H2_UPGRADE_KEY]: { http2_protocol_options: h2 } } },
});

/** An HTTP listener on its own port using route table 9080, taking HTTP/1.1 and HTTP/2 cleartext. */
function httpListener(name: string, port: number): Json {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'hcm',
            typed_config: {
              '@type': HCM,
              stat_prefix: name,
              rds: { route_config_name: '9080', config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
            },
          },
        ],
      },
    ],
  };
}

/** One GET over HTTP/2 cleartext to a proxy listener. */
async function h2Get(port: number, path: string): Promise<number> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise<number>((resolve, reject) => {
      const req = session.request({ ':path': path, ':authority': 'svc:9080' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end();
    });
  } finally {
    session.close();
  }
}

const KEEPALIVE = {
  upstream_connection_options: {
    tcp_keepalive: { keepalive_time: 7, keepalive_interval: 3, keepalive_probes: 4 },
  },
};

describe('connection pool settings on real upstream connections', () => {
  const h = new ProxyHarness();
  const servers: Record<string, Recorder> = {};
  let tcpServer: net.Server;
  let tcpServerPort = 0;
  const tcpClientPorts: number[] = [];
  let tcpListenerPort = 0;
  let h2cListenerPort = 0;

  /** Each case's cluster, named after the path prefix that routes to it. */
  const clusters = (extra: Record<string, Json> = {}): Json[] => [
    staticCluster('ka-h1', [servers.h1!.port], { ...KEEPALIVE, ...extra['ka-h1'] }),
    staticCluster('ka-h2', [servers.h2!.port], { ...KEEPALIVE, typed_extension_protocol_options: H2 }),
    staticCluster('ka-tcp', [tcpServerPort], KEEPALIVE),
    staticCluster('mrpc-h1', [servers.mrpc1!.port], httpOptions('http1', { max_requests_per_connection: 2 })),
    staticCluster('mrpc-h2', [servers.mrpc2!.port], httpOptions('http2', { max_requests_per_connection: 2 })),
    staticCluster(
      'streams',
      [servers.streams!.port],
      httpOptions('http2', {}, { max_concurrent_streams: 2 }),
    ),
    sidecarCluster('streams-mesh', servers.streamsMesh!.port, UPGRADE_MARK({ max_concurrent_streams: 2 })),
    staticCluster('dur-h1', [servers.dur1!.port], httpOptions('http1', { max_connection_duration: '0.4s' })),
    staticCluster('dur-h2', [servers.dur2!.port], httpOptions('http2', { max_connection_duration: '0.4s' })),
    staticCluster('idle-h1', [servers.idle1!.port], httpOptions('http1', { idle_timeout: '0.3s' })),
    staticCluster('idle-h2', [servers.idle2!.port], httpOptions('http2', { idle_timeout: '0.3s' })),
    sidecarCluster('upgrade', servers.proto!.port, UPGRADE_MARK()),
    sidecarCluster('no-upgrade', servers.proto!.port, httpOptions('http1')),
    sidecarCluster('follow', servers.proto!.port, httpOptions('downstream')),
    PASSTHROUGH,
  ];
  const listeners = () => [
    ...outboundListeners(h.outbound),
    httpListener('h2c-in', h2cListenerPort),
    {
      name: 'tcp-in',
      address: { socket_address: { address: '127.0.0.1', port_value: tcpListenerPort } },
      filter_chains: [
        { filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'tcp', cluster: 'ka-tcp' } }] },
      ],
    },
  ];
  const routes = () =>
    svcRoutes(
      clusters()
        .map((c) => c.name as string)
        .filter((n) => n !== 'PassthroughCluster' && n !== 'ka-tcp')
        .map((n) => ({ match: { prefix: `/${n}/` }, route: { cluster: n, timeout: '0s' } })),
    );
  const resources = (extra: Record<string, Json> = {}) => ({
    [TypeUrl.Cluster]: clusters(extra),
    [TypeUrl.Listener]: listeners(),
    [TypeUrl.RouteConfiguration]: [routes()],
  });

  beforeAll(async () => {
    diagnostics.subscribe('net.client.socket', onClientSocket);
    servers.h1 = await recorder('http1');
    servers.h2 = await recorder('http2');
    for (const n of ['mrpc1', 'dur1', 'idle1']) servers[n] = await recorder('http1');
    for (const n of ['mrpc2', 'streams', 'dur2', 'idle2']) servers[n] = await recorder('http2');
    for (const n of ['streamsMesh', 'proto']) servers[n] = await recorder('both');
    tcpServer = net.createServer((s) => {
      tcpClientPorts.push(s.remotePort ?? 0);
      s.on('error', () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => tcpServer.listen(0, '127.0.0.1', r));
    tcpServerPort = (tcpServer.address() as net.AddressInfo).port;
    [tcpListenerPort, h2cListenerPort] = await h.ports.takeMany(2);
    await h.start(() => resources());
  });

  afterAll(async () => {
    diagnostics.unsubscribe('net.client.socket', onClientSocket);
    await h.stop();
    for (const s of Object.values(servers)) await s.close();
    await new Promise((r) => tcpServer.close(r));
  });

  it('tcpKeepalive: idle time, probe interval and probe count on HTTP/1.1, HTTP/2 and TCP upstream connections', async () => {
    expect((await h.request('http://svc:9080/ka-h1/')).status).toBe(200);
    expect((await h.request('http://svc:9080/ka-h2/')).status).toBe(200);
    const client = net.connect(tcpListenerPort, '127.0.0.1');
    await new Promise<void>((resolve) => {
      client.once('data', () => resolve());
      client.write('ping');
    });
    const expected = { enabled: true, time: 7, interval: 3, probes: 4 };
    expect(tcpKeepalive(proxySocket(servers.h1!.seen.at(-1)!.port))).toEqual(expected);
    expect(tcpKeepalive(proxySocket(servers.h2!.seen.at(-1)!.port))).toEqual(expected);
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
    expect((await h.request('http://svc:9080/ka-h1/')).status).toBe(200);
    await h.apply(resources());
  });
  it('maxRequestsPerConnection: a connection carries that many requests, then a new one opens (HTTP/1.1 and HTTP/2)', async () => {
    for (const [name, server] of [
      ['mrpc-h1', servers.mrpc1!],
      ['mrpc-h2', servers.mrpc2!],
    ] as const) {
      for (let i = 0; i < 6; i++) expect((await h.request(`http://svc:9080/${name}/${i}`)).status).toBe(200);
      const perConnection = new Map<number, number>();
      for (const x of server.seen) perConnection.set(x.port, (perConnection.get(x.port) ?? 0) + 1);
      expect([...perConnection.values()], name).toEqual([2, 2, 2]);
      // Retired connections are closed once their last request ended.
      await h.until(`${name}: two retired connections closed`, () => server.closed.size >= 2);
    }
  });

  it('maxConcurrentStreams: HTTP/2 requests in flight beyond the limit open another connection', async () => {
    for (const [name, server] of [
      ['streams', servers.streams!],
      ['streams-mesh', servers.streamsMesh!],
    ] as const) {
      const replies = Array.from({ length: 6 }, (_, i) => h.request(`http://svc:9080/${name}/hold/${i}`));
      await h.until(`${name}: six requests at the server`, () => server.held.length === 6);
      expect(
        server.seen.every((x) => x.version === '2.0'),
        name,
      ).toBe(true);
      expect(connections(server.seen), name).toBe(3);
      for (const release of server.held.splice(0)) release();
      expect((await Promise.all(replies)).map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    }
  });

  it('maxConnectionDuration: a connection older than that takes no new request, and one in flight still completes', async () => {
    for (const [name, server] of [
      ['dur-h1', servers.dur1!],
      ['dur-h2', servers.dur2!],
    ] as const) {
      expect((await h.request(`http://svc:9080/${name}/a`)).status).toBe(200);
      const held = h.request(`http://svc:9080/${name}/hold`);
      await h.until(`${name}: held request at the server`, () => server.held.length === 1);
      const first = server.seen[0]!.port;
      await sleep(600);
      // Past the duration: the held request still gets its answer on the old connection…
      server.held.shift()!();
      expect((await held).status).toBe(200);
      // …and the next request goes over a new connection while the old one is closed.
      expect((await h.request(`http://svc:9080/${name}/b`)).status).toBe(200);
      expect(server.seen.at(-1)!.port, name).not.toBe(first);
      await h.until(`${name}: the expired connection closed`, () => server.closed.has(first));
    }
  });

  it('idleTimeout: an upstream connection with no request for that long is closed (HTTP/1.1 and HTTP/2)', async () => {
    for (const [name, server] of [
      ['idle-h1', servers.idle1!],
      ['idle-h2', servers.idle2!],
    ] as const) {
      expect((await h.request(`http://svc:9080/${name}/a`)).status).toBe(200);
      const port = server.seen[0]!.port;
      expect(server.closed.has(port)).toBe(false);
      await h.until(`${name}: idle connection closed`, () => server.closed.has(port), 3000);
      expect((await h.request(`http://svc:9080/${name}/b`)).status).toBe(200);
      expect(server.seen.at(-1)!.port).not.toBe(port);
    }
  });

  it('upstream protocol: HTTP/2 to a sidecar host only when the cluster is marked for the upgrade; useClientProtocol follows the caller', async () => {
    const versionOf = async (send: () => Promise<number>) => {
      expect(await send()).toBe(200);
      return servers.proto!.seen.at(-1)!.version;
    };
    expect(await versionOf(async () => (await h.request('http://svc:9080/upgrade/')).status)).toBe('2.0');
    expect(await versionOf(async () => (await h.request('http://svc:9080/no-upgrade/')).status)).toBe('1.1');
    expect(await versionOf(async () => (await h.request('http://svc:9080/follow/')).status)).toBe('1.1');
    expect(await versionOf(() => h2Get(h2cListenerPort, '/follow/'))).toBe('2.0');
    expect(await versionOf(() => h2Get(h2cListenerPort, '/no-upgrade/'))).toBe('1.1');
  });

  it('NACKs HTTP protocol options it does not implement, naming them', async () => {
    h.push(
      resources({
        'ka-h1': httpOptions('http1', { max_headers_count: 10 }),
      }),
    );
    await h.until('CDS NACK', () => h.state(TypeUrl.Cluster)?.state === 'NACKED');
    expect(h.state(TypeUrl.Cluster)?.error).toContain(
      'cluster ka-h1: typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions].common_http_protocol_options.max_headers_count is not supported',
    );
    await h.apply(resources());
  });
});
