import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, type Reply, requestWithHost, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Istio's VirtualService http fields with their YAML unchanged, through
 * pilot, real sidecars, a real ingress gateway and real backends: every
 * match field, rewrites, redirects, direct responses, header edits at route
 * and destination level, CORS, mirrors, and VirtualServices merged at a
 * gateway. Each backend has its own sidecar; clients call through theirs.
 */
const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: shop, namespace: default }
spec:
  hosts: [shop.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: shop } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: shadow, namespace: default }
spec:
  hosts: [shadow.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: SHADOW_PORT } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: shop, namespace: default }
spec:
  host: shop
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
    - { name: v3, labels: { version: v3 } }
`;

/** Each route says which one matched in an `x-route` response header. */
const marked = (name: string, match: string, subset = 'v1') => `
    - name: ${name}
      match: ${match}
      headers: { response: { set: { x-route: ${name} } } }
      route: [{ destination: { host: shop, subset: ${subset} } }]`;

const MATCHES = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop, namespace: default }
spec:
  hosts: [shop]
  http:${marked('https-only', '[{ scheme: { exact: https } }]')}${marked('http-scheme', '[{ uri: { prefix: /scheme }, scheme: { exact: http } }]')}${marked('post', '[{ uri: { prefix: /m }, method: { exact: POST } }]')}${marked('authority', '[{ authority: { exact: "shop.default:8000" } }]')}${marked('q-exact', '[{ queryParams: { q: { exact: "1" } } }]')}${marked('q-prefix', '[{ queryParams: { q: { prefix: ab } } }]')}${marked('q-regex', '[{ queryParams: { q: { regex: "[0-9]{3}" } } }]')}${marked('not-prod', '[{ uri: { prefix: /env }, withoutHeaders: { x-env: { exact: prod } } }]')}${marked('case', '[{ uri: { exact: /Case/Path }, ignoreUriCase: true }]')}${marked('regex-uri', '[{ uri: { regex: "/items/[0-9]+" } }]')}${marked('from-other', '[{ uri: { prefix: /who }, sourceNamespace: other }]')}${marked('default', '[{ uri: { prefix: / } }]')}
`;

const ACTIONS = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop, namespace: default }
spec:
  hosts: [shop]
  http:
    - match: [{ uri: { prefix: /v1/items } }]
      rewrite: { uriRegexRewrite: { match: "^/v1/items/([0-9]+)$", rewrite: "/items/\\\\1/detail" } }
      route: [{ destination: { host: shop, subset: v1 } }]
    - match: [{ uri: { exact: /old-path } }]
      rewrite: { uri: /new-path, authority: shop.internal }
      route: [{ destination: { host: shop, subset: v1 } }]
    - match: [{ uri: { prefix: /moved } }]
      redirect: { uri: /here, authority: shop.example.com, scheme: https, derivePort: FROM_REQUEST_PORT, redirectCode: 308 }
    - match: [{ uri: { prefix: /secure } }]
      redirect: { scheme: https, derivePort: FROM_PROTOCOL_DEFAULT }
    - match: [{ uri: { prefix: /port } }]
      redirect: { scheme: https, port: 9443, redirectCode: 307 }
    - match: [{ uri: { exact: /teapot } }]
      directResponse: { status: 418, body: { string: "short and stout" } }
      headers: { response: { set: { x-teapot: "yes" } } }
    - match: [{ uri: { prefix: /headers } }]
      headers:
        request: { set: { x-route: set }, add: { x-trail: route }, remove: [x-drop] }
        response: { set: { x-served-by: route }, add: { x-route-trail: r }, remove: [x-internal] }
      route:
        - destination: { host: shop, subset: v1 }
          headers:
            request: { set: { x-dest: v1 }, add: { x-trail: dest }, remove: [x-drop-too] }
            response: { set: { x-served-by: v1 }, add: { x-dest-trail: v1 }, remove: [x-v1-secret] }
    - match: [{ uri: { prefix: /split } }]
      route:
        - { destination: { host: shop, subset: v1 }, weight: 50, headers: { response: { set: { x-version: v1 } } } }
        - { destination: { host: shop, subset: v2 }, weight: 50, headers: { response: { set: { x-version: v2 } } } }
    - match: [{ uri: { prefix: /shift } }]
      route:
        - destination: { host: shop, subset: v1 }
          weight: 0
          headers: { request: { set: { x-dest-version: v1 } }, response: { set: { x-version: v1 } } }
        - destination: { host: shop, subset: v3 }
          weight: 100
          headers: { request: { set: { x-dest-version: v3 } }, response: { set: { x-version: v3 } } }
    - route: [{ destination: { host: shop, subset: v1 } }]
`;

const CORS_AND_MIRRORS = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop, namespace: default }
spec:
  hosts: [shop]
  http:
    - match: [{ uri: { prefix: /api } }]
      corsPolicy:
        allowOrigins:
          - { exact: "https://a.example.com" }
          - { prefix: "https://b." }
          - { regex: "https://[a-z]+[.]c[.]example" }
        allowMethods: [GET, POST]
        allowHeaders: [x-token, content-type]
        exposeHeaders: [x-trace]
        maxAge: 120s
        allowCredentials: true
        unmatchedPreflights: IGNORE
      route: [{ destination: { host: shop, subset: v2 } }]
    - match: [{ uri: { prefix: /open } }]
      corsPolicy: { allowOrigins: [{ exact: "https://a.example.com" }] }
      route: [{ destination: { host: shop, subset: v2 } }]
    - match: [{ uri: { prefix: /half } }]
      mirrors: [{ destination: { host: shadow }, percentage: { value: 50 } }]
      route: [{ destination: { host: shop, subset: v2 } }]
    - match: [{ uri: { prefix: /quarter } }]
      mirror: { host: shadow }
      mirrorPercentage: { value: 25 }
      route: [{ destination: { host: shop, subset: v2 } }]
    - route: [{ destination: { host: shop, subset: v2 } }]
`;

describe('VirtualService http routing through pilot, a gateway and real sidecars', () => {
  const mesh = new TestMesh();
  const backends: Record<string, Backend> = {};
  let client: SidecarHandle;
  let other: SidecarHandle;
  let http: ProxyClient;
  let fromOther: ProxyClient;

  const get = (path: string, headers: Record<string, string> = {}, method = 'GET', host = 'shop:8000') =>
    http.request(`http://${host}${path}`, headers, method);

  const applyAndWait = async (yaml: string, what: string, check: () => Promise<boolean | string>) => {
    const r = await mesh.apply(yaml);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await eventually(what, check, 60_000);
    return r.body as { warnings?: string[] };
  };

  /** The shadow's hit count once copies stop arriving (mirrors are fire and forget). */
  const settledShadowHits = async () => {
    let last = -1;
    await eventually('mirrored copies to settle', async () => {
      const now = backends.shadow!.hits;
      const settled = now === last;
      last = now;
      await new Promise((r) => setTimeout(r, 300));
      return settled;
    });
    return backends.shadow!.hits;
  };

  beforeAll(async () => {
    // The shadow runs without a sidecar: mirrored copies go to it straight from the caller's sidecar.
    backends.shadow = await startBackend('shadow', 'v1');
    mesh.writeConfig('services.yaml', SERVICES.replace('SHADOW_PORT', String(backends.shadow.port)));
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    for (const v of ['v1', 'v2', 'v3']) {
      // Headers a route may hide from callers.
      backends[v] = await startBackend('shop', v, (_req, res) => {
        res.setHeader('x-internal', 'secret');
        res.setHeader('x-v1-secret', 'secret');
        res.setHeader('x-served-by', 'app');
        return false;
      });
    }
    const sidecars: SidecarHandle[] = [];
    for (const v of ['v1', 'v2', 'v3']) {
      sidecars.push(
        await mesh.startSidecar({
          workload: `shop-${v}`,
          service: 'shop',
          labels: { app: 'shop', version: v },
          appPort: backends[v]!.port,
          servicePort: 8000,
        }),
      );
    }
    client = await mesh.startSidecar({
      workload: 'client',
      service: 'client',
      labels: { app: 'client' },
      appPort: await mesh.ports.take(),
    });
    other = await mesh.startSidecar({
      workload: 'client-other',
      service: 'client-other',
      namespace: 'other',
      labels: { app: 'client-other' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([...sidecars.map((s) => s.id), client.id, other.id], 120_000);
    http = new ProxyClient(client.outboundPort);
    fromOther = new ProxyClient(other.outboundPort);
    await eventually(
      'every shop version reachable',
      async () => {
        const seen = new Set<string>();
        for (let i = 0; i < 12; i++) {
          const r = await get('/');
          if (r.status === 200) seen.add(JSON.parse(r.body).version);
        }
        return seen.size === 3 || [...seen].join(',');
      },
      60_000,
    );
  });

  afterAll(async () => {
    http?.close();
    fromOther?.close();
    await mesh.stop();
    await Promise.all(Object.values(backends).map((b) => b.close()));
  });

  it('matches on scheme, method, authority, query parameters, withoutHeaders, ignoreUriCase, uri regex and sourceNamespace', async () => {
    const route = (r: Reply) => `${r.status} ${r.headers['x-route'] ?? '-'}`;
    await applyAndWait(
      MATCHES,
      'the match routes in force',
      async () => route(await get('/m', {}, 'POST')) === '200 post',
    );
    const cases: [string, Promise<Reply>][] = [
      ['200 http-scheme', get('/scheme')],
      ['200 post', get('/m', {}, 'POST')],
      ['200 default', get('/m')],
      ['200 authority', get('/x', {}, 'GET', 'shop.default:8000')],
      ['200 default', get('/x')],
      ['200 q-exact', get('/x?q=1')],
      ['200 default', get('/x?q=1x')],
      ['200 q-prefix', get('/x?q=abc')],
      ['200 q-regex', get('/x?q=123')],
      ['200 default', get('/x?q=12')],
      ['200 not-prod', get('/env')],
      ['200 not-prod', get('/env', { 'x-env': 'dev' })],
      ['200 default', get('/env', { 'x-env': 'prod' })],
      ['200 case', get('/case/PATH')],
      ['200 default', get('/case/path/more')],
      ['200 regex-uri', get('/items/42')],
      ['200 default', get('/items/4a')],
      ['200 default', get('/who')],
      ['200 from-other', fromOther.request('http://shop.default.svc.cluster.local:8000/who')],
      ['200 default', fromOther.request('http://shop.default.svc.cluster.local:8000/else')],
    ];
    const seen = await Promise.all(cases.map(async ([, r]) => route(await r)));
    expect(seen).toEqual(cases.map(([want]) => want));
  });

  it('rewrites (uriRegexRewrite, uri + authority), redirects, answers directly, and edits headers at route and destination level', async () => {
    await applyAndWait(
      ACTIONS,
      'the action routes in force',
      async () => (await get('/teapot')).status === 418,
    );
    // uriRegexRewrite: the path rewritten by the regex, the query kept.
    expect((await get('/v1/items/42?x=1')).status).toBe(200);
    expect(JSON.parse((await get('/v1/items/42?x=1')).body).path).toBe('/items/42/detail?x=1');
    // An exact match with rewrite.uri replaces the whole path; the authority is rewritten too.
    const rewritten = await get('/old-path?k=v');
    expect(JSON.parse(rewritten.body)).toMatchObject({ version: 'v1', path: '/new-path?k=v' });
    expect(backends.v1!.lastHeaders?.host).toBe('shop.internal');

    const moved = await get('/moved/x?y=1');
    expect([moved.status, moved.headers.location]).toEqual([308, 'https://shop.example.com:8000/here?y=1']);
    // FROM_PROTOCOL_DEFAULT is Envoy's own: the request's port stays unless it is the old scheme's default.
    const secure = await get('/secure?x=1');
    expect([secure.status, secure.headers.location]).toEqual([301, 'https://shop:8000/secure?x=1']);
    const port = await get('/port/a');
    expect([port.status, port.headers.location]).toEqual([307, 'https://shop:9443/port/a']);

    const hitsBefore = backends.v1!.hits + backends.v2!.hits + backends.v3!.hits;
    const teapot = await get('/teapot');
    expect([teapot.status, teapot.body, teapot.headers['x-teapot']]).toEqual([418, 'short and stout', 'yes']);
    expect(backends.v1!.hits + backends.v2!.hits + backends.v3!.hits).toBe(hitsBefore);

    const edited = await get('/headers', { 'x-drop': 'please', 'x-drop-too': 'please', 'x-trail': 'client' });
    expect(edited.status).toBe(200);
    const seen = backends.v1!.lastHeaders!;
    expect([seen['x-route'], seen['x-dest'], seen['x-drop'], seen['x-drop-too'], seen['x-trail']]).toEqual([
      'set',
      'v1',
      undefined,
      undefined,
      'client, route, dest',
    ]);
    // The destination's set comes after the route's (Istio's order): it wins.
    expect(edited.headers['x-served-by']).toBe('v1');
    expect([edited.headers['x-route-trail'], edited.headers['x-dest-trail']]).toEqual(['r', 'v1']);
    expect(edited.headers['x-internal']).toBeUndefined();
    expect(edited.headers['x-v1-secret']).toBeUndefined();
    // Without the route's edits the app's headers come through.
    const plain = await get('/');
    expect([plain.headers['x-internal'], plain.headers['x-served-by']]).toEqual(['secret', 'app']);

    // Weighted destinations each add their own headers.
    const versions = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = await get('/split');
      const version = JSON.parse(r.body).version as string;
      versions.add(version);
      expect(r.headers['x-version']).toBe(version);
    }
    expect(versions).toEqual(new Set(['v1', 'v2']));
    // The last step of a traffic shift (v1 at 0, v3 at 100) keeps v3's headers.
    for (let i = 0; i < 10; i++) {
      const r = await get('/shift');
      expect([JSON.parse(r.body).version, r.headers['x-version']]).toEqual(['v3', 'v3']);
      expect(backends.v3!.lastHeaders?.['x-dest-version']).toBe('v3');
    }
  });

  it('answers CORS preflights for allowed origins (exact, prefix, regex), decorates actual requests, and mirrors a share of requests', async () => {
    await applyAndWait(CORS_AND_MIRRORS, 'the CORS routes in force', async () => {
      const r = await get('/api/x', { origin: 'https://a.example.com' });
      return r.headers['access-control-allow-origin'] === 'https://a.example.com';
    });
    const preflight = (path: string, origin: string) =>
      get(
        path,
        { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-token' },
        'OPTIONS',
      );
    const v2Hits = backends.v2!.hits;
    for (const origin of ['https://a.example.com', 'https://b.shop.example', 'https://api.c.example']) {
      const r = await preflight('/api/x', origin);
      expect(r.status, origin).toBe(200);
      expect(r.headers).toMatchObject({
        'access-control-allow-origin': origin,
        'access-control-allow-methods': 'GET,POST',
        'access-control-allow-headers': 'x-token,content-type',
        'access-control-max-age': '120',
        'access-control-allow-credentials': 'true',
      });
    }
    // unmatchedPreflights: IGNORE — an origin not allowed gets an empty 200 from the proxy, no CORS headers.
    const refused = await preflight('/api/x', 'https://evil.example');
    expect([refused.status, refused.headers['access-control-allow-origin'], refused.body]).toEqual([
      200,
      undefined,
      '',
    ]);
    expect(backends.v2!.hits).toBe(v2Hits);
    // The default (FORWARD) passes it to the app instead.
    const forwarded = await preflight('/open/x', 'https://evil.example');
    expect(JSON.parse(forwarded.body).version).toBe('v2');
    expect(backends.v2!.hits).toBe(v2Hits + 1);

    const actual = await get('/api/x', { origin: 'https://a.example.com' });
    expect(actual.headers).toMatchObject({
      'access-control-allow-origin': 'https://a.example.com',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-trace',
    });
    expect(JSON.parse(actual.body).version).toBe('v2');
    const stranger = await get('/api/x', { origin: 'https://evil.example' });
    expect([stranger.status, stranger.headers['access-control-allow-origin']]).toEqual([200, undefined]);

    // mirrors[] at 50% and mirror + mirrorPercentage at 25%, over 200 requests each (±5σ).
    for (const [path, low, high] of [
      ['/half', 65, 135],
      ['/quarter', 20, 80],
    ] as const) {
      const before = await settledShadowHits();
      for (let i = 0; i < 200; i++) expect(JSON.parse((await get(path)).body).version).toBe('v2');
      const copies = (await settledShadowHits()) - before;
      expect(copies, path).toBeGreaterThanOrEqual(low);
      expect(copies, path).toBeLessThanOrEqual(high);
    }
    expect(backends.shadow!.lastHeaders?.host).toBe('shop-shadow:8000');
  });

  it('merges the VirtualServices of one gateway host in creation order, first match winning across them; sidecars take the oldest and pilot warns (IST0109)', async () => {
    const [httpPort, altPort] = await mesh.ports.takeMany(2);
    const gw = await mesh.startGateway({ portMap: { 80: httpPort!, [altPort!]: altPort! } });
    const gatewayVs = (name: string, routes: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [shop.example.com]
  gateways: [shop-gateway]
  http:${routes}
`;
    const OLDER = gatewayVs(
      'shop-public-b',
      `
    - match: [{ uri: { prefix: /b } }]
      headers: { response: { set: { x-from: b } } }
      route: [{ destination: { host: shop, subset: v2 } }]
    - match: [{ uri: { prefix: /go } }]
      redirect: { uri: /gone, derivePort: FROM_REQUEST_PORT }
    - headers: { response: { set: { x-from: b-default } } }
      route: [{ destination: { host: shop, subset: v2 } }]`,
    );
    const NEWER = gatewayVs(
      'shop-public-a',
      `
    - match: [{ uri: { prefix: /a } }]
      headers: { response: { set: { x-from: a } } }
      route: [{ destination: { host: shop, subset: v1 } }]`,
    );
    const via = (port: number, path: string, host = 'shop.example.com') =>
      requestWithHost(`http://127.0.0.1:${port}${path}`, host);
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: shop-gateway, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 80, name: http, protocol: HTTP }
      hosts: [shop.example.com]
    - port: { number: ${altPort}, name: http-alt, protocol: HTTP }
      hosts: [shop.example.com]
${'---'}${OLDER}`,
      'the older gateway VirtualService serving',
      async () => (await via(httpPort!, '/b')).headers['x-from'] === 'b',
    );
    await mesh.waitForSync([gw.id], 120_000);
    await applyAndWait(NEWER, 'both gateway VirtualServices pushed', async () => {
      const r = await via(httpPort!, '/a');
      return r.status === 200 || String(r.status);
    });
    // The older VirtualService's catch-all comes before the newer one's /a: first match wins across them.
    expect((await via(httpPort!, '/a')).headers['x-from']).toBe('b-default');
    expect((await via(httpPort!, '/b')).headers['x-from']).toBe('b');
    // derivePort FROM_REQUEST_PORT is the server's port; 80 is http's default and left out.
    expect((await via(altPort!, '/go?z=1')).headers.location).toBe(
      `http://shop.example.com:${altPort}/gone?z=1`,
    );
    expect((await via(httpPort!, '/go')).headers.location).toBe('http://shop.example.com/gone');
    // Without the older one, the newer one's routes are reached.
    expect((await mesh.remove(OLDER)).status).toBe(200);
    await eventually(
      'the newer VirtualService alone',
      async () => (await via(httpPort!, '/a')).headers['x-from'] === 'a',
    );

    // Sidecars do not merge: a second VirtualService for shop is ignored, and pilot says so.
    const second = await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop-too, namespace: default }
spec:
  hosts: [shop.default.svc.cluster.local]
  http: [{ route: [{ destination: { host: shop, subset: v3 } }] }]
`);
    expect(second.status).toBe(200);
    expect((second.body as { warnings?: string[] }).warnings).toContainEqual(
      expect.stringMatching(/^Error \[IST0109\] \(VirtualService /),
    );
    await mesh.waitForSync([client.id], 120_000);
    for (let i = 0; i < 10; i++) expect(JSON.parse((await get('/anything')).body).version).toBe('v2');
  });
});
