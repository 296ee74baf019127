import type { AuthorizationRule, ConfigResource } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import { type AuthorizeOptions, authorize } from '../src/authz/authorize.js';
import { PolicyError } from '../src/common/errors.js';
import { allowed, buildAuthorizationFilters, type RequestAttributes } from '../src/index.js';
import { ap, expectEncodes, http, jwtAuth, NS, type Req, SLEEP, tcp, WORKLOAD } from './helpers.js';

/** authorize(), after checking that every filter built for these policies encodes as Envoy protobuf. */
function decide(policies: ConfigResource[], req: RequestAttributes, opts: AuthorizeOptions = {}) {
  expectEncodes(buildAuthorizationFilters(policies, WORKLOAD, opts));
  return authorize(policies, WORKLOAD, req, opts);
}

const ALICE = jwtAuth({
  iss: 'https://issuer.example',
  sub: 'alice',
  aud: ['web', 'mobile'],
  azp: 'frontend',
  groups: ['admin', 'dev'],
  scope: 'read write',
  nested: { level: 'gold', tags: ['a', 'b'] },
  count: 3,
});
const BOB = jwtAuth({
  iss: 'https://issuer.example',
  sub: 'bob',
  aud: 'mobile',
  azp: 'cli',
  groups: ['dev'],
  scope: 'read',
  nested: { level: 'silver' },
});

type Row = [name: string, rule: AuthorizationRule, matching: Req, other: Req];

const src = (
  source: NonNullable<NonNullable<AuthorizationRule['from']>[number]['source']>,
): AuthorizationRule => ({ from: [{ source }] });
const op = (
  operation: NonNullable<NonNullable<AuthorizationRule['to']>[number]['operation']>,
): AuthorizationRule => ({ to: [{ operation }] });
const when = (key: string, values: string[]): AuthorizationRule => ({ when: [{ key, values }] });

const ROWS: Row[] = [
  // from.source
  [
    'principals exact',
    src({ principals: ['cluster.local/ns/foo/sa/sleep'] }),
    {},
    { principal: 'spiffe://cluster.local/ns/foo/sa/other' },
  ],
  [
    'principals given without spiffe:// by the caller',
    src({ principals: ['cluster.local/ns/foo/sa/sleep'] }),
    { principal: 'cluster.local/ns/foo/sa/sleep' },
    { principal: 'cluster.local/ns/foo/sa/x' },
  ],
  [
    'principals prefix*',
    src({ principals: ['cluster.local/ns/foo/*'] }),
    {},
    { principal: 'spiffe://cluster.local/ns/bar/sa/sleep' },
  ],
  [
    'principals *suffix',
    src({ principals: ['*/sa/sleep'] }),
    { principal: 'spiffe://other.td/ns/x/sa/sleep' },
    { principal: 'spiffe://cluster.local/ns/foo/sa/sleeper' },
  ],
  ['principals * (any mTLS peer)', src({ principals: ['*'] }), {}, { principal: null }],
  [
    'namespaces exact',
    src({ namespaces: ['foo'] }),
    {},
    { principal: 'spiffe://cluster.local/ns/bar/sa/sleep' },
  ],
  [
    'namespaces prefix*',
    src({ namespaces: ['fo*'] }),
    {},
    { principal: 'spiffe://cluster.local/ns/bar/sa/sleep' },
  ],
  ['namespaces need mTLS', src({ namespaces: ['*'] }), {}, { principal: null }],
  [
    'serviceAccounts (policy namespace)',
    src({ serviceAccounts: ['sleep'] }),
    {},
    { principal: 'spiffe://cluster.local/ns/bar/sa/sleep' },
  ],
  [
    'serviceAccounts ns/sa',
    src({ serviceAccounts: ['bar/sleep'] }),
    { principal: 'spiffe://cluster.local/ns/bar/sa/sleep' },
    {},
  ],
  [
    'requestPrincipals exact',
    src({ requestPrincipals: ['https://issuer.example/alice'] }),
    { auth: ALICE },
    { auth: BOB },
  ],
  ['requestPrincipals * (any token)', src({ requestPrincipals: ['*'] }), { auth: BOB }, {}],
  [
    'requestPrincipals issuer/*',
    src({ requestPrincipals: ['https://issuer.example/*'] }),
    { auth: BOB },
    { auth: jwtAuth({ iss: 'https://other', sub: 'bob' }) },
  ],
  ['requestPrincipals */sub', src({ requestPrincipals: ['*/alice'] }), { auth: ALICE }, { auth: BOB }],
  ['ipBlocks address', src({ ipBlocks: ['10.0.0.1'] }), {}, { sourceIp: '10.0.0.9' }],
  ['ipBlocks CIDR', src({ ipBlocks: ['10.0.0.0/24'] }), { sourceIp: '10.0.0.200' }, { sourceIp: '10.0.1.1' }],
  [
    'ipBlocks IPv6 CIDR',
    src({ ipBlocks: ['2001:db8::/32'] }),
    { sourceIp: '2001:db8:1::5' },
    { sourceIp: '2001:db9::1' },
  ],
  [
    'ipBlocks with an IPv4-mapped peer address',
    src({ ipBlocks: ['10.0.0.0/8'] }),
    { sourceIp: '::ffff:10.9.9.9' },
    { sourceIp: '::ffff:11.0.0.1' },
  ],
  [
    'ipBlocks ignore X-Forwarded-For',
    src({ ipBlocks: ['10.0.0.1'] }),
    { remoteIp: '203.0.113.9' },
    { sourceIp: '10.0.0.2', remoteIp: '10.0.0.1' },
  ],
  [
    'remoteIpBlocks use the original client',
    src({ remoteIpBlocks: ['203.0.113.0/24'] }),
    { remoteIp: '203.0.113.7' },
    { remoteIp: '198.51.100.1' },
  ],
  [
    'remoteIpBlocks default to the peer',
    src({ remoteIpBlocks: ['10.0.0.1/32'] }),
    {},
    { sourceIp: '10.0.0.3' },
  ],
  // to.operation
  [
    'hosts exact, case-insensitive',
    op({ hosts: ['httpbin.foo.svc.cluster.local'] }),
    { host: 'HTTPBIN.Foo.svc.cluster.local' },
    { host: 'other.foo' },
  ],
  [
    'hosts *.suffix',
    op({ hosts: ['*.foo.svc.cluster.local'] }),
    {},
    { host: 'httpbin.bar.svc.cluster.local' },
  ],
  ['hosts prefix*', op({ hosts: ['httpbin.*'] }), { host: 'httpbin.foo' }, { host: 'web.foo' }],
  [
    'hosts with a port match the Host header verbatim',
    op({ hosts: ['httpbin.foo:8000'] }),
    { host: 'httpbin.foo:8000' },
    { host: 'httpbin.foo' },
  ],
  [
    'hosts host:* admits any port',
    op({ hosts: ['httpbin.foo:*'] }),
    { host: 'httpbin.foo:9090' },
    { host: 'httpbin.foo' },
  ],
  ['ports', op({ ports: ['8000'] }), {}, { destPort: 9000 }],
  ['methods', op({ methods: ['GET', 'HEAD'] }), { method: 'HEAD' }, { method: 'POST' }],
  ['paths exact (query ignored)', op({ paths: ['/ip'] }), { path: '/ip?x=1' }, { path: '/ip/x' }],
  ['paths prefix*', op({ paths: ['/api/*'] }), { path: '/api/v1/users' }, { path: '/apis' }],
  ['paths *suffix', op({ paths: ['*.json'] }), { path: '/data/x.json' }, { path: '/data/x.xml' }],
  ['paths *', op({ paths: ['*'] }), { path: '/' }, { path: '' }],
  [
    'paths {*} template: one segment',
    op({ paths: ['/api/{*}/items'] }),
    { path: '/api/v1/items' },
    { path: '/api/v1/x/items' },
  ],
  [
    'paths {**} template: any segments',
    op({ paths: ['/api/{**}'] }),
    { path: '/api/a/b/c' },
    { path: '/apix/a' },
  ],
  // when
  [
    'request.headers[]',
    when('request.headers[X-Env]', ['prod']),
    { headers: { 'x-env': 'prod' } },
    { headers: { 'x-env': 'dev' } },
  ],
  [
    'request.headers[] prefix and repeated values joined by ","',
    when('request.headers[x-tag]', ['a,*']),
    { headers: { 'X-Tag': ['a', 'b'] } },
    { headers: { 'x-tag': 'b' } },
  ],
  [
    'request.headers[] * is presence',
    when('request.headers[x-token]', ['*']),
    { headers: { 'x-token': 'anything' } },
    {},
  ],
  ['source.ip', when('source.ip', ['10.0.0.0/30']), {}, { sourceIp: '10.0.0.8' }],
  ['remote.ip', when('remote.ip', ['192.0.2.1']), { remoteIp: '192.0.2.1' }, { remoteIp: '192.0.2.2' }],
  [
    'source.namespace',
    when('source.namespace', ['foo']),
    {},
    { principal: 'spiffe://cluster.local/ns/bar/sa/sleep' },
  ],
  [
    'source.principal',
    when('source.principal', ['cluster.local/ns/foo/sa/sleep']),
    {},
    { principal: 'spiffe://cluster.local/ns/foo/sa/x' },
  ],
  [
    'source.serviceAccount',
    when('source.serviceAccount', ['foo/sleep']),
    {},
    { principal: 'spiffe://cluster.local/ns/foo/sa/x' },
  ],
  [
    'request.auth.principal',
    when('request.auth.principal', ['https://issuer.example/alice']),
    { auth: ALICE },
    { auth: BOB },
  ],
  [
    'request.auth.audiences (the first audience)',
    when('request.auth.audiences', ['web']),
    { auth: ALICE },
    { auth: BOB },
  ],
  ['request.auth.presenter', when('request.auth.presenter', ['frontend']), { auth: ALICE }, { auth: BOB }],
  [
    'request.auth.claims[] on a list claim',
    when('request.auth.claims[groups]', ['admin']),
    { auth: ALICE },
    { auth: BOB },
  ],
  [
    'request.auth.claims[] on a space-separated claim',
    when('request.auth.claims[scope]', ['write']),
    { auth: ALICE },
    { auth: BOB },
  ],
  [
    'request.auth.claims[][] nested',
    when('request.auth.claims[nested][level]', ['gold']),
    { auth: ALICE },
    { auth: BOB },
  ],
  [
    'request.auth.claims[][] nested list',
    when('request.auth.claims[nested][tags]', ['b']),
    { auth: ALICE },
    { auth: BOB },
  ],
  ['request.auth.claims[] prefix', when('request.auth.claims[groups]', ['adm*']), { auth: ALICE }, {}],
  ['destination.ip', when('destination.ip', ['10.0.0.2']), {}, { destIp: '10.0.0.3' }],
  ['destination.port', when('destination.port', ['8000']), {}, { destPort: 8080 }],
  [
    'connection.sni',
    when('connection.sni', ['*.example.com']),
    { sni: 'api.example.com' },
    { sni: 'api.example.org' },
  ],
  [
    'experimental.envoy.filters.*',
    when('experimental.envoy.filters.http.lua[tier]', ['gold']),
    { metadata: { 'envoy.filters.http.lua': { tier: 'gold' } } },
    { metadata: { 'envoy.filters.http.lua': { tier: 'bronze' } } },
  ],
  [
    'experimental.envoy.filters.* [list] value',
    when('experimental.envoy.filters.http.lua[tiers]', ['[gold]']),
    { metadata: { 'envoy.filters.http.lua': { tiers: ['silver', 'gold'] } } },
    { metadata: { 'envoy.filters.http.lua': { tiers: ['silver'] } } },
  ],
];

const NOT: Record<string, string> = {
  principals: 'notPrincipals',
  requestPrincipals: 'notRequestPrincipals',
  namespaces: 'notNamespaces',
  serviceAccounts: 'notServiceAccounts',
  ipBlocks: 'notIpBlocks',
  remoteIpBlocks: 'notRemoteIpBlocks',
  hosts: 'notHosts',
  ports: 'notPorts',
  methods: 'notMethods',
  paths: 'notPaths',
};

/** The same rule with every field in its not-form (and `when` values as notValues). */
function negate(rule: AuthorizationRule): AuthorizationRule {
  const flip = (o: Record<string, string[] | undefined>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [NOT[k]!, v]));
  return {
    ...(rule.from
      ? { from: rule.from.map((f) => ({ source: flip(f.source as Record<string, string[]>) })) }
      : {}),
    ...(rule.to
      ? { to: rule.to.map((t) => ({ operation: flip(t.operation as Record<string, string[]>) })) }
      : {}),
    ...(rule.when ? { when: rule.when.map((c) => ({ key: c.key, notValues: c.values })) } : {}),
  };
}

describe('authorize: every field, condition and wildcard form (ALLOW)', () => {
  it.each(ROWS)('%s', (_name, rule, matching, other) => {
    const policies = [ap('p', { rules: [rule] })];
    const yes = decide(policies, http(matching));
    expect(yes.verdict).toBe('allow');
    if (yes.verdict === 'allow') expect(yes.policy).toBe('ns[foo]-policy[p]-rule[0]');
    expect(decide(policies, http(other)).verdict).toBe('deny');
  });
});

describe('authorize: every not-form and notValues', () => {
  it.each(ROWS)('not %s', (_name, rule, matching, other) => {
    const policies = [ap('p', { rules: [negate(rule)] })];
    expect(decide(policies, http(matching)).verdict).toBe('deny');
    expect(decide(policies, http(other)).verdict).toBe('allow');
  });
});

describe('authorize: the same fields as DENY', () => {
  it.each(ROWS)('deny %s', (_name, rule, matching, other) => {
    const policies = [ap('d', { action: 'DENY', rules: [rule] })];
    const no = decide(policies, http(matching));
    expect(no).toMatchObject({
      verdict: 'deny',
      deniedBy: 'rbac',
      action: 'DENY',
      policy: 'ns[foo]-policy[d]-rule[0]',
      status: 403,
      body: 'RBAC: access denied',
    });
    expect(decide(policies, http(other)).verdict).toBe('allow');
  });
});

describe('authorize: semantics', () => {
  it('allows everything when no policy applies', () => {
    expect(decide([], http()).verdict).toBe('allow');
    expect(decide([ap('other', { selector: { matchLabels: { app: 'x' } } })], http()).verdict).toBe('allow');
  });

  it('ANDs fields within a rule, ORs rules and ORs ALLOW policies', () => {
    const p = [
      ap('a', {
        rules: [
          { from: [{ source: { namespaces: ['foo'] } }], to: [{ operation: { methods: ['GET'] } }] },
          { to: [{ operation: { paths: ['/public/*'] } }] },
        ],
      }),
      ap('b', { rules: [{ when: [{ key: 'request.headers[x-admin]', values: ['yes'] }] }] }),
    ];
    expect(decide(p, http({ method: 'GET' }))).toMatchObject({
      verdict: 'allow',
      policy: 'ns[foo]-policy[a]-rule[0]',
    });
    expect(decide(p, http({ method: 'POST' })).verdict).toBe('deny');
    expect(decide(p, http({ method: 'POST', path: '/public/x' }))).toMatchObject({
      verdict: 'allow',
      policy: 'ns[foo]-policy[a]-rule[1]',
    });
    expect(decide(p, http({ method: 'POST', headers: { 'x-admin': 'yes' } }))).toMatchObject({
      verdict: 'allow',
      policy: 'ns[foo]-policy[b]-rule[0]',
    });
  });

  it('DENY beats ALLOW', () => {
    const p = [
      ap('allow-all', { rules: [{}] }),
      ap('no-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }),
    ];
    expect(decide(p, http({ path: '/admin/users' }))).toMatchObject({
      verdict: 'deny',
      policy: 'ns[foo]-policy[no-admin]-rule[0]',
    });
    expect(decide(p, http({ path: '/ip' }))).toMatchObject({
      verdict: 'allow',
      policy: 'ns[foo]-policy[allow-all]-rule[0]',
    });
  });

  it('ALLOW without rules denies everything; with an empty rule allows everything', () => {
    expect(decide([ap('nothing', {})], http()).verdict).toBe('deny');
    expect(decide([ap('nothing', { rules: [] })], tcp()).verdict).toBe('deny');
    expect(decide([ap('everything', { rules: [{}] })], http({ principal: null })).verdict).toBe('allow');
    expect(decide([ap('nothing', {}), ap('everything', { rules: [{}] })], http()).verdict).toBe('allow');
  });

  it('DENY without rules never matches; DENY with an empty rule denies everything', () => {
    expect(decide([ap('d', { action: 'DENY' })], http()).verdict).toBe('allow');
    expect(decide([ap('d', { action: 'DENY', rules: [{}] })], tcp()).verdict).toBe('deny');
  });

  it('AUDIT never changes the verdict but flags matching requests for the access log', () => {
    const p = [
      ap('audit-admin', { action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }),
    ];
    const hit = decide(p, http({ path: '/admin' }));
    expect(hit).toMatchObject({
      verdict: 'allow',
      audited: ['ns[foo]-policy[audit-admin]-rule[0]'],
      metadata: { 'envoy.common': { access_log_hint: true } },
    });
    expect(decide(p, http({ path: '/x' }))).toMatchObject({ verdict: 'allow', audited: [] });
    // Audited even when a DENY policy then denies (AUDIT runs first).
    const denied = decide([...p, ap('d', { action: 'DENY', rules: [{}] })], http({ path: '/admin' }));
    expect(denied).toMatchObject({ verdict: 'deny', audited: ['ns[foo]-policy[audit-admin]-rule[0]'] });
  });

  it('evaluates dry-run policies in shadow only', () => {
    const dry = { annotations: { 'istio.io/dry-run': 'true' } };
    const denyDry = [
      ap('would-deny', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }, dry),
    ];
    const hit = decide(denyDry, http({ method: 'DELETE' }));
    expect(hit.verdict).toBe('allow');
    expect(hit.shadow).toEqual([
      {
        kind: 'dry-run',
        action: 'DENY',
        allowed: false,
        policy: 'ns[foo]-policy[would-deny]-rule[0]',
        statPrefix: 'istio_dry_run_deny_',
      },
    ]);
    expect(hit.metadata['envoy.filters.http.rbac']).toEqual({
      istio_dry_run_deny_shadow_engine_result: 'denied',
      istio_dry_run_deny_shadow_effective_policy_id: 'ns[foo]-policy[would-deny]-rule[0]',
    });
    expect(decide(denyDry, http({ method: 'GET' })).shadow[0]).toMatchObject({ allowed: true });

    // A dry-run ALLOW next to an enforced one: the enforced one decides, the shadow reports.
    const mixed = [
      ap('enforced', { rules: [{}] }),
      ap('would-allow-get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }, dry),
    ];
    const post = decide(mixed, http({ method: 'POST' }));
    expect(post).toMatchObject({ verdict: 'allow', policy: 'ns[foo]-policy[enforced]-rule[0]' });
    expect(post.shadow).toEqual([
      { kind: 'dry-run', action: 'ALLOW', allowed: false, statPrefix: 'istio_dry_run_allow_' },
    ]);
    // "false" and other values enforce; a value that is not a boolean is rejected.
    expect(
      decide(
        [ap('d', { action: 'DENY', rules: [{}] }, { annotations: { 'istio.io/dry-run': 'false' } })],
        http(),
      ).verdict,
    ).toBe('deny');
    expect(() =>
      authorize(
        [ap('d', { action: 'DENY', rules: [{}] }, { annotations: { 'istio.io/dry-run': 'maybe' } })],
        WORKLOAD,
        http(),
      ),
    ).toThrow(/istio\.io\/dry-run.*failed to parse "maybe" as a boolean/);
  });

  it('checks CUSTOM first: the external authorizer decides before DENY and ALLOW', () => {
    const mesh: AuthorizeOptions = {
      meshConfig: {
        extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: 'foo/authz', port: 9000 } }],
      },
    };
    const p = [
      ap('ext', {
        action: 'CUSTOM',
        provider: { name: 'ext' },
        rules: [{ to: [{ operation: { paths: ['/secure/*'] } }] }],
      }),
      ap('deny-post', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }),
      ap('allow', { rules: [{}] }),
    ];
    const calls: string[] = [];
    const deny = decide(p, http({ method: 'POST', path: '/secure/x' }), {
      ...mesh,
      extAuthz: (c) => {
        calls.push(c.policy);
        return { allowed: false, status: 401, body: 'nope', headers: [['www-authenticate', 'Basic']] };
      },
    });
    expect(calls).toEqual(['istio-ext-authz-ns[foo]-policy[ext]-rule[0]']);
    expect(deny).toMatchObject({
      verdict: 'deny',
      deniedBy: 'ext_authz',
      status: 401,
      body: 'nope',
      headers: [['www-authenticate', 'Basic']],
    });

    // Allowed by the authorizer, then DENY still applies.
    const then = decide(p, http({ method: 'POST', path: '/secure/x' }), {
      ...mesh,
      extAuthz: (c) => c.authorizer.interpretResponse({ status: 200, headers: {} }),
    });
    expect(then).toMatchObject({
      verdict: 'deny',
      deniedBy: 'rbac',
      policy: 'ns[foo]-policy[deny-post]-rule[0]',
    });

    // Not selected by the CUSTOM rules: the authorizer is not asked.
    calls.length = 0;
    const other = decide(p, http({ method: 'GET', path: '/open' }), {
      ...mesh,
      extAuthz: (c) => {
        calls.push(c.policy);
        return { allowed: false, status: 403, body: '', headers: [] };
      },
    });
    expect(calls).toEqual([]);
    expect(other.verdict).toBe('allow');

    // Without a callback the caller gets the check to make, and resumes with the outcome.
    const pending = decide(p, http({ method: 'GET', path: '/secure/x' }), mesh);
    expect(pending.verdict).toBe('check');
    if (pending.verdict !== 'check') return;
    expect(pending.check.authorizer.checkRequest(http({ path: '/secure/x' }).http!).path).toBe('/secure/x');
    expect(pending.resume(pending.check.authorizer.onError())).toMatchObject({
      verdict: 'deny',
      deniedBy: 'ext_authz',
      status: 403,
      extAuthzError: true,
    });
    const ok = { name: 'x-ok', value: '1', action: 'set' } as const;
    expect(pending.resume(allowed({ responseHeaders: [ok] }))).toMatchObject({
      verdict: 'allow',
      responseHeaders: [ok],
    });
  });

  it('applies root-namespace policies mesh-wide', () => {
    const meshDeny = ap(
      'mesh-deny',
      { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['foo', 'istio-system'] } }] }] },
      { namespace: 'istio-system' },
    );
    expect(decide([meshDeny], http({ principal: 'spiffe://cluster.local/ns/bar/sa/x' })).verdict).toBe(
      'deny',
    );
    expect(decide([meshDeny], http()).verdict).toBe('allow');
    const custom = ap('mesh-allow-none', {}, { namespace: 'control' });
    expect(decide([custom], http()).verdict).toBe('allow');
    expect(decide([custom], http(), { rootNamespace: 'control' }).verdict).toBe('deny');
  });

  it('scopes by selector and by Gateway targetRefs', () => {
    const p = [ap('only-v2', { selector: { matchLabels: { version: 'v2' } }, action: 'DENY', rules: [{}] })];
    expect(decide(p, http()).verdict).toBe('allow');
    expect(authorize(p, { namespace: NS, labels: { version: 'v2' } }, http()).verdict).toBe('deny');
    const gw = [
      ap('gw', {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'ingress' }],
        action: 'DENY',
        rules: [{}],
      }),
    ];
    expect(
      authorize(
        gw,
        { namespace: NS, labels: { 'gateway.networking.k8s.io/gateway-name': 'ingress' } },
        http(),
      ).verdict,
    ).toBe('deny');
    expect(authorize(gw, WORKLOAD, http()).verdict).toBe('allow');
  });

  it('authorizes TCP connections with the network filters', () => {
    const p = [
      ap('tcp', {
        rules: [
          {
            from: [{ source: { principals: [SLEEP.replace('spiffe://', '')] } }],
            to: [{ operation: { ports: ['3306'] } }],
          },
        ],
      }),
    ];
    expect(decide(p, tcp({ destPort: 3306 })).verdict).toBe('allow');
    expect(decide(p, tcp({ destPort: 3307 })).verdict).toBe('deny');
    expect(decide(p, tcp({ destPort: 3306, principal: null })).verdict).toBe('deny');
  });

  it('makes HTTP-only fields in a TCP context match nothing for ALLOW (and says so)', () => {
    const p = [ap('get-only', { rules: [{ to: [{ operation: { methods: ['GET'], ports: ['3306'] } }] }] })];
    const r = decide(p, tcp({ destPort: 3306 }));
    expect(r.verdict).toBe('deny');
    expect(r.issues).toContainEqual({
      severity: 'warning',
      resource: 'AuthorizationPolicy foo/get-only',
      field: 'spec.rules[0].to[0].operation.methods[0]',
      message:
        '":method" is HTTP only: on a TCP filter chain this ALLOW rule is skipped (it matches nothing)',
    });
    // DENY with an HTTP-only field denies the whole port on TCP (Istio widens DENY).
    const d = decide(
      [
        ap('no-delete', {
          action: 'DENY',
          rules: [{ to: [{ operation: { methods: ['DELETE'], ports: ['3306'] } }] }],
        }),
      ],
      tcp({ destPort: 3306 }),
    );
    expect(d.verdict).toBe('deny');
  });

  it('rejects invalid policies with a clear message', () => {
    const reject = (policies: ConfigResource[]) => {
      try {
        authorize(policies, WORKLOAD, http());
      } catch (err) {
        expect(err).toBeInstanceOf(PolicyError);
        return (err as Error).message;
      }
      throw new Error('expected a PolicyError');
    };
    expect(reject([ap('cidr', { rules: [{ from: [{ source: { ipBlocks: ['300.1.1.1'] } }] }] })])).toBe(
      'invalid AuthorizationPolicy: AuthorizationPolicy foo/cidr: spec.rules[0].from[0].source.ipBlocks[0]: "300.1.1.1" is not a valid IP address or CIDR block; the ALLOW rule is skipped',
    );
    expect(reject([ap('key', { rules: [{ when: [{ key: 'source.colour', values: ['x'] }] }] })])).toMatch(
      /^invalid AuthorizationPolicy: AuthorizationPolicy foo\/key: spec\.rules\[0\]\.when\[0\]\.key: unknown condition key "source\.colour"; supported keys are request\.headers\[<name>\], source\.ip, .*; the rule is skipped$/,
    );
    expect(
      reject([
        ap('both', {
          selector: { matchLabels: { app: 'httpbin' } },
          targetRef: { kind: 'Service', name: 'httpbin' },
        }),
      ]),
    ).toBe(
      'invalid AuthorizationPolicy: AuthorizationPolicy foo/both: spec: only one of selector, targetRef or targetRefs may be set, found selector and targetRef; the policy is ignored',
    );
    expect(reject([ap('port', { rules: [{ to: [{ operation: { ports: ['http'] } }] }] })])).toContain(
      'invalid port "http": must be a number between 0 and 65535',
    );
    expect(reject([ap('hdr', { rules: [{ when: [{ key: 'request.headers', values: ['x'] }] }] })])).toContain(
      'expecting format [<NAME>], but found ',
    );
    // With rejectInvalid false the verdict is what Istio would enforce (the bad ALLOW rule grants nothing).
    const lenient = authorize(
      [ap('cidr', { rules: [{ from: [{ source: { ipBlocks: ['bad'] } }] }] })],
      WORKLOAD,
      http(),
      { rejectInvalid: false },
    );
    expect(lenient.verdict).toBe('deny');
    expect(lenient.issues[0]!.severity).toBe('error');
  });
});
