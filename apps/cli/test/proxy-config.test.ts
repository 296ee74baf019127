import { X509Certificate } from 'node:crypto';
import { createRootCa } from '@mizzen/pki';
import { describe, expect, it } from 'vitest';
import { parseConfigKind } from '../src/commands/proxy-config.js';
import { CliError } from '../src/errors.js';
import { formatTable } from '../src/output/table.js';
import { compareConfig, formatComparison } from '../src/proxy/compare.js';
import type { ConfigDump } from '../src/proxy/config-dump.js';
import { proxyName, resolveProxy } from '../src/proxy/resolve.js';
import { clusterRows } from '../src/proxy/summary/clusters.js';
import { endpointRows } from '../src/proxy/summary/endpoints.js';
import { listenerRows } from '../src/proxy/summary/listeners.js';
import { describeDomains, routeRows } from '../src/proxy/summary/routes.js';
import { secretRows } from '../src/proxy/summary/secrets.js';
import { nackReasons, statusRow, xdsStatus } from '../src/proxy/sync-status.js';
import type { SyncEntry } from '../src/syncz.js';

const node = (pod: string, ns = 'default', type = 'sidecar') =>
  `${type}~10.0.0.1~${pod}.${ns}~${ns}.svc.cluster.local`;
const entry = (pod: string, ns = 'default', extra: Partial<SyncEntry> = {}): SyncEntry => ({
  proxy: node(pod, ns),
  proxy_type: 'sidecar',
  namespace: ns,
  workload: pod.replace(/-[a-z0-9]{5}$/, ''),
  ...extra,
});

describe('which proxy the user means', () => {
  const entries = [
    entry('productpage-v1'),
    entry('reviews-v1'),
    entry('reviews-v1', 'staging'),
    entry('ratings-v1-7xk2p'),
    {
      ...entry('istio-ingressgateway', 'istio-system'),
      proxy: node('istio-ingressgateway', 'istio-system', 'router'),
    },
  ];
  const resolve = (q: string, namespace?: string) =>
    resolveProxy(q, entries, { namespace, pilot: 'http://p' }).proxy;

  it('finds a proxy by workload or pod name, name.namespace, -n, or its node id', () => {
    expect(resolve('productpage-v1')).toBe(node('productpage-v1'));
    expect(resolve('reviews-v1.staging')).toBe(node('reviews-v1', 'staging'));
    expect(resolve('reviews-v1', 'default')).toBe(node('reviews-v1'));
    expect(resolve(node('reviews-v1', 'staging'))).toBe(node('reviews-v1', 'staging'));
    // A Kubernetes pod by its workload (the pod name has a hash) or its own name.
    expect(resolve('ratings-v1')).toBe(node('ratings-v1-7xk2p'));
    expect(resolve('ratings-v1-7xk2p.default')).toBe(node('ratings-v1-7xk2p'));
    expect(resolve('istio-ingressgateway')).toBe(node('istio-ingressgateway', 'istio-system', 'router'));
    expect(proxyName(node('reviews-v1', 'staging'))).toBe('reviews-v1.staging');
  });

  it('says in one sentence when a name is ambiguous or unknown, listing candidates', () => {
    const error = (q: string, namespace?: string) => {
      try {
        resolve(q, namespace);
      } catch (err) {
        expect(err).toBeInstanceOf(CliError);
        expect((err as CliError).exitCode).toBe(1);
        return (err as Error).message;
      }
      throw new Error(`${q} resolved`);
    };
    expect(error('reviews-v1')).toBe(
      `"reviews-v1" names 2 proxies; say which: ${node('reviews-v1')}, ${node('reviews-v1', 'staging')}`,
    );
    expect(error('reviews')).toBe(
      'proxy "reviews" not found among the proxies connected to pilot at http://p; candidates: reviews-v1.default, reviews-v1.staging',
    );
    expect(error('details-v1')).toBe(
      'proxy "details-v1" not found among the proxies connected to pilot at http://p; candidates: istio-ingressgateway.istio-system, productpage-v1.default, ratings-v1-7xk2p.default, reviews-v1.default, reviews-v1.staging',
    );
    expect(error('productpage-v1', 'prod')).toMatch(/^proxy "productpage-v1" in namespace "prod" not found/);
    expect(() => resolveProxy('x', [], {})).toThrow('proxy "x" not found: no proxy is connected');
  });

  it('knows istioctl names for each kind of config', () => {
    expect(['clusters', 'c', 'cluster'].map(parseConfigKind)).toEqual(['cluster', 'cluster', 'cluster']);
    expect(
      ['listeners', 'routes', 'endpoints', 'ep', 'secret', 'all', 'bootstrap'].map(parseConfigKind),
    ).toEqual(['listener', 'route', 'endpoint', 'endpoint', 'secret', 'all', 'bootstrap']);
    expect(() => parseConfigKind('pods')).toThrow(/unknown config type "pods"/);
  });
});

describe("istioctl's proxy-config tables", () => {
  const istio = (config?: string) => ({
    filter_metadata: { istio: { ...(config ? { config } : {}), services: [] } },
  });
  const DR = '/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews';

  it('clusters: FQDN, port, subset, direction, type and the DestinationRule, with filters', () => {
    const clusters = [
      { name: 'outbound|9080|v1|reviews.default.svc.cluster.local', type: 'EDS', metadata: istio(DR) },
      { name: 'outbound|9080||reviews.default.svc.cluster.local', type: 'EDS', metadata: istio(DR) },
      { name: 'outbound|9080||ratings.default.svc.cluster.local', type: 'EDS', metadata: istio() },
      { name: 'inbound|9080||', type: 'STATIC' },
      { name: 'PassthroughCluster', type: 'ORIGINAL_DST' },
      { name: 'BlackHoleCluster' },
    ];
    const table = formatTable(
      ['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'DESTINATION RULE'],
      clusterRows(clusters),
      { empty: '' },
    );
    expect(table).toBe(
      [
        'SERVICE FQDN                        PORT   SUBSET   DIRECTION   TYPE           DESTINATION RULE',
        '                                    9080   -        inbound     STATIC',
        'BlackHoleCluster                    -      -        -           STATIC',
        'PassthroughCluster                  -      -        -           ORIGINAL_DST',
        'ratings.default.svc.cluster.local   9080   -        outbound    EDS',
        'reviews.default.svc.cluster.local   9080   -        outbound    EDS            reviews.default',
        'reviews.default.svc.cluster.local   9080   v1       outbound    EDS            reviews.default',
      ].join('\n'),
    );
    expect(clusterRows(clusters, { fqdn: 'reviews', subset: 'v1' }).map((r) => r[2])).toEqual(['v1']);
    expect(clusterRows(clusters, { direction: 'INBOUND' }).map((r) => r[3])).toEqual(['inbound']);
    expect(clusterRows(clusters, { port: 9080 })).toHaveLength(4);
  });

  it('listeners: one row per filter chain, with its match and destination; Unix sockets by path', () => {
    const hcm = (rds: string) => ({
      name: 'envoy.filters.network.http_connection_manager',
      typed_config: { rds: { route_config_name: rds } },
    });
    const tcp = (cluster: string) => ({ name: 'envoy.filters.network.tcp_proxy', typed_config: { cluster } });
    const listeners = [
      {
        name: 'virtualInbound',
        address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
        filter_chains: [
          {
            filter_chain_match: {
              transport_protocol: 'tls',
              application_protocols: ['istio-http/1.1'],
              destination_port: 9080,
            },
            filters: [
              {
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: {
                  route_config: {
                    virtual_hosts: [
                      {
                        domains: ['*'],
                        routes: [{ match: { prefix: '/' }, route: { cluster: 'inbound|9080||' } }],
                      },
                    ],
                  },
                },
              },
            ],
          },
          {
            filter_chain_match: {
              prefix_ranges: [{ address_prefix: '10.0.0.0', prefix_len: 24 }],
              destination_port: 5432,
            },
            filters: [tcp('outbound|5432||db.default.svc.cluster.local')],
          },
          {
            filter_chain_match: { server_names: ['a.example.com', 'b.example.com'] },
            filters: [tcp('BlackHoleCluster')],
          },
        ],
        default_filter_chain: { filters: [tcp('InboundPassthroughCluster')] },
      },
      {
        name: '0.0.0.0_9080',
        address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
        filter_chains: [{ filters: [hcm('9080')] }],
      },
      {
        name: 'uds',
        address: { pipe: { path: '/var/run/app.sock' } },
        filter_chains: [{ filters: [{ name: 'istio.stats' }] }],
      },
    ];
    expect(listenerRows(listeners)).toEqual([
      ['/var/run/app.sock', '-', 'ALL', 'Non-HTTP/Non-TCP'],
      ['0.0.0.0', '9080', 'ALL', 'Route: 9080'],
      ['0.0.0.0', '15006', 'Trans: tls; App: istio-http/1.1; Addr: *:9080', 'Cluster: inbound|9080||'],
      ['0.0.0.0', '15006', 'Addr: 10.0.0.0/24:5432', 'Cluster: outbound|5432||db.default.svc.cluster.local'],
      ['0.0.0.0', '15006', 'SNI: a.example.com,b.example.com', 'BlackHoleCluster'],
      ['0.0.0.0', '15006', 'ALL', 'InboundPassthroughCluster'],
    ]);
    expect(listenerRows(listeners, { type: 'http+tcp' }).map((r) => r[1])).toEqual([
      '15006',
      '15006',
      '15006',
      '15006',
    ]);
    expect(listenerRows(listeners, { type: 'HTTP', port: 9080 })).toHaveLength(1);
    expect(listenerRows(listeners, { address: '/var/run/app.sock' })).toHaveLength(1);
  });

  it('routes: domains summed up, the match, and the VirtualService behind each route', () => {
    expect(
      describeDomains([
        'reviews.default.svc.cluster.local',
        'reviews.default.svc.cluster.local:9080',
        'reviews',
        'reviews:9080',
        'reviews.default.svc',
        'reviews.default',
        '10.96.0.7',
      ]),
    ).toBe('reviews, reviews.default + 1 more...');
    const vs = {
      filter_metadata: {
        istio: { config: '/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews' },
      },
    };
    const rows = routeRows(
      [
        {
          name: '9080',
          virtual_hosts: [
            {
              name: 'reviews.default.svc.cluster.local:9080',
              domains: ['reviews.default.svc.cluster.local', 'reviews'],
              routes: [
                {
                  match: { prefix: '/', headers: [{ name: 'end-user' }] },
                  metadata: vs,
                  route: { cluster: 'x' },
                },
                { match: { path: '/exact' }, metadata: vs, route: { cluster: 'x' } },
                { match: { safe_regex: { regex: '^/v[0-9]' } }, route: { cluster: 'x' } },
              ],
            },
            {
              name: 'allow_any',
              domains: ['*'],
              routes: [{ match: { prefix: '/' }, route: { cluster: 'PassthroughCluster' } }],
            },
            { name: 'empty', domains: ['*'], routes: [] },
          ],
        },
        {
          name: 'other',
          virtual_hosts: [{ name: 'o', domains: ['o'], routes: [{ match: { prefix: '/' } }] }],
        },
      ],
      { name: '9080' },
    );
    expect(rows).toEqual([
      [
        '9080',
        'reviews.default.svc.cluster.local:9080',
        'reviews.default.svc.cluster.local, reviews',
        '/*',
        'reviews.default',
      ],
      [
        '9080',
        'reviews.default.svc.cluster.local:9080',
        'reviews.default.svc.cluster.local, reviews',
        '/exact',
        'reviews.default',
      ],
      [
        '9080',
        'reviews.default.svc.cluster.local:9080',
        'reviews.default.svc.cluster.local, reviews',
        'regex ^/v[0-9]',
        '',
      ],
      ['9080', 'empty', '*', '/*', '404'],
    ]);
  });

  it('endpoints: health and outlier state per cluster, with filters', () => {
    const statuses = {
      cluster_statuses: [
        {
          name: 'outbound|9080||reviews.default.svc.cluster.local',
          host_statuses: [
            {
              address: { socket_address: { address: '10.0.0.7', port_value: 9080 } },
              health_status: { eds_health_status: 'HEALTHY', failed_outlier_check: true },
            },
            {
              address: { socket_address: { address: '10.0.0.6', port_value: 9080 } },
              health_status: { eds_health_status: 'HEALTHY' },
            },
            {
              address: { socket_address: { address: '10.0.0.8', port_value: 9080 } },
              health_status: { eds_health_status: 'UNHEALTHY' },
            },
          ],
        },
        {
          name: 'outbound|80||app.sock',
          host_statuses: [
            { address: { pipe: { path: '/tmp/app.sock' } }, health_status: { eds_health_status: 'HEALTHY' } },
          ],
        },
      ],
    };
    expect(formatTable(['ENDPOINT', 'STATUS', 'OUTLIER CHECK', 'CLUSTER'], endpointRows(statuses))).toBe(
      [
        'ENDPOINT               STATUS      OUTLIER CHECK   CLUSTER',
        '10.0.0.6:9080          HEALTHY     OK              outbound|9080||reviews.default.svc.cluster.local',
        '10.0.0.7:9080          HEALTHY     FAILED          outbound|9080||reviews.default.svc.cluster.local',
        '10.0.0.8:9080          UNHEALTHY   OK              outbound|9080||reviews.default.svc.cluster.local',
        'unix:///tmp/app.sock   HEALTHY     OK              outbound|80||app.sock',
      ].join('\n'),
    );
    expect(endpointRows(statuses, { status: 'unhealthy' }).map((r) => r[0])).toEqual(['10.0.0.8:9080']);
    expect(endpointRows(statuses, { address: '10.0.0.7', port: 9080 }).map((r) => r[2])).toEqual(['FAILED']);
    expect(endpointRows(statuses, { cluster: 'outbound|80||app.sock' })).toHaveLength(1);
  });

  it('secrets: type, status, validity, serial and dates of the certificate each holds', async () => {
    const ca = await createRootCa();
    const cert = new X509Certificate(ca.certificate);
    const b64 = Buffer.from(ca.certificate).toString('base64');
    const rows = secretRows({
      dynamic_active_secrets: [
        {
          name: 'default',
          secret: { name: 'default', tls_certificate: { certificate_chain: { inline_bytes: b64 } } },
        },
        {
          name: 'ROOTCA',
          secret: { name: 'ROOTCA', validation_context: { trusted_ca: { inline_bytes: b64 } } },
        },
      ],
      dynamic_warming_secrets: [{ name: 'kubernetes://missing' }],
    });
    const serial = cert.serialNumber.toLowerCase().replace(/^0+/, '');
    const notAfter = new Date(cert.validTo).toISOString().replace('.000Z', 'Z');
    const notBefore = new Date(cert.validFrom).toISOString().replace('.000Z', 'Z');
    expect(rows).toEqual([
      ['default', 'Cert Chain', 'ACTIVE', 'true', serial, notAfter, notBefore],
      ['ROOTCA', 'CA', 'ACTIVE', 'true', serial, notAfter, notBefore],
      ['kubernetes://missing', '-', 'WARMING', 'false', '-', '-', '-'],
    ]);
    const later = Date.parse(cert.validTo) + 1000;
    expect(
      secretRows(
        {
          dynamic_active_secrets: [
            { name: 'default', secret: { tls_certificate: { certificate_chain: { inline_bytes: b64 } } } },
          ],
        },
        later,
      )[0]![3],
    ).toBe('false');
  });
});

describe("istioctl's proxy-status", () => {
  const types = (
    lds: Partial<{ state: string; sentVersion: string; ackedVersion: string; error: string }>,
  ) => [
    { type: 'CDS', state: 'ACKED', sentVersion: 'a', ackedVersion: 'a' },
    { type: 'LDS', state: 'ACKED', sentVersion: 'b', ackedVersion: 'b', ...lds },
    { type: 'EDS', state: 'SENT', sentVersion: 'c', ackedVersion: 'z' },
  ];

  it('words each type as SYNCED, STALE, NOT SENT or NACKED and gives the reason for a NACK', () => {
    const ok = entry('reviews-v1', 'default', {
      cluster_id: 'Kubernetes',
      istiod: 'pilot-host',
      proxy_version: '0.1.0',
      types: types({}),
    });
    expect(statusRow(ok)).toEqual([
      'reviews-v1.default',
      'Kubernetes',
      'SYNCED',
      'SYNCED',
      'STALE',
      'NOT SENT',
      'NOT SENT',
      'pilot-host',
      '0.1.0',
    ]);
    const nacked = entry('gw', 'istio-system', {
      types: types({ state: 'NACKED', sentVersion: 'c', error: 'listen EADDRINUSE 0.0.0.0:80' }),
      errors: { LDS: 'listen EADDRINUSE 0.0.0.0:80' },
    });
    expect(statusRow(nacked).slice(2, 4)).toEqual(['SYNCED', 'NACKED']);
    expect(nackReasons([ok, nacked])).toEqual(['gw.istio-system LDS NACKED: listen EADDRINUSE 0.0.0.0:80']);
    expect(xdsStatus({ type: 'RDS', state: 'SENT', sentVersion: 'x' })).toBe('STALE (Never Acknowledged)');
    expect(xdsStatus(undefined, 'ACKED')).toBe('SYNCED');
  });

  it("compares pilot's config with the proxy's whatever the key order, and shows a diff when they differ", () => {
    const proxy = (lbPolicy: string): ConfigDump => ({
      configs: [
        {
          '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
          dynamic_active_clusters: [
            {
              cluster: {
                '@type': 'x',
                name: 'c',
                lb_policy: lbPolicy,
                outlier_detection: { consecutive_5xx: 2 },
              },
            },
          ],
        },
        {
          '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
          dynamic_route_configs: [{ route_config: { name: '80' }, last_updated: '2026-01-02T03:04:05.000Z' }],
        },
      ],
    });
    const pilot = {
      CDS: {
        resources: [{ outlier_detection: { consecutive_5xx: 2 }, lb_policy: 'ROUND_ROBIN', name: 'c' }],
      },
      LDS: { resources: [] },
      RDS: { resources: [{ name: '80' }] },
    };
    const same = proxy('ROUND_ROBIN');
    expect(formatComparison(compareConfig(pilot, same), same)).toBe(
      'Clusters Match\nListeners Match\nRoutes Match (RDS last loaded at Fri, 02 Jan 2026 03:04:05 GMT)\n',
    );
    const other = proxy('LEAST_REQUEST');
    const out = formatComparison(compareConfig(pilot, other), other);
    expect(out).toContain('--- Pilot Clusters\n+++ Proxy Clusters\n@@ ');
    expect(out).toContain('-    "lb_policy": "ROUND_ROBIN",\n+    "lb_policy": "LEAST_REQUEST",');
    expect(out).toContain('Listeners Match\n');
  });
});
