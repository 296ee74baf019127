import { describe, expect, it } from 'vitest';
import { errorsOf, issuesOf, warningsOf } from './helpers.js';

function error(path: string, message: string) {
  return { severity: 'error', path, message };
}

describe('PeerAuthentication', () => {
  it('accepts mesh-wide and workload policies with port-level mTLS', () => {
    expect(issuesOf('PeerAuthentication', { mtls: { mode: 'STRICT' } })).toEqual([]);
    expect(issuesOf('PeerAuthentication', {})).toEqual([]);
    expect(
      issuesOf('PeerAuthentication', {
        selector: { matchLabels: { app: 'reviews' } },
        mtls: { mode: 'PERMISSIVE' },
        portLevelMtls: { 8080: { mode: 'DISABLE' } },
      }),
    ).toEqual([]);
  });

  it('only accepts the mTLS modes UNSET, DISABLE, PERMISSIVE, STRICT', () => {
    expect(errorsOf('PeerAuthentication', { mtls: { mode: 'ON' } })).toEqual([
      error('spec.mtls.mode', 'must be one of UNSET, DISABLE, PERMISSIVE, STRICT, got "ON"'),
    ]);
    expect(
      errorsOf('PeerAuthentication', {
        selector: { matchLabels: { app: 'a' } },
        portLevelMtls: { 80: { mode: 'strict' } },
      }),
    ).toEqual([
      error(
        'spec.portLevelMtls["80"].mode',
        'must be one of UNSET, DISABLE, PERMISSIVE, STRICT, got "strict"',
      ),
    ]);
  });

  it('allows port-level mTLS only with a selector, on valid ports', () => {
    expect(errorsOf('PeerAuthentication', { portLevelMtls: { 8080: { mode: 'DISABLE' } } })).toEqual([
      error(
        'spec.portLevelMtls',
        'port-level mTLS needs a selector with matchLabels (mesh- and namespace-wide policies cannot set it)',
      ),
    ]);
    expect(
      errorsOf('PeerAuthentication', {
        selector: { matchLabels: { app: 'a' } },
        portLevelMtls: { 70000: { mode: 'DISABLE' } },
      }),
    ).toEqual([error('spec.portLevelMtls["70000"]', '"70000" is not a port number between 1 and 65535')]);
  });

  it('rejects the pre-1.5 authentication fields', () => {
    expect(errorsOf('PeerAuthentication', { peers: [{ mtls: {} }] })).toEqual([
      error('spec.peers', 'unknown field "peers"'),
    ]);
  });
});

describe('AuthorizationPolicy', () => {
  it('accepts typical policies', () => {
    expect(issuesOf('AuthorizationPolicy', {})).toEqual([]);
    expect(
      issuesOf('AuthorizationPolicy', {
        selector: { matchLabels: { app: 'httpbin' } },
        action: 'ALLOW',
        rules: [
          {
            from: [
              { source: { principals: ['cluster.local/ns/default/sa/sleep'], ipBlocks: ['10.0.0.0/8'] } },
            ],
            to: [{ operation: { methods: ['GET'], paths: ['/info*'], ports: ['8000'] } }],
            when: [{ key: 'request.auth.claims[iss]', values: ['https://accounts.google.com'] }],
          },
        ],
      }),
    ).toEqual([]);
    expect(issuesOf('AuthorizationPolicy', { action: 'DENY', rules: [{}] })).toEqual([]);
    expect(
      issuesOf('AuthorizationPolicy', {
        action: 'CUSTOM',
        provider: { name: 'my-ext-authz' },
        targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }],
        rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }],
      }),
    ).toEqual([]);
  });

  it('only accepts ALLOW, DENY, AUDIT and CUSTOM', () => {
    expect(errorsOf('AuthorizationPolicy', { action: 'REJECT' })).toEqual([
      error('spec.action', 'must be one of ALLOW, DENY, AUDIT, CUSTOM, got "REJECT"'),
    ]);
  });

  it('needs a provider for CUSTOM, and rules for CUSTOM and DENY', () => {
    expect(errorsOf('AuthorizationPolicy', { action: 'CUSTOM', rules: [{}] })).toEqual([
      error('spec.provider.name', 'a CUSTOM policy needs provider.name (the extension provider to call)'),
    ]);
    expect(errorsOf('AuthorizationPolicy', { action: 'CUSTOM', provider: { name: 'x' } })).toEqual([
      error(
        'spec.rules',
        'a CUSTOM policy without rules never applies; add an empty rule `{}` to apply it to every request',
      ),
    ]);
    expect(errorsOf('AuthorizationPolicy', { action: 'DENY' })).toEqual([
      error(
        'spec.rules',
        'a DENY policy without rules never applies; add an empty rule `{}` to deny every request',
      ),
    ]);
    expect(errorsOf('AuthorizationPolicy', { action: 'ALLOW', provider: { name: 'x' } })).toEqual([
      error('spec.provider', 'provider is only allowed with action CUSTOM, not ALLOW'),
    ]);
  });

  it('checks rules: non-empty sources and operations, IP blocks, ports, conditions', () => {
    const rules = (r: unknown) => errorsOf('AuthorizationPolicy', { rules: [r] });
    expect(rules({ from: [{ source: {} }] })).toEqual([
      error('spec.rules[0].from[0].source', 'a source must set at least one field'),
    ]);
    expect(rules({ from: [{ source: { ipBlocks: ['10.0.0.256'] } }] })).toEqual([
      error(
        'spec.rules[0].from[0].source.ipBlocks[0]',
        '"10.0.0.256" is not a valid IP address or CIDR block',
      ),
    ]);
    expect(rules({ to: [{ operation: { ports: ['http'] } }] })).toEqual([
      error('spec.rules[0].to[0].operation.ports[0]', '"http" is not a port number between 1 and 65535'),
    ]);
    expect(rules({ to: [{ operation: { methods: [''] } }] })).toEqual([
      error('spec.rules[0].to[0].operation.methods[0]', 'empty values are not allowed'),
    ]);
    expect(rules({ when: [{ key: 'request.headers[x-token]' }] })).toEqual([
      error('spec.rules[0].when[0]', 'set values or notValues for key "request.headers[x-token]"'),
    ]);
    expect(rules({ when: [{ key: 'request.color', values: ['red'] }] })).toEqual([
      error('spec.rules[0].when[0].key', 'unknown condition key "request.color"'),
    ]);
    expect(rules({ when: [{ values: ['x'] }] })).toEqual([
      error('spec.rules[0].when[0].key', 'required field "key" is missing'),
    ]);
    expect(rules({ from: [{ sources: {} }] })).toEqual([
      error('spec.rules[0].from[0].sources', 'unknown field "sources" (did you mean "source"?)'),
    ]);
  });

  it('allows one of selector, targetRef or targetRefs, targeting supported kinds in the same namespace', () => {
    expect(
      errorsOf('AuthorizationPolicy', {
        selector: { matchLabels: { app: 'a' } },
        targetRef: { kind: 'Service', name: 's' },
      }),
    ).toEqual([
      error('spec', 'only one of selector, targetRef or targetRefs may be set, found selector and targetRef'),
    ]);
    expect(
      errorsOf('AuthorizationPolicy', { targetRef: { kind: 'Deployment', group: 'apps', name: 'd' } }),
    ).toEqual([
      error(
        'spec.targetRef',
        'cannot target apps/Deployment; a policy can target Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway',
      ),
    ]);
    expect(
      errorsOf('AuthorizationPolicy', { targetRefs: [{ kind: 'Service', name: 's', namespace: 'other' }] }),
    ).toEqual([
      error(
        'spec.targetRefs[0].namespace',
        'must not be set: a policy can only target resources in its own namespace',
      ),
    ]);
  });

  it('warns about an empty selector', () => {
    expect(warningsOf('AuthorizationPolicy', { selector: {} })).toEqual([
      {
        severity: 'warning',
        path: 'spec.selector',
        message:
          'the selector has no labels, so this AuthorizationPolicy applies to every workload in the namespace',
      },
    ]);
  });
});

describe('RequestAuthentication', () => {
  const jwks = JSON.stringify({ keys: [{ kty: 'RSA', e: 'AQAB', n: 'xyz', kid: 'k1' }] });

  it('accepts JWT rules with every field', () => {
    expect(
      issuesOf('RequestAuthentication', {
        selector: { matchLabels: { app: 'httpbin' } },
        jwtRules: [
          {
            issuer: 'testing@secure.istio.io',
            audiences: ['app'],
            jwksUri:
              'https://raw.githubusercontent.com/istio/istio/release-1.24/security/tools/jwt/samples/jwks.json',
            fromHeaders: [{ name: 'Authorization', prefix: 'Bearer ' }],
            fromParams: ['token'],
            fromCookies: ['session'],
            outputPayloadToHeader: 'x-jwt-payload',
            forwardOriginalToken: true,
            outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }],
            timeout: '5s',
            spaceDelimitedClaims: ['scope'],
          },
          { issuer: 'other', jwks },
        ],
      }),
    ).toEqual([]);
  });

  it('requires the issuer', () => {
    expect(
      errorsOf('RequestAuthentication', { jwtRules: [{ jwksUri: 'https://example.com/jwks' }] }),
    ).toEqual([error('spec.jwtRules[0].issuer', 'required field "issuer" is missing')]);
  });

  it('allows only one of jwks and jwksUri, and checks both', () => {
    expect(
      errorsOf('RequestAuthentication', {
        jwtRules: [{ issuer: 'i', jwks, jwksUri: 'https://example.com/jwks' }],
      }),
    ).toEqual([error('spec.jwtRules[0].jwks', 'only one of jwks or jwksUri may be set')]);
    expect(
      errorsOf('RequestAuthentication', { jwtRules: [{ issuer: 'i', jwksUri: 'ftp://example.com/jwks' }] }),
    ).toEqual([
      error('spec.jwtRules[0].jwksUri', '"ftp://example.com/jwks" must be an http:// or https:// URL'),
    ]);
    expect(
      errorsOf('RequestAuthentication', { jwtRules: [{ issuer: 'i', jwks: '{"keys": [{}]}' }] }),
    ).toEqual([error('spec.jwtRules[0].jwks', 'keys[0] is not a JSON Web Key (it needs a "kty")')]);
    expect(
      errorsOf('RequestAuthentication', { jwtRules: [{ issuer: 'i', jwks: 'not json' }] })[0]!.message,
    ).toMatch(/^is not valid JSON: /);
  });

  it('checks token locations, claim headers and the timeout', () => {
    expect(
      errorsOf('RequestAuthentication', {
        jwtRules: [
          {
            issuer: 'i',
            fromHeaders: [{ name: '' }],
            outputClaimToHeaders: [{ header: 'bad header', claim: 'sub' }],
            timeout: '0s',
          },
        ],
      }),
    ).toEqual([error('spec.jwtRules[0].timeout', 'must be at least 1ms, got "0s"')]);
    expect(
      errorsOf('RequestAuthentication', {
        jwtRules: [
          {
            issuer: 'i',
            fromHeaders: [{ name: '' }],
            outputClaimToHeaders: [{ header: 'bad header', claim: 'sub' }],
          },
        ],
      }),
    ).toEqual([
      error('spec.jwtRules[0].fromHeaders[0].name', 'must not be empty'),
      error(
        'spec.jwtRules[0].outputClaimToHeaders[0].header',
        '"bad header" is not a valid header name (letters, digits, "-" and "_")',
      ),
    ]);
  });
});
