import { encodeMessage } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { authorize } from '../src/authz/authorize.js';
import { applyUpstreamEdits, compileExtAuthz } from '../src/authz/ext-authz.js';
import type { MeshConfig } from '../src/authz/ext-authz-config.js';
import { PolicyError } from '../src/common/errors.js';
import type { ExtAuthzJson } from '../src/envoy/types.js';
import {
  type AllowedOutcome,
  allowed,
  buildAuthorizationFilters,
  compileExtAuthzPerRoute,
  EXT_AUTHZ_HTTP_TYPE,
  type ExtAuthzCheckInput,
} from '../src/index.js';
import { ap, http, SLEEP, tcp, WORKLOAD } from './helpers.js';

const mesh: MeshConfig = {
  extensionProviders: [
    { name: 'tracing', zipkin: { service: 'zipkin', port: 9411 } },
    {
      name: 'ext',
      envoyExtAuthzHttp: {
        service: 'foo/authz',
        port: 8000,
        timeout: '250ms',
        pathPrefix: '/check',
        includeRequestHeadersInCheck: ['x-ext-*'],
        includeAdditionalHeadersInCheck: { 'x-added': 'v' },
        headersToUpstreamOnAllow: ['x-user'],
        headersToDownstreamOnDeny: ['x-reason'],
        headersToDownstreamOnAllow: ['set-cookie'],
        statusOnError: '503',
      },
    },
  ],
};

function authorizer() {
  const f = buildAuthorizationFilters(
    [ap('c', { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{}] })],
    WORKLOAD,
    {
      meshConfig: mesh,
    },
  );
  const ext = f.http.find((x) => x.typed_config['@type'] === EXT_AUTHZ_HTTP_TYPE)!;
  const { '@type': _t, ...config } = ext.typed_config;
  return compileExtAuthz(config as unknown as ExtAuthzJson, 'ext_authz');
}

describe('ext_authz runtime (HTTP authorizer)', () => {
  it('is enabled only for requests the CUSTOM RBAC filter marked', () => {
    const a = authorizer();
    expect(a.enabled({})).toBe(false);
    expect(
      a.enabled({
        'envoy.filters.http.rbac': {
          istio_ext_authz_shadow_effective_policy_id: 'istio-ext-authz-ns[foo]-policy[c]-rule[0]',
        },
      }),
    ).toBe(true);
    expect(
      a.enabled({
        'envoy.filters.http.rbac': {
          istio_ext_authz_shadow_effective_policy_id: 'ns[foo]-policy[x]-rule[0]',
        },
      }),
    ).toBe(false);
    expect(a).toMatchObject({
      transport: 'http',
      cluster: 'outbound|8000||authz.foo.svc.cluster.local',
      timeoutMs: 250,
      statusOnError: 503,
    });
  });

  it('builds the check request: same method, prefixed path, allowed and fixed headers', () => {
    const a = authorizer();
    const req = http({
      method: 'POST',
      path: '/api?q=1',
      headers: {
        authorization: 'Bearer t',
        'x-ext-id': '7',
        'x-other': 'no',
        cookie: 'c=1',
        'content-length': '12',
      },
    }).http!;
    expect(a.checkRequest(req)).toEqual({
      method: 'POST',
      path: '/check/api?q=1',
      headers: {
        'content-length': '0',
        authorization: 'Bearer t',
        'x-ext-id': '7',
        host: 'httpbin.foo.svc.cluster.local',
        'x-added': 'v',
      },
    });
  });

  it('interprets answers: 200 allows with header edits, other codes deny, 5xx and errors use statusOnError', () => {
    const a = authorizer();
    const ok = a.interpretResponse({
      status: 200,
      headers: { 'X-User': 'alice', 'set-cookie': 's=1', 'x-internal': 'no' },
    });
    expect(ok).toEqual(
      allowed({
        upstream: [{ name: 'x-user', value: 'alice', action: 'set' }],
        responseHeaders: [{ name: 'set-cookie', value: 's=1', action: 'set' }],
      }),
    );
    const edited = applyUpstreamEdits(
      http({ headers: { 'x-user': 'forged' } }).http!,
      ok as Extract<typeof ok, { allowed: true }>,
    );
    expect(edited.headers['x-user']).toBe('alice');
    expect(
      a.interpretResponse({
        status: 403,
        headers: { 'x-reason': 'no', 'x-internal': 'secret', location: '/login' },
        body: 'denied',
      }),
    ).toEqual({
      allowed: false,
      status: 403,
      body: 'denied',
      headers: [
        ['x-reason', 'no'],
        ['location', '/login'],
      ],
    });
    // With no headersToDownstreamOnDeny every header of the denial goes back, but not how it was framed.
    const open = compileExtAuthz(
      { http_service: { server_uri: { uri: 'http://a', cluster: 'a', timeout: '1s' } } },
      'f',
    );
    expect(
      open.interpretResponse({
        status: 403,
        headers: {
          'transfer-encoding': 'chunked',
          connection: 'keep-alive',
          'keep-alive': 'timeout=5',
          'x-why': 'no',
        },
        body: 'denied',
      }),
    ).toMatchObject({ status: 403, headers: [['x-why', 'no']] });
    const failed = { allowed: false, status: 503, body: '', headers: [], error: true };
    expect(a.interpretResponse({ status: 502, headers: {} })).toEqual(failed);
    expect(a.onError()).toEqual(failed);
  });

  it('fails open with failOpen', () => {
    const f = buildAuthorizationFilters(
      [ap('c', { action: 'CUSTOM', provider: { name: 'o' }, rules: [{}] })],
      WORKLOAD,
      {
        meshConfig: {
          extensionProviders: [
            {
              name: 'o',
              envoyExtAuthzHttp: { service: 'authz.foo.svc.cluster.local', port: 80, failOpen: true },
            },
          ],
        },
      },
    );
    const { '@type': _t, ...config } = f.http[1]!.typed_config;
    const a = compileExtAuthz(config as unknown as ExtAuthzJson, 'x');
    expect(a.onError().allowed).toBe(true);
    expect(a.timeoutMs).toBe(600_000);
    expect(
      a.interpretResponse({ status: 401, headers: { host: 'x', 'www-authenticate': 'Basic' } }),
    ).toMatchObject({
      allowed: false,
      headers: [['www-authenticate', 'Basic']],
    });
  });
});

describe('CUSTOM on TCP and with conflicting providers', () => {
  it('asks a gRPC authorizer about TCP connections the CUSTOM rules select', () => {
    const policies = [
      ap('c', {
        action: 'CUSTOM',
        provider: { name: 'g' },
        rules: [{ to: [{ operation: { ports: ['5432'] } }] }],
      }),
    ];
    const opts = {
      meshConfig: {
        extensionProviders: [
          { name: 'g', envoyExtAuthzGrpc: { service: 'authz.foo.svc.cluster.local', port: 9001 } },
        ],
      },
    };
    const d = authorize(policies, WORKLOAD, tcp({ destPort: 5432 }), opts);
    expect(d.verdict).toBe('check');
    if (d.verdict === 'check') {
      expect(d.check.authorizer).toMatchObject({
        transport: 'grpc',
        cluster: 'outbound|9001||authz.foo.svc.cluster.local',
      });
      expect(d.resume(d.check.authorizer.onError())).toMatchObject({
        verdict: 'deny',
        deniedBy: 'ext_authz',
        status: 403,
      });
    }
    expect(authorize(policies, WORKLOAD, tcp({ destPort: 80 }), opts).verdict).toBe('allow');
  });

  it("refuses a gRPC provider with the HTTP provider's header fields, or clearRouteCache, and denies what it would check", () => {
    const policies = [ap('c', { action: 'CUSTOM', provider: { name: 'g' }, rules: [{}] })];
    const grpc = (extra: Record<string, unknown>) => ({
      meshConfig: {
        extensionProviders: [
          { name: 'g', envoyExtAuthzGrpc: { service: 'authz.foo.svc.cluster.local', port: 9000, ...extra } },
        ],
      },
      rejectInvalid: false,
    });
    const withHeaders = authorize(policies, WORKLOAD, http(), grpc({ headersToUpstreamOnAllow: ['x-user'] }));
    expect(withHeaders.verdict).toBe('deny');
    expect(withHeaders.issues[0]!.message).toContain(
      'is invalid: headersToUpstreamOnAllow is a field of envoyExtAuthzHttp only; a gRPC authorizer sets headers in its CheckResponse',
    );
    expect(
      authorize(policies, WORKLOAD, http(), grpc({ clearRouteCache: true })).issues[0]!.message,
    ).toContain('clearRouteCache is not supported: the route is chosen before authorization and kept');
    expect(authorize(policies, WORKLOAD, http(), grpc({ clearRouteCache: false })).verdict).toBe('check');
  });

  it('denies what CUSTOM policies with different providers select, and says why', () => {
    const policies = [
      ap('a', {
        action: 'CUSTOM',
        provider: { name: 'x' },
        rules: [{ to: [{ operation: { paths: ['/a'] } }] }],
      }),
      ap('b', {
        action: 'CUSTOM',
        provider: { name: 'y' },
        rules: [{ to: [{ operation: { paths: ['/b'] } }] }],
      }),
    ];
    const opts = {
      meshConfig: {
        extensionProviders: [
          { name: 'x', envoyExtAuthzHttp: { service: 'foo/x', port: 80 } },
          { name: 'y', envoyExtAuthzHttp: { service: 'foo/y', port: 80 } },
        ],
      },
    };
    expect(() => authorize(policies, WORKLOAD, http({ path: '/a' }), opts)).toThrow(PolicyError);
    const lenient = { ...opts, rejectInvalid: false };
    expect(authorize(policies, WORKLOAD, http({ path: '/b' }), lenient)).toMatchObject({
      verdict: 'deny',
      policy: 'istio-ext-authz-ns[foo]-policy[b]-rule[0]-deny-due-to-bad-CUSTOM-action',
    });
    expect(authorize(policies, WORKLOAD, http({ path: '/c' }), lenient).verdict).toBe('allow');
    const issues = authorize(policies, WORKLOAD, http({ path: '/c' }), lenient).issues;
    expect(issues[0]!.message).toContain(
      'all CUSTOM policies of a workload must use the same extension provider, found "x", "y"',
    );
  });
});

describe('ext_authz runtime (gRPC authorizer)', () => {
  const grpcConfig = (extra: Partial<ExtAuthzJson> = {}): ExtAuthzJson => ({
    grpc_service: {
      envoy_grpc: {
        cluster_name: 'outbound|9000||authz.foo.svc.cluster.local',
        authority: 'outbound_.9000_._.authz.foo.svc.cluster.local',
      },
      timeout: '0.5s',
    },
    transport_api_version: 'V3',
    ...extra,
  });
  const input = (over: Partial<ExtAuthzCheckInput> = {}): ExtAuthzCheckInput => ({
    source: { address: '::ffff:10.0.0.1', port: 40000, principal: SLEEP, certificatePem: '-----A B-----\n' },
    destination: { address: '10.0.0.2', port: 8000, principal: 'spiffe://cluster.local/ns/foo/sa/httpbin' },
    sni: 'outbound_.8000_._.httpbin.foo.svc.cluster.local',
    http: {
      id: '9876543210',
      time: new Date('2025-03-04T05:06:07.089Z'),
      method: 'POST',
      path: '/api?q=1',
      host: 'httpbin.foo:8000',
      scheme: 'https',
      protocol: 'HTTP/1.1',
      headers: {
        host: 'httpbin.foo:8000',
        'X-Two': ['a', 'b'],
        'x-request-id': 'r-1',
        'content-length': '3',
      },
      size: 0,
    },
    metadata: {
      'envoy.filters.http.rbac': { istio_ext_authz_shadow_effective_policy_id: 'p' },
      other: { x: 1 },
    },
    ...over,
  });

  it('fills the AttributeContext as Envoy does for an HTTP request, and it is a real CheckRequest', () => {
    const a = compileExtAuthz(grpcConfig({ metadata_context_namespaces: ['envoy.filters.http.rbac'] }), 'x');
    expect(a).toMatchObject({
      transport: 'grpc',
      cluster: 'outbound|9000||authz.foo.svc.cluster.local',
      authority: 'outbound_.9000_._.authz.foo.svc.cluster.local',
      timeoutMs: 500,
    });
    const req = a.grpcCheckRequest(input({ contextExtensions: { tier: 'gold' } }));
    expect(req).toEqual({
      attributes: {
        source: {
          address: { socket_address: { address: '10.0.0.1', port_value: 40000 } },
          principal: SLEEP,
        },
        destination: {
          address: { socket_address: { address: '10.0.0.2', port_value: 8000 } },
          principal: 'spiffe://cluster.local/ns/foo/sa/httpbin',
        },
        request: {
          time: '2025-03-04T05:06:07.089Z',
          http: {
            id: '9876543210',
            method: 'POST',
            headers: {
              ':authority': 'httpbin.foo:8000',
              ':path': '/api?q=1',
              ':method': 'POST',
              ':scheme': 'https',
              'x-two': 'a,b',
              'x-request-id': 'r-1',
              'content-length': '3',
            },
            path: '/api?q=1',
            host: 'httpbin.foo:8000',
            scheme: 'https',
            size: 0,
            protocol: 'HTTP/1.1',
          },
        },
        context_extensions: { tier: 'gold' },
        metadata_context: {
          filter_metadata: { 'envoy.filters.http.rbac': { istio_ext_authz_shadow_effective_policy_id: 'p' } },
        },
      },
    });
    expect(() => encodeMessage('envoy.service.auth.v3.CheckRequest', req)).not.toThrow();
  });

  it('sends only allowed_headers, and the certificate and SNI when asked to', () => {
    const a = compileExtAuthz(
      grpcConfig({
        allowed_headers: { patterns: [{ exact: ':path' }, { prefix: 'x-t', ignore_case: true }] },
        include_peer_certificate: true,
        include_tls_session: true,
      }),
      'x',
    );
    const attrs = a.grpcCheckRequest(input()).attributes!;
    expect(attrs.request?.http?.headers).toEqual({ ':path': '/api?q=1', 'x-two': 'a,b' });
    expect(attrs.source?.certificate).toBe(encodeURIComponent('-----A B-----\n'));
    expect(attrs.tls_session).toEqual({ sni: 'outbound_.8000_._.httpbin.foo.svc.cluster.local' });
  });

  it('checks a TCP connection with its peers alone, the SNI as the destination service', () => {
    const network = compileExtAuthz({ stat_prefix: 'tcp.', grpc_service: grpcConfig().grpc_service! }, 'x');
    const { http: _none, ...tcpInput } = input();
    expect(network.grpcCheckRequest(tcpInput)).toEqual({
      attributes: {
        source: { address: { socket_address: { address: '10.0.0.1', port_value: 40000 } }, principal: SLEEP },
        destination: {
          address: { socket_address: { address: '10.0.0.2', port_value: 8000 } },
          principal: 'spiffe://cluster.local/ns/foo/sa/httpbin',
          service: 'outbound_.8000_._.httpbin.foo.svc.cluster.local',
        },
      },
    });
  });

  it('applies an OK CheckResponse: header edits by append/append_action, removals, query edits', () => {
    const a = compileExtAuthz(grpcConfig(), 'x');
    const ok = a.interpretCheckResponse({
      status: { code: 0 },
      ok_response: {
        headers: [
          { header: { key: 'X-User', value: 'alice' } },
          { header: { key: 'x-tags', value: 'b' }, append: true },
          { header: { key: 'x-seen', value: 'mesh' }, append_action: 'ADD_IF_ABSENT' },
          { header: { key: 'x-gone', value: 'no' }, append_action: 'OVERWRITE_IF_EXISTS' },
          { header: { key: 'bad header', value: 'v' } },
          { header: { key: 'x-split', value: 'a\r\nx-injected: 1' } },
        ],
        headers_to_remove: ['X-Secret', ':path', 'host'],
        query_parameters_to_set: [{ key: 'q', value: '2 3' }],
        query_parameters_to_remove: ['drop'],
        response_headers_to_add: [{ header: { key: 'x-trace', value: 't' }, append: true }],
      },
      dynamic_metadata: { user: 'alice' },
    });
    expect(ok).toMatchObject({
      allowed: true,
      responseHeaders: [{ name: 'x-trace', value: 't', action: 'add' }],
      metadata: { user: 'alice' },
    });
    const before = http({
      path: '/p?drop=1&q=1&keep=k&q=9',
      headers: { 'x-user': 'forged', 'x-tags': 'a', 'x-seen': 'client', 'x-secret': 's' },
    }).http!;
    const after = applyUpstreamEdits(before, ok as AllowedOutcome);
    expect(after.path).toBe('/p?q=2%203&keep=k');
    expect(after.headers).toEqual({ 'x-user': 'alice', 'x-tags': 'a,b', 'x-seen': 'client' });
  });

  it('applies a denial: its status (by name or number, default 403), headers and body', () => {
    const a = compileExtAuthz(grpcConfig(), 'x');
    expect(
      a.interpretCheckResponse({
        status: { code: 7 },
        denied_response: {
          status: { code: 'Unauthorized' },
          headers: [
            { header: { key: 'www-authenticate', value: 'Bearer' } },
            { header: { key: 'x-why', value: 'a' }, append: true },
            { header: { key: 'x-why', value: 'b' }, append: true },
          ],
          body: 'log in first',
        },
      }),
    ).toEqual({
      allowed: false,
      status: 401,
      body: 'log in first',
      headers: [
        ['www-authenticate', 'Bearer'],
        ['x-why', 'a'],
        ['x-why', 'b'],
      ],
    });
    expect(a.interpretCheckResponse({ status: { code: 16 } })).toEqual({
      allowed: false,
      status: 403,
      body: '',
      headers: [],
    });
    expect(
      a.interpretCheckResponse({ status: { code: 7 }, denied_response: { status: { code: 418 } } }),
    ).toMatchObject({ status: 418 });
    expect(
      a.interpretCheckResponse({ status: { code: 7 }, denied_response: { status: { code: 'Empty' } } }),
    ).toMatchObject({ status: 403 });
  });

  it('fails closed with status_on_error, or open (marked, when asked) with failure_mode_allow', () => {
    expect(
      compileExtAuthz(grpcConfig({ status_on_error: { code: 'ServiceUnavailable' } }), 'x').onError(),
    ).toEqual({ allowed: false, status: 503, body: '', headers: [], error: true });
    expect(
      compileExtAuthz(
        grpcConfig({ failure_mode_allow: true, failure_mode_allow_header_add: true }),
        'x',
      ).onError(),
    ).toEqual(
      allowed({
        failedOpen: true,
        upstream: [{ name: 'x-envoy-auth-failure-mode-allowed', value: 'true', action: 'set' }],
      }),
    );
  });

  it('refuses what it would not honour, naming the field', () => {
    expect(() => compileExtAuthz(grpcConfig({ transport_api_version: 'V2' }), 'f')).toThrow(
      'f.transport_api_version: V2 is not supported; use V3',
    );
    expect(() =>
      compileExtAuthz({ grpc_service: { google_grpc: { target_uri: 'x' } } } as never, 'g'),
    ).toThrow('g.grpc_service: needs envoy_grpc.cluster_name (google_grpc is not supported)');
  });

  it('compiles per-route settings: disabled, or context extensions', () => {
    expect(compileExtAuthzPerRoute({ check_settings: { context_extensions: { a: '1' } } }, 'r')).toEqual({
      disabled: false,
      contextExtensions: { a: '1' },
      disableRequestBodyBuffering: false,
    });
    expect(compileExtAuthzPerRoute({ disabled: true }, 'r')).toEqual({
      disabled: true,
      contextExtensions: {},
      disableRequestBodyBuffering: false,
    });
    expect(() => compileExtAuthzPerRoute({ disabled: true, check_settings: {} }, 'r')).toThrow(
      'r: disabled and check_settings are alternatives',
    );
  });

  it("leaves the authorizer's dynamic metadata in the ext_authz namespace of the decision", () => {
    const policies = [ap('c', { action: 'CUSTOM', provider: { name: 'g' }, rules: [{}] })];
    const opts = {
      meshConfig: {
        extensionProviders: [
          { name: 'g', envoyExtAuthzGrpc: { service: 'authz.foo.svc.cluster.local', port: 9000 } },
        ],
      },
    };
    const d = authorize(policies, WORKLOAD, http(), opts);
    if (d.verdict !== 'check') throw new Error(`expected a check, got ${d.verdict}`);
    const decided = d.resume(
      d.check.authorizer.interpretCheckResponse({ dynamic_metadata: { user: 'alice' } }),
    );
    expect(decided).toMatchObject({
      verdict: 'allow',
      metadata: { 'envoy.filters.http.ext_authz': { user: 'alice' } },
    });
    expect(d.check.filterName).toBe('envoy.filters.http.ext_authz');
  });
});
