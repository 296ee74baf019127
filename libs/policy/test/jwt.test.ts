import type { JWTRule } from '@mizzen/api';
import { encodeMessage } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JwksEvent } from '../src/authn/jwks.js';
import { selectRequestAuthentications } from '../src/authn/jwt-translate.js';
import type { JwtAuthnOptions, JwtAuthnOutcome, JwtAuthnRequest } from '../src/authn/jwt-verifier.js';
import { authorize } from '../src/authz/authorize.js';
import { JWT_AUTHN_TYPE, type JwtAuthenticationJson } from '../src/envoy/types.js';
import { buildJwtAuthnFilter, JwtAuthenticator } from '../src/index.js';
import { ap, http, NS, ra, WORKLOAD } from './helpers.js';
import { type JwksServer, type SigningKey, signingKey, startJwksServer } from './jwks-server.js';

const ISS = 'https://issuer.example.com';
const NOW = 1_700_000_000; // seconds
const clock = { ms: NOW * 1000 };
const now = () => clock.ms;

let k1: SigningKey;
let k2: SigningKey;
let stranger: SigningKey;
let ec: SigningKey;
let server: JwksServer;

beforeAll(async () => {
  [k1, k2, stranger, ec] = await Promise.all([
    signingKey('k1'),
    signingKey('k2'),
    signingKey('k1'),
    signingKey('ec1', 'ES256'),
  ]);
  server = await startJwksServer([k1.publicJwk, ec.publicJwk]);
});
afterAll(() => server.close());

function claims(extra: Record<string, unknown> = {}) {
  return { iss: ISS, sub: 'alice', aud: 'bookinfo', iat: NOW - 10, exp: NOW + 3600, ...extra };
}

/** RequestAuthentication → jwt_authn config (checked to encode) → a compiled authenticator. */
function authenticator(rules: JWTRule[], opts: JwtAuthnOptions = {}): JwtAuthenticator {
  const built = buildJwtAuthnFilter([ra('jwt', { jwtRules: rules })], WORKLOAD);
  expect(built.issues).toEqual([]);
  const filter = built.filter!;
  expect(() =>
    encodeMessage('envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter', filter),
  ).not.toThrow();
  return JwtAuthenticator.compile(filter, { now, minRefreshIntervalMs: 0, ...opts });
}

function req(headers: Record<string, string> = {}, path = '/productpage'): JwtAuthnRequest {
  return { method: 'GET', path, host: 'bookinfo.example.com', headers };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function expectDenied(out: JwtAuthnOutcome, status: number, body: string) {
  expect(out).toMatchObject({ ok: false, status, body });
}

describe('RequestAuthentication → jwt_authn config', () => {
  it('builds Istio’s providers and requirements, and it encodes', () => {
    const built = buildJwtAuthnFilter(
      [
        ra('b', {
          selector: { matchLabels: { app: 'httpbin' } },
          jwtRules: [
            {
              issuer: 'https://z.example',
              audiences: ['a1'],
              jwks: '{"keys":[]}',
              fromHeaders: [{ name: 'x-jwt', prefix: 'Token ' }],
              fromParams: ['tok'],
              fromCookies: ['session'],
              forwardOriginalToken: true,
              outputPayloadToHeader: 'x-jwt-payload',
              outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }],
              spaceDelimitedClaims: ['roles'],
              timeout: '2s',
            },
          ],
        }),
        ra('a', {
          jwtRules: [{ issuer: 'https://a.example', jwksUri: 'https://keys.example.com/jwks.json' }],
        }),
      ],
      WORKLOAD,
    );
    expect(built.issues).toEqual([]);
    const f = built.filter!;
    expect(f.name).toBe('envoy.filters.http.jwt_authn');
    const { '@type': type, ...config } = f.typed_config;
    expect(type).toBe(JWT_AUTHN_TYPE);
    expect(encodeMessage(type, config).length).toBeGreaterThan(0);
    const c = config as JwtAuthenticationJson;
    // Sorted by issuer: a.example is origins-0.
    expect(c.providers).toEqual({
      'origins-0': {
        issuer: 'https://a.example',
        payload_in_metadata: 'https://a.example',
        normalize_payload_in_metadata: { space_delimited_claims: ['permission', 'scope'] },
        remote_jwks: {
          http_uri: {
            uri: 'https://keys.example.com/jwks.json',
            cluster: 'outbound|443||keys.example.com',
            timeout: '5s',
          },
          cache_duration: '300s',
        },
      },
      'origins-1': {
        issuer: 'https://z.example',
        audiences: ['a1'],
        forward: true,
        from_headers: [{ name: 'x-jwt', value_prefix: 'Token ' }],
        from_params: ['tok'],
        from_cookies: ['session'],
        forward_payload_header: 'x-jwt-payload',
        payload_in_metadata: 'https://z.example',
        normalize_payload_in_metadata: { space_delimited_claims: ['permission', 'roles', 'scope'] },
        claim_to_headers: [{ header_name: 'x-sub', claim_name: 'sub' }],
        local_jwks: { inline_string: '{"keys":[]}' },
      },
    });
    expect(c.rules).toEqual([
      {
        match: { prefix: '/' },
        requires: {
          requires_any: {
            requirements: [
              { provider_name: 'origins-0' },
              { provider_name: 'origins-1' },
              {
                requires_all: {
                  requirements: [
                    {
                      requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] },
                    },
                    {
                      requires_any: { requirements: [{ provider_name: 'origins-1' }, { allow_missing: {} }] },
                    },
                  ],
                },
              },
            ],
          },
        },
      },
    ]);
    expect(c.bypass_cors_preflight).toBe(true);

    const single = buildJwtAuthnFilter(
      [ra('one', { jwtRules: [{ issuer: ISS, jwks: '{"keys":[]}' }] })],
      WORKLOAD,
    );
    expect((single.filter!.typed_config as unknown as JwtAuthenticationJson).rules![0]!.requires).toEqual({
      requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] },
    });
  });

  it('selects by selector, targetRefs and root namespace, and reports bad rules', () => {
    const policies = [
      ra('ns', { jwtRules: [{ issuer: 'a', jwks: '{"keys":[]}' }] }),
      ra('mesh', { jwtRules: [{ issuer: 'b', jwks: '{"keys":[]}' }] }, { namespace: 'istio-system' }),
      ra('other', { selector: { matchLabels: { app: 'other' } }, jwtRules: [{ issuer: 'c' }] }),
      ra('gw', {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
        jwtRules: [{ issuer: 'd' }],
      }),
      ra('both', {
        selector: { matchLabels: { app: 'httpbin' } },
        targetRef: { kind: 'Service', name: 'x' },
      }),
    ];
    const s = selectRequestAuthentications(policies, WORKLOAD);
    expect(s.policies.map((p) => p.metadata.name).sort()).toEqual(['mesh', 'ns']);
    expect(s.issues[0]!.message).toMatch(/only one of selector, targetRef or targetRefs/);
    const gw = selectRequestAuthentications(policies, {
      namespace: NS,
      labels: { 'gateway.networking.k8s.io/gateway-name': 'gw' },
    });
    expect(gw.policies.map((p) => p.metadata.name).sort()).toEqual(['gw', 'mesh', 'ns']);

    const bad = buildJwtAuthnFilter(
      [ra('bad', { jwtRules: [{ jwks: '{"keys":[]}' }, { issuer: 'x' }] })],
      WORKLOAD,
    );
    expect(bad.issues.map((i) => `${i.field}: ${i.message}`)).toEqual([
      'spec.jwtRules[0].issuer: issuer is required; the rule is skipped',
      'spec.jwtRules[1]: set jwksUri or jwks (OpenID discovery from the issuer is not supported); tokens of this issuer are rejected',
    ]);
    expect(buildJwtAuthnFilter([], WORKLOAD).filter).toBeUndefined();
  });
});

describe('jwt_authn verifier with a real JWKS endpoint', () => {
  const rule = (extra: Partial<JWTRule> = {}): JWTRule => ({
    issuer: ISS,
    audiences: ['bookinfo'],
    jwksUri: server.url,
    ...extra,
  });

  it('accepts a valid token: principal iss/sub, audiences, presenter, claims; strips the token', async () => {
    const a = authenticator([rule()]);
    const token = await k1.sign(claims({ azp: 'frontend', aud: ['bookinfo', 'other'], groups: ['admin'] }));
    const out = await a.authenticate(req({ ...bearer(token), 'x-other': '1' }));
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    expect(out.auth).toEqual({
      principal: `${ISS}/alice`,
      audiences: ['bookinfo', 'other'],
      presenter: 'frontend',
      claims: expect.objectContaining({ sub: 'alice', groups: ['admin'] }),
    });
    expect(out.headers.authorization).toBeUndefined();
    expect(out.headers['x-other']).toBe('1');
    expect(out.payloads[ISS]).toMatchObject({ sub: 'alice' });
  });

  it('verifies EC keys too', async () => {
    const a = authenticator([rule()]);
    const out = await a.authenticate(req(bearer(await ec.sign(claims()))));
    expect(out.ok).toBe(true);
  });

  it('passes a request without a token, with no principal', async () => {
    const out = await authenticator([rule()]).authenticate(req());
    expect(out).toMatchObject({ ok: true });
    expect(out.ok && out.auth).toBeUndefined();
  });

  it('rejects expired, not-yet-valid, wrong-issuer, wrong-audience, bad-signature and malformed tokens', async () => {
    const a = authenticator([rule()]);
    const check = async (token: string) => a.authenticate(req(bearer(token)));
    expectDenied(await check(await k1.sign(claims({ exp: NOW - 61 }))), 401, 'Jwt is expired');
    // Within Envoy's 60 s clock skew it is still valid.
    expect((await check(await k1.sign(claims({ exp: NOW - 30 })))).ok).toBe(true);
    expectDenied(await check(await k1.sign(claims({ nbf: NOW + 120 }))), 401, 'Jwt not yet valid');
    expectDenied(
      await check(await k1.sign(claims({ iss: 'https://evil.example.com' }))),
      401,
      'Jwt issuer is not configured',
    );
    expectDenied(
      await check(await k1.sign(claims({ aud: 'someone-else' }))),
      403,
      'Audiences in Jwt are not allowed',
    );
    expectDenied(await check(await stranger.sign(claims())), 401, 'Jwt verification fails');
    expectDenied(
      await check('not-a-jwt'),
      401,
      'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
    );
    const denied = await check(await k1.sign(claims({ exp: NOW - 3600 })));
    expect(denied.ok === false && denied.headers['www-authenticate']).toBe(
      'Bearer realm="http://bookinfo.example.com/productpage", error="invalid_token"',
    );
  });

  it('accepts audiences with or without scheme and trailing slash, as Envoy', async () => {
    const a = authenticator([rule({ audiences: ['https://api.example.com/'] })]);
    expect((await a.authenticate(req(bearer(await k1.sign(claims({ aud: 'api.example.com' })))))).ok).toBe(
      true,
    );
    expect(
      (await a.authenticate(req(bearer(await k1.sign(claims({ aud: 'http://api.example.com' })))))).ok,
    ).toBe(true);
  });

  it('refreshes the JWKS when a token names an unknown kid (key rotation)', async () => {
    const events: JwksEvent[] = [];
    const a = authenticator([rule()], { onJwksEvent: (e) => events.push(e) });
    expect((await a.authenticate(req(bearer(await k1.sign(claims()))))).ok).toBe(true);
    const before = server.fetches;
    server.setKeys([k1.publicJwk, k2.publicJwk]);
    try {
      const out = await a.authenticate(req(bearer(await k2.sign(claims({ sub: 'bob' })))));
      expect(out.ok && out.auth?.principal).toBe(`${ISS}/bob`);
      expect(server.fetches).toBe(before + 1);
      expect(events.map((e) => `${e.reason}:${e.outcome}`)).toEqual([
        'initial:fetched',
        'unknown-kid:fetched',
      ]);
    } finally {
      server.setKeys([k1.publicJwk, ec.publicJwk]);
    }
  });

  it('rate-limits refreshes for unknown kids', async () => {
    const a = authenticator([rule()], { minRefreshIntervalMs: 60_000 });
    await a.prefetch();
    const before = server.fetches;
    const forged = await stranger.sign(claims(), { kid: 'nope' });
    expectDenied(
      await a.authenticate(req(bearer(forged))),
      401,
      "Jwks doesn't have key to match kid or alg from Jwt",
    );
    expectDenied(
      await a.authenticate(req(bearer(forged))),
      401,
      "Jwks doesn't have key to match kid or alg from Jwt",
    );
    expect(server.fetches).toBe(before);
  });

  it('refreshes stale keys, and keeps the last good keys when the JWKS server fails', async () => {
    const events: JwksEvent[] = [];
    const a = authenticator([rule()], { onJwksEvent: (e) => events.push(e) });
    await a.prefetch();
    const token = await k1.sign(claims({ exp: NOW + 7200 }));
    server.setStatus(500);
    try {
      clock.ms += 301_000; // past the 300 s cache duration Istio sets
      const out = await a.authenticate(req(bearer(token)));
      expect(out.ok).toBe(true);
      expect(events.at(-1)).toMatchObject({ reason: 'expired', outcome: 'failed', keptPreviousKeys: true });
      expect(events.at(-1)!.error).toMatch(/HTTP 500/);
      expect(a.jwksStatus()[0]).toMatchObject({
        keys: 2,
        lastError: { message: expect.stringMatching(/HTTP 500/) },
      });
    } finally {
      server.setStatus(200);
      clock.ms = NOW * 1000;
    }
  });

  it('keeps the last keys when the JWKS server is gone, and fails closed when it never answered', async () => {
    const own = await startJwksServer([k1.publicJwk]);
    const events: JwksEvent[] = [];
    const a = authenticator([rule({ jwksUri: own.url })], { onJwksEvent: (e) => events.push(e) });
    await a.prefetch();
    await own.close();
    clock.ms += 400_000;
    try {
      const token = await k1.sign(claims({ exp: NOW + 7200 }));
      expect((await a.authenticate(req(bearer(token)))).ok).toBe(true);
      expect(events.at(-1)).toMatchObject({ outcome: 'failed', keptPreviousKeys: true });
      const fresh = authenticator([rule({ jwksUri: own.url })]);
      expectDenied(await fresh.authenticate(req(bearer(token))), 401, 'Jwks remote fetch is failed');
    } finally {
      clock.ms = NOW * 1000;
    }
  });

  it('bounds the JWKS fetch with the rule timeout', async () => {
    const slow = await startJwksServer([k1.publicJwk]);
    slow.hang(true);
    try {
      const a = authenticator([rule({ jwksUri: slow.url, timeout: '200ms' })]);
      const started = Date.now();
      expectDenied(
        await a.authenticate(req(bearer(await k1.sign(claims())))),
        401,
        'Jwks remote fetch is failed',
      );
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await slow.close();
    }
  });

  it('reads tokens from fromHeaders with a prefix, fromParams and fromCookies', async () => {
    const token = await k1.sign(claims());
    const h = authenticator([rule({ fromHeaders: [{ name: 'x-jwt-assertion', prefix: 'Token ' }] })]);
    const viaHeader = await h.authenticate(req({ 'X-JWT-Assertion': `token ${token}` }));
    expect(viaHeader.ok && viaHeader.auth?.principal).toBe(`${ISS}/alice`);
    expect(viaHeader.ok && viaHeader.headers['x-jwt-assertion']).toBeUndefined();
    // The default Authorization location is not read when locations are configured.
    const ignored = await h.authenticate(req(bearer('garbage')));
    expect(ignored.ok && ignored.auth).toBeUndefined();

    const p = authenticator([rule({ fromParams: ['id_token'] })]);
    const viaParam = await p.authenticate(req({}, `/productpage?a=1&id_token=${token}&b=2`));
    expect(viaParam.ok && viaParam.auth?.principal).toBe(`${ISS}/alice`);
    expect(viaParam.ok && viaParam.path).toBe('/productpage?a=1&b=2');

    const c = authenticator([rule({ fromCookies: ['session'] })]);
    const viaCookie = await c.authenticate(req({ cookie: `theme=dark; session=${token}` }));
    expect(viaCookie.ok && viaCookie.auth?.principal).toBe(`${ISS}/alice`);
    expectDenied(
      await c.authenticate(req({ cookie: 'session=abc.def.ghi' })),
      401,
      'Jwt header is an invalid JSON',
    );

    // access_token is a default location too.
    const d = authenticator([rule()]);
    const viaDefaultParam = await d.authenticate(req({}, `/p?access_token=${token}`));
    expect(viaDefaultParam.ok && viaDefaultParam.path).toBe('/p');
  });

  it('forwards the original token only with forwardOriginalToken', async () => {
    const token = await k1.sign(claims());
    const out = await authenticator([rule({ forwardOriginalToken: true })]).authenticate(req(bearer(token)));
    expect(out.ok && out.headers.authorization).toBe(`Bearer ${token}`);
  });

  it('outputs the payload and claims to headers, and strips forged ones', async () => {
    const token = await k1.sign(
      claims({
        email: 'a@example.com',
        org: { team: { name: 'x' }, id: 7 },
        admin: true,
        ratio: 1.5,
        roles: ['a', 'b'],
      }),
    );
    const a = authenticator([
      rule({
        outputPayloadToHeader: 'x-jwt-payload',
        outputClaimToHeaders: [
          { header: 'x-email', claim: 'email' },
          { header: 'x-team', claim: 'org.team.name' },
          { header: 'x-org-id', claim: 'org.id' },
          { header: 'x-admin', claim: 'admin' },
          { header: 'x-ratio', claim: 'ratio' },
          { header: 'x-roles', claim: 'roles' },
          { header: 'x-missing', claim: 'nope' },
        ],
      }),
    ]);
    const out = await a.authenticate(
      req({ ...bearer(token), 'x-jwt-payload': 'forged', 'x-email': 'forged@evil' }),
    );
    expect(out.ok).toBe(true);
    if (!out.ok) return;
    const payload = token.split('.')[1]!;
    expect(out.headers['x-jwt-payload']).toBe(payload);
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).toMatchObject({
      email: 'a@example.com',
    });
    expect(out.headers['x-email']).toBe('a@example.com');
    expect(out.headers['x-team']).toBe('x');
    expect(out.headers['x-org-id']).toBe('7');
    expect(out.headers['x-admin']).toBe('true');
    expect(out.headers['x-ratio']).toBe('1.500000');
    expect(Buffer.from(out.headers['x-roles'] as string, 'base64').toString()).toBe('["a","b"]');
    expect(out.headers['x-missing']).toBeUndefined();
  });

  it('handles several issuers: each token checked against its own provider', async () => {
    const other = await signingKey('o1');
    const a = authenticator([
      rule(),
      { issuer: 'https://other.example', jwks: JSON.stringify({ keys: [other.publicJwk] }) },
    ]);
    const fromOther = await a.authenticate(
      req(bearer(await other.sign(claims({ iss: 'https://other.example', sub: 'carol' })))),
    );
    expect(fromOther.ok && fromOther.auth?.principal).toBe('https://other.example/carol');
    expect((await a.authenticate(req(bearer(await k1.sign(claims()))))).ok).toBe(true);
    expectDenied(
      await a.authenticate(req(bearer(await k1.sign(claims({ iss: 'https://nobody' }))))),
      401,
      'Jwt issuer is not configured',
    );
    expect((await a.authenticate(req())).ok).toBe(true);
  });

  it('lets CORS preflight requests through', async () => {
    const a = authenticator([rule()]);
    const out = await a.authenticate({
      method: 'OPTIONS',
      path: '/',
      headers: {
        origin: 'https://app',
        'access-control-request-method': 'POST',
        authorization: 'Bearer garbage',
      },
    });
    expect(out.ok).toBe(true);
  });
});

describe('RequestAuthentication + AuthorizationPolicy', () => {
  it('a missing token passes authentication and authorization decides with requestPrincipals', async () => {
    const a = authenticator([{ issuer: ISS, jwksUri: server.url }]);
    const policies = [
      ap('require-jwt', { rules: [{ from: [{ source: { requestPrincipals: [`${ISS}/*`] } }] }] }),
    ];
    const withToken = await a.authenticate(req(bearer(await k1.sign(claims({ groups: 'admin ops' })))));
    expect(withToken.ok).toBe(true);
    if (!withToken.ok) return;
    expect(authorize(policies, WORKLOAD, http({ auth: withToken.auth })).verdict).toBe('allow');
    const claimPolicy = [
      ap('admins', { rules: [{ when: [{ key: 'request.auth.claims[groups]', values: ['ops'] }] }] }),
    ];
    expect(authorize(claimPolicy, WORKLOAD, http({ auth: withToken.auth })).verdict).toBe('allow');

    const without = await a.authenticate(req());
    expect(without.ok).toBe(true);
    expect(authorize(policies, WORKLOAD, http({ auth: without.ok ? without.auth : undefined })).verdict).toBe(
      'deny',
    );
  });
});
