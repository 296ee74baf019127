import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboundListeners, PASSTHROUGH, ProxyHarness, staticCluster, svcRoutes } from './harness.js';

const HTTP_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const H2_ONLY = {
  typed_extension_protocol_options: {
    [HTTP_OPTIONS]: {
      '@type': `type.googleapis.com/${HTTP_OPTIONS}`,
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
};

/**
 * An HTTP/2 upstream that ends each session with a graceful GOAWAY every few
 * streams, as a draining sidecar or a restarting server does. Streams the
 * client sent before it heard the GOAWAY were never processed (RFC 9113
 * §6.8): the proxy sends them again on a new connection, even on a route
 * that allows no retries (`retries: {attempts: 0}`), and nothing the server
 * did process is sent twice.
 */
describe('upstream HTTP/2 server saying GOAWAY with streams in flight', () => {
  const h = new ProxyHarness();
  const processed = new Map<string, number>();
  let server: http2.Http2Server;

  beforeAll(async () => {
    server = http2.createServer();
    server.on('session', (session) => {
      let streams = 0;
      session.on('stream', (stream, headers) => {
        const id = String(headers['x-request-id']);
        processed.set(id, (processed.get(id) ?? 0) + 1);
        // The third stream of every session is its last: GOAWAY names it, later ones are refused.
        if (++streams === 3) session.close();
        setTimeout(() => {
          if (!stream.destroyed) stream.respond({ ':status': 200 }, { endStream: true });
        }, 5);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await h.start((hh) => ({
      [TypeUrl.Cluster]: [staticCluster('h2app', [port], H2_ONLY), PASSTHROUGH],
      [TypeUrl.Listener]: outboundListeners(hh.outbound),
      [TypeUrl.RouteConfiguration]: [svcRoutes([{ match: { prefix: '/' }, route: { cluster: 'h2app' } }])],
    }));
  });

  afterAll(async () => {
    await h.stop();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('answers every request once, though the route allows no retry', async () => {
    const statuses: number[] = [];
    for (let wave = 0; wave < 5; wave++) {
      const replies = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          h.request('http://svc:9080/', { 'x-request-id': `w${wave}-${i}` }).then((r) => r.status),
        ),
      );
      statuses.push(...replies);
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(statuses).toHaveLength(60);
    // Each request reached the server exactly once: only unprocessed streams were sent again.
    expect([...processed.values()].filter((n) => n !== 1)).toEqual([]);
    expect(processed.size).toBe(60);
  });
});
