import { describe, expect, it } from 'vitest';
import {
  applyUpstreamHeaders,
  authorize,
  buildAuthorizationFilters,
  compileExtAuthz,
  EXT_AUTHZ_HTTP_TYPE,
  type ExtAuthzJson,
  type MeshConfig,
  PolicyError,
} from '../src/index.js';
import { ap, http, tcp, WORKLOAD } from './helpers.js';

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
    expect(ok).toEqual({
      allowed: true,
      setUpstream: [['x-user', 'alice']],
      appendUpstream: [],
      responseHeaders: [['set-cookie', 's=1']],
    });
    const edited = applyUpstreamHeaders(
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
    expect(a.interpretResponse({ status: 502, headers: {} })).toEqual({
      allowed: false,
      status: 503,
      body: '',
      headers: [],
    });
    expect(a.onError()).toEqual({ allowed: false, status: 503, body: '', headers: [] });
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
