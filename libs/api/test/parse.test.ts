import { describe, expect, it } from 'vitest';
import { configKey, formatIssue, KIND_NAMES, KINDS, parseConfig, resolveKind } from '../src/index.js';
import { issuesOf, resource, simplify } from './helpers.js';

const REVIEWS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews, subset: v1 }
`;

const RULE = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
spec:
  host: reviews
  subsets: [{ name: v1, labels: { version: v1 } }]
`;

describe('parseConfig', () => {
  it('reads several documents, skips empty ones, and numbers documents as they appear', () => {
    const text = `---\n${REVIEWS}---\n# only a comment\n---\n${RULE}---\nkind: Nope\nmetadata: { name: x }\n`;
    const { resources, issues } = parseConfig(text, 'many.yaml');
    expect(resources.map(configKey)).toEqual([
      'VirtualService/default/reviews',
      'DestinationRule/shop/reviews',
    ]);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({
      source: 'many.yaml',
      document: 4,
      kind: 'Nope',
      path: 'kind',
      severity: 'error',
    });
  });

  it('defaults the namespace to "default" and keeps the spec exactly as written', () => {
    const { resources } = parseConfig(REVIEWS, 'r.yaml');
    expect(resources[0]).toEqual({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
    });
  });

  it('keeps labels, annotations and timestamps, and drops API-server bookkeeping', () => {
    const text = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
  labels: { app.kubernetes.io/name: mesh }
  annotations: { note: "any text: fine" }
  creationTimestamp: "2026-01-01T00:00:00Z"
  uid: 1c0d2a4e-5c1e-4f6e-9b1e-2f3d4c5b6a79
  managedFields: [{ manager: kubectl }]
spec:
  mtls: { mode: STRICT }
status: {}
`;
    const { resources, issues } = parseConfig(text, 'pa.yaml');
    expect(issues).toEqual([]);
    expect(resources[0]!.metadata).toEqual({
      name: 'default',
      namespace: 'istio-system',
      labels: { 'app.kubernetes.io/name': 'mesh' },
      annotations: { note: 'any text: fine' },
      creationTimestamp: '2026-01-01T00:00:00Z',
    });
  });

  it('accepts a JSON document', () => {
    const json = JSON.stringify({
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'Gateway',
      metadata: { name: 'gw' },
      spec: {
        selector: { istio: 'ingressgateway' },
        servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
      },
    });
    const { resources, issues } = parseConfig(json, 'gw.json');
    expect(issues).toEqual([]);
    expect(resources.map(configKey)).toEqual(['Gateway/default/gw']);
  });

  it('accepts a kind: List (as kubectl get -o yaml prints) and names the item in issues', () => {
    const text = `apiVersion: v1
kind: List
items:
  - apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: { name: a }
    spec: { hosts: [a], http: [{ route: [{ destination: { host: a } }] }] }
  - apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: { name: b }
    spec: { hosts: [b], http: [{ route: [{ destination: { host: b }, weight: 120 }] }] }
`;
    const { resources, issues } = parseConfig(text, 'list.yaml');
    expect(resources.map(configKey)).toEqual(['VirtualService/default/a']);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({
      document: 1,
      item: 1,
      name: 'b',
      path: 'spec.http[0].route[0].weight',
      line: 11,
    });
    expect(formatIssue(issues[0]!)).toBe(
      'list.yaml: document 1 items[1] (VirtualService default/b): spec.http[0].route[0].weight: must be between 0 and 100, got 120 (line 11)',
    );
  });

  it('reports a YAML syntax error with its line and column, and still reads the other documents', () => {
    const text = `${REVIEWS}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a: b\n`;
    const { resources, issues } = parseConfig(text, 'broken.yaml');
    expect(resources).toHaveLength(1);
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ severity: 'error', document: 2, path: '', line: 14 });
    expect(issues[0]!.message).toBe(
      'YAML syntax error at line 14, column 9: Nested mappings are not allowed in compact mappings',
    );
    expect(formatIssue(issues[0]!)).toBe(
      'broken.yaml: document 2: YAML syntax error at line 14, column 9: Nested mappings are not allowed in compact mappings',
    );
  });

  it('resolves anchors, aliases and merge keys, as Kubernetes does', () => {
    const text = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  trafficPolicy: &policy
    connectionPool: { tcp: { connectTimeout: 1s } }
  subsets:
    - name: v1
      labels: &v1 { version: v1 }
      trafficPolicy:
        <<: *policy
        loadBalancer: { simple: RANDOM }
    - { name: v1-copy, labels: *v1 }
`;
    const { resources, issues } = parseConfig(text, 'anchors.yaml');
    expect(issues).toEqual([]);
    expect(resources[0]!.spec).toEqual({
      host: 'reviews',
      trafficPolicy: { connectionPool: { tcp: { connectTimeout: '1s' } } },
      subsets: [
        {
          name: 'v1',
          labels: { version: 'v1' },
          trafficPolicy: {
            connectionPool: { tcp: { connectTimeout: '1s' } },
            loadBalancer: { simple: 'RANDOM' },
          },
        },
        { name: 'v1-copy', labels: { version: 'v1' } },
      ],
    });
  });

  it('rejects duplicate keys, as Kubernetes does', () => {
    const { issues } = parseConfig('kind: VirtualService\nkind: Gateway\n', 'dup.yaml');
    expect(issues[0]!.message).toMatch(/YAML syntax error at line 2, column 1: Map keys must be unique/);
  });

  it('warns when one source defines the same resource twice', () => {
    const { resources, issues } = parseConfig(`${REVIEWS}---\n${REVIEWS}`, 'twice.yaml');
    expect(resources).toHaveLength(2);
    expect(simplify(issues)).toEqual([
      { severity: 'warning', path: 'metadata.name', message: 'also defined in document 1 of twice.yaml' },
    ]);
  });

  it('returns nothing for empty input', () => {
    expect(parseConfig('', 'empty.yaml')).toEqual({ resources: [], issues: [], identities: [] });
    expect(parseConfig('---\n---\n', 'empty.yaml')).toEqual({ resources: [], issues: [], identities: [] });
  });
});

describe('envelope and metadata', () => {
  it('accepts every served apiVersion of every kind', () => {
    const specs: Record<string, unknown> = {
      VirtualService: { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' } }] }] },
      DestinationRule: { host: 'a' },
      Gateway: { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] },
      ServiceEntry: {
        hosts: ['a.example.com'],
        ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
        resolution: 'DNS',
      },
      WorkloadEntry: { address: '10.0.0.1' },
      Sidecar: { egress: [{ hosts: ['./*'] }] },
      PeerAuthentication: { mtls: { mode: 'STRICT' } },
      AuthorizationPolicy: {},
      RequestAuthentication: { jwtRules: [{ issuer: 'https://issuer.example.com' }] },
      Telemetry: { accessLogging: [{ providers: [{ name: 'envoy' }] }] },
      RateLimitPolicy: {
        selector: { matchLabels: { app: 'a' } },
        rules: [{ limit: { requests: 1, unit: 'SECOND' } }],
      },
    };
    let checked = 0;
    for (const kind of KIND_NAMES) {
      for (const version of KINDS[kind].versions) {
        const text = `apiVersion: ${KINDS[kind].group}/${version}\nkind: ${kind}\nmetadata: { name: x }\nspec: ${JSON.stringify(specs[kind])}\n`;
        const { resources, issues } = parseConfig(text, 'v.yaml');
        expect(issues, `${kind} ${version}`).toEqual([]);
        expect(resources[0]!.apiVersion).toBe(`${KINDS[kind].group}/${version}`);
        checked++;
      }
    }
    expect(checked).toBe(6 * 3 + 3 * 2 + 1 * 2 + 1);
  });

  it('rejects an apiVersion the kind is not served at', () => {
    const text = resource('VirtualService', {
      hosts: ['a'],
      http: [{ route: [{ destination: { host: 'a' } }] }],
    }).replace('networking.istio.io/v1', 'networking.istio.io/v2');
    expect(simplify(parseConfig(text, 'x.yaml').issues)).toEqual([
      {
        severity: 'error',
        path: 'apiVersion',
        message:
          'networking.istio.io/v2 is not a served version of VirtualService; use one of networking.istio.io/v1, networking.istio.io/v1beta1, networking.istio.io/v1alpha3',
      },
    ]);
    const wrongGroup = resource('PeerAuthentication', {}).replace(
      'security.istio.io/v1',
      'networking.istio.io/v1',
    );
    expect(simplify(parseConfig(wrongGroup, 'x.yaml').issues)[0]).toEqual({
      severity: 'error',
      path: 'apiVersion',
      message:
        'PeerAuthentication belongs to security.istio.io; use one of security.istio.io/v1, security.istio.io/v1beta1',
    });
  });

  it('names an unknown kind and lists the known ones, suggesting the right spelling', () => {
    const unknown = parseConfig(
      'apiVersion: v1\nkind: Service\nmetadata: { name: reviews }\n',
      's.yaml',
    ).issues;
    expect(unknown[0]).toMatchObject({ path: 'kind', kind: 'Service', name: 'reviews' });
    expect(unknown[0]!.message).toBe(
      'unknown kind "Service"; Mizzen understands VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry, Sidecar, PeerAuthentication, AuthorizationPolicy, RequestAuthentication, Telemetry, RateLimitPolicy',
    );
    const lower = parseConfig(
      'apiVersion: networking.istio.io/v1\nkind: destinationrule\nmetadata: { name: r }\n',
      'd.yaml',
    );
    expect(lower.issues[0]!.message).toBe('unknown kind "destinationrule" (did you mean "DestinationRule"?)');
  });

  it('requires metadata.name, a DNS-1123 name and a DNS label namespace', () => {
    const spec = { host: 'reviews' };
    expect(issuesOf('DestinationRule', spec, {})).toEqual([
      { severity: 'error', path: 'metadata.name', message: 'required field "name" is missing' },
    ]);
    expect(issuesOf('DestinationRule', spec, { name: 'Reviews_1' })).toEqual([
      {
        severity: 'error',
        path: 'metadata.name',
        message:
          '"Reviews_1" is not a valid name: use lower case letters, digits, "-" and ".", starting and ending with a letter or digit',
      },
    ]);
    expect(issuesOf('DestinationRule', spec, { name: 'a'.repeat(254) })[0]!.message).toMatch(
      /longer than 253 characters/,
    );
    expect(issuesOf('DestinationRule', spec, { name: 'reviews.v1' })).toEqual([]);
    expect(issuesOf('DestinationRule', spec, { name: 'r', namespace: 'my.ns' })).toEqual([
      {
        severity: 'error',
        path: 'metadata.namespace',
        message:
          '"my.ns" is not a valid namespace: use lower case letters, digits and "-", starting and ending with a letter or digit',
      },
    ]);
    expect(
      issuesOf('DestinationRule', spec, { name: 'r', labels: { 'bad key!': 'x', ok: 'not ok!' } }),
    ).toEqual([
      {
        severity: 'error',
        path: 'metadata.labels["bad key!"]',
        message:
          'invalid label key "bad key!": use letters, digits, "-", "_" and ".", starting and ending with a letter or digit',
      },
      {
        severity: 'error',
        path: 'metadata.labels.ok',
        message:
          'invalid label value "not ok!": use letters, digits, "-", "_" and ".", starting and ending with a letter or digit',
      },
    ]);
  });

  it('reports identity problems outside spec, so a delete can tell them from spec problems', () => {
    const text =
      'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {}\nspec: { hosts: [a], http: [{ rout: [] }] }\nextra: 1\n';
    const paths = parseConfig(text, 'x.yaml').issues.map((i) => i.path);
    expect(paths).toContain('metadata.name');
    expect(paths).toContain('extra');
    expect(paths).toContain('spec.http[0].rout');
    for (const p of paths.filter((p) => !p.startsWith('spec')))
      expect(['metadata.name', 'extra']).toContain(p);
  });

  it('lists the identity of every properly named document, even with an invalid spec (what a delete needs)', () => {
    const text = `${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: broken, namespace: shop }
spec: { hosts: [broken], http: [{ route: [{ destination: { host: b }, weight: 120 }] }] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: Bad_Name }
spec: {}
`;
    const { resources, identities } = parseConfig(text, 'del.yaml');
    expect(resources.map(configKey)).toEqual(['VirtualService/default/reviews']);
    expect(identities).toEqual([
      {
        kind: 'VirtualService',
        namespace: 'default',
        name: 'reviews',
        key: 'VirtualService/default/reviews',
        document: 1,
      },
      {
        kind: 'VirtualService',
        namespace: 'shop',
        name: 'broken',
        key: 'VirtualService/shop/broken',
        document: 2,
      },
    ]);
  });

  it('rejects a document that is not a mapping', () => {
    expect(simplify(parseConfig('- a\n- b\n', 'x.yaml').issues)).toEqual([
      {
        severity: 'error',
        path: '',
        message: 'expected a resource (a mapping with apiVersion, kind, metadata and spec), got a list',
      },
    ]);
  });

  it('Gateway names cannot contain dots (VirtualServices refer to them as namespace/name)', () => {
    const spec = { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] };
    expect(issuesOf('Gateway', spec, { name: 'my.gateway' })).toEqual([
      {
        severity: 'error',
        path: 'metadata.name',
        message: '"my.gateway" is not a valid Gateway name: it cannot contain dots',
      },
    ]);
  });
});

describe('formatIssue', () => {
  it('names file, document, resource and field in one line', () => {
    const text = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews, subset: v1 }
          weight: 120
`;
    const { resources, issues } = parseConfig(text, 'bad-reviews.yaml');
    expect(resources).toEqual([]);
    expect(issues.map(formatIssue)).toEqual([
      'bad-reviews.yaml: document 1 (VirtualService default/reviews): spec.http[0].route[0].weight: must be between 0 and 100, got 120 (line 10)',
    ]);
  });

  it('marks warnings and leaves out what is unknown', () => {
    expect(
      formatIssue({ severity: 'warning', source: 'request', document: 2, path: '', message: 'hmm' }),
    ).toBe('request: document 2: warning: hmm');
  });
});

describe('resolveKind', () => {
  it.each([
    ['VirtualService', 'VirtualService'],
    ['virtualservice', 'VirtualService'],
    ['virtualservices', 'VirtualService'],
    ['VS', 'VirtualService'],
    ['virtualservice.networking.istio.io', 'VirtualService'],
    ['virtualservices.v1beta1.networking.istio.io', 'VirtualService'],
    ['dr', 'DestinationRule'],
    ['destinationrule', 'DestinationRule'],
    ['destinationrules', 'DestinationRule'],
    ['gw', 'Gateway'],
    ['gateway', 'Gateway'],
    ['gateways', 'Gateway'],
    ['se', 'ServiceEntry'],
    ['serviceentry', 'ServiceEntry'],
    ['serviceentries', 'ServiceEntry'],
    ['we', 'WorkloadEntry'],
    ['workloadentry', 'WorkloadEntry'],
    ['workloadentries', 'WorkloadEntry'],
    ['sidecar', 'Sidecar'],
    ['sidecars', 'Sidecar'],
    ['pa', 'PeerAuthentication'],
    ['peerauthentication', 'PeerAuthentication'],
    ['peerauthentications', 'PeerAuthentication'],
    ['ap', 'AuthorizationPolicy'],
    ['authorizationpolicy', 'AuthorizationPolicy'],
    ['authorizationpolicies', 'AuthorizationPolicy'],
    ['ra', 'RequestAuthentication'],
    ['requestauthentication', 'RequestAuthentication'],
    ['RequestAuthentications', 'RequestAuthentication'],
    ['peerauthentication.security.istio.io', 'PeerAuthentication'],
  ])('%s → %s', (name, kind) => {
    expect(resolveKind(name)).toBe(kind);
  });

  it.each(['service', 'gateway.networking.k8s.io', 'vs.security.istio.io', '', 'virtual'])(
    '%s → undefined',
    (name) => {
      expect(resolveKind(name)).toBeUndefined();
    },
  );
});

describe('configKey', () => {
  it('is Kind/namespace/name', () => {
    expect(configKey({ kind: 'Gateway', metadata: { namespace: 'istio-system', name: 'ingress' } })).toBe(
      'Gateway/istio-system/ingress',
    );
  });
});
