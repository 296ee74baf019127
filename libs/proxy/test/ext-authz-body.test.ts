import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConfigResource } from '@mizzen/api';
import {
  buildAuthorizationFilters,
  type CheckRequestJson,
  type CheckResponseJson,
  EXT_AUTHZ_PER_ROUTE_TYPE,
  type ExtensionProvider,
} from '@mizzen/policy';
import { serveAuthorization, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboundListeners, PASSTHROUGH, ProxyHarness, staticCluster, svcRoutes } from './harness.js';

/**
 * includeRequestBodyInCheck through a real proxy: the filters pilot builds
 * for an envoyExtAuthzHttp and an envoyExtAuthzGrpc provider, a real HTTP
 * authorizer and a real gRPC one (envoy.service.auth.v3 Check) that decide
 * on the body, and an upstream that records every byte it receives.
 */

const HTTP_AUTHZ = 'http-authz.default.svc.cluster.local';
const GRPC_AUTHZ = 'grpc-authz.default.svc.cluster.local';
/** The authorizers' verdict: a JSON body that says `"forbidden": true` is denied. */
const FORBIDDEN = /"forbidden"\s*:\s*true/;

interface Received {
  method: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A real HTTP server that records each request's bytes; `answer` decides the response. */
async function recordingServer(answer: (r: Received, res: http.ServerResponse) => void) {
  const seen: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      seen.push(r);
      answer(r, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    seen,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

type Body = { maxRequestBytes: number; allowPartialMessage?: boolean; packAsBytes?: boolean };

const policy: ConfigResource = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'ext', namespace: 'default', creationTimestamp: '2025-01-01T00:00:00Z' },
  spec: { action: 'CUSTOM', provider: { name: 'authz' }, rules: [{}] } as never,
};

/** The filters pilot builds for a CUSTOM policy with this provider. */
function pilotFilters(provider: ExtensionProvider) {
  const built = buildAuthorizationFilters(
    [policy],
    { namespace: 'default', labels: {} },
    { meshConfig: { extensionProviders: [provider] } },
  );
  expect(built.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return built.http as unknown as Record<string, unknown>[];
}

const httpProvider = (body: Body): ExtensionProvider => ({
  name: 'authz',
  envoyExtAuthzHttp: {
    service: HTTP_AUTHZ,
    port: 8000,
    includeRequestHeadersInCheck: ['x-envoy-auth-partial-body'],
    includeRequestBodyInCheck: body,
  },
});
const grpcProvider = (body: Body): ExtensionProvider => ({
  name: 'authz',
  envoyExtAuthzGrpc: { service: GRPC_AUTHZ, port: 9000, includeRequestBodyInCheck: body },
});

/** Sends `body` in pieces (chunked, no content-length); each piece waits for `before(i)`. */
function streamed(
  port: number,
  path: string,
  pieces: Buffer[],
  before: (i: number) => Promise<void> = async () => {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, method: 'POST', headers: { host: 'svc:9080' }, agent: false },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    (async () => {
      for (const [i, piece] of pieces.entries()) {
        await before(i);
        if (req.destroyed) return;
        req.write(piece);
      }
      req.end();
    })().catch(reject);
  });
}

describe('CUSTOM external authorizers receive the request body (includeRequestBodyInCheck)', () => {
  const h = new ProxyHarness();
  let app: Awaited<ReturnType<typeof recordingServer>>;
  let httpAuthz: Awaited<ReturnType<typeof recordingServer>>;
  const grpcChecks: CheckRequestJson[] = [];
  let grpcAuthz: { port: number; close: () => void };

  const resources = (provider: ExtensionProvider) => ({
    [TypeUrl.Cluster]: [
      staticCluster('svc', [app.port]),
      staticCluster(`outbound|8000||${HTTP_AUTHZ}`, [httpAuthz.port]),
      staticCluster(`outbound|9000||${GRPC_AUTHZ}`, [grpcAuthz.port], {
        typed_extension_protocol_options: {
          'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: {} },
          },
        },
      }),
      PASSTHROUGH,
    ],
    [TypeUrl.Listener]: outboundListeners(h.outbound, pilotFilters(provider)),
    [TypeUrl.RouteConfiguration]: [
      svcRoutes([
        {
          match: { prefix: '/unbuffered' },
          route: { cluster: 'svc' },
          typed_per_filter_config: {
            'envoy.filters.http.ext_authz': {
              '@type': EXT_AUTHZ_PER_ROUTE_TYPE,
              check_settings: { disable_request_body_buffering: true },
            },
          },
        },
        { match: { prefix: '/' }, route: { cluster: 'svc' } },
      ]),
    ],
  });

  const post = (path: string, body: string | Buffer) =>
    h.request(`http://svc:9080${path}`, {}, 'POST', body as string);

  beforeAll(async () => {
    app = await recordingServer((_r, res) => res.end('from the app'));
    httpAuthz = await recordingServer((r, res) => {
      if (FORBIDDEN.test(r.body.toString())) res.writeHead(403).end('forbidden by the body');
      else res.writeHead(200).end();
    });
    const server = await serveAuthorization<CheckRequestJson, CheckResponseJson>((req) => {
      grpcChecks.push(req);
      const http = req.attributes?.request?.http;
      const text = http?.raw_body ? Buffer.from(http.raw_body, 'base64').toString() : (http?.body ?? '');
      return FORBIDDEN.test(text)
        ? { status: { code: 7 }, denied_response: { status: { code: 403 }, body: 'forbidden by the body' } }
        : { status: { code: 0 } };
    });
    grpcAuthz = server;
    await h.start(() => resources(httpProvider({ maxRequestBytes: 1024 })));
  });

  afterAll(async () => {
    await h.stop();
    grpcAuthz?.close();
    await httpAuthz?.close();
    await app?.close();
  });

  it('HTTP authorizer: decides on the body it is sent; the upstream gets the whole body on allow, nothing on deny', async () => {
    await h.apply(resources(httpProvider({ maxRequestBytes: 1024 })));
    const hits = app.seen.length;
    const denied = await post('/orders', '{"item": "book", "forbidden": true}');
    expect(denied.status).toBe(403);
    expect(denied.body).toBe('forbidden by the body');
    expect(app.seen.length).toBe(hits);
    const check = httpAuthz.seen.at(-1)!;
    expect(check.method).toBe('POST');
    expect(check.body.toString()).toBe('{"item": "book", "forbidden": true}');
    expect(check.headers['content-length']).toBe(String(check.body.length));
    expect(check.headers['x-envoy-auth-partial-body']).toBe('false');

    const body = '{"item": "book", "forbidden": false}';
    const ok = await post('/orders', body);
    expect(ok.status).toBe(200);
    expect(app.seen.at(-1)!.body.toString()).toBe(body);
    expect(app.seen.at(-1)!.headers['content-length']).toBe(String(body.length));
  });

  it('gRPC authorizer: the body in attributes.request.http.body, its size, and the partial marker', async () => {
    await h.apply(resources(grpcProvider({ maxRequestBytes: 1024 })));
    const hits = app.seen.length;
    expect((await post('/orders', '{"forbidden": true}')).status).toBe(403);
    expect(app.seen.length).toBe(hits);
    const body = '{"item": "pen", "note": "héllo"}';
    expect((await post('/orders', body)).status).toBe(200);
    const sent = grpcChecks.at(-1)!.attributes!.request!.http!;
    expect(sent.body).toBe(body);
    expect(sent.raw_body).toBeUndefined();
    expect(sent.size).toBe(Buffer.byteLength(body));
    expect(sent.headers?.['x-envoy-auth-partial-body']).toBe('false');
    expect(app.seen.at(-1)!.body.toString()).toBe(body);
  });

  it('allowPartialMessage: exactly maxRequestBytes are checked, marked partial; the upstream gets every byte', async () => {
    const body = `{"a": "${'x'.repeat(100)}", "forbidden": true}`;
    for (const provider of [httpProvider, grpcProvider]) {
      await h.apply(resources(provider({ maxRequestBytes: 16, allowPartialMessage: true })));
      // The verdict is on the first 16 bytes only, which do not say "forbidden".
      const r = await post('/partial', body);
      expect(r.status).toBe(200);
      expect(app.seen.at(-1)!.body.toString()).toBe(body);
    }
    const httpCheck = httpAuthz.seen.at(-1)!;
    expect(httpCheck.body.toString()).toBe(body.slice(0, 16));
    expect(httpCheck.headers['x-envoy-auth-partial-body']).toBe('true');
    const grpcCheck = grpcChecks.at(-1)!.attributes!.request!.http!;
    expect(grpcCheck.body).toBe(body.slice(0, 16));
    expect(grpcCheck.headers?.['x-envoy-auth-partial-body']).toBe('true');
  });

  it('over maxRequestBytes without allowPartialMessage: 413 Payload Too Large, the authorizer never asked', async () => {
    for (const provider of [httpProvider, grpcProvider]) {
      await h.apply(resources(provider({ maxRequestBytes: 16 })));
      const asked = httpAuthz.seen.length + grpcChecks.length;
      const hits = app.seen.length;
      const declared = await post('/big', 'y'.repeat(17));
      expect(declared.status).toBe(413);
      expect(declared.body).toBe('Payload Too Large');
      // No content-length: read until one byte past the limit, then refused.
      const chunked = await streamed(
        h.outbound,
        'http://svc:9080/big',
        [Buffer.alloc(10, 'a'), Buffer.alloc(10, 'b')],
        (i) => (i ? new Promise((r) => setTimeout(r, 20)) : Promise.resolve()),
      );
      expect(chunked.status).toBe(413);
      expect(httpAuthz.seen.length + grpcChecks.length).toBe(asked);
      expect(app.seen.length).toBe(hits);
      // At the limit exactly, the body is checked and goes on.
      expect((await post('/big', 'z'.repeat(16))).status).toBe(200);
      expect(app.seen.at(-1)!.body.toString()).toBe('z'.repeat(16));
    }
  });

  it('packAsBytes: the gRPC check carries the exact bytes as raw_body, and so does the HTTP check body', async () => {
    const bytes = Buffer.from([0x7b, 0xff, 0x00, 0xc3, 0x28, 0x7d, 0x80]);
    await h.apply(resources(grpcProvider({ maxRequestBytes: 64, packAsBytes: true })));
    expect((await post('/bytes', bytes)).status).toBe(200);
    const sent = grpcChecks.at(-1)!.attributes!.request!.http!;
    expect(Buffer.from(sent.raw_body!, 'base64')).toEqual(bytes);
    expect(sent.body).toBeUndefined();
    expect(app.seen.at(-1)!.body).toEqual(bytes);
    // Without packAsBytes, the UTF-8 string Envoy makes of them: each stray byte a "!".
    await h.apply(resources(grpcProvider({ maxRequestBytes: 64 })));
    await post('/bytes', bytes);
    expect(grpcChecks.at(-1)!.attributes!.request!.http!.body).toBe('{!\u0000!(}!');
    expect(app.seen.at(-1)!.body).toEqual(bytes);

    await h.apply(resources(httpProvider({ maxRequestBytes: 64, packAsBytes: true })));
    await post('/bytes', bytes);
    expect(httpAuthz.seen.at(-1)!.body).toEqual(bytes);
  });

  it('a request without a body, and a route that disables buffering, are checked as before', async () => {
    await h.apply(resources(grpcProvider({ maxRequestBytes: 8 })));
    expect((await h.request('http://svc:9080/get')).status).toBe(200);
    let sent = grpcChecks.at(-1)!.attributes!.request!.http!;
    expect(sent.body).toBeUndefined();
    expect(sent.size).toBe(0);
    expect(sent.headers?.['x-envoy-auth-partial-body']).toBeUndefined();
    // Over the limit, yet never buffered on this route: checked without it, and forwarded whole.
    expect((await post('/unbuffered', '{"forbidden": true, "long": "enough"}')).status).toBe(200);
    sent = grpcChecks.at(-1)!.attributes!.request!.http!;
    expect(sent.body).toBeUndefined();
    expect(app.seen.at(-1)!.body.toString()).toBe('{"forbidden": true, "long": "enough"}');
  });

  it('a streamed body is checked on its start while the rest is still on its way, then reaches the upstream whole', async () => {
    await h.apply(resources(grpcProvider({ maxRequestBytes: 32, allowPartialMessage: true })));
    const checks = grpcChecks.length;
    // 3 MiB in 64 KiB pieces: past the proxy's retry buffer, so it must stream; each piece after
    // the first waits for the check, which is made on the first 32 bytes alone.
    const pieces = Array.from({ length: 48 }, (_, i) => Buffer.alloc(64 * 1024, 97 + (i % 26)));
    const r = await streamed(h.outbound, 'http://svc:9080/upload', pieces, async (i) => {
      if (i === 1) await h.until('the check made before the body ended', () => grpcChecks.length > checks);
    });
    expect(r.status).toBe(200);
    const sent = grpcChecks.at(-1)!.attributes!.request!.http!;
    expect(sent.body).toBe('a'.repeat(32));
    expect(sent.headers?.['x-envoy-auth-partial-body']).toBe('true');
    expect(app.seen.at(-1)!.body.equals(Buffer.concat(pieces))).toBe(true);
  });
});
