import { parseConfig } from '@mizzen/api';
import { compileCluster, compileListener } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests walk Envoy JSON by path, as a reader of config_dump would
type Json = any;

const ROOT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

/** reviews (two sidecar workloads) and a plain external API, as a local mesh registers them. */
const MESH = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: default }
spec:
  address: 127.0.0.1
  ports: { http: 41001 }
  labels: { app: reviews, version: v1, security.istio.io/tlsMode: istio }
  serviceAccount: bookinfo-reviews
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-legacy, namespace: default }
spec:
  address: 127.0.0.1
  ports: { http: 41002 }
  labels: { app: reviews, version: legacy }
  serviceAccount: legacy
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: api, namespace: default }
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{ number: 443, name: https, protocol: TLS }]
`;

const SIDECAR: XdsNode = {
  id: 'sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local',
  metadata: {
    NAMESPACE: 'default',
    LABELS: { app: 'reviews', version: 'v1' },
    SERVICE_ACCOUNT: 'bookinfo-reviews',
    INSTANCE_IPS: '127.0.0.1',
    MIZZEN_CAPTURE_MODE: 'proxy',
    MIZZEN_SERVICE: 'reviews',
    MIZZEN_OUTBOUND_PORT: 15001,
    MIZZEN_WORKLOAD_CERTS: true,
    MIZZEN_PORTS: [
      { name: 'http', port: 9080, targetPort: 19080, protocol: 'HTTP', listenPort: 15006 },
      { name: 'metrics', port: 9090, targetPort: 19090, protocol: 'HTTP', listenPort: 15007 },
    ],
  },
};

function resourcesFor(extraYaml = '', node: XdsNode = SIDECAR, rootCert: string | null = ROOT) {
  const parsed = parseConfig(`${MESH}\n---\n${extraYaml}`, 'mesh.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  const push = new PushContext(
    1,
    parsed.resources,
    buildRegistry(parsed.resources),
    DEFAULT_MESH_CONFIG,
    rootCert ?? undefined,
  );
  const resources = generateResources(push, proxyFromNode(node));
  expect(() => Snapshot.build(resources)).not.toThrow();
  return resources;
}

function inbound(resources: ReturnType<typeof resourcesFor>, port: number): Json {
  const listener = (resources[TypeUrl.Listener] as Json[]).find(
    (l) => l.traffic_direction === 'INBOUND' && l.address.socket_address.port_value === port,
  );
  expect(listener, `inbound listener on ${port}`).toBeDefined();
  return listener as Json;
}

function cluster(resources: ReturnType<typeof resourcesFor>, name: string): Json {
  const c = (resources[TypeUrl.Cluster] as Json[]).find((x) => x.name === name);
  expect(c, `cluster ${name}`).toBeDefined();
  return c as Json;
}

const tlsChains = (l: Json) => l.filter_chains.filter((c: Json) => c.transport_socket);
const plainChains = (l: Json) => l.filter_chains.filter((c: Json) => !c.transport_socket);

describe('mutual TLS translation (PeerAuthentication and DestinationRule tls)', () => {
  it('PERMISSIVE by default: TLS and plaintext chains told apart by the TLS inspector', () => {
    const l = inbound(resourcesFor(), 15006);
    expect(l.listener_filters.map((f: Json) => f.name)).toContain('envoy.filters.listener.tls_inspector');
    const [tls] = tlsChains(l);
    expect(tls.filter_chain_match.transport_protocol).toBe('tls');
    const ctx = tls.transport_socket.typed_config;
    expect(ctx.require_client_certificate).toBe(true);
    expect(ctx.common_tls_context.tls_certificate_sds_secret_configs[0].name).toBe('default');
    expect(ctx.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name).toBe(
      'ROOTCA',
    );
    expect(plainChains(l)[0].filter_chain_match.transport_protocol).toBe('raw_buffer');
  });

  it('STRICT mesh-wide in the root namespace leaves only the mTLS chain', () => {
    const l = inbound(
      resourcesFor(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
`),
      15006,
    );
    expect(tlsChains(l)).toHaveLength(1);
    expect(plainChains(l)).toHaveLength(0);
  });

  it('a workload policy beats the namespace one, and portLevelMtls beats both (by target port)', () => {
    const resources = resourcesFor(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec: { mtls: { mode: DISABLE } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: reviews, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  mtls: { mode: STRICT }
  portLevelMtls: { "19090": { mode: DISABLE } }
`);
    const app = inbound(resources, 15006);
    expect(tlsChains(app)).toHaveLength(1);
    expect(plainChains(app)).toHaveLength(0);
    const metrics = inbound(resources, 15007);
    expect(tlsChains(metrics)).toHaveLength(0);
    expect(metrics.listener_filters ?? []).not.toContainEqual(
      expect.objectContaining({ name: 'envoy.filters.listener.tls_inspector' }),
    );
  });

  it('auto mTLS: only endpoints labelled tlsMode=istio get mesh TLS, verified against the service accounts', () => {
    const c = cluster(resourcesFor(), 'outbound|9080||reviews.default.svc.cluster.local');
    expect(c.transport_socket).toBeUndefined();
    const [istio, plain] = c.transport_socket_matches;
    expect(istio.match).toEqual({ tlsMode: 'istio' });
    const ctx = istio.transport_socket.typed_config;
    expect(ctx.sni).toBe('outbound_.9080_._.reviews.default.svc.cluster.local');
    expect(
      ctx.common_tls_context.combined_validation_context.default_validation_context.match_subject_alt_names,
    ).toEqual([
      { exact: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews' },
      { exact: 'spiffe://cluster.local/ns/default/sa/legacy' },
    ]);
    expect(plain.transport_socket.name).toBe('envoy.transport_sockets.raw_buffer');
    // Endpoints carry the label the matcher reads.
    const cla = (resourcesFor()[TypeUrl.ClusterLoadAssignment] as Json[]).find(
      (e) => e.cluster_name === 'outbound|9080||reviews.default.svc.cluster.local',
    );
    const metas = cla?.endpoints
      .flatMap((g: Json) => g.lb_endpoints)
      .map((e: Json) => e.metadata?.filter_metadata?.['envoy.transport_socket_match']?.tlsMode ?? null);
    expect(metas?.sort()).toEqual(['istio', null]);
  });

  it('ISTIO_MUTUAL to endpoints with no known service account accepts any SPIFFE id of the trust domain', () => {
    const resources = resourcesFor(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: legacy-api, namespace: default }
spec:
  hosts: [legacy-api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: 41003 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: legacy-api, namespace: default }
spec:
  host: legacy-api.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
`);
    const ctx = cluster(resources, 'outbound|8080||legacy-api.default.svc.cluster.local').transport_socket
      .typed_config;
    expect(ctx.common_tls_context.combined_validation_context.default_validation_context).toEqual({
      match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://cluster.local/' } }],
    });
    expect(ctx.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name).toBe(
      'ROOTCA',
    );
  });

  it('no mesh TLS towards MESH_EXTERNAL services', () => {
    const c = cluster(resourcesFor(), 'outbound|443||api.example.com');
    expect(c.transport_socket).toBeUndefined();
    expect(c.transport_socket_matches).toBeUndefined();
  });

  it('DestinationRule tls: DISABLE turns auto mTLS off, ISTIO_MUTUAL forces it, SIMPLE originates TLS', () => {
    const resources = resourcesFor(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
  subsets:
    - { name: legacy, labels: { version: legacy }, trafficPolicy: { tls: { mode: DISABLE } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: default }
spec:
  host: api.example.com
  trafficPolicy: { tls: { mode: SIMPLE, sni: api.example.com, caCertificates: /etc/ssl/api-ca.pem } }
`);
    const forced = cluster(resources, 'outbound|9080||reviews.default.svc.cluster.local');
    expect(
      forced.transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name,
    ).toBe('default');
    const legacy = cluster(resources, 'outbound|9080|legacy|reviews.default.svc.cluster.local');
    expect(legacy.transport_socket).toBeUndefined();
    expect(legacy.transport_socket_matches).toBeUndefined();
    const api = cluster(resources, 'outbound|443||api.example.com').transport_socket.typed_config;
    expect(api.sni).toBe('api.example.com');
    expect(api.common_tls_context.validation_context.trusted_ca).toEqual({ filename: '/etc/ssl/api-ca.pem' });
    expect(api.common_tls_context.tls_certificate_sds_secret_configs).toBeUndefined();
  });

  it('sends the mesh roots as the ROOTCA secret', () => {
    const secrets = resourcesFor()[TypeUrl.Secret] as Json[];
    expect(secrets).toEqual([
      { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: ROOT } } },
    ]);
  });

  it('a proxy without a workload certificate, or pilot without roots, stays plaintext', () => {
    const { MIZZEN_WORKLOAD_CERTS: _certs, ...metadata } = SIDECAR.metadata as Record<string, unknown>;
    for (const resources of [resourcesFor('', { ...SIDECAR, metadata }), resourcesFor('', SIDECAR, null)]) {
      const l = inbound(resources, 15006);
      expect(tlsChains(l)).toHaveLength(0);
      const c = cluster(resources, 'outbound|9080||reviews.default.svc.cluster.local');
      expect(c.transport_socket_matches).toBeUndefined();
      expect(resources[TypeUrl.Secret]).toEqual([]);
    }
  });
});

/** A TCP service with a sidecar, and a sidecar serving a TCP port beside its HTTP one. */
const TCP_MESH = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-echo, namespace: default }
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9000, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: tcp-echo } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: tcp-echo-v1, namespace: default }
spec:
  address: 127.0.0.1
  ports: { tcp: 41009 }
  labels: { app: tcp-echo, version: v1, security.istio.io/tlsMode: istio }
  serviceAccount: tcp-echo
`;

const TCP_SERVER: XdsNode = {
  ...SIDECAR,
  metadata: {
    ...SIDECAR.metadata,
    MIZZEN_PORTS: [
      { name: 'http', port: 9080, targetPort: 19080, protocol: 'HTTP', listenPort: 15006 },
      { name: 'tcp', port: 9000, targetPort: 19000, protocol: 'TCP', listenPort: 15008 },
    ],
  },
};

const MX_FILTER = {
  name: 'istio.metadata_exchange',
  typed_config: {
    '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
    type_url: 'type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange',
    value: { protocol: 'istio-peer-exchange', enable_discovery: true },
  },
};

describe("Istio's TCP metadata exchange (istio-peer-exchange)", () => {
  it('clusters that carry TCP to sidecars offer istio-peer-exchange and carry the exchange filter; HTTP ones do not', () => {
    const resources = resourcesFor(TCP_MESH);
    const tcp = cluster(resources, 'outbound|9000||tcp-echo.default.svc.cluster.local');
    expect(tcp.filters).toEqual([MX_FILTER]);
    const [istio, plain] = tcp.transport_socket_matches;
    expect(istio.transport_socket.typed_config.common_tls_context.alpn_protocols).toEqual([
      'istio-peer-exchange',
      'istio',
    ]);
    expect(plain.transport_socket.name).toBe('envoy.transport_sockets.raw_buffer');
    const http = cluster(resources, 'outbound|9080||reviews.default.svc.cluster.local');
    expect(http.filters).toBeUndefined();
    expect(
      http.transport_socket_matches[0].transport_socket.typed_config.common_tls_context.alpn_protocols,
    ).toBeUndefined();
  });

  it('DestinationRule ISTIO_MUTUAL to a TCP port offers it too; SIMPLE TLS and DISABLE do not', () => {
    const rules = (mode: string) => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tcp-echo, namespace: default }
spec:
  host: tcp-echo.default.svc.cluster.local
  trafficPolicy: { tls: { mode: ${mode} } }
`;
    const mutual = cluster(
      resourcesFor(`${TCP_MESH}---\n${rules('ISTIO_MUTUAL')}`),
      'outbound|9000||tcp-echo.default.svc.cluster.local',
    );
    expect(mutual.transport_socket.typed_config.common_tls_context.alpn_protocols).toEqual([
      'istio-peer-exchange',
      'istio',
    ]);
    expect(mutual.filters).toEqual([MX_FILTER]);
    for (const mode of ['SIMPLE', 'DISABLE']) {
      const c = cluster(
        resourcesFor(`${TCP_MESH}---\n${rules(mode)}`),
        'outbound|9000||tcp-echo.default.svc.cluster.local',
      );
      expect(c.filters, mode).toBeUndefined();
      expect(c.transport_socket?.typed_config.common_tls_context.alpn_protocols, mode).toBeUndefined();
    }
  });

  it("a sidecar's inbound TCP chains start with the exchange filter, and their mTLS accepts its ALPN", () => {
    const resources = resourcesFor(TCP_MESH, TCP_SERVER);
    const l = inbound(resources, 15008);
    for (const chain of l.filter_chains)
      expect(chain.filters.map((f: Json) => f.name)).toEqual([
        'istio.metadata_exchange',
        'istio.stats',
        'envoy.filters.network.tcp_proxy',
      ]);
    expect(l.filter_chains[0].filters[0]).toEqual(MX_FILTER);
    const [tls] = tlsChains(l);
    expect(tls.transport_socket.typed_config.common_tls_context.alpn_protocols).toEqual([
      'istio-peer-exchange',
      'h2',
      'http/1.1',
    ]);
    // HTTP chains neither exchange nor offer it: HTTP carries the peers' metadata in headers.
    const [httpTls] = tlsChains(inbound(resources, 15006));
    expect(httpTls.transport_socket.typed_config.common_tls_context.alpn_protocols).toEqual([
      'h2',
      'http/1.1',
    ]);
    expect(httpTls.filters.map((f: Json) => f.name)).toEqual([
      'envoy.filters.network.http_connection_manager',
    ]);
    // The proxy takes it all: its TCP chains know the exchange's ALPN, its clusters offer it.
    const compiled = compileListener(l);
    for (const chain of compiled.chains)
      expect(chain.filter.kind === 'tcp' && chain.filter.peerExchange).toEqual({
        protocol: 'istio-peer-exchange',
      });
    const tcp = compileCluster(cluster(resources, 'outbound|9000||tcp-echo.default.svc.cluster.local'));
    expect(tcp.transportMatches[0]?.tls?.alpn).toEqual(['istio-peer-exchange', 'istio']);
  });
});
