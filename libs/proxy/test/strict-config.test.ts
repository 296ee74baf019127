import {
  buildAuthorizationFilters,
  EXT_AUTHZ_HTTP_TYPE,
  EXT_AUTHZ_PER_ROUTE_TYPE,
  type ExtensionProvider,
} from '@mizzen/policy';
import { type ResourceSet, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileListener } from '../src/config/listener.js';
import { compilePerRouteConfig } from '../src/http/filters/registry.js';
import {
  type Backend,
  backend,
  HCM,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  ROUTER,
  svcRoutes,
  TCP,
} from './harness.js';

type Json = Record<string, unknown>;

/** What each test adds to the cluster, its endpoints, the route (its action, its per-filter configs) and the HTTP connection manager. */
interface Extra {
  cluster?: Json;
  endpoints?: Json;
  route?: Json;
  perFilter?: Json;
  hcm?: Json;
}

/** An ext_authz filter asking a gRPC authorizer about every request (no filter_enabled_metadata). */
const extAuthzFilter = (grpcService: Json): Json => ({
  name: 'envoy.filters.http.ext_authz',
  typed_config: { '@type': EXT_AUTHZ_HTTP_TYPE, grpc_service: grpcService, transport_api_version: 'V3' },
});
const ROUTER_FILTER: Json = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } };

/**
 * The proxy honours every field it receives or refuses the resource: a real
 * ADS server pushes config with fields this proxy does not implement, and
 * the proxy NACKs it naming the field's path, while requests keep going
 * where the last good config sends them.
 */
describe('config the proxy cannot honour is NACKed by field, and the old config keeps serving', () => {
  const h = new ProxyHarness();
  let oldApp: Backend;
  let newApp: Backend;

  /** `app` (an EDS cluster) has its one endpoint on `port`. */
  const set = (port: number, extra: Extra = {}): ResourceSet => {
    const [virtualOutbound, http] = outboundListeners(h.outbound) as [Json, Json];
    const chain = (http.filter_chains as Json[])[0]!;
    const hcm = (chain.filters as Json[])[0]!;
    return {
      [TypeUrl.Cluster]: [
        {
          name: 'app',
          type: 'EDS',
          connect_timeout: '1s',
          eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'app' },
          ...extra.cluster,
        },
        PASSTHROUGH,
      ],
      [TypeUrl.ClusterLoadAssignment]: [
        {
          cluster_name: 'app',
          endpoints: [
            {
              lb_endpoints: [
                { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } },
              ],
            },
          ],
          ...extra.endpoints,
        },
      ],
      [TypeUrl.Listener]: [
        virtualOutbound,
        {
          ...http,
          filter_chains: [
            {
              ...chain,
              filters: [{ ...hcm, typed_config: { ...(hcm.typed_config as Json), ...extra.hcm } }],
            },
          ],
        },
      ],
      [TypeUrl.RouteConfiguration]: [
        svcRoutes([
          {
            match: { prefix: '/' },
            route: { cluster: 'app', timeout: '0s', ...extra.route },
            ...(extra.perFilter ? { typed_per_filter_config: extra.perFilter } : {}),
          },
        ]),
      ],
    };
  };

  const served = async () =>
    JSON.parse((await h.request('http://svc:9080/who')).body) as { name: string; path: string };
  const servedBy = async () => (await served()).name;

  /** Pushes `bad` (which would also move `app` to the new backend) and returns the proxy's NACK reason. */
  async function nackOf(type: TypeUrl, bad: ResourceSet): Promise<string> {
    h.push(bad);
    await h.until(`${type} NACK`, () => h.state(type)?.state === 'NACKED');
    return h.state(type)?.error ?? '';
  }

  /** Pushes `good` and waits until every type, endpoints included, is ACKed at its version. */
  async function applyAll(good: ResourceSet): Promise<void> {
    await h.apply(good);
    await h.until('EDS ACK', () => h.state(TypeUrl.ClusterLoadAssignment)?.state === 'ACKED');
  }

  beforeAll(async () => {
    oldApp = await backend('old');
    newApp = await backend('new');
    await h.start(() => set(oldApp.port));
  });

  afterAll(async () => {
    await h.stop();
    await oldApp.close();
    await newApp.close();
  });

  it('a Cluster field the proxy does not implement (subset load balancing)', async () => {
    expect(await servedBy()).toBe('old');
    const reason = await nackOf(
      TypeUrl.Cluster,
      set(oldApp.port, {
        cluster: {
          lb_subset_config: { fallback_policy: 'ANY_ENDPOINT', subset_selectors: [{ keys: ['v'] }] },
        },
      }),
    );
    expect(reason).toContain('cluster app: lb_subset_config is not supported');
    expect(await servedBy()).toBe('old');
    await applyAll(set(oldApp.port));
  });

  it('an outlier detection field of a detector the proxy does not have (success rate)', async () => {
    const reason = await nackOf(
      TypeUrl.Cluster,
      set(oldApp.port, {
        cluster: {
          outlier_detection: { consecutive_5xx: 3, enforcing_success_rate: 0, success_rate_minimum_hosts: 3 },
        },
      }),
    );
    expect(reason).toContain('cluster app: outlier_detection.success_rate_minimum_hosts is not supported');
    expect(await servedBy()).toBe('old');
  });

  it('an upstream network filter other than Istio’s metadata exchange', async () => {
    const reason = await nackOf(
      TypeUrl.Cluster,
      set(oldApp.port, {
        cluster: {
          filters: [
            {
              name: 'envoy.filters.network.upstream_echo',
              typed_config: {
                '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
                type_url: 'type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo',
                value: {},
              },
            },
          ],
        },
      }),
    );
    expect(reason).toContain(
      'cluster app.filters[0]: upstream network filter envoy.filters.network.upstream_echo is not supported',
    );
    expect(await servedBy()).toBe('old');
  });

  it('outlier detection that leaves success-rate ejection on (Envoy enforces it unless told 0)', async () => {
    const reason = await nackOf(
      TypeUrl.Cluster,
      set(oldApp.port, { cluster: { outlier_detection: { consecutive_5xx: 3 } } }),
    );
    expect(reason).toContain(
      'cluster app: outlier_detection.enforcing_success_rate is unset, which Envoy enforces at 100%',
    );
    expect(await servedBy()).toBe('old');
    await applyAll(set(oldApp.port));
  });

  it('a ClusterLoadAssignment field (drop overloads), with the endpoint moved in the same push', async () => {
    const reason = await nackOf(
      TypeUrl.ClusterLoadAssignment,
      set(newApp.port, {
        endpoints: {
          policy: {
            drop_overloads: [
              { category: 'throttle', drop_percentage: { numerator: 50, denominator: 'HUNDRED' } },
            ],
          },
        },
      }),
    );
    expect(reason).toContain('endpoints app: policy.drop_overloads is not supported');
    expect(await servedBy()).toBe('old');
    await applyAll(set(oldApp.port));
  });

  it('a route action field (a per-route stream idle timeout)', async () => {
    const reason = await nackOf(
      TypeUrl.RouteConfiguration,
      set(oldApp.port, { route: { idle_timeout: '2s' } }),
    );
    expect(reason).toContain(
      'route configuration 9080: virtual_hosts[0].routes[0].route.idle_timeout is not supported',
    );
    expect(await servedBy()).toBe('old');
    await applyAll(set(oldApp.port));
  });

  it("an HTTP connection manager field (path normalization), the listener's old config kept", async () => {
    const reason = await nackOf(TypeUrl.Listener, set(oldApp.port, { hcm: { normalize_path: true } }));
    expect(reason).toContain(
      'listener 0.0.0.0_9080.filter_chains[0].filters[0]: normalize_path is not supported',
    );
    expect(await servedBy()).toBe('old');
    await applyAll(set(oldApp.port));
  });

  it("an ext_authz field nested in its gRPC service, the listener's old config kept", async () => {
    // The app cannot answer a gRPC Check: a listener with this filter refuses every request (403).
    const authorizer = { envoy_grpc: { cluster_name: 'app' }, timeout: '1s' };
    const reason = await nackOf(
      TypeUrl.Listener,
      set(oldApp.port, {
        hcm: {
          http_filters: [
            extAuthzFilter({
              ...authorizer,
              envoy_grpc: { cluster_name: 'app', retry_policy: { num_retries: 2 } },
            }),
            ROUTER_FILTER,
          ],
        },
      }),
    );
    expect(reason).toContain(
      'listener 0.0.0.0_9080.filter_chains[0].filters[0].http_filters[0] (envoy.filters.http.ext_authz): grpc_service.envoy_grpc.retry_policy is not supported',
    );
    expect(await servedBy()).toBe('old');
    await applyAll(set(oldApp.port, { hcm: { http_filters: [extAuthzFilter(authorizer), ROUTER_FILTER] } }));
    expect((await h.request('http://svc:9080/who')).status).toBe(403);
    await applyAll(set(oldApp.port));
  });

  it("an ExtAuthzPerRoute field nested in its check settings, the route table's old config kept", async () => {
    // The refused table would also rewrite the path: the app still seeing /who is the old table at work.
    const reason = await nackOf(
      TypeUrl.RouteConfiguration,
      set(oldApp.port, {
        route: { prefix_rewrite: '/moved/' },
        perFilter: {
          'envoy.filters.http.ext_authz': {
            '@type': EXT_AUTHZ_PER_ROUTE_TYPE,
            check_settings: {
              context_extensions: { tenant: 'a' },
              with_request_body: { max_request_bytes: 10 },
            },
          },
        },
      }),
    );
    expect(reason).toContain(
      'route configuration 9080.virtual_hosts[0] (svc:9080).routes[0].typed_per_filter_config[envoy.filters.http.ext_authz]: check_settings.with_request_body is not supported',
    );
    expect(await served()).toEqual({ name: 'old', path: '/who' });
    await applyAll(set(oldApp.port));
  });

  it('once the config says only what the proxy honours, it is applied', async () => {
    await applyAll(
      set(newApp.port, { cluster: { outlier_detection: { consecutive_5xx: 3, enforcing_success_rate: 0 } } }),
    );
    await h.until('the new endpoint serves', async () => (await servedBy()) === 'new');
  });
});

/** An AuthorizationPolicy with every source, operation and condition Istio has, as pilot would translate it. */
const EVERY_FIELD_POLICY = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'full', namespace: 'foo', creationTimestamp: '2024-01-01T00:00:00Z' },
  spec: {
    rules: [
      {
        from: [
          {
            source: {
              principals: ['cluster.local/ns/foo/sa/sleep', 'prefix-*', '*'],
              notPrincipals: ['bad'],
              requestPrincipals: ['iss/sub'],
              namespaces: ['foo'],
              notNamespaces: ['bar'],
              ipBlocks: ['10.0.0.0/8'],
              remoteIpBlocks: ['2001:db8::/32'],
            },
          },
        ],
        to: [
          {
            operation: {
              hosts: ['example.com', '*.example.com'],
              methods: ['GET'],
              paths: ['/exact', '/prefix/*', '/api/{*}/items/{**}'],
              notPaths: ['/admin'],
              ports: ['8000'],
            },
          },
        ],
        when: [
          { key: 'request.headers[X-Foo]', values: ['bar'], notValues: ['baz'] },
          { key: 'request.auth.claims[groups]', values: ['admin'] },
          { key: 'destination.ip', values: ['10.0.0.2'] },
          { key: 'connection.sni', values: ['*.example.com'] },
          { key: 'experimental.envoy.filters.a.b[c]', values: ['[d]', 'e'] },
        ],
      },
    ],
  },
};

describe('authorization filters pilot generates are all honoured', () => {
  const listener = (http: Json[], tcp: Json[]) => ({
    name: 'authz',
    address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
    filter_chains: [
      {
        filter_chain_match: { destination_port: 8000 },
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'inbound',
              route_config: { name: 'local', virtual_hosts: [{ name: 'any', domains: ['*'], routes: [] }] },
              http_filters: [
                ...http,
                { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } },
              ],
            },
          },
        ],
      },
      {
        filters: [
          ...tcp,
          { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'tcp', cluster: 'app' } },
        ],
      },
    ],
  });

  it('every AuthorizationPolicy field, enforced and dry-run, for HTTP and TCP', () => {
    const dryRun = {
      ...EVERY_FIELD_POLICY,
      metadata: { ...EVERY_FIELD_POLICY.metadata, name: 'dry', annotations: { 'istio.io/dry-run': 'true' } },
      spec: { ...EVERY_FIELD_POLICY.spec, action: 'DENY' },
    };
    const f = buildAuthorizationFilters([EVERY_FIELD_POLICY, dryRun] as never, {
      namespace: 'foo',
      labels: { app: 'httpbin' },
    });
    expect(f.http.length).toBeGreaterThan(0);
    expect(f.tcp.length).toBeGreaterThan(0);
    expect(() => compileListener(listener(f.http as never, f.tcp as never) as never)).not.toThrow();
  });

  it('an RBAC field the proxy does not run is refused by its path', () => {
    const f = buildAuthorizationFilters([EVERY_FIELD_POLICY] as never, { namespace: 'foo', labels: {} });
    const http = f.http.map((x) => ({
      ...x,
      typed_config: { ...x.typed_config, track_per_rule_stats: true },
    }));
    expect(() => compileListener(listener(http as never, f.tcp as never) as never)).toThrow(
      /http_filters\[0\] \(envoy\.filters\.http\.rbac\): track_per_rule_stats is not supported/,
    );
    const tcp = f.tcp.map((x) => ({
      ...x,
      typed_config: { ...x.typed_config, enforcement_type: 'CONTINUOUS' },
    }));
    expect(() => compileListener(listener(f.http as never, tcp as never) as never)).toThrow(
      /enforcement_type "CONTINUOUS" is not supported: connections are authorized once/,
    );
  });

  const HTTP_EXT_AUTHZ = 'envoy.filters.http.ext_authz';
  const NETWORK_EXT_AUTHZ = 'envoy.filters.network.ext_authz';
  type Built = { http: Json[]; tcp: Json[] };

  /** The filters pilot builds for a CUSTOM policy with this external authorizer. */
  const customFilters = (provider: Omit<ExtensionProvider, 'name'>): Built => {
    const custom = {
      ...EVERY_FIELD_POLICY,
      spec: { action: 'CUSTOM', provider: { name: 'authz' }, rules: [{}] },
    };
    const meshConfig = { extensionProviders: [{ name: 'authz', ...provider }] };
    const f = buildAuthorizationFilters([custom] as never, { namespace: 'foo', labels: {} }, { meshConfig });
    return { http: f.http as unknown as Json[], tcp: f.tcp as unknown as Json[] };
  };

  /** `filters` with `value` written at `path` in the typed_config of the one named `name` (a copy). */
  const withField = (filters: Json[], name: string, path: (string | number)[], value: unknown) =>
    filters.map((f) => {
      if (f.name !== name) return f;
      const typedConfig = structuredClone(f.typed_config) as Json;
      let at = typedConfig as Record<string | number, unknown>;
      for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
      at[path.at(-1)!] = value;
      return { ...f, typed_config: typedConfig };
    });

  /** A path as the proxy names it in a refusal: `a.b[0].c`. */
  const fieldPath = (path: (string | number)[]) =>
    path
      .map((key) => (typeof key === 'number' ? `[${key}]` : `.${key}`))
      .join('')
      .slice(1);

  it('an ext_authz field the proxy does not run is refused by its path, however deep it sits', () => {
    const httpAuthorizer = customFilters({
      envoyExtAuthzHttp: {
        service: 'authz.foo.svc.cluster.local',
        port: 8000,
        includeAdditionalHeadersInCheck: { 'x-mesh': 'mizzen' },
        headersToUpstreamOnAllow: ['x-user'],
        includeRequestBodyInCheck: { maxRequestBytes: 1024 },
      },
    });
    const grpcAuthorizer = customFilters({
      envoyExtAuthzGrpc: { service: 'authz.foo.svc.cluster.local', port: 9000 },
    });
    const compile = (http: Json[], tcp: Json[]) => () => compileListener(listener(http, tcp) as never);
    /** Compiles the listener with a field the proxy does not honour added at `path` in an ext_authz config. */
    const withUnknown = (filters: Built, kind: 'http' | 'network', path: (string | number)[]) =>
      kind === 'http'
        ? compile(withField(filters.http, HTTP_EXT_AUTHZ, path, {}), filters.tcp)
        : compile(filters.http, withField(filters.tcp, NETWORK_EXT_AUTHZ, path, {}));

    expect(compile(httpAuthorizer.http, httpAuthorizer.tcp)).not.toThrow();
    expect(compile(grpcAuthorizer.http, grpcAuthorizer.tcp)).not.toThrow();
    for (const path of [
      ['http_service', 'server_uri', 'bogus'],
      ['http_service', 'authorization_request', 'headers_to_add', 0, 'raw_value'],
      ['http_service', 'authorization_response', 'allowed_upstream_headers', 'patterns', 0, 'custom'],
      ['with_request_body', 'bogus'],
      ['filter_enabled_metadata', 'value', 'string_match', 'bogus'],
    ])
      expect(withUnknown(httpAuthorizer, 'http', path)).toThrow(
        `(${HTTP_EXT_AUTHZ}): ${fieldPath(path)} is not supported`,
      );
    for (const path of [
      ['grpc_service', 'envoy_grpc', 'retry_policy'],
      ['grpc_service', 'initial_metadata'],
      ['clear_route_cache'],
    ])
      expect(withUnknown(grpcAuthorizer, 'http', path)).toThrow(
        `(${HTTP_EXT_AUTHZ}): ${fieldPath(path)} is not supported`,
      );
    // A connection's check has no HTTP status to answer with.
    for (const path of [['grpc_service', 'envoy_grpc', 'bogus'], ['status_on_error']])
      expect(withUnknown(grpcAuthorizer, 'network', path)).toThrow(
        `(${NETWORK_EXT_AUTHZ}): ${fieldPath(path)} is not supported`,
      );
  });

  it('an ExtAuthzPerRoute field the proxy does not run is refused by its path, bare or in a FilterConfig', () => {
    const perRoute = (config: Json) => () =>
      compilePerRouteConfig(HTTP_EXT_AUTHZ, { '@type': EXT_AUTHZ_PER_ROUTE_TYPE, ...config }, 'route r');
    expect(
      perRoute({
        check_settings: { context_extensions: { a: '1' }, disable_request_body_buffering: true },
      })(),
    ).toEqual({
      disabled: false,
      contextExtensions: { a: '1' },
      disableRequestBodyBuffering: true,
    });
    expect(perRoute({ check_settings: { with_request_body: { max_request_bytes: 10 } } })).toThrow(
      `route r.typed_per_filter_config[${HTTP_EXT_AUTHZ}]: check_settings.with_request_body is not supported`,
    );
    expect(perRoute({ disabled: true, bogus: {} })).toThrow(
      `route r.typed_per_filter_config[${HTTP_EXT_AUTHZ}]: bogus is not supported`,
    );
    const wrapped = {
      '@type': 'type.googleapis.com/envoy.config.route.v3.FilterConfig',
      config: {
        '@type': EXT_AUTHZ_PER_ROUTE_TYPE,
        check_settings: { context_extensions: { a: '1' }, bogus: {} },
      },
    };
    expect(() => compilePerRouteConfig(HTTP_EXT_AUTHZ, wrapped, 'route r')).toThrow(
      `route r.typed_per_filter_config[${HTTP_EXT_AUTHZ}]: check_settings.bogus is not supported`,
    );
  });
});
