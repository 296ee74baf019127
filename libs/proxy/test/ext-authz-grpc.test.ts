import net from 'node:net';
import type { ConfigResource } from '@mizzen/api';
import {
  createCsr,
  createRootCa,
  exportPrivateKeyPem,
  formatSpiffeId,
  generateKeyPair,
  issueWorkloadCertificate,
  parseCsr,
} from '@mizzen/pki';
import {
  buildAuthorizationFilters,
  type CheckRequestJson,
  type CheckResponseJson,
  type EnvoyExtAuthzGrpcProvider,
  EXT_AUTHZ_PER_ROUTE_TYPE,
} from '@mizzen/policy';
import { type AuthorizationServerOptions, Snapshot, serveAuthorization, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpRequestRecord } from '../src/observe/records.js';
import { SecretStore } from '../src/security/secret-store.js';
import {
  type Backend,
  backend,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  staticCluster,
  svcRoutes,
  TCP,
} from './harness.js';

/**
 * AuthorizationPolicy CUSTOM with a gRPC external authorizer
 * (envoyExtAuthzGrpc), the filters built by libs/policy exactly as pilot
 * builds them, in a real proxy fed over ADS; the authorizer is a real grpc-js
 * server implementing envoy.service.auth.v3.Authorization/Check, plaintext
 * or mutual TLS with certificates from a real CA.
 */
type Decide = (req: CheckRequestJson) => CheckResponseJson | undefined;
type Authorizer = { checks: CheckRequestJson[]; authorities: string[]; port: number; close: () => void };

const AUTHZ_HOST = 'authz.default.svc.cluster.local';
const AUTHZ_CLUSTER = `outbound|9000||${AUTHZ_HOST}`;

async function authorizer(
  decide: Decide,
  tls?: AuthorizationServerOptions['tls'],
  peers: (string | undefined)[] = [],
): Promise<Authorizer> {
  const state = { checks: [] as CheckRequestJson[], authorities: [] as string[] };
  const server = await serveAuthorization<CheckRequestJson, CheckResponseJson>(
    (req, call) => {
      state.checks.push(req);
      state.authorities.push(call.authority);
      peers.push(call.peerCertificate?.subjectaltname);
      return decide(req);
    },
    tls ? { tls } : {},
  );
  return { ...state, port: server.port, close: server.close };
}

/** The sample authorizer's rules, by the request's `x-ext-authz` header. */
const sampleDecision: Decide = (req) => {
  const verdict = req.attributes?.request?.http?.headers?.['x-ext-authz'];
  if (verdict === 'hang') return undefined;
  if (verdict === 'allow')
    return {
      status: { code: 0 },
      ok_response: {
        headers: [
          { header: { key: 'x-user', value: 'alice' } },
          { header: { key: 'x-ext-authz-check-result', value: 'allowed' } },
        ],
        headers_to_remove: ['x-secret'],
        query_parameters_to_set: [{ key: 'checked', value: 'yes' }],
        response_headers_to_add: [{ header: { key: 'x-authz-trace', value: 't1' } }],
      },
      dynamic_metadata: { user: 'alice' },
    };
  if (verdict === 'deny')
    return {
      status: { code: 7 },
      denied_response: {
        status: { code: 'Unauthorized' },
        headers: [
          { header: { key: 'www-authenticate', value: 'Bearer realm="mesh"' } },
          { header: { key: 'x-ext-authz-check-result', value: 'denied' } },
        ],
        body: 'denied by the gRPC authorizer',
      },
    };
  return { status: { code: 7 } };
};

const customPolicy = (rules: unknown[]): ConfigResource => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'ext', namespace: 'default', creationTimestamp: '2025-01-01T00:00:00Z' },
  spec: { action: 'CUSTOM', provider: { name: 'grpc-authz' }, rules } as never,
});

/** The filters pilot builds for a CUSTOM policy naming an envoyExtAuthzGrpc provider. */
function pilotFilters(rules: unknown[], provider: Partial<EnvoyExtAuthzGrpcProvider> = {}) {
  const built = buildAuthorizationFilters(
    [customPolicy(rules)],
    { namespace: 'default', labels: {} },
    {
      meshConfig: {
        extensionProviders: [
          { name: 'grpc-authz', envoyExtAuthzGrpc: { service: AUTHZ_HOST, port: 9000, ...provider } },
        ],
      },
    },
  );
  // Paths are HTTP-only: the TCP filters warn that they match more; nothing is wrong.
  expect(built.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return built;
}

/** libs/policy types the filters precisely; the harness takes them as the JSON they are. */
const json = (filters: readonly object[]) => filters as Record<string, unknown>[];

const authzCluster = (port: number, extra: Record<string, unknown> = {}) =>
  staticCluster(AUTHZ_CLUSTER, [port], {
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    ...extra,
  });

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('CUSTOM with a gRPC external authorizer (HTTP)', () => {
  const h = new ProxyHarness();
  const records: HttpRequestRecord[] = [];
  let app: Backend;
  let authz: Authorizer;

  const routes = () =>
    svcRoutes([
      {
        match: { prefix: '/checked/quiet' },
        route: { cluster: 'svc', timeout: '0s' },
        typed_per_filter_config: {
          'envoy.filters.http.ext_authz': { '@type': EXT_AUTHZ_PER_ROUTE_TYPE, disabled: true },
        },
      },
      {
        match: { prefix: '/' },
        route: { cluster: 'svc', timeout: '0s' },
        typed_per_filter_config: {
          'envoy.filters.http.ext_authz': {
            '@type': EXT_AUTHZ_PER_ROUTE_TYPE,
            check_settings: { context_extensions: { tier: 'gold' } },
          },
        },
      },
    ]);

  const resources = (provider: Partial<EnvoyExtAuthzGrpcProvider> = {}, authzPort = authz.port) => ({
    [TypeUrl.Cluster]: [staticCluster('svc', [app.port]), authzCluster(authzPort), PASSTHROUGH],
    [TypeUrl.Listener]: outboundListeners(
      h.outbound,
      json(pilotFilters([{ to: [{ operation: { paths: ['/checked/*'] } }] }], provider).http),
    ),
    [TypeUrl.RouteConfiguration]: [routes()],
  });

  beforeAll(async () => {
    app = await backend('svc');
    authz = await authorizer(sampleDecision);
    await h.start(() => resources(), undefined, {
      observer: { startHttp: () => ({ end: (r) => records.push(r) }) },
    });
  });

  afterAll(async () => {
    await h.stop();
    authz?.close();
    await app?.close();
  });

  const lastRecord = async (path: string) => {
    await h.until(`the record of ${path}`, () => records.some((r) => r.path === path));
    return records.filter((r) => r.path === path).pop()!;
  };

  it('allows as the CheckResponse says: upstream headers set and removed, query edited, response header added', async () => {
    const r = await h.request('http://svc:9080/checked/a?x=1', {
      'x-ext-authz': 'allow',
      'x-user': 'forged',
      'x-secret': 's3cret',
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-authz-trace']).toBe('t1');
    expect(JSON.parse(r.body).path).toBe('/checked/a?x=1&checked=yes');
    expect(app.lastHeaders?.['x-user']).toBe('alice');
    expect(app.lastHeaders?.['x-ext-authz-check-result']).toBe('allowed');
    expect(app.lastHeaders?.['x-secret']).toBeUndefined();

    // What the authorizer was asked, as Envoy fills the AttributeContext.
    const attrs = authz.checks.at(-1)!.attributes!;
    expect(attrs.request?.http).toMatchObject({
      method: 'GET',
      path: '/checked/a?x=1',
      host: 'svc:9080',
      scheme: 'http',
      protocol: 'HTTP/1.1',
      headers: expect.objectContaining({
        ':authority': 'svc:9080',
        ':method': 'GET',
        ':path': '/checked/a?x=1',
        'x-ext-authz': 'allow',
        'x-user': 'forged',
        'x-secret': 's3cret',
      }),
    });
    expect(attrs.request?.http?.id).toMatch(/^\d+$/);
    expect(Math.abs(Date.parse(attrs.request!.time!) - Date.now())).toBeLessThan(60_000);
    expect(attrs.source?.address?.socket_address.address).toBe('127.0.0.1');
    expect(attrs.context_extensions).toEqual({ tier: 'gold' });
    // The :authority Istio gives the call (the cluster name with `|` made valid).
    expect(authz.authorities.at(-1)).toBe(`outbound_.9000_._.${AUTHZ_HOST}`);
    expect((await lastRecord('/checked/a?x=1')).dynamicMetadata?.['envoy.filters.http.ext_authz']).toEqual({
      user: 'alice',
    });
  });

  it("denies with the authorizer's status, headers and body; the app never sees the request", async () => {
    const hits = app.hits;
    const r = await h.request('http://svc:9080/checked/b', { 'x-ext-authz': 'deny' });
    expect(r.status).toBe(401);
    expect(r.body).toBe('denied by the gRPC authorizer');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="mesh"');
    expect(r.headers['x-ext-authz-check-result']).toBe('denied');
    expect(app.hits).toBe(hits);
    const record = await lastRecord('/checked/b');
    expect(record.responseFlags).toBe('UAEX');
    expect(record.authz).toMatchObject({ allowed: false, deniedBy: 'ext_authz' });
    expect(record.authz?.extAuthzError).toBeUndefined();
    // A denial that carries no denied_response is Envoy's plain 403.
    expect((await h.request('http://svc:9080/checked/c')).status).toBe(403);
  });

  it('asks only about what the CUSTOM rules select, and not on a route that disables the check', async () => {
    const checks = authz.checks.length;
    expect((await h.request('http://svc:9080/open', { 'x-ext-authz': 'deny' })).status).toBe(200);
    expect((await h.request('http://svc:9080/checked/quiet', { 'x-ext-authz': 'deny' })).status).toBe(200);
    expect(authz.checks.length).toBe(checks);
  });

  it('answers statusOnError when the authorizer takes longer than its timeout, or cannot be reached', async () => {
    await h.apply(resources({ timeout: '0.3s', statusOnError: '503' }));
    const slow = await h.request('http://svc:9080/checked/slow', { 'x-ext-authz': 'hang' });
    expect(slow.status).toBe(503);
    const record = await lastRecord('/checked/slow');
    expect(record.responseFlags).toBe('UAEX');
    expect(record.authz).toMatchObject({ deniedBy: 'ext_authz', extAuthzError: true });

    await h.apply(resources({ statusOnError: '503' }, await deadPort()));
    expect((await h.request('http://svc:9080/checked/down', { 'x-ext-authz': 'allow' })).status).toBe(503);
    // Without statusOnError, Envoy's 403.
    await h.apply(resources({}, await deadPort()));
    expect((await h.request('http://svc:9080/checked/down', { 'x-ext-authz': 'allow' })).status).toBe(403);
  });

  it('lets requests through when the authorizer is down and failOpen is set', async () => {
    await h.apply(resources({ failOpen: true }, await deadPort()));
    const hits = app.hits;
    const r = await h.request('http://svc:9080/checked/open-fail', { 'x-ext-authz': 'deny' });
    expect(r.status).toBe(200);
    expect(app.hits).toBe(hits + 1);
    await h.apply(resources());
  });
});

type Ca = Awaited<ReturnType<typeof createRootCa>>;

async function workloadCert(ca: Ca, sa: string) {
  const keys = await generateKeyPair();
  const identity = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: sa };
  const csr = await parseCsr(await createCsr({ keys, uris: [formatSpiffeId(identity)] }));
  const cert = await issueWorkloadCertificate({ csr, identity, issuer: ca, ttlSeconds: 3600 });
  return { certChain: cert, privateKey: await exportPrivateKeyPem(keys.privateKey) };
}

describe('CUSTOM with a gRPC external authorizer over the cluster’s mutual TLS', () => {
  const h = new ProxyHarness();
  const secrets = new SecretStore();
  const peers: (string | undefined)[] = [];
  let app: Backend;
  let authz: Authorizer;
  let ca: Ca;
  const ADS = { ads: {}, resource_api_version: 'V3' };
  const AUTHZ_ID = 'spiffe://cluster.local/ns/default/sa/ext-authz';

  /** Istio's ISTIO_MUTUAL to the authorizer: the workload certificate, the mesh root, the authorizer's identity. */
  const resources = (san: string) => ({
    [TypeUrl.Cluster]: [
      staticCluster('svc', [app.port]),
      authzCluster(authz.port, {
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
            common_tls_context: {
              tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
              combined_validation_context: {
                default_validation_context: { match_subject_alt_names: [{ exact: san }] },
                validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS },
              },
              alpn_protocols: ['h2'],
            },
            sni: `outbound_.9000_._.${AUTHZ_HOST}`,
          },
        },
      }),
      PASSTHROUGH,
    ],
    [TypeUrl.Listener]: outboundListeners(h.outbound, json(pilotFilters([{}]).http)),
    [TypeUrl.RouteConfiguration]: [svcRoutes([{ match: { prefix: '/' }, route: { cluster: 'svc' } }])],
    [TypeUrl.Secret]: [
      { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: ca.certificate } } },
    ],
  });

  beforeAll(async () => {
    ca = await createRootCa({ organization: 'cluster.local' });
    app = await backend('svc');
    const server = await workloadCert(ca, 'ext-authz');
    authz = await authorizer(
      sampleDecision,
      { ...server, rootCa: ca.certificate, requireClientCertificate: true },
      peers,
    );
    secrets.setLocal('default', { kind: 'certificate', ...(await workloadCert(ca, 'client')) });
    await h.start(() => resources(AUTHZ_ID), secrets);
  });

  afterAll(async () => {
    await h.stop();
    authz?.close();
    await app?.close();
  });

  it('checks over mutual TLS: the authorizer sees the workload identity, its answer applies', async () => {
    const r = await h.request('http://svc:9080/any', { 'x-ext-authz': 'allow' });
    expect(r.status).toBe(200);
    expect(app.lastHeaders?.['x-user']).toBe('alice');
    expect(peers.at(-1)).toBe('URI:spiffe://cluster.local/ns/default/sa/client');
    expect((await h.request('http://svc:9080/any', { 'x-ext-authz': 'deny' })).status).toBe(401);
  });

  it('refuses an authorizer that proves another identity: the check fails, statusOnError (403) applies', async () => {
    const checks = authz.checks.length;
    await h.apply(resources('spiffe://cluster.local/ns/default/sa/someone-else'));
    const r = await h.request('http://svc:9080/any', { 'x-ext-authz': 'allow' });
    expect(r.status).toBe(403);
    expect(authz.checks.length).toBe(checks);
  });
});

describe('CUSTOM with a gRPC external authorizer on a TCP port (network ext_authz)', () => {
  const h = new ProxyHarness();
  const echo = { connections: 0, server: net.createServer() };
  let verdict: 'allow' | 'deny' = 'allow';
  let authz: Authorizer;
  let port = 0;

  const resources = (authzPort = authz.port) => {
    const network = pilotFilters([{ from: [{ source: { ipBlocks: ['127.0.0.1'] } }] }]).tcp;
    return {
      [TypeUrl.Cluster]: [
        staticCluster('inbound|5432||', [(echo.server.address() as net.AddressInfo).port]),
        authzCluster(authzPort),
        PASSTHROUGH,
      ],
      [TypeUrl.Listener]: [
        {
          name: 'db',
          traffic_direction: 'INBOUND',
          address: { socket_address: { address: '127.0.0.1', port_value: port } },
          filter_chains: [
            {
              filters: [
                ...network,
                { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'db', cluster: 'inbound|5432||' } },
              ],
            },
          ],
        },
      ],
    };
  };

  /** Sends `text`; what came back before the peer closed, or 1 s passed. */
  const exchange = (text: string) =>
    new Promise<{ echoed: string; closedByPeer: boolean }>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      let echoed = '';
      const timer = setTimeout(() => {
        s.destroy();
        resolve({ echoed, closedByPeer: false });
      }, 1000);
      s.on('data', (d) => {
        echoed += d.toString();
        if (echoed.length >= text.length) {
          clearTimeout(timer);
          s.end();
          resolve({ echoed, closedByPeer: false });
        }
      });
      s.once('close', () => {
        clearTimeout(timer);
        resolve({ echoed, closedByPeer: true });
      });
      s.once('error', () => {});
      s.write(text);
    });

  /** Pushes config without route tables (none here) and waits for the listener and clusters to be ACKed. */
  const push = async (set: ReturnType<typeof resources>) => {
    h.push(set);
    const snapshot = Snapshot.build(set);
    await h.until('the config ACKed', () =>
      [TypeUrl.Listener, TypeUrl.Cluster].every((t) => h.state(t)?.ackedVersion === snapshot.version(t)),
    );
  };

  beforeAll(async () => {
    echo.server.on('connection', (s) => {
      echo.connections++;
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.server.listen(0, '127.0.0.1', r));
    authz = await authorizer(() => ({ status: { code: verdict === 'allow' ? 0 : 7 } }));
    [port] = await h.ports.takeMany(1);
    await h.start(() => resources());
  });

  afterAll(async () => {
    await h.stop();
    authz?.close();
    echo.server.close();
  });

  it("proxies a connection the authorizer allows, having asked about the connection's peers", async () => {
    const r = await exchange('hello through ext_authz');
    expect(r.echoed).toBe('hello through ext_authz');
    const attrs = authz.checks.at(-1)!.attributes!;
    expect(attrs.source?.address?.socket_address.address).toBe('127.0.0.1');
    expect(attrs.destination?.address?.socket_address).toEqual({ address: '127.0.0.1', port_value: port });
    expect(attrs.request).toBeUndefined();
  });

  it('closes a connection the authorizer denies, or cannot be asked about; the workload never sees it', async () => {
    verdict = 'deny';
    const connections = echo.connections;
    expect(await exchange('refused')).toEqual({ echoed: '', closedByPeer: true });
    await push(resources(await deadPort()));
    verdict = 'allow';
    expect(await exchange('refused')).toEqual({ echoed: '', closedByPeer: true });
    expect(echo.connections).toBe(connections);
  });
});
