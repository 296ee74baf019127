import { describe, expect, it } from 'vitest';
import { formatIssue, parseConfig, resolveKind } from '../src/index.js';
import { errorsOf, issuesOf, warningsOf } from './helpers.js';

function error(path: string, message: string) {
  return { severity: 'error', path, message };
}

const perClient = {
  selector: { matchLabels: { istio: 'ingressgateway' } },
  rules: [
    {
      name: 'per-client',
      match: { uri: { prefix: '/productpage' }, method: { exact: 'GET' } },
      descriptors: [{ remoteAddress: {} }],
      limit: { requests: 100, unit: 'MINUTE' },
    },
  ],
};

/** policy.mizzen.io RateLimitPolicy: Mizzen's own kind, validated with the same rules and messages as Istio's. */
describe('RateLimitPolicy', () => {
  it('accepts the README examples: a gateway by labels, a Gateway by targetRefs, a local bucket, shadow mode', () => {
    expect(issuesOf('RateLimitPolicy', perClient)).toEqual([]);
    expect(
      issuesOf('RateLimitPolicy', {
        targetRefs: [{ group: 'networking.istio.io', kind: 'Gateway', name: 'bookinfo-gateway' }],
        failureMode: 'DENY',
        rules: [
          {
            descriptors: [
              { requestHeader: { name: 'x-user-id' } },
              { path: {} },
              { method: {} },
              { sourcePrincipal: {} },
              { route: {} },
            ],
            limit: { requests: 1000, unit: 'HOUR' },
          },
          { match: { headers: { 'x-plan': { exact: 'free' } } }, limit: { requests: 10, unit: 'DAY' } },
        ],
      }),
    ).toEqual([]);
    expect(
      issuesOf('RateLimitPolicy', {
        selector: { matchLabels: { app: 'reviews' } },
        mode: 'LOCAL',
        shadow: true,
        rules: [{ match: { uri: { prefix: '/reviews' } }, limit: { requests: 50, unit: 'SECOND' } }],
      }),
    ).toEqual([]);
  });

  it('is served at policy.mizzen.io/v1alpha1 and known by its kubectl names', () => {
    const { issues, resources } = parseConfig(
      'apiVersion: policy.mizzen.io/v1alpha1\nkind: RateLimitPolicy\nmetadata: { name: api, namespace: istio-system }\nspec: { selector: { matchLabels: { app: a } }, rules: [{ limit: { requests: 1, unit: SECOND } }] }\n',
      'rl.yaml',
    );
    expect(issues).toEqual([]);
    expect(resources[0]!.kind).toBe('RateLimitPolicy');
    expect(resources[0]!.metadata.namespace).toBe('istio-system');
    for (const name of ['ratelimitpolicies', 'RateLimitPolicy', 'rlp', 'ratelimitpolicy.policy.mizzen.io'])
      expect(resolveKind(name)).toBe('RateLimitPolicy');
    const wrong = parseConfig(
      'apiVersion: networking.istio.io/v1\nkind: RateLimitPolicy\nmetadata: { name: api }\nspec: {}\n',
      'rl.yaml',
    );
    expect(wrong.resources).toEqual([]);
    expect(wrong.issues.map((i) => i.path)).toEqual(['apiVersion', 'spec.rules']);
  });

  it('rejects unknown fields with a suggestion, and bad enums, units and counts at their path', () => {
    expect(
      errorsOf('RateLimitPolicy', {
        ...perClient,
        rules: [{ ...perClient.rules[0], limits: {} }],
      }),
    ).toEqual([error('spec.rules[0].limits', 'unknown field "limits" (did you mean "limit"?)')]);
    expect(
      errorsOf('RateLimitPolicy', {
        ...perClient,
        mode: 'global',
        failureMode: 'OPEN',
        rules: [{ limit: { requests: 0, unit: 'WEEK' } }, { limit: { requests: 1.5, unit: 'SECOND' } }],
      }),
    ).toEqual([
      error('spec.mode', 'must be one of GLOBAL, LOCAL, got "global"'),
      error('spec.failureMode', 'must be one of ALLOW, DENY, got "OPEN"'),
      error('spec.rules[0].limit.requests', 'must be between 1 and 4294967295, got 0'),
      error('spec.rules[0].limit.unit', 'must be one of SECOND, MINUTE, HOUR, DAY, got "WEEK"'),
      error('spec.rules[1].limit.requests', 'must be a whole number, got 1.5'),
    ]);
    expect(errorsOf('RateLimitPolicy', { ...perClient, rules: [{ name: 'x' }] })).toEqual([
      error('spec.rules[0].limit', 'required field "limit" is missing'),
    ]);
  });

  it('needs exactly one target: a selector or Gateways in its own namespace', () => {
    const rules = perClient.rules;
    expect(errorsOf('RateLimitPolicy', { rules })).toEqual([
      error(
        'spec',
        'a rate limit policy must say what it protects: set selector.matchLabels (workloads, or a gateway by its labels) or targetRefs (a Gateway)',
      ),
    ]);
    expect(
      errorsOf('RateLimitPolicy', {
        selector: { matchLabels: { app: 'a' } },
        targetRefs: [{ kind: 'Gateway', name: 'gw' }],
        rules,
      }),
    ).toEqual([error('spec', 'only one of selector or targetRefs may be set, found both')]);
    expect(
      errorsOf('RateLimitPolicy', {
        targetRefs: [
          { kind: 'Service', name: 'reviews' },
          { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' },
          { kind: 'Gateway', name: 'Bad_Name', namespace: 'other' },
        ],
        rules,
      }),
    ).toEqual([
      error(
        'spec.targetRefs[0]',
        'cannot target Service; a RateLimitPolicy targets a networking.istio.io/Gateway (use selector for workloads)',
      ),
      error(
        'spec.targetRefs[1]',
        'cannot target gateway.networking.k8s.io/Gateway; a RateLimitPolicy targets a networking.istio.io/Gateway (use selector for workloads)',
      ),
      expect.objectContaining({ path: 'spec.targetRefs[2].name' }),
      error(
        'spec.targetRefs[2].namespace',
        'must not be set: a policy can only target Gateways in its own namespace',
      ),
    ]);
    expect(warningsOf('RateLimitPolicy', { ...perClient, selector: { matchLabels: {} } })).toEqual([
      {
        severity: 'warning',
        path: 'spec.selector',
        message: 'the selector has no labels, so this policy applies to every workload in the namespace',
      },
    ]);
  });

  it('checks descriptors: exactly one kind each, no repeats, valid header names, none in LOCAL mode', () => {
    const withDescriptors = (descriptors: unknown[], extra: Record<string, unknown> = {}) => ({
      ...perClient,
      ...extra,
      rules: [{ descriptors, limit: { requests: 5, unit: 'SECOND' } }],
    });
    expect(
      errorsOf(
        'RateLimitPolicy',
        withDescriptors([
          {},
          { path: {}, method: {} },
          { requestHeader: { name: 'X-User' } },
          { requestHeader: { name: 'x-user' } },
          { requestHeader: { name: ':path' } },
          { remoteAddress: { mask: 24 } },
        ]),
      ),
    ).toEqual([
      error(
        'spec.rules[0].descriptors[4].requestHeader.name',
        '":path" is not a valid header name (letters, digits, "-" and "_")',
      ),
      error('spec.rules[0].descriptors[5].remoteAddress.mask', 'unknown field "mask"'),
    ]);
    // Structure first, then the semantic rules.
    expect(
      errorsOf(
        'RateLimitPolicy',
        withDescriptors([
          {},
          { path: {}, method: {} },
          { requestHeader: { name: 'X-User' } },
          { requestHeader: { name: 'x-user' } },
          { requestHeader: { name: '@request.auth.claims.sub' } },
        ]),
      ),
    ).toEqual([
      error(
        'spec.rules[0].descriptors[0]',
        'a descriptor sets one of requestHeader, path, method, sourcePrincipal, remoteAddress, route, found none',
      ),
      error(
        'spec.rules[0].descriptors[1]',
        'a descriptor sets exactly one of requestHeader, path, method, sourcePrincipal, remoteAddress, route, found path and method',
      ),
      error('spec.rules[0].descriptors[3]', 'requestHeader x-user is already descriptor 2; list it once'),
      error(
        'spec.rules[0].descriptors[4].requestHeader.name',
        '"@request.auth.claims.sub" is not a request header; JWT claims cannot key a rate limit',
      ),
    ]);
    expect(errorsOf('RateLimitPolicy', withDescriptors([{ path: {} }], { mode: 'LOCAL' }))).toEqual([
      error(
        'spec.rules[0].descriptors',
        'descriptors need mode GLOBAL: a LOCAL token bucket counts every matching request of the proxy in one bucket (use match to choose which requests)',
      ),
    ]);
    expect(
      warningsOf('RateLimitPolicy', withDescriptors([], { mode: 'LOCAL', failureMode: 'DENY' })),
    ).toEqual([
      {
        severity: 'warning',
        path: 'spec.failureMode',
        message: 'has no effect with mode LOCAL: a token bucket in the proxy cannot fail',
      },
    ]);
  });

  it('checks rule names and matches', () => {
    expect(
      errorsOf('RateLimitPolicy', {
        ...perClient,
        rules: [
          { name: 'api', limit: { requests: 1, unit: 'SECOND' } },
          { name: 'api', limit: { requests: 1, unit: 'SECOND' } },
          { name: 'rule-0', limit: { requests: 1, unit: 'SECOND' } },
          { name: 'Not A Label', limit: { requests: 1, unit: 'SECOND' } },
          {
            match: { uri: { prefix: '/a', exact: '/b' }, headers: { 'bad header': { exact: 'x' } } },
            limit: { requests: 1, unit: 'SECOND' },
          },
        ],
      }).map((i) => i.path),
    ).toEqual(['spec.rules[4].match.uri', 'spec.rules[4].match.headers["bad header"]']);
    const semantic = errorsOf('RateLimitPolicy', {
      ...perClient,
      rules: [
        { name: 'api', limit: { requests: 1, unit: 'SECOND' } },
        { name: 'api', limit: { requests: 1, unit: 'SECOND' } },
        { name: 'Not A Label', limit: { requests: 1, unit: 'SECOND' } },
      ],
    });
    expect(semantic.map((i) => [i.path, i.message.slice(0, 40)])).toEqual([
      ['spec.rules[1].name', '"api" is already the name of rule 0'],
      ['spec.rules[2].name', expect.stringContaining('Not A Label')],
    ]);
    expect(errorsOf('RateLimitPolicy', { ...perClient, rules: [] })).toEqual([
      error('spec.rules', 'must list at least one rule'),
    ]);
  });

  it('names the document, the field and the reason in one line', () => {
    const { resources, issues } = parseConfig(
      `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec: { selector: { istio: ingressgateway }, servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ['*'] }] }
---
apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: api }
spec:
  selector: { matchLabels: { app: api } }
  rules:
  - limit: { requests: 10, unit: FORTNIGHT }
`,
      'limits.yaml',
    );
    expect(resources.map((r) => r.kind)).toEqual(['Gateway']);
    expect(issues.map(formatIssue)).toEqual([
      expect.stringMatching(
        /^limits\.yaml.*document 2.*RateLimitPolicy default\/api.*spec\.rules\[0\]\.limit\.unit.*must be one of SECOND, MINUTE, HOUR, DAY, got "FORTNIGHT"/,
      ),
    ]);
  });
});
