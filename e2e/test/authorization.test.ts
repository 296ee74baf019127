import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serveAuthorization } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, requestWithHost, startBackend } from '../src/http.js';
import { jwksServer, type Signer, signer, tokenMinter } from '../src/jwt.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { startTcpEcho, tcpExchange, tcpThroughSidecar } from '../src/tcp.js';

/**
 * Istio's authorization and JWT tasks with their YAML unchanged, through
 * citadel, pilot and real sidecars: who may call reviews is decided by
 * AuthorizationPolicy on the reviews sidecar from the caller's mTLS identity,
 * the request and its verified JWT; external authorizers (CUSTOM) are a
 * real HTTP server and a real gRPC server (envoy.service.auth.v3
 * Authorization/Check, for HTTP requests and TCP connections); tokens are
 * signed here and the JWKS is served here.
 */
const ISSUER = 'https://issuer.mizzen.test';
const token = tokenMinter(ISSUER);

/** What both authorizers refuse in a request body they are sent: JSON saying `"forbidden": true`. */
const FORBIDDEN = /"forbidden"\s*:\s*true/;

/**
 * Istio's sample ext-authz server: allows a request carrying `x-ext-authz:
 * allow`, unless the body it is sent (includeRequestBodyInCheck) is forbidden.
 */
async function extAuthzServer() {
  const state = {
    checks: 0,
    lastPath: '',
    lastBody: Buffer.alloc(0),
    lastHeaders: {} as http.IncomingHttpHeaders,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.checks++;
      state.lastPath = req.url ?? '';
      state.lastBody = Buffer.concat(chunks);
      state.lastHeaders = req.headers;
      if (req.headers['x-ext-authz'] === 'allow' && !FORBIDDEN.test(state.lastBody.toString())) {
        res.writeHead(200, { 'x-ext-authz-check-result': 'allowed' }).end();
      } else {
        res.writeHead(403, { 'x-ext-authz-check-result': 'denied' }).end('denied by ext_authz');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    state,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** What the gRPC authorizer reads of a CheckRequest (Envoy JSON). */
interface CheckRequest {
  attributes?: {
    source?: { principal?: string };
    destination?: { principal?: string };
    request?: {
      http?: {
        method?: string;
        path?: string;
        headers?: Record<string, string>;
        size?: number;
        body?: string;
        /** Base64 (pack_as_bytes). */
        raw_body?: string;
      };
    };
  };
}

/** The body a gRPC check carries, whichever way it is packed. */
const checkedBody = (http: NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http']) =>
  http?.raw_body !== undefined ? Buffer.from(http.raw_body, 'base64') : Buffer.from(http?.body ?? '');

/**
 * A gRPC authorizer in the spirit of Istio's ext-authz sample: an HTTP
 * request carrying `x-ext-authz: allow` is allowed (the upstream gets
 * `x-user`) unless its body is forbidden, anything else is denied with 401
 * and the authorizer's own headers and body; a TCP connection is allowed
 * from productpage only.
 */
async function grpcAuthorizer() {
  const checks: CheckRequest[] = [];
  const server = await serveAuthorization<CheckRequest, unknown>((req) => {
    checks.push(req);
    const http = req.attributes?.request?.http;
    const allowed = http
      ? http.headers?.['x-ext-authz'] === 'allow' && !FORBIDDEN.test(checkedBody(http).toString())
      : req.attributes?.source?.principal === 'spiffe://cluster.local/ns/default/sa/productpage';
    if (allowed)
      return {
        status: { code: 0 },
        ok_response: {
          headers: [
            { header: { key: 'x-user', value: 'alice' } },
            { header: { key: 'x-ext-authz-check-result', value: 'allowed' } },
          ],
        },
      };
    return {
      status: { code: 7 },
      denied_response: {
        status: { code: 'Unauthorized' },
        headers: [{ header: { key: 'x-ext-authz-check-result', value: 'denied' } }],
        body: 'denied by the gRPC authorizer',
      },
    };
  });
  return { checks, ...server };
}

const services = (extAuthzPort: number, grpcAuthzPort: number, deadPort: number) => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext-authz, namespace: default }
spec:
  hosts: [ext-authz.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${extAuthzPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: grpc-authz, namespace: default }
spec:
  hosts: [grpc-authz.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9100, name: grpc, protocol: GRPC }]
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${grpcAuthzPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: grpc-authz-down, namespace: default }
spec:
  hosts: [grpc-authz-down.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9100, name: grpc, protocol: GRPC }]
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${deadPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-echo, namespace: default }
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9000, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: tcp-echo } }
`;
const TCP_ECHO = 'tcp-echo.default.svc.cluster.local:9000';

const MESH_CONFIG = `
extensionProviders:
  - name: sample-ext-authz-http
    envoyExtAuthzHttp:
      service: ext-authz.default.svc.cluster.local
      port: 8000
      includeRequestHeadersInCheck: [x-ext-authz]
      headersToDownstreamOnDeny: [x-ext-authz-check-result]
  - name: sample-ext-authz-grpc
    envoyExtAuthzGrpc:
      service: grpc-authz.default.svc.cluster.local
      port: 9100
      timeout: 5s
  - name: ext-authz-http-body
    envoyExtAuthzHttp:
      service: ext-authz.default.svc.cluster.local
      port: 8000
      includeRequestHeadersInCheck: [x-ext-authz, x-envoy-auth-partial-body]
      includeRequestBodyInCheck: { maxRequestBytes: 256 }
  - name: ext-authz-http-body-partial
    envoyExtAuthzHttp:
      service: ext-authz.default.svc.cluster.local
      port: 8000
      includeRequestHeadersInCheck: [x-ext-authz, x-envoy-auth-partial-body]
      includeRequestBodyInCheck: { maxRequestBytes: 16, allowPartialMessage: true }
  - name: ext-authz-grpc-body
    envoyExtAuthzGrpc:
      service: grpc-authz.default.svc.cluster.local
      port: 9100
      timeout: 5s
      includeRequestBodyInCheck: { maxRequestBytes: 256 }
  - name: ext-authz-grpc-body-partial-bytes
    envoyExtAuthzGrpc:
      service: grpc-authz.default.svc.cluster.local
      port: 9100
      timeout: 5s
      includeRequestBodyInCheck: { maxRequestBytes: 16, allowPartialMessage: true, packAsBytes: true }
  - name: ext-authz-grpc-down
    envoyExtAuthzGrpc:
      service: grpc-authz-down.default.svc.cluster.local
      port: 9100
      statusOnError: "503"
  - name: ext-authz-grpc-down-fail-open
    envoyExtAuthzGrpc:
      service: grpc-authz-down.default.svc.cluster.local
      port: 9100
      failOpen: true
  - name: dry-run-log
    envoyFileAccessLog:
      path: /dev/stdout
      logFormat:
        labels:
          path: "%REQ(:PATH)%"
          response_code: "%RESPONSE_CODE%"
          dry_run_policy: "%DYNAMIC_METADATA(envoy.filters.http.rbac:istio_dry_run_deny_shadow_effective_policy_id)%"
          dry_run_result: "%DYNAMIC_METADATA(envoy.filters.http.rbac:istio_dry_run_deny_shadow_engine_result)%"
`;

describe('AuthorizationPolicy and RequestAuthentication through real sidecars', () => {
  const mesh = new TestMesh();
  let reviews: Backend;
  let server: SidecarHandle;
  let productpage: ProxyClient;
  let details: ProxyClient;
  let keys: { first: Signer; second: Signer; stranger: Signer };
  let jwks: Awaited<ReturnType<typeof jwksServer>>;
  let authorizer: Awaited<ReturnType<typeof extAuthzServer>>;
  let grpcAuthz: Awaited<ReturnType<typeof grpcAuthorizer>>;
  let echo: Awaited<ReturnType<typeof startTcpEcho>>;
  let clientSidecars: SidecarHandle[];
  /** Every request body reviews received, in order. */
  const reviewsBodies: Buffer[] = [];

  const get = (client: ProxyClient, p: string, headers: Record<string, string> = {}, method = 'GET') =>
    client.request(`http://reviews:9080${p}`, headers, method);

  /** Applies YAML and waits until `check` holds (pilot pushes, the proxy takes it). */
  const applyAndWait = async (yaml: string, what: string, check: () => Promise<boolean>) => {
    const r = await mesh.apply(yaml);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await eventually(what, check, 15_000);
  };

  beforeAll(async () => {
    keys = { first: await signer('k1'), second: await signer('k2'), stranger: await signer('k1') };
    jwks = await jwksServer([keys.first.jwk]);
    authorizer = await extAuthzServer();
    grpcAuthz = await grpcAuthorizer();
    // A port nothing listens on: the authorizer that is down.
    mesh.writeConfig('services.yaml', services(authorizer.port, grpcAuthz.port, await mesh.ports.take()));
    const meshConfig = path.join(mesh.dir, 'mesh.yaml');
    fs.writeFileSync(meshConfig, MESH_CONFIG);
    await mesh.startCitadel();
    await mesh.startPilot(['--registration-grace-ms', '30000', '--mesh-config', meshConfig]);
    // reviews keeps the body of every request that has one, and answers with its length.
    reviews = await startBackend('reviews', 'v1', (req, res) => {
      if (req.method === 'GET') return false;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        reviewsBodies.push(Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ path: req.url, bytes: reviewsBodies.at(-1)!.length }));
      });
      return true;
    });
    server = await mesh.startSidecar({
      workload: 'reviews-v1',
      service: 'reviews',
      labels: { app: 'reviews', version: 'v1' },
      appPort: reviews.port,
    });
    echo = await startTcpEcho('tcp-echo');
    const tcpServer = await mesh.startSidecar({
      workload: 'tcp-echo-v1',
      service: 'tcp-echo',
      labels: { app: 'tcp-echo', version: 'v1' },
      appPort: echo.port,
      servicePort: 9000,
      portName: 'tcp',
    });
    const clients: SidecarHandle[] = [];
    for (const name of ['productpage', 'details']) {
      const app = await startBackend(name, 'v1');
      clients.push(
        await mesh.startSidecar({
          workload: `${name}-v1`,
          service: name,
          labels: { app: name, version: 'v1' },
          appPort: app.port,
        }),
      );
    }
    clientSidecars = clients;
    await mesh.waitForSync([server.id, tcpServer.id, ...clients.map((c) => c.id)]);
    productpage = new ProxyClient(clients[0]!.outboundPort);
    details = new ProxyClient(clients[1]!.outboundPort);
    await eventually('reviews through the mesh', async () => (await get(details, '/warm')).status === 200);
  }, 120_000);

  afterAll(async () => {
    productpage?.close();
    details?.close();
    await reviews?.close();
    await jwks?.close();
    await authorizer?.close();
    grpcAuthz?.close();
    await mesh.stop();
    await echo?.close();
  });

  it('ALLOW: productpage may GET reviews while details may not, nor may a client without a sidecar', async () => {
    await applyAndWait(
      `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-viewer, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/default/sa/productpage] } }]
      to: [{ operation: { methods: [GET] } }]
`,
      'details refused',
      async () => (await get(details, '/reviews/1')).status === 403,
    );
    const denied = await get(details, '/reviews/1');
    expect(denied.body).toBe('RBAC: access denied');
    expect((await get(productpage, '/reviews/1')).status).toBe(200);
    expect((await get(productpage, '/reviews/1', {}, 'POST')).status).toBe(403);
    // Plaintext (PERMISSIVE) has no identity, so no principal matches.
    const plain = await requestWithHost(`http://127.0.0.1:${server.inboundPort}/reviews/1`, 'reviews:9080');
    expect(plain.status).toBe(403);
  });

  it('DENY beats ALLOW, with prefix and suffix path wildcards', async () => {
    await applyAndWait(
      `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-deny-admin, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: DENY
  rules:
    - to: [{ operation: { paths: ["/admin/*", "*.secret"] } }]
`,
      'admin denied',
      async () => (await get(productpage, '/admin/users')).status === 403,
    );
    expect((await get(productpage, '/notes.secret')).status).toBe(403);
    expect((await get(productpage, '/administrator')).status).toBe(200);
    expect((await get(productpage, '/reviews/2')).status).toBe(200);
  });

  it('dry-run: a policy annotated istio.io/dry-run is evaluated, logged and counted, never enforced', async () => {
    const dryRun = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: reviews-deny-all-dry-run
  namespace: default
  annotations: { istio.io/dry-run: "true" }
spec:
  selector: { matchLabels: { app: reviews } }
  action: DENY
  rules: [{}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: reviews-dry-run-log, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  accessLogging: [{ providers: [{ name: dry-run-log }] }]
`;
    const counter = async () => {
      const text = await (await fetch(`http://127.0.0.1:${server.statsPort}/stats/prometheus`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith('envoy_http_rbac_istio_dry_run_deny_shadow_denied{'));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    const before = await counter();
    await applyAndWait(dryRun, 'the dry-run policy counted', async () => {
      const r = await get(productpage, '/reviews/3');
      return r.status === 200 && (await counter()) > before;
    });
    const counted = await counter();
    for (let i = 0; i < 5; i++) expect((await get(productpage, `/reviews/dry/${i}`)).status).toBe(200);
    // Metrics are recorded as each request completes: wait for the last one.
    await eventually(
      'five more dry-run denials counted',
      async () => (await counter()) >= counted + 5,
      5_000,
    );
    // Each would-be decision is logged by the reviews sidecar, naming the policy (Envoy's shadow fields)…
    const lines = () =>
      server.proc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const policyId = 'ns[default]-policy[reviews-deny-all-dry-run]-rule[0]';
    await eventually(
      'the dry-run decisions logged',
      async () =>
        lines().filter((l) => l.dryRun === true && String(l.path).startsWith('/reviews/dry/')).length === 5,
      5_000,
    );
    const logged = lines().find((l) => l.dryRun === true && l.path === '/reviews/dry/4');
    expect(logged).toMatchObject({
      level: 'info',
      msg: `dry-run: shadow denied, matched policy ${policyId}`,
      action: 'DENY',
      shadow_engine_result: 'denied',
      shadow_effective_policy_id: policyId,
      source: 'spiffe://cluster.local/ns/default/sa/productpage',
      method: 'GET',
    });
    // …and access logs can carry it with %DYNAMIC_METADATA(envoy.filters.http.rbac:…)%, next to the 200 actually sent.
    await eventually(
      'the access log line with the dry-run result',
      async () => lines().some((l) => l.path === '/reviews/dry/4' && l.dry_run_policy !== undefined),
      5_000,
    );
    expect(lines().find((l) => l.path === '/reviews/dry/4' && l.dry_run_policy !== undefined)).toEqual({
      path: '/reviews/dry/4',
      response_code: 200,
      dry_run_policy: policyId,
      dry_run_result: 'denied',
    });
    await mesh.remove(dryRun);
  });

  it('JWT: a valid token passes, expired / wrong issuer / wrong audience are refused, no token is left to policy', async () => {
    await applyAndWait(
      `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: reviews-jwt, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  jwtRules:
    - issuer: ${ISSUER}
      audiences: [bookinfo]
      jwksUri: ${jwks.url}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-require-jwt, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: DENY
  rules:
    - from: [{ source: { notRequestPrincipals: ["*"] } }]
      to: [{ operation: { paths: ["/secure*"] } }]
`,
      'a tokenless request to /secure denied',
      async () => (await get(productpage, '/secure')).status === 403,
    );
    const good = await token(keys.first, { groups: ['users'] });
    const ok = await get(productpage, '/secure', { authorization: `Bearer ${good}` });
    expect(ok.status).toBe(200);
    // Istio removes the token before the app unless forwardOriginalToken is set.
    expect(reviews.lastHeaders?.authorization).toBeUndefined();

    const expired = await token(keys.first, {}, { expiresIn: -120 });
    const r1 = await get(productpage, '/secure', { authorization: `Bearer ${expired}` });
    expect([r1.status, r1.body]).toEqual([401, 'Jwt is expired']);
    const foreign = await token(keys.first, {}, { issuer: 'https://elsewhere.test' });
    expect((await get(productpage, '/secure', { authorization: `Bearer ${foreign}` })).status).toBe(401);
    const otherAudience = await token(keys.first, {}, { audience: 'payments' });
    const r3 = await get(productpage, '/secure', { authorization: `Bearer ${otherAudience}` });
    expect(r3.status).toBe(403);
    expect(r3.body).toBe('Audiences in Jwt are not allowed');
    // A token signed by a key the JWKS does not hold (same kid) fails verification.
    const forged = await token(keys.stranger, {});
    expect((await get(productpage, '/secure', { authorization: `Bearer ${forged}` })).status).toBe(401);
    // A present but invalid token is refused even where no policy asks for one.
    expect((await get(productpage, '/reviews/1', { authorization: `Bearer ${expired}` })).status).toBe(401);
    expect((await get(productpage, '/reviews/1')).status).toBe(200);
  });

  it('JWT: keys rotated at the JWKS are picked up for tokens with the new key id', async () => {
    jwks.state.keys = [keys.first.jwk, keys.second.jwk];
    const rotated = await token(keys.second, {});
    await eventually(
      'a token signed with the new key accepted',
      async () => (await get(productpage, '/secure', { authorization: `Bearer ${rotated}` })).status === 200,
      15_000,
    );
    expect(jwks.state.fetches).toBeGreaterThanOrEqual(2);
  });

  it('claims conditions: request.auth.claims[…] (lists and nested claims) decide an ALLOW rule', async () => {
    await applyAndWait(
      `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-admins, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules:
    - to: [{ operation: { paths: ["/claims*"] } }]
      when:
        - { key: "request.auth.claims[groups]", values: [admins] }
        - { key: "request.auth.claims[org][team]", values: [mesh] }
`,
      'details allowed by claims',
      async () => {
        const t = await token(keys.first, { groups: ['users', 'admins'], org: { team: 'mesh' } });
        return (await get(details, '/claims', { authorization: `Bearer ${t}` })).status === 200;
      },
    );
    const users = await token(keys.first, { groups: ['users'], org: { team: 'mesh' } });
    expect((await get(details, '/claims', { authorization: `Bearer ${users}` })).status).toBe(403);
    const otherTeam = await token(keys.first, { groups: ['admins'], org: { team: 'payments' } });
    expect((await get(details, '/claims', { authorization: `Bearer ${otherTeam}` })).status).toBe(403);
    // The claims rule covers /claims only: details is still refused elsewhere.
    expect((await get(details, '/reviews/1')).status).toBe(403);
  });

  /** reviews' CUSTOM policy: `provider` decides the paths under `prefix`. */
  const reviewsCustom = (provider: string, prefix: string) => `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-ext-authz, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: CUSTOM
  provider: { name: ${provider} }
  rules:
    - to: [{ operation: { paths: ["${prefix}/*"] } }]
`;

  it('CUSTOM: the external authorizer decides the paths its policy names, and only those', async () => {
    await applyAndWait(
      reviewsCustom('sample-ext-authz-http', '/custom'),
      'the authorizer consulted',
      async () => (await get(productpage, '/custom/a', { 'x-ext-authz': 'deny' })).status === 403,
    );
    const denied = await get(productpage, '/custom/a', { 'x-ext-authz': 'deny' });
    expect(denied.body).toBe('denied by ext_authz');
    expect(denied.headers['x-ext-authz-check-result']).toBe('denied');
    expect(authorizer.state.lastPath).toBe('/custom/a');
    const allowed = await get(productpage, '/custom/b', { 'x-ext-authz': 'allow' });
    expect(allowed.status).toBe(200);
    expect(reviews.lastHeaders?.['x-ext-authz']).toBe('allow');
    const checks = authorizer.state.checks;
    expect((await get(productpage, '/reviews/9', { 'x-ext-authz': 'deny' })).status).toBe(200);
    expect(authorizer.state.checks).toBe(checks);
  });

  it("CUSTOM over gRPC (envoyExtAuthzGrpc): allow with headers for the app, deny with the authorizer's status, headers and body", async () => {
    // A workload's CUSTOM policies must share one provider: the HTTP authorizer's policy is replaced.
    await applyAndWait(
      reviewsCustom('sample-ext-authz-grpc', '/grpc'),
      'the gRPC authorizer consulted',
      async () => (await get(productpage, '/grpc/a', { 'x-ext-authz': 'deny' })).status === 401,
    );
    const denied = await get(productpage, '/grpc/a', { 'x-ext-authz': 'deny' });
    expect(denied.body).toBe('denied by the gRPC authorizer');
    expect(denied.headers['x-ext-authz-check-result']).toBe('denied');

    const hits = reviews.hits;
    const allowed = await get(productpage, '/grpc/b?q=1', { 'x-ext-authz': 'allow' });
    expect(allowed.status).toBe(200);
    expect(reviews.hits).toBe(hits + 1);
    expect(reviews.lastHeaders?.['x-user']).toBe('alice');
    expect(reviews.lastHeaders?.['x-ext-authz-check-result']).toBe('allowed');
    // What reviews' sidecar asked: the caller's mTLS identity, its own, the request line and headers.
    const check = grpcAuthz.checks.at(-1)!.attributes!;
    expect(check.source?.principal).toBe('spiffe://cluster.local/ns/default/sa/productpage');
    expect(check.destination?.principal).toBe('spiffe://cluster.local/ns/default/sa/reviews');
    expect(check.request?.http).toMatchObject({ method: 'GET', path: '/grpc/b?q=1' });
    expect(check.request?.http?.headers).toMatchObject({
      ':path': '/grpc/b?q=1',
      ':method': 'GET',
      'x-ext-authz': 'allow',
    });

    // Only what the policy names is checked; the HTTP authorizer's paths are no longer CUSTOM.
    const checks = grpcAuthz.checks.length;
    expect((await get(productpage, '/reviews/10', { 'x-ext-authz': 'deny' })).status).toBe(200);
    expect((await get(productpage, '/custom/c', { 'x-ext-authz': 'deny' })).status).toBe(200);
    expect(grpcAuthz.checks.length).toBe(checks);
  });

  it('CUSTOM over gRPC with the authorizer down: statusOnError, or through with failOpen', async () => {
    await applyAndWait(
      reviewsCustom('ext-authz-grpc-down', '/grpc'),
      'statusOnError answered',
      async () => (await get(productpage, '/grpc/down', { 'x-ext-authz': 'allow' })).status === 503,
    );
    await applyAndWait(
      reviewsCustom('ext-authz-grpc-down-fail-open', '/grpc'),
      'let through with failOpen',
      async () => (await get(productpage, '/grpc/down', { 'x-ext-authz': 'deny' })).status === 200,
    );
    expect(JSON.parse((await get(productpage, '/grpc/open')).body).path).toBe('/grpc/open');
  });

  it('CUSTOM over gRPC on a TCP port: the authorizer admits productpage and the connection from details is closed', async () => {
    const [productpageSidecar, detailsSidecar] = clientSidecars;
    const refused = async () =>
      tcpThroughSidecar(detailsSidecar!.outboundPort, TCP_ECHO).then(
        () => false,
        () => true,
      );
    expect(await refused()).toBe(false);
    await applyAndWait(
      `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: tcp-echo-ext-authz, namespace: default }
spec:
  selector: { matchLabels: { app: tcp-echo } }
  action: CUSTOM
  provider: { name: sample-ext-authz-grpc }
  rules: [{}]
`,
      "details' TCP connection closed",
      refused,
    );
    expect(await tcpExchange(productpageSidecar!.outboundPort, TCP_ECHO, 'hello over tcp')).toBe('tcp-echo');
    // A connection's check names its peers alone: productpage's identity, no HTTP request.
    const check = grpcAuthz.checks.filter((c) => !c.attributes?.request).at(-1)!.attributes!;
    expect(check.source?.principal).toBe('spiffe://cluster.local/ns/default/sa/productpage');
    expect(check.destination?.principal).toBe('spiffe://cluster.local/ns/default/sa/tcp-echo');
  });

  /**
   * reviews' CUSTOM policy on `/body/*` with `provider`, and an ALLOW rule
   * letting productpage GET and POST there (CUSTOM runs first; ALLOW
   * policies applied earlier admit GET only).
   */
  const bodyPolicies = (provider: string) => `${reviewsCustom(provider, '/body')}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-body-writers, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/default/sa/productpage] } }]
      to: [{ operation: { methods: [GET, POST], paths: ["/body/*"] } }]
`;
  const post = (p: string, body: string | Buffer) =>
    productpage.request(`http://reviews:9080${p}`, { 'x-ext-authz': 'allow' }, 'POST', body);
  const lastGrpcHttp = () =>
    grpcAuthz.checks.filter((c) => c.attributes?.request).at(-1)!.attributes!.request!.http!;

  it('includeRequestBodyInCheck (HTTP authorizer): it decides on the JSON body, reviews gets all of it; over maxRequestBytes 413, the authorizer never asked', async () => {
    await applyAndWait(
      bodyPolicies('ext-authz-http-body'),
      'the HTTP authorizer deciding on bodies',
      async () => {
        const denied = await post('/body/orders', '{"forbidden": true}');
        return denied.body === 'denied by ext_authz' && (await post('/body/orders', '{}')).status === 200;
      },
    );
    const forbidden = '{"item": "book", "forbidden": true}';
    const denied = await post('/body/orders', forbidden);
    expect([denied.status, denied.body]).toEqual([403, 'denied by ext_authz']);
    expect(authorizer.state.lastBody.toString()).toBe(forbidden);
    expect(authorizer.state.lastHeaders['content-length']).toBe(String(forbidden.length));
    expect(authorizer.state.lastHeaders['x-envoy-auth-partial-body']).toBe('false');

    const bodies = reviewsBodies.length;
    const order = JSON.stringify({ item: 'book', forbidden: false, note: 'n'.repeat(150) });
    const ok = await post('/body/orders', order);
    expect(ok.status).toBe(200);
    expect(authorizer.state.lastBody.toString()).toBe(order);
    expect(reviewsBodies.length).toBe(bodies + 1);
    expect(reviewsBodies.at(-1)!.toString()).toBe(order);

    const checks = authorizer.state.checks;
    const big = await post('/body/orders', JSON.stringify({ note: 'y'.repeat(300) }));
    expect([big.status, big.body]).toEqual([413, 'Payload Too Large']);
    expect(authorizer.state.checks).toBe(checks);
    expect(reviewsBodies.length).toBe(bodies + 1);

    // A GET has no body: checked as before, with none.
    expect((await get(productpage, '/body/list', { 'x-ext-authz': 'allow' })).status).toBe(200);
    expect(authorizer.state.checks).toBe(checks + 1);
    expect(authorizer.state.lastBody.length).toBe(0);
    expect(authorizer.state.lastHeaders['x-envoy-auth-partial-body']).toBeUndefined();
  });

  it('includeRequestBodyInCheck with allowPartialMessage (HTTP authorizer): exactly maxRequestBytes, marked partial; reviews gets all', async () => {
    // "forbidden" comes after the first 16 bytes: only a partial check lets this through.
    const order = JSON.stringify({ padding: 'p'.repeat(40), forbidden: true });
    await applyAndWait(
      bodyPolicies('ext-authz-http-body-partial'),
      'the HTTP authorizer sent 16 bytes',
      async () => {
        const r = await post('/body/partial', order);
        return r.status === 200 && authorizer.state.lastBody.length === 16;
      },
    );
    expect((await post('/body/partial', order)).status).toBe(200);
    expect(authorizer.state.lastBody.toString()).toBe(order.slice(0, 16));
    expect(authorizer.state.lastHeaders['content-length']).toBe('16');
    expect(authorizer.state.lastHeaders['x-envoy-auth-partial-body']).toBe('true');
    expect(reviewsBodies.at(-1)!.toString()).toBe(order);
  });

  it('includeRequestBodyInCheck over gRPC: the body in attributes.request.http.body decides; over maxRequestBytes 413, never asked', async () => {
    await applyAndWait(
      bodyPolicies('ext-authz-grpc-body'),
      'the gRPC authorizer deciding on bodies',
      async () => {
        const denied = await post('/body/orders', '{"forbidden": true}');
        return denied.status === 401 && (await post('/body/orders', '{}')).status === 200;
      },
    );
    const forbidden = '{"item": "pen", "forbidden": true}';
    const denied = await post('/body/orders', forbidden);
    expect([denied.status, denied.body]).toEqual([401, 'denied by the gRPC authorizer']);
    let sent = lastGrpcHttp();
    expect(sent.body).toBe(forbidden);
    expect(sent.size).toBe(forbidden.length);
    expect(sent.headers?.['x-envoy-auth-partial-body']).toBe('false');

    const order = JSON.stringify({ item: 'pen', forbidden: false });
    const bodies = reviewsBodies.length;
    expect((await post('/body/orders', order)).status).toBe(200);
    expect(lastGrpcHttp().body).toBe(order);
    expect(reviewsBodies.at(-1)!.toString()).toBe(order);

    const checks = grpcAuthz.checks.length;
    const big = await post('/body/orders', 'z'.repeat(257));
    expect([big.status, big.body]).toEqual([413, 'Payload Too Large']);
    expect(grpcAuthz.checks.length).toBe(checks);
    expect(reviewsBodies.length).toBe(bodies + 1);

    expect((await get(productpage, '/body/list', { 'x-ext-authz': 'allow' })).status).toBe(200);
    sent = lastGrpcHttp();
    expect(sent.body).toBeUndefined();
    expect(sent.headers?.['x-envoy-auth-partial-body']).toBeUndefined();
  });

  it('includeRequestBodyInCheck over gRPC with packAsBytes and allowPartialMessage: the first 16 bytes exactly as raw_body, marked partial', async () => {
    const payload = Buffer.concat([
      Buffer.from('{"b":"'),
      Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]),
      Buffer.from(`", "pad": "${'q'.repeat(50)}", "forbidden": true}`),
    ]);
    await applyAndWait(
      bodyPolicies('ext-authz-grpc-body-partial-bytes'),
      'the gRPC authorizer sent raw bytes',
      async () =>
        (await post('/body/bytes', payload)).status === 200 && lastGrpcHttp().raw_body !== undefined,
    );
    expect((await post('/body/bytes', payload)).status).toBe(200);
    const sent = lastGrpcHttp();
    expect(Buffer.from(sent.raw_body!, 'base64')).toEqual(payload.subarray(0, 16));
    expect(sent.body).toBeUndefined();
    expect(sent.headers?.['x-envoy-auth-partial-body']).toBe('true');
    expect(reviewsBodies.at(-1)).toEqual(payload);
  });
});
