import http from 'node:http';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OriginalDestination } from '@mizzen/original-dst';
import { createLogger, PortAllocator } from '@mizzen/runtime';
import { AdsServer, Snapshot, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MeshProxy } from '../src/agent/proxy.js';
import { type Backend, backend, HCM, PASSTHROUGH, ROUTER, staticCluster, TCP } from './harness.js';

/**
 * The iptables capture runtime over real sockets, with the kernel's
 * SO_ORIGINAL_DST answer replaced by a table (client port → where the client
 * was going): the NAT table iptables would keep. The real lookup is tested in
 * @mizzen/original-dst and, with real iptables rules, in e2e.
 */
const redirects = new Map<number, OriginalDestination | Error>();
vi.mock('@mizzen/original-dst', () => ({
  originalDestination: (socket: net.Socket): OriginalDestination => {
    const d = redirects.get(socket.remotePort ?? -1);
    if (d instanceof Error) throw d;
    return d ?? { address: '127.0.0.1', port: socket.localPort ?? 0, family: 'IPv4', redirected: false };
  },
}));

type Json = Record<string, unknown>;
const NODE_ID = 'sidecar~10.1.0.5~client.default~default.svc.cluster.local';
const tcpFilter = (cluster: string) => ({
  name: 'envoy.filters.network.tcp_proxy',
  typed_config: { '@type': TCP, stat_prefix: cluster, cluster },
});
const hcm = (config: Json) => ({
  name: 'envoy.filters.network.http_connection_manager',
  typed_config: {
    '@type': HCM,
    stat_prefix: 'hcm',
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
    ...config,
  },
});
const inlineRoutes = (name: string, cluster: string, extra: Json = {}) => ({
  route_config: {
    name,
    virtual_hosts: [
      { name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster }, ...extra }] },
    ],
  },
});
const addr = (address: string, port: number) => ({ socket_address: { address, port_value: port } });

/** A TCP server that answers each line with `name:line`. */
async function echo(name: string): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => s.write(`${name}:${d.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('transparent capture (iptables mode): original destination → listener → filter chain', () => {
  const log = createLogger('capture-test', { level: 'silent' });
  const ports = new PortAllocator();
  let ads: AdsServer;
  let proxy: MeshProxy;
  let outbound = 0;
  let inbound = 0;
  const b: Record<string, Backend> = {};
  const e: Record<string, { port: number; close: () => Promise<void> }> = {};

  beforeAll(async () => {
    [outbound, inbound] = await ports.takeMany(2);
    const [admin, health] = await ports.takeMany(2);
    for (const n of ['v1', 'v2', 'direct', 'app']) b[n] = await backend(n);
    for (const n of ['mesh', 'exact', 'direct', 'inbound']) e[n] = await echo(n);
    const listeners: Json[] = [
      {
        name: 'virtualOutbound',
        address: addr('0.0.0.0', outbound),
        use_original_dst: true,
        traffic_direction: 'OUTBOUND',
        filter_chains: [{ name: 'PassthroughCluster', filters: [tcpFilter('PassthroughCluster')] }],
      },
      {
        name: '0.0.0.0_9080',
        address: addr('0.0.0.0', 9080),
        bind_to_port: false,
        traffic_direction: 'OUTBOUND',
        filter_chains: [
          { filters: [hcm({ rds: { route_config_name: '9080', config_source: { ads: {} } } })] },
        ],
      },
      {
        name: '0.0.0.0_9000',
        address: addr('0.0.0.0', 9000),
        bind_to_port: false,
        traffic_direction: 'OUTBOUND',
        filter_chains: [{ filters: [tcpFilter('mesh-echo')] }],
      },
      {
        name: '10.9.9.9_9000',
        address: addr('10.9.9.9', 9000),
        bind_to_port: false,
        traffic_direction: 'OUTBOUND',
        filter_chains: [{ filters: [tcpFilter('exact-echo')] }],
      },
      {
        // Istio's Kubernetes-mode inbound listener, with use_original_dst as well: it must still keep
        // inbound connections to itself rather than hand them to the outbound 0.0.0.0_9000 listener.
        name: 'virtualInbound',
        address: addr('0.0.0.0', inbound),
        use_original_dst: true,
        traffic_direction: 'INBOUND',
        listener_filters: [
          {
            name: 'envoy.filters.listener.original_dst',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
            },
          },
        ],
        filter_chains: [
          {
            name: 'inbound|8080||',
            filter_chain_match: { destination_port: 8080 },
            filters: [
              hcm(
                inlineRoutes('inbound|8080||', 'inbound|8080||', {
                  request_headers_to_add: [
                    {
                      header: { key: 'x-inbound', value: 'virtualInbound' },
                      append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
                    },
                  ],
                }),
              ),
            ],
          },
          {
            name: 'inbound|9000||',
            filter_chain_match: { destination_port: 9000 },
            filters: [tcpFilter('inbound|9000||')],
          },
          { name: 'InboundPassthroughClusterIpv4', filters: [tcpFilter('InboundPassthroughClusterIpv4')] },
        ],
      },
    ];
    const routes: Json[] = [
      {
        name: '9080',
        virtual_hosts: [
          {
            name: 'svc:9080',
            domains: ['svc', 'svc:9080', '10.96.0.10', '10.96.0.10:9080'],
            routes: [
              {
                match: { prefix: '/', headers: [{ name: 'x-variant', string_match: { exact: 'two' } }] },
                route: { cluster: 'v2' },
              },
              { match: { prefix: '/' }, route: { cluster: 'v1' } },
            ],
          },
          {
            name: 'allow_any',
            domains: ['*'],
            routes: [{ match: { prefix: '/' }, route: { cluster: 'PassthroughCluster', timeout: '0s' } }],
          },
        ],
      },
    ];
    const clusters: Json[] = [
      staticCluster('v1', [b.v1!.port]),
      staticCluster('v2', [b.v2!.port]),
      staticCluster('mesh-echo', [e.mesh!.port]),
      staticCluster('exact-echo', [e.exact!.port]),
      staticCluster('inbound|8080||', [b.app!.port]),
      staticCluster('inbound|9000||', [e.inbound!.port]),
      PASSTHROUGH,
      { ...PASSTHROUGH, name: 'InboundPassthroughClusterIpv4' },
    ];
    ads = new AdsServer({ logger: log });
    const adsPort = await ads.listen(0, '127.0.0.1');
    ads.setSnapshot(
      NODE_ID,
      Snapshot.build({
        [TypeUrl.Listener]: listeners,
        [TypeUrl.RouteConfiguration]: routes,
        [TypeUrl.Cluster]: clusters,
      }),
    );
    proxy = new MeshProxy({
      node: { id: NODE_ID, metadata: { NAMESPACE: 'default', MIZZEN_CAPTURE_MODE: 'iptables' } },
      pilot: `127.0.0.1:${adsPort}`,
      logger: log,
      adminHost: '127.0.0.1',
      adminPort: admin,
      healthPort: health,
      captureMode: 'iptables',
      initialBackoffMs: 50,
      maxBackoffMs: 200,
    });
    await proxy.start();
    const deadline = Date.now() + 10_000;
    while (!proxy.isReady()) {
      if (Date.now() > deadline) throw new Error('proxy never became ready');
      await sleep(20);
    }
  });

  afterAll(async () => {
    await proxy?.stop();
    await ads?.close();
    for (const x of [...Object.values(b), ...Object.values(e)]) await x.close();
  });

  /** Connects to the capture port as if iptables had redirected a connection meant for `to`. */
  async function redirected(capturePort: number, to: OriginalDestination | Error): Promise<net.Socket> {
    const localPort = await ports.take();
    redirects.set(localPort, to);
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: capturePort, localPort });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
  }

  const dst = (address: string, port: number): OriginalDestination => ({
    address,
    port,
    family: 'IPv4',
    redirected: true,
  });

  /** An unmodified HTTP client: origin-form request, Host header as it would send to `to`. */
  async function httpVia(
    capturePort: number,
    to: OriginalDestination,
    host: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string }> {
    const socket = await redirected(capturePort, to);
    return new Promise((resolve, reject) => {
      const req = http.request(
        { createConnection: () => socket, path: '/hello', headers: { host, ...headers } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => {
            socket.destroy();
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** Sends one line over a redirected TCP connection; resolves with the answer, or 'closed'. */
  async function tcpVia(capturePort: number, to: OriginalDestination | Error, line: string): Promise<string> {
    const socket = await redirected(capturePort, to);
    return new Promise((resolve) => {
      let got = '';
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(got || 'timeout');
      }, 3_000);
      socket.on('data', (d) => {
        got += d.toString();
        clearTimeout(timer);
        socket.destroy();
        resolve(got);
      });
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(got || 'closed');
      });
      socket.on('error', () => {});
      socket.write(line);
    });
  }

  it('outbound HTTP to a service VIP is routed by Host through the port’s route table (header match)', async () => {
    const vip = dst('10.96.0.10', 9080);
    const plain = await httpVia(outbound, vip, '10.96.0.10:9080');
    expect(JSON.parse(plain.body)).toEqual({ name: 'v1', path: '/hello' });
    const two = await httpVia(outbound, vip, 'svc:9080', { 'x-variant': 'two' });
    expect(JSON.parse(two.body)).toEqual({ name: 'v2', path: '/hello' });
  });

  it('outbound HTTP to a host the mesh does not know passes through to the recovered address', async () => {
    const r = await httpVia(outbound, dst('127.0.0.1', b.direct!.port), `example.com:${b.direct!.port}`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ name: 'direct', path: '/hello' });
  });

  it('outbound TCP goes to the 0.0.0.0:port listener, or the address:port one when it exists', async () => {
    expect(await tcpVia(outbound, dst('10.96.0.20', 9000), 'hi')).toBe('mesh:hi');
    expect(await tcpVia(outbound, dst('10.9.9.9', 9000), 'hi')).toBe('exact:hi');
  });

  it('outbound TCP to a port no listener claims takes the capture listener’s own chain (PassthroughCluster)', async () => {
    expect(await tcpVia(outbound, dst('127.0.0.1', e.direct!.port), 'raw')).toBe('direct:raw');
  });

  it('inbound: the filter chain is chosen by the destination port the client called', async () => {
    const r = await httpVia(inbound, dst('10.1.0.5', 8080), 'reviews:8080');
    expect(JSON.parse(r.body)).toEqual({ name: 'app', path: '/hello' });
    expect(b.app!.lastHeaders?.['x-inbound']).toBe('virtualInbound');
    // Port 9000 also has an outbound listener: an inbound connection never goes to it.
    expect(await tcpVia(inbound, dst('10.1.0.5', 9000), 'in')).toBe('inbound:in');
    // Other ports: InboundPassthroughClusterIpv4 to the recovered address.
    expect(await tcpVia(inbound, dst('127.0.0.1', e.direct!.port), 'pt')).toBe('direct:pt');
  });

  it('closes connections to the capture ports themselves and connections it cannot look up, and keeps serving', async () => {
    expect(await tcpVia(outbound, dst('10.96.0.30', outbound), 'loop')).toBe('closed');
    expect(await tcpVia(inbound, dst('10.1.0.5', inbound), 'loop')).toBe('closed');
    // A connection made straight to the capture port (no NAT record) is one to the port itself.
    expect(await tcpVia(outbound, { ...dst('127.0.0.1', outbound), redirected: false }, 'x')).toBe('closed');
    expect(await tcpVia(outbound, new Error('getsockopt failed'), 'x')).toBe('closed');
    expect(await tcpVia(outbound, dst('10.96.0.20', 9000), 'still')).toBe('mesh:still');
  });
});
