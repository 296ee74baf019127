import { describe, expect, it } from 'vitest';
import { lines } from './helpers.js';

const sidecar = (name: string, selector?: string, ns = 'default') => `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: ${name}, namespace: ${ns} }
spec:
${selector ? `  workloadSelector: { labels: ${selector} }\n` : ''}  egress: [{ hosts: ["./*"] }]
---`;

const REVIEWS_V1 = { name: 'reviews-v1', namespace: 'default', labels: { app: 'reviews', version: 'v1' } };

describe('Sidecar selectors: IST0110, IST0111 and IST0101 selector', () => {
  it('IST0111: several Sidecars without a workloadSelector in one namespace, on each', () => {
    const text =
      'The Sidecars [default/a-older default/b-newer] in namespace "default" have no workload selector, which can lead to undefined behavior.';
    expect(lines(`${sidecar('a-older')}${sidecar('b-newer')}${sidecar('other', undefined, 'team')}`)).toEqual(
      [
        `Error [IST0111] (Sidecar default/a-older) ${text}`,
        `Error [IST0111] (Sidecar default/b-newer) ${text}`,
      ],
    );
  });

  it('IST0110: two Sidecars select the same workload, when the workloads are known', () => {
    const yaml = `${sidecar('sel-1', '{ app: reviews }')}${sidecar('sel-2', '{ version: v1 }')}`;
    const text =
      'The Sidecars [default/sel-1 default/sel-2] in namespace "default" select the same workload pod "reviews-v1", which can lead to undefined behavior.';
    expect(lines(yaml, { workloads: [REVIEWS_V1] })).toEqual([
      `Error [IST0110] (Sidecar default/sel-1) ${text}`,
      `Error [IST0110] (Sidecar default/sel-2) ${text}`,
    ]);
    expect(lines(yaml)).toEqual([]);
  });

  it('IST0101: a workloadSelector that selects no workload', () => {
    expect(lines(sidecar('ghost', '{ app: ghost, version: v9 }'), { workloads: [REVIEWS_V1] })).toEqual([
      'Error [IST0101] (Sidecar default/ghost) Referenced selector not found: "app=ghost,version=v9"',
    ]);
  });
});

describe('Telemetry selectors: IST0159 and IST0160', () => {
  const telemetry = (name: string, selector?: string) => `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: ${name} }
spec:
${selector ? `  selector: { matchLabels: ${selector} }\n` : ''}  tracing: [{ randomSamplingPercentage: 10 }]
---`;
  it('reports namespace-wide Telemetries and two selecting one workload', () => {
    expect(lines(`${telemetry('t1')}${telemetry('t2')}`)).toEqual([
      'Error [IST0160] (Telemetry default/t1) The Telemetries [default/t1 default/t2] in namespace "default" have no workload selector, which can lead to undefined behavior.',
      'Error [IST0160] (Telemetry default/t2) The Telemetries [default/t1 default/t2] in namespace "default" have no workload selector, which can lead to undefined behavior.',
    ]);
    expect(
      lines(`${telemetry('t1', '{ app: reviews }')}${telemetry('t2', '{ app: reviews }')}`, {
        workloads: [REVIEWS_V1],
      }),
    ).toEqual([
      'Error [IST0159] (Telemetry default/t1) The Telemetries [default/t1 default/t2] in namespace "default" select the same workload pod "reviews-v1", which can lead to undefined behavior.',
      'Error [IST0159] (Telemetry default/t2) The Telemetries [default/t1 default/t2] in namespace "default" select the same workload pod "reviews-v1", which can lead to undefined behavior.',
    ]);
  });
});

describe('IST0127 NoMatchingWorkloadsFound', () => {
  const policy = (ns: string) => `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-ghost, namespace: ${ns} }
spec:
  selector: { matchLabels: { app: ghost } }
  action: DENY
  rules: [{ from: [{ source: { namespaces: [evil] } }] }]
`;
  it('an AuthorizationPolicy whose selector picks no workload', () => {
    expect(lines(policy('default'), { workloads: [REVIEWS_V1] })).toEqual([
      'Warning [IST0127] (AuthorizationPolicy default/deny-ghost) No matching workloads for this resource with the following labels: app=ghost',
    ]);
    const ghost = { name: 'ghost-1', namespace: 'team', labels: { app: 'ghost' } };
    // In the root namespace it applies mesh-wide: a workload anywhere counts.
    expect(lines(policy('istio-system'), { workloads: [ghost] })).toEqual([]);
    expect(lines(policy('default'), { workloads: [ghost] })).toHaveLength(1);
  });
});

describe('Gateways: IST0145 ConflictingGateways and IST0101 credentialName', () => {
  const gateway = (name: string, hosts: string, tls = '') => `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: ${name} }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 443, name: https, protocol: HTTPS }, hosts: ${hosts}, tls: { mode: SIMPLE, credentialName: ${tls || 'shop-cert'} } }]
---`;
  it('reports overlapping hosts on one port of the same gateway workloads, on each Gateway', () => {
    expect(
      lines(
        `${gateway('a', '["shop.example.com"]')}${gateway('b', '["*.example.com"]')}${gateway('c', '["other.io"]')}`,
      ),
    ).toEqual([
      'Error [IST0145] (Gateway default/a) Conflict with gateways default/b (workload selector istio=ingressgateway, port 443, hosts shop.example.com).',
      'Error [IST0145] (Gateway default/b) Conflict with gateways default/a (workload selector istio=ingressgateway, port 443, hosts *.example.com).',
    ]);
  });

  it('reports a credentialName no credential has, when the credentials are known', () => {
    const yaml = gateway('a', '["shop.example.com"]', 'missing-cert');
    expect(lines(yaml, { credentials: new Set(['istio-system/shop-cert']) })).toEqual([
      'Error [IST0101] (Gateway default/a) Referenced credentialName not found: "missing-cert"',
    ]);
    expect(lines(yaml, { credentials: new Set(['istio-system/missing-cert']) })).toEqual([]);
    expect(lines(yaml)).toEqual([]);
  });
});

describe('IST0128 and IST0129: TLS that verifies no server certificate', () => {
  it('reports SIMPLE TLS without caCertificates, at the destination and at a port', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ext }
spec:
  host: api.example.com
  trafficPolicy:
    tls: { mode: SIMPLE }
    portLevelSettings: [{ port: { number: 8443 }, tls: { mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: verified }
spec:
  host: other.example.com
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: /ca.pem } }
`;
    expect(lines(yaml)).toEqual([
      'Warning [IST0128] (DestinationRule default/ext) DestinationRule ext in namespace default has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: api.example.com',
      'Warning [IST0129] (DestinationRule default/ext) DestinationRule ext in namespace default has TLS mode set to MUTUAL but no caCertificates are set to validate server identity for host: api.example.com at port 8443',
    ]);
  });
});

describe('IST0134 ServiceEntryAddressesRequired', () => {
  it('reports a TCP (or unset protocol) port without addresses', () => {
    const se = (name: string, port: string, extra = '') => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name} }
spec: { hosts: [${name}.example.com], location: MESH_EXTERNAL, resolution: DNS, ports: [${port}]${extra} }
---`;
    expect(
      lines(
        `${se('db', '{ number: 5432, name: tcp, protocol: TCP }')}${se('web', '{ number: 80, name: http, protocol: HTTP }')}${se('pinned', '{ number: 5432, name: tcp }', ', addresses: [240.0.0.1]')}`,
      ),
    ).toEqual([
      'Warning [IST0134] (ServiceEntry default/db) ServiceEntry addresses are required for this protocol.',
    ]);
  });
});

describe('IST0108 UnknownAnnotation', () => {
  it('reports an istio.io annotation Istio does not define, not others', () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  annotations: { networking.istio.io/exportTo: ".", sidecar.istio.io/injekt: "true", example.com/owner: me }
spec: { host: reviews }
`;
    expect(lines(yaml)).toEqual([
      'Warning [IST0108] (DestinationRule default/reviews) Unknown annotation: sidecar.istio.io/injekt',
    ]);
  });
});
