import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Backend,
  backend,
  CORS,
  CORS_POLICY,
  FAULT,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  staticCluster,
  svcRoutes,
} from './harness.js';

/** Envoy's fault and CORS filters, configured per route as Istio configures them, through a real proxy. */
describe('HTTP filters', () => {
  const h = new ProxyHarness();
  let app: Backend;
  const filters = [
    { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } },
    { name: 'envoy.filters.http.cors', typed_config: { '@type': CORS } },
  ];
  const million = (percent: number) => ({ numerator: percent * 10_000, denominator: 'MILLION' });

  const set = (routes: Record<string, unknown>[]) => ({
    [TypeUrl.Cluster]: [staticCluster('app', [app.port]), PASSTHROUGH],
    [TypeUrl.Listener]: outboundListeners(h.outbound, filters),
    [TypeUrl.RouteConfiguration]: [svcRoutes(routes)],
  });

  const faultRoute = (path: string, fault: Record<string, unknown>) => ({
    name: path,
    match: { prefix: path },
    route: { cluster: 'app', timeout: '0s' },
    typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, ...fault } },
  });

  const routes = () => [
    faultRoute('/abort-all', { abort: { http_status: 418, percentage: million(100) } }),
    faultRoute('/abort-half', { abort: { http_status: 503, percentage: million(50) } }),
    faultRoute('/abort-grpc', { abort: { grpc_status: 14, percentage: million(100) } }),
    faultRoute('/delay', { delay: { fixed_delay: '0.3s', percentage: million(100) } }),
    faultRoute('/never', { abort: { http_status: 500 } }),
    {
      name: 'cors',
      match: { prefix: '/cors' },
      route: { cluster: 'app', timeout: '0s' },
      typed_per_filter_config: {
        'envoy.filters.http.cors': {
          '@type': CORS_POLICY,
          allow_origin_string_match: [
            { exact: 'https://shop.example.com' },
            { safe_regex: { regex: 'https://.*\\.dev\\.example\\.com' } },
          ],
          allow_methods: 'GET,POST',
          allow_headers: 'x-token',
          expose_headers: 'x-served-by',
          max_age: '3600',
          allow_credentials: true,
        },
      },
    },
    { name: 'plain', match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } },
  ];

  beforeAll(async () => {
    app = await backend('app');
    await h.start(() => set(routes()));
  });

  afterAll(async () => {
    await h.stop();
    await app.close();
  });

  it('aborts every request of a route configured at 100% with the given status, without reaching the app', async () => {
    const before = app.hits;
    const r = await h.request('http://svc:9080/abort-all');
    expect(r.status).toBe(418);
    expect(r.body).toBe('fault filter abort');
    expect(app.hits).toBe(before);
    expect((await h.request('http://svc:9080/plain')).status).toBe(200);
  });

  it('aborts about the configured share of requests (50% of 600, within statistical bounds)', async () => {
    let aborted = 0;
    for (let i = 0; i < 600; i++)
      if ((await h.request('http://svc:9080/abort-half')).status === 503) aborted++;
    // Binomial(600, 0.5): σ ≈ 12; ±5σ keeps this from ever flaking while still catching a wrong share.
    expect(aborted).toBeGreaterThan(240);
    expect(aborted).toBeLessThan(360);
  });

  it('answers a gRPC abort as trailers-only with grpc-status, and never aborts without a percentage', async () => {
    const r = await h.request('http://svc:9080/abort-grpc');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/grpc');
    expect(r.headers['grpc-status']).toBe('14');
    for (let i = 0; i < 20; i++) expect((await h.request('http://svc:9080/never')).status).toBe(200);
  });

  it('delays requests by the fixed delay before forwarding them', async () => {
    const started = performance.now();
    const r = await h.request('http://svc:9080/delay');
    expect(r.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('answers CORS preflights for allowed origins and decorates actual responses', async () => {
    const pre = await h.request(
      'http://svc:9080/cors/items',
      { origin: 'https://shop.example.com', 'access-control-request-method': 'POST' },
      'OPTIONS',
    );
    expect(pre.status).toBe(200);
    expect(pre.headers).toMatchObject({
      'access-control-allow-origin': 'https://shop.example.com',
      'access-control-allow-methods': 'GET,POST',
      'access-control-allow-headers': 'x-token',
      'access-control-max-age': '3600',
      'access-control-allow-credentials': 'true',
    });
    const actual = await h.request('http://svc:9080/cors/items', { origin: 'https://a.dev.example.com' });
    expect(actual.status).toBe(200);
    expect(actual.headers['access-control-allow-origin']).toBe('https://a.dev.example.com');
    expect(actual.headers['access-control-expose-headers']).toBe('x-served-by');
    const stranger = await h.request('http://svc:9080/cors/items', { origin: 'https://evil.example.org' });
    expect(stranger.status).toBe(200);
    expect(stranger.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('NACKs a per-route config it does not know rather than ignoring it', async () => {
    const bad = [
      {
        name: 'x',
        match: { prefix: '/' },
        route: { cluster: 'app' },
        typed_per_filter_config: {
          'envoy.filters.http.rbac': {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute',
          },
        },
      },
    ];
    h.push(set(bad));
    await h.until('RDS NACK', () => h.state(TypeUrl.RouteConfiguration)?.state === 'NACKED');
    expect(h.state(TypeUrl.RouteConfiguration)?.error).toMatch(
      /per-route config .*RBACPerRoute is not supported/,
    );
    expect((await h.request('http://svc:9080/abort-all')).status).toBe(418);
    await h.apply(set(routes()));
  });
});
