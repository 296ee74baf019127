import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeProxyHeader, parseProxyHeader } from '../src/listeners/proxy-protocol.js';
import { outboundListeners, PASSTHROUGH, ProxyHarness, staticCluster, svcRoutes, TCP } from './harness.js';

type Json = Record<string, unknown>;

/**
 * What tcp_proxy and clusters do to the upstream connection besides carrying
 * bytes: HTTP CONNECT/POST tunnels through a real forward proxy (DestinationRule
 * `tunnel`), a PROXY protocol header first on the connection (`proxyProtocol`),
 * and idle and lifetime limits (`connectionPool.tcp.idleTimeout`,
 * `maxConnectionDuration`), through a real proxy.
 */

const H2 = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

const PROXY_PROTOCOL = (version: 'V1' | 'V2') => ({
  transport_socket: {
    name: 'envoy.transport_sockets.upstream_proxy_protocol',
    typed_config: {
      '@type':
        'type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport',
      config: { version },
      transport_socket: {
        name: 'envoy.transport_sockets.raw_buffer',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer',
        },
      },
    },
  },
});

/** Starts a server on a free loopback port and gives its port. */
async function listen(server: net.Server | http.Server | http2.Http2Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** Sends `text` over a new connection to `port` and resolves with what comes back before the connection closes or `bytes` arrived. */
function exchange(
  port: number,
  text: string,
  bytes = text.length,
): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    c.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= bytes) {
        c.destroy();
        resolve({ got, closed: false });
      }
    });
    c.on('error', () => {});
    c.on('close', () => resolve({ got, closed: true }));
    c.write(text);
  });
}

describe('tcp_proxy upstreams: tunnels, PROXY protocol, idle and lifetime limits', () => {
  const h = new ProxyHarness();
  const servers: (net.Server | http.Server | http2.Http2Server)[] = [];
  /** What the forward proxies were asked: method and authority of each tunnel request. */
  const tunnelRequests: string[] = [];
  /** The first bytes each PROXY-aware server got on a connection, and what followed. */
  const proxyHeaders: { header: Buffer; rest: string }[] = [];
  const ports: Record<string, number> = {};

  beforeAll(async () => {
    const echo = net.createServer((s) => s.on('error', () => {}).pipe(s));
    servers.push(echo);
    ports.echo = await listen(echo);

    // An HTTP/1.1 forward proxy: CONNECT host:port splices to the target; POST streams to :authority.
    const h1Proxy = http.createServer((req, res) => {
      tunnelRequests.push(`h1 ${req.method} ${req.headers.host}`);
      const [host, port] = String(req.headers.host).split(':');
      const target = net.connect(Number(port), host);
      res.writeHead(200);
      res.flushHeaders();
      req.pipe(target);
      target.pipe(res);
      target.on('error', () => res.destroy());
    });
    h1Proxy.on('connect', (req, socket, head) => {
      tunnelRequests.push(`h1 CONNECT ${req.url}`);
      if (req.url?.startsWith('forbidden')) {
        socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      const [host, port] = String(req.url).split(':');
      const target = net.connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
        if (head.length) target.write(head);
        socket.pipe(target).pipe(socket);
      });
      target.on('error', () => socket.destroy());
      socket.on('error', () => target.destroy());
    });
    servers.push(h1Proxy);
    ports.h1Proxy = await listen(h1Proxy);

    // The same over HTTP/2: CONNECT and POST streams become TCP connections to :authority.
    const h2Proxy = http2.createServer();
    h2Proxy.on('stream', (stream, headers) => {
      tunnelRequests.push(`h2 ${headers[':method']} ${headers[':authority']}`);
      const [host, port] = String(headers[':authority']).split(':');
      const target = net.connect(Number(port), host, () => {
        stream.respond({ ':status': 200 });
        stream.pipe(target).pipe(stream);
      });
      target.on('error', () => stream.close());
      stream.on('error', () => target.destroy());
    });
    servers.push(h2Proxy);
    ports.h2Proxy = await listen(h2Proxy);

    // A server behind a PROXY-protocol-speaking balancer: it records the header, then echoes.
    const proxyAware = net.createServer((s) => {
      s.on('error', () => {});
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const parsed = parseProxyHeader(buf);
        if ('incomplete' in parsed) return;
        s.removeAllListeners('data');
        const length = 'length' in parsed ? parsed.length : 0;
        const rest = buf.subarray(length).toString();
        proxyHeaders.push({ header: buf.subarray(0, length), rest });
        s.write(rest);
        s.pipe(s);
      });
    });
    servers.push(proxyAware);
    ports.proxyAware = await listen(proxyAware);

    // An HTTP server behind the same kind of balancer: the header is stripped before HTTP starts.
    const app = http.createServer((req, res) => res.end(`hello ${req.url}`));
    const httpAware = net.createServer((s) => {
      s.on('error', () => {});
      s.once('readable', function read() {
        const chunk: Buffer | null = s.read();
        if (!chunk) return s.once('readable', read);
        const parsed = parseProxyHeader(chunk);
        const length = 'length' in parsed ? parsed.length : 0;
        proxyHeaders.push({ header: chunk.subarray(0, length), rest: 'http' });
        s.unshift(chunk.subarray(length));
        app.emit('connection', s);
      });
    });
    servers.push(httpAware);
    ports.httpAware = await listen(httpAware);

    // Three servers that name themselves on each connection, behind a ring-hash cluster.
    for (const name of ['s1', 's2', 's3']) {
      const named = net.createServer((s) => {
        s.on('error', () => {});
        s.end(name);
      });
      servers.push(named);
      ports[name] = await listen(named);
    }
    for (const n of [
      'connectH1',
      'postH1',
      'connectH2',
      'postH2',
      'refused',
      'ppV1',
      'ppV2',
      'idle',
      'lifetime',
      'byIp',
    ])
      ports[n] = await h.ports.take();
    await h.start(() => resources());
  });

  const tcpListener = (name: string, port: number, proxy: Json) => ({
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      { filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: name, ...proxy } }] },
    ],
  });
  const target = () => `127.0.0.1:${ports.echo}`;

  const resources = () => ({
    [TypeUrl.Cluster]: [
      staticCluster('h1-proxy', [ports.h1Proxy!]),
      staticCluster('h2-proxy', [ports.h2Proxy!], { typed_extension_protocol_options: H2 }),
      staticCluster('pp-v1', [ports.proxyAware!], PROXY_PROTOCOL('V1')),
      staticCluster('pp-v2', [ports.proxyAware!], PROXY_PROTOCOL('V2')),
      staticCluster('pp-http', [ports.httpAware!], PROXY_PROTOCOL('V2')),
      staticCluster('echo', [ports.echo!]),
      staticCluster('named', [ports.s1!, ports.s2!, ports.s3!], { lb_policy: 'RING_HASH' }),
      PASSTHROUGH,
    ],
    [TypeUrl.Listener]: [
      ...outboundListeners(h.outbound),
      tcpListener('connect-h1', ports.connectH1!, {
        cluster: 'h1-proxy',
        tunneling_config: { hostname: target() },
      }),
      tcpListener('post-h1', ports.postH1!, {
        cluster: 'h1-proxy',
        tunneling_config: { hostname: target(), use_post: true },
      }),
      tcpListener('connect-h2', ports.connectH2!, {
        cluster: 'h2-proxy',
        tunneling_config: { hostname: target() },
      }),
      tcpListener('post-h2', ports.postH2!, {
        cluster: 'h2-proxy',
        tunneling_config: { hostname: target(), use_post: true, post_path: '/tunnel' },
      }),
      tcpListener('refused', ports.refused!, {
        cluster: 'h1-proxy',
        tunneling_config: { hostname: 'forbidden.example.com:443' },
      }),
      tcpListener('pp-v1', ports.ppV1!, { cluster: 'pp-v1' }),
      tcpListener('pp-v2', ports.ppV2!, { cluster: 'pp-v2' }),
      tcpListener('idle', ports.idle!, { cluster: 'echo', idle_timeout: '0.3s' }),
      tcpListener('lifetime', ports.lifetime!, {
        cluster: 'echo',
        max_downstream_connection_duration: '0.5s',
      }),
      tcpListener('by-ip', ports.byIp!, { cluster: 'named', hash_policy: [{ source_ip: {} }] }),
    ],
    [TypeUrl.RouteConfiguration]: [
      svcRoutes([{ match: { prefix: '/' }, route: { cluster: 'pp-http', timeout: '0s' } }]),
    ],
  });

  afterAll(async () => {
    await h.stop();
    for (const s of servers) s.close();
  });

  it('tunnels TCP through a forward proxy with HTTP/1.1 CONNECT and POST, and HTTP/2 CONNECT and POST', async () => {
    for (const [listener, expected] of [
      ['connectH1', `h1 CONNECT ${target()}`],
      ['postH1', `h1 POST ${target()}`],
      ['connectH2', `h2 CONNECT ${target()}`],
      ['postH2', `h2 POST ${target()}`],
    ] as const) {
      const { got } = await exchange(ports[listener]!, `through ${listener}`);
      expect(got, listener).toBe(`through ${listener}`);
      expect(tunnelRequests.at(-1), listener).toBe(expected);
    }
  });

  it('closes the downstream when the forward proxy refuses the tunnel', async () => {
    const { got, closed } = await exchange(ports.refused!, 'hello');
    expect(closed).toBe(true);
    expect(got).toBe('');
    expect(tunnelRequests.at(-1)).toBe('h1 CONNECT forbidden.example.com:443');
  });

  it('sends a PROXY header (v1 text, v2 binary) with the downstream connection ends before its bytes', async () => {
    const client = net.connect(ports.ppV1!, '127.0.0.1');
    await new Promise<void>((r) => client.once('connect', () => r()));
    const clientPort = client.localPort!;
    const echoed = await new Promise<string>((resolve) => {
      client.once('data', (d: Buffer) => resolve(d.toString()));
      client.write('after the header');
    });
    client.destroy();
    expect(echoed).toBe('after the header');
    expect(proxyHeaders.at(-1)!.header.toString()).toBe(
      `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${ports.ppV1}\r\n`,
    );

    const v2 = net.connect(ports.ppV2!, '127.0.0.1');
    await new Promise<void>((r) => v2.once('connect', () => r()));
    const v2Port = v2.localPort!;
    await new Promise<void>((resolve) => {
      v2.once('data', () => resolve());
      v2.write('v2');
    });
    v2.destroy();
    const header = proxyHeaders.at(-1)!.header;
    // Signature, version 2 + PROXY, TCP over IPv4, 12 address bytes, then the addresses and ports.
    expect(header.subarray(0, 12).toString('latin1')).toBe('\r\n\r\n\0\r\nQUIT\n');
    expect([...header.subarray(12, 16)]).toEqual([0x21, 0x11, 0, 12]);
    expect([...header.subarray(16, 24)]).toEqual([127, 0, 0, 1, 127, 0, 0, 1]);
    expect(header.readUInt16BE(24)).toBe(v2Port);
    expect(header.readUInt16BE(26)).toBe(ports.ppV2);
  });

  it('sends the PROXY header on HTTP upstream connections too, one connection per downstream connection', async () => {
    const before = proxyHeaders.length;
    expect((await h.request('http://svc:9080/a')).body).toBe('hello /a');
    expect((await h.request('http://svc:9080/b')).body).toBe('hello /b');
    const seen = proxyHeaders.slice(before);
    expect(seen.length).toBe(2);
    const sources = seen
      .map((s) => parseProxyHeader(s.header))
      .map((p) => ('header' in p ? p.header.source : undefined));
    expect(sources.every((src) => src?.address === '127.0.0.1')).toBe(true);
    expect(new Set(sources.map((src) => src?.port)).size).toBe(2);
  });

  it('closes a TCP connection idle for idle_timeout, and any connection at max_downstream_connection_duration', async () => {
    const idle = await exchange(ports.idle!, 'x', 100);
    expect(idle).toEqual({ got: 'x', closed: true });
    // Busy the whole time, and still closed at its maximum duration.
    const busy = net.connect(ports.lifetime!, '127.0.0.1');
    busy.on('error', () => {});
    const ticker = setInterval(() => busy.write('.'), 50);
    const echoedBeforeClose = await new Promise<number>((resolve) => {
      let n = 0;
      busy.on('data', (d: Buffer) => {
        n += d.length;
      });
      busy.once('close', () => resolve(n));
    });
    clearInterval(ticker);
    expect(echoedBeforeClose).toBeGreaterThan(3);
  });

  it('encodes IPv6 ends, and falls back to UNKNOWN / LOCAL when the ends are of different families or unknown', () => {
    const v6 = { address: '2001:db8::1', port: 4000 };
    const dst = { address: '::1', port: 443 };
    expect(encodeProxyHeader(1, v6, dst).toString()).toBe('PROXY TCP6 2001:db8::1 ::1 4000 443\r\n');
    expect(parseProxyHeader(encodeProxyHeader(2, v6, dst))).toEqual({
      header: { source: v6, destination: dst },
      length: 16 + 36,
    });
    const mapped = { address: '::ffff:10.0.0.1', port: 1 };
    expect(encodeProxyHeader(1, mapped, { address: '10.0.0.2', port: 2 }).toString()).toBe(
      'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n',
    );
    const unknown = { address: '', port: 0 };
    expect(encodeProxyHeader(1, unknown, dst).toString()).toBe('PROXY UNKNOWN\r\n');
    expect(parseProxyHeader(encodeProxyHeader(2, unknown, dst))).toEqual({ header: {}, length: 16 });
  });

  it('hash_policy source_ip: connections from one client address always reach the same host', async () => {
    const nameFrom = (localAddress: string) =>
      new Promise<string>((resolve, reject) => {
        const c = net.connect({ port: ports.byIp!, host: '127.0.0.1', localAddress });
        let got = '';
        c.on('data', (d: Buffer) => {
          got += d.toString();
        });
        c.on('error', reject);
        c.on('close', () => resolve(got));
      });
    const seen = new Set<string>();
    for (let i = 10; i < 40; i++) {
      const first = await nameFrom(`127.0.0.${i}`);
      seen.add(first);
      for (let n = 0; n < 2; n++) expect(await nameFrom(`127.0.0.${i}`)).toBe(first);
    }
    expect(seen.size).toBe(3);
  });
});
