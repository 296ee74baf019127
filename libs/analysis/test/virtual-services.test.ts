import { describe, expect, it } from 'vitest';
import { lines } from './helpers.js';

const RULE = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets: [{ name: v1, labels: { version: v1 } }]
`;

const vs = (body: string, name = 'reviews') => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
${body}
---`;

const SERVICES = [
  { hostname: 'reviews.default.svc.cluster.local', namespace: 'default' },
  { hostname: 'ratings.default.svc.cluster.local', namespace: 'default' },
];

describe('IST0101 ReferencedResourceNotFound (VirtualService destinations)', () => {
  it('reports a subset no DestinationRule defines, as host+subset', () => {
    const yaml = `${vs('  hosts: [reviews]\n  http: [{ route: [{ destination: { host: reviews, subset: v4 } }] }]')}${RULE}`;
    expect(lines(yaml)).toEqual([
      'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v4"',
    ]);
  });

  it('is silent when the subset is defined, including for mirrors', () => {
    const yaml = `${vs('  hosts: [reviews]\n  http: [{ route: [{ destination: { host: reviews, subset: v1 } }], mirror: { host: reviews, subset: v1 } }]')}${RULE}`;
    expect(lines(yaml)).toEqual([]);
  });

  it('reports a host no service or ServiceEntry has, once, when the services are known', () => {
    const yaml = vs(
      '  hosts: [reviews]\n  http: [{ route: [{ destination: { host: reviewz }, weight: 50 }, { destination: { host: reviewz }, weight: 50 }] }]',
    );
    expect(lines(yaml, { services: SERVICES })).toEqual([
      'Error [IST0101] (VirtualService default/reviews) Referenced host not found: "reviewz"',
    ]);
    // Without the services nothing can be said about hosts.
    expect(lines(yaml)).toEqual([]);
  });

  it('a ServiceEntry host, wildcard or not, is a known host', () => {
    const yaml = `${vs('  hosts: [api.example.com]\n  http: [{ route: [{ destination: { host: api.example.com } }] }]')}
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext }
spec: { hosts: ["*.example.com"], location: MESH_EXTERNAL, resolution: NONE, ports: [{ number: 443, name: tls, protocol: TLS }] }`;
    expect(lines(yaml, { services: [] })).toEqual([]);
  });

  it('reports a delegate VirtualService that does not exist', () => {
    const yaml = vs('  hosts: [reviews]\n  http: [{ delegate: { name: reviews-team, namespace: team } }]');
    expect(lines(yaml)).toEqual([
      'Error [IST0101] (VirtualService default/reviews) Referenced delegate not found: "team/reviews-team"',
    ]);
  });
});

describe('IST0101 gateway and IST0132 VirtualServiceHostNotFoundInGateway', () => {
  const GATEWAY = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: bookinfo-gateway }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["bookinfo.example.com"] }]
`;
  it('reports a gateway that does not exist', () => {
    const yaml = vs(
      '  hosts: ["*"]\n  gateways: [bookinfo-gw]\n  http: [{ route: [{ destination: { host: reviews } }] }]',
    );
    expect(lines(yaml)).toEqual([
      'Error [IST0101] (VirtualService default/reviews) Referenced gateway not found: "bookinfo-gw"',
    ]);
  });

  it('reports hosts the gateway does not accept, and is silent once one matches', () => {
    const wrong = `${vs('  hosts: [shop.example.com]\n  gateways: [bookinfo-gateway]\n  http: [{ route: [{ destination: { host: reviews } }] }]')}${GATEWAY}`;
    expect(lines(wrong)).toEqual([
      'Warning [IST0132] (VirtualService default/reviews) one or more host [shop.example.com] defined in VirtualService default/reviews not found in Gateway default/bookinfo-gateway.',
    ]);
    const right = `${vs('  hosts: ["*.example.com"]\n  gateways: [default/bookinfo-gateway]\n  http: [{ route: [{ destination: { host: reviews } }] }]')}${GATEWAY}`;
    expect(lines(right)).toEqual([]);
  });
});

describe('IST0109 ConflictingMeshGatewayVirtualServiceHosts', () => {
  it('reports each VirtualService that claims a host for sidecars another already does', () => {
    const yaml = `${vs('  hosts: [reviews]\n  http: [{ route: [{ destination: { host: reviews } }] }]')}${vs('  hosts: [reviews.default.svc.cluster.local]\n  http: [{ route: [{ destination: { host: reviews } }] }]', 'reviews-too')}`;
    const text =
      'The VirtualServices default/reviews,default/reviews-too associated with mesh gateway define the same host reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.';
    expect(lines(yaml)).toEqual([
      `Error [IST0109] (VirtualService default/reviews) ${text}`,
      `Error [IST0109] (VirtualService default/reviews-too) ${text}`,
    ]);
  });

  it('is silent for VirtualServices bound only to gateways, or exported apart', () => {
    const gw = `${vs('  hosts: [reviews]\n  gateways: [gw]\n  http: [{ route: [{ destination: { host: reviews } }] }]')}${vs('  hosts: [reviews]\n  gateways: [gw]\n  http: [{ route: [{ destination: { host: reviews } }] }]', 'b')}`;
    expect(lines(gw).filter((l) => l.includes('IST0109'))).toEqual([]);
    const apart = `${vs('  hosts: [reviews]\n  exportTo: [a]\n  http: [{ route: [{ destination: { host: reviews } }] }]')}${vs('  hosts: [reviews]\n  exportTo: [b]\n  http: [{ route: [{ destination: { host: reviews } }] }]', 'b')}`;
    expect(lines(apart)).toEqual([]);
  });
});

describe('IST0130 VirtualServiceUnreachableRule and IST0131 VirtualServiceIneffectiveMatch', () => {
  it('reports a rule after a catch-all rule', () => {
    const yaml = vs(
      '  hosts: [reviews]\n  http:\n  - route: [{ destination: { host: reviews } }]\n  - route: [{ destination: { host: ratings } }]',
    );
    expect(lines(yaml)).toEqual([
      'Warning [IST0130] (VirtualService default/reviews) VirtualService rule #1 not used (only the last rule can have no matches).',
    ]);
  });

  it('reports a duplicated match (Info) and a rule whose every match came before (Warning)', () => {
    const yaml = vs(`  hosts: [reviews]
  http:
  - name: jason
    match: [{ headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: reviews } }]
  - match: [{ headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: ratings } }]
  - match: [{ uri: { prefix: /a } }, { name: again, headers: { end-user: { exact: jason } } }]
    route: [{ destination: { host: ratings } }]`);
    expect(lines(yaml)).toEqual([
      'Warning [IST0130] (VirtualService default/reviews) VirtualService rule #1 not used (all matches used by prior rules).',
      'Info [IST0131] (VirtualService default/reviews) VirtualService rule #1 match #0 is not used (duplicate/overlapping match in rule "jason").',
    ]);
  });

  it('applies to tcp routes too', () => {
    const yaml = vs(
      '  hosts: [db]\n  tcp:\n  - match: [{ port: 5432 }]\n    route: [{ destination: { host: db } }]\n  - match: [{ port: 5432 }]\n    route: [{ destination: { host: db2 } }]',
    );
    expect(lines(yaml)).toEqual([
      'Warning [IST0130] (VirtualService default/reviews) VirtualService rule #1 not used (all matches used by prior rules).',
      'Info [IST0131] (VirtualService default/reviews) VirtualService rule #1 match #0 is not used (duplicate/overlapping match in rule #0).',
    ]);
  });
});
