import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { OriginalDestination } from '@mizzen/original-dst';
import { createLogger, PortAllocator } from '@mizzen/runtime';
import { AdsServer, Snapshot, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MeshProxy } from '../src/agent/proxy.js';
import { compileCluster } from '../src/config/cluster.js';
import { ConfigError } from '../src/config/errors.js';
import { HCM, ROUTER, TCP } from './harness.js';

/**
 * Istio's Kubernetes-mode inbound side as pilot generates it for iptables
 * capture: one bound `virtualInbound` listener whose chains are picked by the
 * port the client called, inbound clusters of type ORIGINAL_DST that connect
 * to the pod's own address from 127.0.0.6 (upstream_bind_config, so the
 * capture rules let the connection through instead of redirecting it back),
 * and Envoy's filter chain selection, under which a port whose chains all
 * require TLS refuses plaintext instead of falling through to the
 * passthrough chain. SO_ORIGINAL_DST is replaced by a table, as in
 * transparent-capture.test.ts.
 */
const redirects = new Map<number, OriginalDestination>();
vi.mock('@mizzen/original-dst', () => ({
  originalDestination: (socket: net.Socket): OriginalDestination =>
    redirects.get(socket.remotePort ?? -1) ?? {
      address: '127.0.0.1',
      port: socket.localPort ?? 0,
      family: 'IPv4',
      redirected: false,
    },
}));

type Json = Record<string, unknown>;
const NODE_ID = 'sidecar~127.0.0.1~web.default~default.svc.cluster.local';
const BIND = { source_address: { address: '127.0.0.6', port_value: 0 } };

const tcpProxy = (cluster: string) => ({
  name: 'envoy.filters.network.tcp_proxy',
  typed_config: { '@type': TCP, stat_prefix: cluster, cluster },
});
const hcm = (cluster: string) => ({
  name: 'envoy.filters.network.http_connection_manager',
  typed_config: {
    '@type': HCM,
    stat_prefix: cluster,
    route_config: {
      name: cluster,
      virtual_hosts: [
        { name: cluster, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] },
      ],
    },
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
  },
});
const originalDst = (name: string, extra: Json = {}) => ({
  name,
  type: 'ORIGINAL_DST',
  lb_policy: 'CLUSTER_PROVIDED',
  connect_timeout: '1s',
  upstream_bind_config: BIND,
  ...extra,
});

interface Server {
  port: number;
  close: () => Promise<void>;
}

/** The app: answers every request with the address it came from. */
async function app(): Promise<Server> {
  const server = http.createServer((req, res) => res.end(req.socket.remoteAddress));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A cleartext HTTP/2 app (gRPC-style ports): answers with the address the session came from. */
async function h2App(): Promise<Server> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end(stream.session?.socket.remoteAddress ?? '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A TCP app: answers each line with `<remote address>:<line>`. */
async function tcpApp(): Promise<Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => s.write(`${s.remoteAddress}:${d.toString()}`));
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

describe('virtualInbound: chains by destination port, ORIGINAL_DST inbound clusters bound to 127.0.0.6', () => {
  const log = createLogger('virtual-inbound-test', { level: 'silent' });
  const ports = new PortAllocator();
  let ads: AdsServer;
  let proxy: MeshProxy;
  let inbound = 0;
  let strictPort = 0;
  const s: Record<string, Server> = {};

  beforeAll(async () => {
    const [capture, admin, health, strict] = await ports.takeMany(4);
    inbound = capture!;
    strictPort = strict!;
    s.http = await app();
    s.h2 = await h2App();
    s.tcp = await tcpApp();
    s.passthrough = await tcpApp();
    const chain = (port: number, filter: Json, match: Json = {}) => ({
      name: `0.0.0.0_${port}`,
      filter_chain_match: { destination_port: port, ...match },
      filters: [filter],
    });
    const listeners: Json[] = [
      {
        name: 'virtualInbound',
        address: { socket_address: { address: '0.0.0.0', port_value: inbound } },
        traffic_direction: 'INBOUND',
        listener_filters: [
          {
            name: 'envoy.filters.listener.original_dst',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
            },
          },
          {
            name: 'envoy.filters.listener.tls_inspector',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
            },
          },
        ],
        filter_chains: [
          chain(s.http.port, hcm(`inbound|${s.http.port}||`)),
          chain(s.h2.port, hcm(`inbound|${s.h2.port}||`)),
          chain(s.tcp.port, tcpProxy(`inbound|${s.tcp.port}||`)),
          // A STRICT port: TLS only (the bytes are passed on as they are; no certificate is needed here).
          chain(strictPort, tcpProxy('InboundPassthroughCluster'), { transport_protocol: 'tls' }),
          // Istio's passthrough chain for every other port, plaintext (PERMISSIVE's raw_buffer half).
          {
            name: 'virtualInbound',
            filter_chain_match: { transport_protocol: 'raw_buffer' },
            filters: [tcpProxy('InboundPassthroughCluster')],
          },
        ],
      },
    ];
    const clusters: Json[] = [
      originalDst(`inbound|${s.http.port}||`),
      originalDst(`inbound|${s.h2.port}||`, {
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
      }),
      originalDst(`inbound|${s.tcp.port}||`),
      originalDst('InboundPassthroughCluster'),
    ];
    ads = new AdsServer({ logger: log });
    const adsPort = await ads.listen(0, '127.0.0.1');
    ads.setSnapshot(NODE_ID, Snapshot.build({ [TypeUrl.Listener]: listeners, [TypeUrl.Cluster]: clusters }));
    proxy = new MeshProxy({
      node: { id: NODE_ID, metadata: { NAMESPACE: 'default', MIZZEN_CAPTURE_MODE: 'iptables' } },
      pilot: `127.0.0.1:${adsPort}`,
      logger: log,
      adminHost: '127.0.0.1',
      adminPort: admin!,
      healthPort: health!,
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
    for (const x of Object.values(s)) await x.close();
  });

  /** A connection to the capture port, as iptables would hand over one meant for 127.0.0.1:`port`. */
  async function redirected(port: number): Promise<net.Socket> {
    const localPort = await ports.take();
    redirects.set(localPort, { address: '127.0.0.1', port, family: 'IPv4', redirected: true });
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: inbound, localPort });
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });
  }

  async function get(port: number): Promise<string> {
    const socket = await redirected(port);
    return new Promise((resolve, reject) => {
      const req = http.request(
        { createConnection: () => socket, path: '/', headers: { host: 'web' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => {
            socket.destroy();
            resolve(`${res.statusCode} ${body}`);
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  /** One line over a redirected connection: the answer, or 'closed'. */
  async function line(port: number, text: string): Promise<string> {
    const socket = await redirected(port);
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
      socket.write(text);
    });
  }

  it('HTTP reaches the original destination from 127.0.0.6, over HTTP/1.1 and HTTP/2 upstreams', async () => {
    expect(await get(s.http!.port)).toBe('200 127.0.0.6');
    expect(await get(s.h2!.port)).toBe('200 127.0.0.6');
  });

  it('TCP reaches the original destination from 127.0.0.6, and so does the passthrough chain', async () => {
    expect(await line(s.tcp!.port, 'hi')).toBe('127.0.0.6:hi');
    expect(await line(s.passthrough!.port, 'other')).toBe('127.0.0.6:other');
  });

  it('refuses plaintext to a port whose chains all require TLS, rather than passing it through', async () => {
    expect(await line(strictPort, 'plain')).toBe('closed');
    // The passthrough chain still takes plaintext for ports without chains of their own.
    expect(await line(s.passthrough!.port, 'again')).toBe('127.0.0.6:again');
  });
});

describe('upstream_bind_config', () => {
  const cluster = (bind: Json) =>
    compileCluster({
      name: 'c',
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
      upstream_bind_config: bind,
    });

  it('reads the source address per IP family, extra_source_addresses for the other one', () => {
    expect(cluster(BIND).sourceAddresses).toEqual({ ipv4: '127.0.0.6' });
    expect(
      cluster({ ...BIND, extra_source_addresses: [{ address: { address: '::6', port_value: 0 } }] })
        .sourceAddresses,
    ).toEqual({ ipv4: '127.0.0.6', ipv6: '::6' });
  });

  it('refuses what it cannot honour, naming the field', () => {
    expect(() => cluster({ source_address: { address: '127.0.0.6', port_value: 4000 } })).toThrow(
      /upstream_bind_config\.source_address\.port_value.*source port/,
    );
    expect(() => cluster({ source_address: { address: 'localhost' } })).toThrow(ConfigError);
    expect(() =>
      cluster({
        source_address: { address: '127.0.0.6' },
        extra_source_addresses: [{ address: { address: '127.0.0.7' } }],
      }),
    ).toThrow(/second IPv4 source address/);
  });
});
