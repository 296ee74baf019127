import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { SIDECAR_H2_UPGRADE_KEY, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Backend,
  backend,
  HCM,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  ROUTER,
  staticCluster,
  svcRoutes,
  TCP,
} from './harness.js';

/**
 * Protocols through the proxy: HTTP/2 cleartext in and out, gRPC unary and
 * bidirectional streaming with trailers, HTTP/2 between sidecars, opaque TCP,
 * and filter-chain selection by SNI and by sniffed protocol.
 */
const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};
const SERVICE = {
  Echo: {
    path: '/mizzen.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
  Chat: {
    path: '/mizzen.test.Echo/Chat',
    requestStream: true,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;

type EchoClient = grpc.Client & {
  Echo: (req: unknown, cb: (err: grpc.ServiceError | null, res?: { echo: string }) => void) => void;
  Chat: () => grpc.ClientDuplexStream<{ text: string }, { text: string }>;
};

const inboundHttp = (name: string, port: number, cluster: string) => ({
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
            route_config: {
              name,
              virtual_hosts: [
                {
                  name,
                  domains: ['*'],
                  routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '0s' } }],
                },
              ],
            },
            http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
          },
        },
      ],
    },
  ],
});

const h2Options = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

describe('protocols', () => {
  const h = new ProxyHarness();
  let grpcServer: grpc.Server;
  let grpcPort = 0;
  let h2Backend: http2.Http2Server;
  let h2Port = 0;
  let h2Seen: string[] = [];
  let app: Backend;
  let tcpEcho: net.Server;
  let tcpPort = 0;
  let tlsA: net.Server;
  let tlsB: net.Server;
  const tlsHits: string[] = [];
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    grpcServer = new grpc.Server();
    grpcServer.addService(SERVICE, {
      Echo: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (call.request.text === 'missing') cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        else
          cb(null, {
            echo: call.request.text,
            via: call.metadata.get('x-request-id').length ? 'proxy' : 'direct',
          });
      },
      Chat: (call: grpc.ServerDuplexStream<{ text: string }, { text: string }>) => {
        call.on('data', (m: { text: string }) => call.write({ text: m.text.toUpperCase() }));
        call.on('end', () => call.end());
      },
    });
    grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    h2Backend = http2.createServer((req, res) => {
      h2Seen.push(req.httpVersion);
      res.end(JSON.stringify({ via: `h${req.httpVersion}`, path: req.url }));
    });
    await new Promise<void>((r) => h2Backend.listen(0, '127.0.0.1', r));
    h2Port = (h2Backend.address() as AddressInfo).port;
    app = await backend('http1-app');
    tcpEcho = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => tcpEcho.listen(0, '127.0.0.1', r));
    tcpPort = (tcpEcho.address() as AddressInfo).port;
    // Two "TLS servers" that only record that a ClientHello reached them: routing by SNI never terminates TLS.
    const recorder = (name: string) =>
      net.createServer((s) => {
        s.once('data', () => {
          tlsHits.push(name);
          s.destroy();
        });
      });
    tlsA = recorder('a');
    tlsB = recorder('b');
    await new Promise<void>((r) => tlsA.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => tlsB.listen(0, '127.0.0.1', r));
    for (const n of ['grpcIn', 'h2In', 'sniffed', 'sni']) ports[n] = await h.ports.take();
    await h.start(() => ({
      [TypeUrl.Cluster]: [
        staticCluster('grpc', [grpcPort], { typed_extension_protocol_options: h2Options }),
        staticCluster('app', [app.port]),
        // An endpoint with a sidecar (Istio's tlsMode: istio) of a cluster pilot marks for the mesh's upgrade: proxies speak HTTP/2 to it.
        {
          ...staticCluster('meshed', []),
          metadata: { filter_metadata: { [SIDECAR_H2_UPGRADE_KEY]: { http2_protocol_options: {} } } },
          load_assignment: {
            cluster_name: 'meshed',
            endpoints: [
              {
                lb_endpoints: [
                  {
                    endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: h2Port } } },
                    metadata: { filter_metadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' } } },
                  },
                ],
              },
            ],
          },
        },
        staticCluster('echo', [tcpPort]),
        staticCluster('tls-a', [(tlsA.address() as AddressInfo).port]),
        staticCluster('tls-b', [(tlsB.address() as AddressInfo).port]),
        PASSTHROUGH,
      ],
      [TypeUrl.Listener]: [
        ...outboundListeners(h.outbound),
        inboundHttp('grpc-in', ports.grpcIn!, 'grpc'),
        inboundHttp('h2-in', ports.h2In!, 'app'),
        {
          // Istio's listener for a port of unknown protocol: HTTP if the first bytes say so, else TCP.
          name: 'sniffed',
          address: { socket_address: { address: '127.0.0.1', port_value: ports.sniffed } },
          listener_filters: [
            {
              name: 'envoy.filters.listener.http_inspector',
              typed_config: {
                '@type':
                  'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
              },
            },
          ],
          filter_chains: [
            {
              filter_chain_match: { application_protocols: ['http/1.1', 'h2c'] },
              filters: inboundHttp('sniffed-http', 0, 'app').filter_chains[0]!.filters,
            },
            {
              filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'tcp', cluster: 'echo' } }],
            },
          ],
        },
        {
          name: 'sni',
          address: { socket_address: { address: '127.0.0.1', port_value: ports.sni } },
          filter_chains: [
            {
              filter_chain_match: { server_names: ['a.example.com'] },
              filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'a', cluster: 'tls-a' } }],
            },
            {
              filter_chain_match: { server_names: ['*.example.com'] },
              filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'b', cluster: 'tls-b' } }],
            },
          ],
        },
      ],
      [TypeUrl.RouteConfiguration]: [
        svcRoutes([
          { match: { prefix: '/meshed' }, route: { cluster: 'meshed', timeout: '0s' } },
          { match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } },
        ]),
      ],
    }));
  });

  afterAll(async () => {
    await h.stop();
    grpcServer.forceShutdown();
    h2Backend.close();
    await app.close();
    tcpEcho.close();
    tlsA.close();
    tlsB.close();
  });

  it('carries gRPC unary calls and their error statuses (trailers) through the proxy', async () => {
    const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
    const client = new Client(
      `127.0.0.1:${ports.grpcIn}`,
      grpc.credentials.createInsecure(),
    ) as unknown as EchoClient;
    try {
      const ok = await new Promise<{ echo: string; via?: string }>((resolve, reject) =>
        client.Echo({ text: 'hello' }, (err, res) => (err ? reject(err) : resolve(res as { echo: string }))),
      );
      expect(ok).toEqual({ echo: 'hello', via: 'proxy' });
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        client.Echo({ text: 'missing' }, (e) => resolve(e!)),
      );
      expect(err.code).toBe(grpc.status.NOT_FOUND);
      expect(err.details).toBe('no such thing');
    } finally {
      client.close();
    }
  });

  it('carries a bidirectional gRPC stream message by message', async () => {
    const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
    const client = new Client(
      `127.0.0.1:${ports.grpcIn}`,
      grpc.credentials.createInsecure(),
    ) as unknown as EchoClient;
    try {
      const call = client.Chat();
      const got: string[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (m: { text: string }) => {
          got.push(m.text);
          if (got.length < 3) call.write({ text: `msg${got.length + 1}` });
          else call.end();
        });
        call.on('end', resolve);
        call.on('error', reject);
      });
      call.write({ text: 'msg1' });
      await done;
      expect(got).toEqual(['MSG1', 'MSG2', 'MSG3']);
    } finally {
      client.close();
    }
  });

  it('accepts HTTP/2 cleartext from clients and forwards to an HTTP/1.1 app', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.h2In}`);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/over-h2', ':authority': 'svc' });
        let text = '';
        req.setEncoding('utf8');
        req.on('data', (c) => {
          text += c;
        });
        req.on('end', () => resolve(text));
        req.on('error', reject);
        req.end();
      });
      expect(JSON.parse(body)).toEqual({ name: 'http1-app', path: '/over-h2' });
      expect(app.lastHeaders?.host).toBe('svc');
    } finally {
      session.close();
    }
  });

  it('speaks HTTP/2 to an endpoint that has a sidecar, whatever the app spoke, over one multiplexed connection', async () => {
    h2Seen = [];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => h.request(`http://svc:9080/meshed/${i}`)),
    );
    for (const r of results) expect(JSON.parse(r.body).via).toBe('h2.0');
    expect(h2Seen).toHaveLength(10);
    const connections = await new Promise<number>((resolve) =>
      h2Backend.getConnections((_e, n) => resolve(n)),
    );
    expect(connections).toBe(1);
  });

  it('sniffs the protocol: HTTP goes to the HTTP chain, anything else to the TCP chain', async () => {
    const viaHttp = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: ports.sniffed, path: '/sniffed', agent: false }, (res) => {
          let t = '';
          res.on('data', (c) => {
            t += c;
          });
          res.on('end', () => resolve(t));
        })
        .on('error', reject);
    });
    expect(JSON.parse(viaHttp).name).toBe('http1-app');
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(ports.sniffed!, '127.0.0.1', () => s.write('\x00\x01binary ping'));
      s.once('data', (d) => {
        resolve(d.toString('latin1'));
        s.destroy();
      });
      s.on('error', reject);
    });
    expect(echoed).toBe('\x00\x01binary ping');
  });

  it('routes TLS by SNI without terminating it (exact name before wildcard)', async () => {
    const hello = (servername: string) =>
      new Promise<void>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: ports.sni!, servername, rejectUnauthorized: false });
        s.on('error', () => resolve());
        s.on('close', () => resolve());
      });
    await hello('a.example.com');
    await hello('shop.example.com');
    await h.until('both hellos routed', () => tlsHits.length === 2);
    expect(tlsHits).toEqual(['a', 'b']);
  });

  it('tunnels opaque TCP through the outbound port with CONNECT', async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(h.outbound, '127.0.0.1', () =>
        s.write(`CONNECT 127.0.0.1:${tcpPort} HTTP/1.1\r\nhost: 127.0.0.1:${tcpPort}\r\n\r\n`),
      );
      let buf = '';
      s.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('\r\n\r\n') && !buf.includes('ping')) s.write('ping over tcp');
        if (buf.endsWith('ping over tcp')) {
          resolve(buf.slice(buf.indexOf('\r\n\r\n') + 4));
          s.destroy();
        }
      });
      s.on('error', reject);
    });
    expect(echoed).toBe('ping over tcp');
  });
});
