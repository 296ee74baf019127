import http2 from 'node:http2';
import net from 'node:net';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProxyHeader } from '../src/listeners/proxy-protocol.js';
import { type Backend, backend, HCM, ProxyHarness, ROUTER, staticCluster } from './harness.js';

/**
 * The proxy at the edge, as a gateway runs it: PROXY protocol from a load
 * balancer in front, X-Forwarded-For with trusted hops, and clients that
 * misbehave (slow headers, oversized headers, garbage instead of a TLS
 * ClientHello) closed without hurting anyone else — all with raw sockets.
 */
const PROXY_PROTOCOL =
  'type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol';
const TLS_INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

function edgeHcm(name: string, extra: Record<string, unknown> = {}) {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM,
      stat_prefix: name,
      use_remote_address: true,
      route_config: {
        name,
        virtual_hosts: [
          {
            name,
            domains: ['*'],
            routes: [{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } }],
          },
        ],
      },
      http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
      ...extra,
    },
  };
}

/** Sends raw bytes, returns everything the proxy answered until it closed the connection. */
function exchange(port: number, bytes: Buffer | string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connection still open after ${timeoutMs} ms; got "${text}"`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => {
      text += c.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    s.write(bytes);
  });
}

function echoedHeaders(answer: string): Record<string, string> {
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  return JSON.parse(body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1)) as Record<string, string>;
}

describe('PROXY protocol headers (parser)', () => {
  it('reads v1 and v2 headers, and refuses what is not one', () => {
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 51234 443\r\nGET'))).toEqual({
      header: {
        source: { address: '203.0.113.7', port: 51234 },
        destination: { address: '10.0.0.1', port: 443 },
      },
      length: 43,
    });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ header: {}, length: 15 });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 1.2.3'))).toEqual({ incomplete: true });
    const v2 = Buffer.concat([
      Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]),
      Buffer.from([0x21, 0x11, 0x00, 0x0c, 198, 51, 100, 9, 10, 0, 0, 2, 0xc3, 0x50, 0x01, 0xbb]),
    ]);
    expect(parseProxyHeader(v2)).toEqual({
      header: {
        source: { address: '198.51.100.9', port: 50000 },
        destination: { address: '10.0.0.2', port: 443 },
      },
      length: 28,
    });
    // LOCAL (the balancer's own health check): a header with no addresses to take.
    expect(
      parseProxyHeader(Buffer.concat([v2.subarray(0, 12), Buffer.from([0x20, 0x00, 0x00, 0x00])])),
    ).toEqual({
      header: {},
      length: 16,
    });
    expect(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n'))).toMatchObject({ absent: true });
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 999.1.1.1 10.0.0.1 1 2\r\n'))).toHaveProperty('error');
    expect(parseProxyHeader(Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}`))).toHaveProperty('error');
  });
});

describe('the proxy at the edge', () => {
  const h = new ProxyHarness();
  let app: Backend;
  let proxied = 0;
  let guarded = 0;
  let tlsPort = 0;

  beforeAll(async () => {
    app = await backend('app', (req, res) => {
      const body = JSON.stringify(req.headers);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return true;
    });
    [proxied, guarded, tlsPort] = await h.ports.takeMany(3);
    await h.start(() => ({
      [TypeUrl.Cluster]: [staticCluster('app', [app.port])],
      [TypeUrl.Listener]: [
        {
          name: 'behind-a-balancer',
          address: { socket_address: { address: '127.0.0.1', port_value: proxied } },
          listener_filters: [{ name: 'proxy_protocol', typed_config: { '@type': PROXY_PROTOCOL } }],
          listener_filters_timeout: '2s',
          // One trusted proxy in front (Istio's gatewayTopology.numTrustedProxies: 1).
          filter_chains: [{ filters: [edgeHcm('behind', { xff_num_trusted_hops: 1 })] }],
        },
        {
          name: 'guarded',
          address: { socket_address: { address: '127.0.0.1', port_value: guarded } },
          filter_chains: [
            {
              filters: [edgeHcm('guarded', { request_headers_timeout: '0.4s', max_request_headers_kb: 8 })],
            },
          ],
        },
        {
          name: 'sni-only',
          address: { socket_address: { address: '127.0.0.1', port_value: tlsPort } },
          listener_filters: [{ name: 'tls_inspector', typed_config: { '@type': TLS_INSPECTOR } }],
          listener_filters_timeout: '1s',
          filter_chains: [
            {
              filter_chain_match: { server_names: ['a.example.com'] },
              filters: [
                {
                  name: 'tcp',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
                    stat_prefix: 'a',
                    cluster: 'app',
                  },
                },
              ],
            },
          ],
        },
      ],
      [TypeUrl.RouteConfiguration]: [],
    }));
  });

  afterAll(async () => {
    await h.stop();
    await app.close();
  });

  it('takes the client from a PROXY header (v1) and trusts one hop of X-Forwarded-For', async () => {
    const answer = await exchange(
      proxied,
      'PROXY TCP4 192.0.2.44 127.0.0.1 40000 443\r\n' +
        'GET /x HTTP/1.1\r\nhost: edge\r\nx-forwarded-for: 203.0.113.9, 198.51.100.3\r\n' +
        'x-forwarded-proto: https\r\nconnection: close\r\n\r\n',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const seen = echoedHeaders(answer);
    // The balancer (192.0.2.44, from the PROXY header) is the peer; the hop it vouches for is the client.
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 198.51.100.3,192.0.2.44');
    expect(seen['x-envoy-external-address']).toBe('198.51.100.3');
    // A trusted proxy's scheme is kept.
    expect(seen['x-forwarded-proto']).toBe('https');
  });

  it('closes connections that do not start with a PROXY header', async () => {
    expect(await exchange(proxied, 'GET / HTTP/1.1\r\nhost: edge\r\n\r\n')).toBe('');
  });

  it('answers 408 to a client dribbling its headers (slowloris), while others are served', async () => {
    const slow = new Promise<string>((resolve) => {
      const s = net.connect(guarded, '127.0.0.1');
      let text = '';
      s.on('data', (c: Buffer) => {
        text += c.toString('latin1');
      });
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\nhost: edge\r\n');
      // A header byte every 100 ms: never idle, never done.
      const drip = setInterval(() => s.write('x'), 100);
      s.on('close', () => {
        clearInterval(drip);
        resolve(text);
      });
      setTimeout(() => s.destroy(), 8_000).unref();
    });
    const started = Date.now();
    const fine = await exchange(guarded, 'GET /ok HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n');
    expect(fine).toMatch(/^HTTP\/1\.1 200/);
    expect(await slow).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('answers 431 to headers over max_request_headers_kb and closes; the next client is served', async () => {
    const big = `GET / HTTP/1.1\r\nhost: edge\r\nx-big: ${'a'.repeat(16 * 1024)}\r\n\r\n`;
    expect(await exchange(guarded, big)).toMatch(/^HTTP\/1\.1 431/);
    expect(await exchange(guarded, 'GET / HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 200/,
    );
  });

  it('answers 431 to an HTTP/2 request whose header list is over max_request_headers_kb; the session serves on', async () => {
    const session = http2.connect(`http://127.0.0.1:${guarded}`);
    const get = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/', ':authority': 'edge', ...headers });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
    try {
      expect(await get({ 'x-big': 'a'.repeat(9 * 1024) })).toBe(431);
      expect(await get({ 'x-small': 'a'.repeat(1024) })).toBe(200);
    } finally {
      session.close();
    }
  });

  it('closes a connection whose ClientHello is garbage, and one that never finishes it', async () => {
    // A TLS record header announcing a ClientHello, then nonsense.
    const garbage = Buffer.concat([
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x40, 0x01]),
      Buffer.alloc(64, 0xff),
    ]);
    expect(await exchange(tlsPort, garbage)).toBe('');
    // Half a ClientHello, then silence: bounded by the listener filter timeout.
    const started = Date.now();
    expect(await exchange(tlsPort, Buffer.from([0x16, 0x03, 0x01, 0x10, 0x00, 0x01]))).toBe('');
    expect(Date.now() - started).toBeLessThan(4_000);
  });
});
