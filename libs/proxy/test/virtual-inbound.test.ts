import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import type { OriginalDestination } from '@mizzen/original-dst';
import {
  createCsr,
  createRootCa,
  exportPrivateKeyPem,
  formatSpiffeId,
  generateKeyPair,
  issueWorkloadCertificate,
  parseCsr,
} from '@mizzen/pki';
import { createLogger, PortAllocator } from '@mizzen/runtime';
import { AdsServer, Snapshot, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MeshProxy } from '../src/agent/proxy.js';
import { compileCluster } from '../src/config/cluster.js';
import { ConfigError } from '../src/config/errors.js';
import { SecretStore } from '../src/security/secret-store.js';
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
const ADS = { ads: {}, resource_api_version: 'V3' };
const TLS_CHAIN_SOCKET = {
  name: 'envoy.transport_sockets.tls',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
    common_tls_context: {
      tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
      combined_validation_context: {
        default_validation_context: {},
        validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS },
      },
      alpn_protocols: ['h2', 'http/1.1'],
    },
    require_client_certificate: true,
  },
};

type Ca = Awaited<ReturnType<typeof createRootCa>>;

async function workloadCert(ca: Ca, serviceAccount: string) {
  const identity = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount };
  const keys = await generateKeyPair();
  const csr = await parseCsr(await createCsr({ keys, uris: [formatSpiffeId(identity)] }));
  const cert = await issueWorkloadCertificate({ csr, identity, issuer: ca, ttlSeconds: 3600 });
  return { certChain: cert, privateKey: await exportPrivateKeyPem(keys.privateKey) };
}

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
  let tcpOut = 0;
  let ca: Ca;
  let client: { certChain: string; privateKey: string };
  const s: Record<string, Server> = {};

  beforeAll(async () => {
    const [capture, admin, health, strict, out, mtlsIn] = await ports.takeMany(6);
    inbound = capture!;
    strictPort = strict!;
    tcpOut = out!;
    s.http = await app();
    s.h2 = await h2App();
    s.tcp = await tcpApp();
    s.passthrough = await tcpApp();
    s.mtls = await app();
    ca = await createRootCa({ organization: 'cluster.local' });
    client = await workloadCert(ca, 'client');
    const secrets = new SecretStore();
    secrets.setLocal('default', { kind: 'certificate', ...(await workloadCert(ca, 'web')) });
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
          // Mesh mTLS (STRICT): TLS terminated, then the connection manager, over HTTP/2 or HTTP/1.1 by ALPN.
          {
            ...chain(s.mtls.port, hcm(`inbound|${s.mtls.port}||`), { transport_protocol: 'tls' }),
            transport_socket: TLS_CHAIN_SOCKET,
          },
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
    // Outbound TCP to a sidecar: the cluster originates mutual TLS (Istio's auto-mTLS picks it per endpoint);
    // the receiving listener takes TLS only.
    listeners.push(
      {
        name: 'tcp-out',
        address: { socket_address: { address: '127.0.0.1', port_value: tcpOut } },
        traffic_direction: 'OUTBOUND',
        filter_chains: [{ filters: [tcpProxy('mesh-tcp')] }],
      },
      {
        name: 'mtls-in',
        address: { socket_address: { address: '127.0.0.1', port_value: mtlsIn } },
        traffic_direction: 'INBOUND',
        filter_chains: [
          {
            filter_chain_match: { transport_protocol: 'tls' },
            transport_socket: TLS_CHAIN_SOCKET,
            filters: [tcpProxy('tcp-app')],
          },
        ],
      },
    );
    const clusters: Json[] = [
      {
        name: 'mesh-tcp',
        type: 'STATIC',
        connect_timeout: '1s',
        load_assignment: {
          cluster_name: 'mesh-tcp',
          endpoints: [
            {
              lb_endpoints: [
                {
                  endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: mtlsIn } } },
                  metadata: { filter_metadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' } } },
                },
              ],
            },
          ],
        },
        transport_socket_matches: [
          {
            name: 'tlsMode-istio',
            match: { tlsMode: 'istio' },
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
                common_tls_context: {
                  tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
                  combined_validation_context: {
                    default_validation_context: {
                      match_subject_alt_names: [{ exact: 'spiffe://cluster.local/ns/default/sa/web' }],
                    },
                    validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS },
                  },
                },
                sni: 'outbound_.9000_._.web.default.svc.cluster.local',
              },
            },
          },
        ],
      },
      {
        name: 'tcp-app',
        type: 'STATIC',
        connect_timeout: '1s',
        load_assignment: {
          cluster_name: 'tcp-app',
          endpoints: [
            {
              lb_endpoints: [
                {
                  endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: s.tcp.port } } },
                },
              ],
            },
          ],
        },
      },
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
      originalDst(`inbound|${s.mtls.port}||`),
      originalDst('InboundPassthroughCluster'),
    ];
    ads = new AdsServer({ logger: log });
    const adsPort = await ads.listen(0, '127.0.0.1');
    ads.setSnapshot(
      NODE_ID,
      Snapshot.build({
        [TypeUrl.Listener]: listeners,
        [TypeUrl.Cluster]: clusters,
        [TypeUrl.Secret]: [
          { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: ca.certificate } } },
        ],
      }),
    );
    proxy = new MeshProxy({
      node: { id: NODE_ID, metadata: { NAMESPACE: 'default', MIZZEN_CAPTURE_MODE: 'iptables' } },
      pilot: `127.0.0.1:${adsPort}`,
      logger: log,
      adminHost: '127.0.0.1',
      adminPort: admin!,
      healthPort: health!,
      captureMode: 'iptables',
      secrets,
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

  /** A request over mutual TLS to the redirected connection: ALPN picks HTTP/2 or HTTP/1.1. */
  async function mtlsGet(port: number, alpn: 'h2' | 'http/1.1'): Promise<string> {
    const raw = await redirected(port);
    const socket = tls.connect({
      socket: raw,
      ca: ca.certificate,
      cert: client.certChain,
      key: client.privateKey,
      ALPNProtocols: [alpn],
      checkServerIdentity: () => undefined,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    if (alpn === 'h2') {
      const session = http2.connect('https://web', { createConnection: () => socket });
      try {
        return await new Promise((resolve, reject) => {
          const req = session.request({ ':path': '/' });
          let body = '';
          let status = 0;
          req.setEncoding('utf8');
          req.on('response', (h) => {
            status = Number(h[':status']);
          });
          req.on('data', (c) => {
            body += c;
          });
          req.on('end', () => resolve(`${status} ${body}`));
          req.on('error', reject);
          req.end();
        });
      } finally {
        session.destroy();
      }
    }
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

  it('mTLS chains keep the original destination through TLS termination (inspected connections, HTTP/2 and HTTP/1.1)', async () => {
    expect(await mtlsGet(s.mtls!.port, 'h2')).toBe('200 127.0.0.6');
    expect(await mtlsGet(s.mtls!.port, 'http/1.1')).toBe('200 127.0.0.6');
  });

  it('TCP reaches the original destination from 127.0.0.6, and so does the passthrough chain', async () => {
    expect(await line(s.tcp!.port, 'hi')).toBe('127.0.0.6:hi');
    expect(await line(s.passthrough!.port, 'other')).toBe('127.0.0.6:other');
  });

  it('tcp_proxy originates mutual TLS to an endpoint the transport socket match marks as a sidecar', async () => {
    const socket = net.connect({ host: '127.0.0.1', port: tcpOut });
    const answer = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 3_000);
      socket.once('data', (d) => {
        clearTimeout(timer);
        resolve(d.toString());
      });
      socket.once('close', () => resolve('closed'));
      socket.on('error', () => {});
      socket.write('over mtls');
    });
    socket.destroy();
    expect(answer).toBe('127.0.0.1:over mtls');
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
