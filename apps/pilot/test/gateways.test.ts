import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Secret } from '@kubernetes/client-node';
import { parseConfig } from '@mizzen/api';
import { createCrl, createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { compileListener } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import type { CredentialSource, TlsCredential } from '../src/credentials/source.js';
import { CredentialStore } from '../src/kube/credentials.js';
import { parseMeshConfig } from '../src/kube/mesh-config.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { gatewayNotices } from '../src/networking/gateway.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
type Json = Record<string, unknown>;

/** Credentials by `namespace/name`, as a store would hand them out (PEM stand-ins keep the golden file stable). */
function credentials(entries: Record<string, TlsCredential>): CredentialSource {
  return {
    resolve: (namespace, name) => {
      const c = entries[`${namespace}/${name}`];
      return c
        ? { credential: c }
        : { problem: `credential ${namespace}/${name} not found in the test store` };
    },
    onChange: () => () => {},
  };
}

const STORE = credentials({
  'istio-system/bookinfo-cred': { certificateChain: 'BOOKINFO-CERT', privateKey: 'BOOKINFO-KEY' },
  'istio-system/api-cred': {
    certificateChain: 'API-CERT',
    privateKey: 'API-KEY',
    caCertificate: 'API-CLIENT-CA',
  },
  'istio-system/client-cred': {
    certificateChain: 'CLIENT-CERT',
    privateKey: 'CLIENT-KEY',
    caCertificate: 'EXT-CA',
  },
  // In another namespace: gateways never see it.
  'default/no-such-cred': { certificateChain: 'X', privateKey: 'Y' },
});

function push(mesh = DEFAULT_MESH_CONFIG): PushContext {
  const text = fs.readFileSync(path.join(here, 'fixtures', 'gateway-mesh.yaml'), 'utf8');
  const parsed = parseConfig(text, 'gateway-mesh.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), mesh, undefined, STORE);
}

const INGRESS: XdsNode = {
  id: 'router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local',
  metadata: {
    NAMESPACE: 'istio-system',
    LABELS: { istio: 'ingressgateway' },
    INSTANCE_IPS: '127.0.0.1',
    MIZZEN_CAPTURE_MODE: 'proxy',
    MIZZEN_GATEWAY_PORTS: { '80': 8080, '443': 8443, '9000': 9000, '15443': 15443 },
    // The proxy.istio.io/config annotation: one balancer in front, speaking PROXY protocol.
    PROXY_CONFIG: { gatewayTopology: { numTrustedProxies: 1, proxyProtocol: {} } },
  },
};

const EGRESS: XdsNode = {
  id: 'router~127.0.0.1~istio-egressgateway.istio-system~istio-system.svc.cluster.local',
  metadata: {
    NAMESPACE: 'istio-system',
    LABELS: { istio: 'egressgateway' },
    INSTANCE_IPS: '127.0.0.1',
    MIZZEN_CAPTURE_MODE: 'proxy',
    MIZZEN_GATEWAY_PORTS: { '80': 8080, '443': 8443 },
  },
};

const SIDECAR: XdsNode = {
  id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
  metadata: {
    NAMESPACE: 'default',
    LABELS: { app: 'productpage' },
    INSTANCE_IPS: '127.0.0.1',
    MIZZEN_CAPTURE_MODE: 'proxy',
    MIZZEN_OUTBOUND_PORT: 15001,
  },
};

function golden(name: string, resources: unknown): void {
  const file = path.join(here, 'golden', `${name}.json`);
  const actual = `${JSON.stringify(resources, null, 2)}\n`;
  if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
  expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
  expect(actual).toBe(fs.readFileSync(file, 'utf8'));
}

const listener = (set: Record<string, Json[]>, name: string) =>
  set[TypeUrl.Listener]!.find((l) => l.name === name) as Json & { filter_chains: Json[] };
const chainNames = (l: { filter_chains: Json[] }) =>
  l.filter_chains.map((c) => ((c.filter_chain_match as Json | undefined)?.server_names as string[]) ?? []);

describe('gateway translation (golden files and the rules behind them)', () => {
  it('builds the ingress gateway: SNI-picked TLS chains, redirect, passthrough, TCP, PROXY protocol', () => {
    const resources = generateResources(push(), proxyFromNode(INGRESS)) as Record<string, Json[]>;
    expect(() => Snapshot.build(resources)).not.toThrow();
    golden('gateway-tls', resources);

    // 443 → 8443: one chain per opened server, picked by SNI; the missing credential's and the conflicting one are not there.
    const https = listener(resources, '0.0.0.0_8443');
    expect(chainNames(https)).toEqual([['bookinfo.local'], ['api.local'], ['opt.local'], ['db.local']]);
    expect((https.listener_filters as Json[]).map((f) => f.name)).toEqual([
      'envoy.filters.listener.proxy_protocol',
      'envoy.filters.listener.tls_inspector',
    ]);
    const notices = (https.metadata as { filter_metadata: Record<string, { notices: string[] }> })
      .filter_metadata['mizzen.io/gateway']!.notices;
    expect(notices).toEqual([
      'Gateway default/bookinfo-gw server https-missing (port 443) not opened: credential istio-system/no-such-cred not found in the test store',
      'Gateway default/other-gw server https (port 443) not opened: conflicts with Gateway default/bookinfo-gw server https-bookinfo on port 443 for bookinfo.local (IST0145 ConflictingGateways)',
    ]);

    // MUTUAL: client certificate required and checked against the credential's CA; TLS 1.2 with one cipher.
    const api = (https.filter_chains[1]!.transport_socket as { typed_config: Json }).typed_config;
    expect(api.require_client_certificate).toBe(true);
    expect(api.common_tls_context).toMatchObject({
      tls_certificate_sds_secret_configs: [{ name: 'kubernetes://api-cred' }],
      combined_validation_context: {
        default_validation_context: { match_subject_alt_names: [{ exact: 'client.api.local' }] },
        validation_context_sds_secret_config: { name: 'kubernetes://api-cred-cacert' },
      },
      tls_params: {
        tls_minimum_protocol_version: 'TLSv1_2',
        tls_maximum_protocol_version: 'TLSv1_2',
        cipher_suites: ['ECDHE-ECDSA-AES256-GCM-SHA384'],
      },
    });
    // OPTIONAL_MUTUAL: verified when presented, not required.
    const opt = (https.filter_chains[2]!.transport_socket as { typed_config: Json }).typed_config;
    expect(opt.require_client_certificate).toBe(false);

    // The certificates travel over SDS: those the opened servers (and the clusters' TLS origination) name,
    // from the gateway's own namespace; never the missing server's.
    expect(resources[TypeUrl.Secret]!.map((s) => s.name)).toEqual([
      'kubernetes://api-cred',
      'kubernetes://api-cred-cacert',
      'kubernetes://bookinfo-cred',
      'kubernetes://client-cred',
      'kubernetes://client-cred-cacert',
    ]);

    // httpsRedirect on port 80 (8080 here): a redirect to the port HTTPS really listens on.
    const http = resources[TypeUrl.RouteConfiguration]!.find((r) => r.name === 'http.8080') as {
      virtual_hosts: { domains: string[]; routes: Json[] }[];
    };
    expect(http.virtual_hosts.map((v) => v.domains[0])).toEqual(['bookinfo.local']);
    expect(http.virtual_hosts[0]!.routes).toEqual([
      {
        name: 'https_redirect',
        match: { prefix: '/' },
        redirect: { https_redirect: true, port_redirect: 8443 },
      },
    ]);

    // The HCMs trust one proxy in front.
    const hcm = (https.filter_chains[0]!.filters as { typed_config: Json }[])[0]!.typed_config;
    expect(hcm).toMatchObject({
      use_remote_address: true,
      xff_num_trusted_hops: 1,
      request_headers_timeout: '10s',
    });

    // ISTIO_MUTUAL without a workload certificate: the port stays closed, and says why.
    const mesh = listener(resources, '0.0.0.0_15443');
    expect(mesh.bind_to_port).toBe(false);
  });

  it('names every server left closed or overlapping, for mizzen status', () => {
    expect(gatewayNotices(push(), proxyFromNode(INGRESS))).toEqual([
      'Gateway default/bookinfo-gw server https-missing (port 443) not opened: credential istio-system/no-such-cred not found in the test store',
      'Gateway default/bookinfo-gw server tls-mesh (port 15443) not opened: tls mode ISTIO_MUTUAL needs the gateway’s workload certificate (start it with --ca-address) and the mesh root',
      'Gateway default/other-gw server https (port 443) not opened: conflicts with Gateway default/bookinfo-gw server https-bookinfo on port 443 for bookinfo.local (IST0145 ConflictingGateways)',
      'Gateway default/other-gw server http (port 80) overlaps Gateway default/bookinfo-gw server http on port 80 for host *.local; their routes are merged (IST0145 ConflictingGateways)',
    ]);
  });

  it('honours VirtualService exportTo relative to the gateway’s namespace', () => {
    const resources = generateResources(push(), proxyFromNode(INGRESS)) as Record<string, Json[]>;
    const text = JSON.stringify(resources[TypeUrl.RouteConfiguration]);
    expect(text).toContain('virtual-service/bookinfo');
    expect(text).not.toContain('virtual-service/hidden');
  });

  it('takes gatewayTopology from mesh config when the gateway sets none', () => {
    const mesh = parseMeshConfig(
      'defaultConfig:\n  gatewayTopology:\n    numTrustedProxies: 2\n    forwardClientCertDetails: APPEND_FORWARD\n',
      DEFAULT_MESH_CONFIG,
    );
    const resources = generateResources(push(mesh), proxyFromNode(EGRESS)) as Record<string, Json[]>;
    const hcm = (
      listener(resources, '0.0.0.0_8080').filter_chains[0]!.filters as { typed_config: Json }[]
    )[0]!.typed_config;
    expect(hcm).toMatchObject({ xff_num_trusted_hops: 2, forward_client_cert_details: 'APPEND_FORWARD' });
    expect(() =>
      parseMeshConfig('defaultConfig:\n  gatewayTopology:\n    numTrustedProxies: -1\n', DEFAULT_MESH_CONFIG),
    ).toThrow(
      'mesh config: defaultConfig.gatewayTopology.numTrustedProxies must be a non-negative integer, got -1',
    );
  });

  it('builds the egress gateway: HTTP to TLS origination with a credential, and SNI passthrough', () => {
    const resources = generateResources(push(), proxyFromNode(EGRESS)) as Record<string, Json[]>;
    expect(() => Snapshot.build(resources)).not.toThrow();
    golden('gateway-egress', resources);
    const origination = resources[TypeUrl.Cluster]!.find(
      (c) => c.name === 'outbound|443||secure.test',
    ) as Json;
    expect((origination.transport_socket as { typed_config: Json }).typed_config).toMatchObject({
      sni: 'secure.test',
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: 'kubernetes://client-cred' }],
        combined_validation_context: {
          validation_context_sds_secret_config: { name: 'kubernetes://client-cred-cacert' },
        },
      },
    });
    expect(resources[TypeUrl.Secret]!.map((s) => s.name)).toEqual([
      'kubernetes://client-cred',
      'kubernetes://client-cred-cacert',
    ]);
    expect(chainNames(listener(resources, '0.0.0.0_8443'))).toEqual([['external.test']]);
    const route = resources[TypeUrl.RouteConfiguration]!.find((r) => r.name === 'http.8080') as {
      virtual_hosts: { routes: { route?: { cluster?: string } }[] }[];
    };
    expect(route.virtual_hosts[0]!.routes[0]!.route?.cluster).toBe('outbound|443||secure.test');
  });

  it('sends the sidecar’s external traffic to the egress gateway (gateways: [mesh, …])', () => {
    const resources = generateResources(push(), proxyFromNode(SIDECAR)) as Record<string, Json[]>;
    const route = resources[TypeUrl.RouteConfiguration]!.find((r) => r.name === '80') as {
      virtual_hosts: { name: string; routes: { route?: { cluster?: string } }[] }[];
    };
    const secure = route.virtual_hosts.find((v) => v.name === 'secure.test:80')!;
    expect(secure.routes[0]!.route?.cluster).toBe(
      'outbound|80||istio-egressgateway.istio-system.svc.cluster.local',
    );
    const tls = listener(resources, '0.0.0.0_443');
    expect(JSON.stringify(tls.filter_chains[0])).toContain(
      'outbound|443||istio-egressgateway.istio-system.svc.cluster.local',
    );
    // Sidecars get no gateway credentials, even where a DestinationRule names one for a port they route elsewhere.
    expect(resources[TypeUrl.Secret] ?? []).toEqual([]);
  });

  it('translates ServiceEntries in full: VIPs for TCP, NONE wildcards to the original destination, DNS round robin', () => {
    const resources = generateResources(push(), proxyFromNode(SIDECAR)) as Record<string, Json[]>;
    // Two TCP services on 5432: the one with an address by where the connection goes, the other for the rest.
    const pg = listener(resources, '0.0.0.0_5432');
    expect(pg.filter_chains.map((c) => c.filter_chain_match ?? null)).toEqual([
      { prefix_ranges: [{ address_prefix: '240.0.0.10' }] },
      null,
    ]);
    expect(JSON.stringify(pg.filter_chains[0])).toContain('outbound|5432||legacy-db.internal');
    expect(JSON.stringify(pg.filter_chains[1])).toContain('outbound|5432||db.default.svc.cluster.local');
    const cluster = (name: string) => resources[TypeUrl.Cluster]!.find((c) => c.name === name) as Json;
    expect(cluster('outbound|9443||*.wild.test')).toMatchObject({
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
    });
    expect(cluster('outbound|8080||rr.test')).toMatchObject({
      type: 'LOGICAL_DNS',
      load_assignment: {
        endpoints: [
          {
            lb_endpoints: [
              { endpoint: { address: { socket_address: { address: 'rr-backend.test', port_value: 8080 } } } },
            ],
          },
        ],
      },
    });
    expect(chainNames(listener(resources, '0.0.0.0_9443'))).toEqual([['*.wild.test']]);
  });

  it('opens ISTIO_MUTUAL servers once the gateway has a workload certificate and pilot the mesh root', () => {
    const withCerts = { ...INGRESS, metadata: { ...INGRESS.metadata, MIZZEN_WORKLOAD_CERTS: true } };
    const text = fs.readFileSync(path.join(here, 'fixtures', 'gateway-mesh.yaml'), 'utf8');
    const parsed = parseConfig(text, 'gateway-mesh.yaml');
    const ctx = new PushContext(
      1,
      parsed.resources,
      buildRegistry(parsed.resources),
      DEFAULT_MESH_CONFIG,
      'ROOT',
      STORE,
    );
    const resources = generateResources(ctx, proxyFromNode(withCerts)) as Record<string, Json[]>;
    const mesh = listener(resources, '0.0.0.0_15443');
    expect(mesh.bind_to_port).toBeUndefined();
    expect((mesh.filter_chains[0]!.transport_socket as { typed_config: Json }).typed_config).toMatchObject({
      require_client_certificate: true,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: 'default' }],
        combined_validation_context: { validation_context_sds_secret_config: { name: 'ROOTCA' } },
      },
    });
  });

  it('serves an RSA and an ECDSA certificate (credentialNames, tlsCertificates) and checks clients by CRL and pins', () => {
    const spki = Buffer.alloc(32, 1).toString('base64');
    const hash = 'AB:'.repeat(31) + 'AB';
    const parsed = parseConfig(
      `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: pinned, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 443, name: https-both, protocol: HTTPS }
      hosts: [both.example.com]
      tls: { mode: MUTUAL, credentialNames: [api-cred, bookinfo-cred], verifyCertificateSpki: ["${spki}"] }
    - port: { number: 443, name: https-files, protocol: HTTPS }
      hosts: [files.example.com]
      tls:
        mode: MUTUAL
        tlsCertificates:
          - { serverCertificate: /certs/rsa.crt, privateKey: /certs/rsa.key, caCertificates: /certs/clients.crt }
          - { serverCertificate: /certs/ec.crt, privateKey: /certs/ec.key }
        caCrl: /certs/clients.crl
        verifyCertificateHash: ["${hash}"]
    - port: { number: 443, name: https-missing, protocol: HTTPS }
      hosts: [missing.example.com]
      tls: { mode: SIMPLE, credentialNames: [api-cred, no-such-cred] }
`,
      'pinned.yaml',
    );
    expect(parsed.issues).toEqual([]);
    const ctx = new PushContext(
      1,
      parsed.resources,
      buildRegistry(parsed.resources),
      DEFAULT_MESH_CONFIG,
      undefined,
      STORE,
    );
    // Every credential of credentialNames must be there, or the server stays closed.
    expect(gatewayNotices(ctx, proxyFromNode(INGRESS))).toEqual([
      'Gateway istio-system/pinned server https-missing (port 443) not opened: credential istio-system/no-such-cred not found in the test store',
    ]);
    const resources = generateResources(ctx, proxyFromNode(INGRESS)) as Record<string, Json[]>;
    const https = listener(resources, '0.0.0.0_8443');
    expect(chainNames(https)).toEqual([['both.example.com'], ['files.example.com']]);
    const tlsOf = (i: number) =>
      (https.filter_chains[i]!.transport_socket as { typed_config: { common_tls_context: Json } })
        .typed_config.common_tls_context;
    expect(tlsOf(0)).toMatchObject({
      tls_certificate_sds_secret_configs: [
        { name: 'kubernetes://api-cred' },
        { name: 'kubernetes://bookinfo-cred' },
      ],
      combined_validation_context: {
        default_validation_context: { verify_certificate_spki: [spki] },
        validation_context_sds_secret_config: { name: 'kubernetes://api-cred-cacert' },
      },
    });
    // Files on the gateway: Istio's file-cert/file-root SDS names, which the gateway reads (and watches) itself.
    expect(tlsOf(1)).toMatchObject({
      tls_certificate_sds_secret_configs: [
        { name: 'file-cert:/certs/rsa.crt~/certs/rsa.key' },
        { name: 'file-cert:/certs/ec.crt~/certs/ec.key' },
      ],
      combined_validation_context: {
        default_validation_context: {
          crl: { filename: '/certs/clients.crl' },
          verify_certificate_hash: [hash],
        },
        validation_context_sds_secret_config: { name: 'file-root:/certs/clients.crt' },
      },
    });
    // Pilot serves only the credentials; the files never leave the gateway.
    expect(resources[TypeUrl.Secret]!.map((s) => s.name)).toEqual([
      'kubernetes://api-cred',
      'kubernetes://api-cred-cacert',
      'kubernetes://bookinfo-cred',
    ]);
    // What the proxy makes of it: both certificates, the CRL file and the pins, without reading a file yet.
    const compiled = compileListener(https as never);
    expect(compiled.chains.map((c) => c.tls?.certificates.length)).toEqual([2, 2]);
    expect(compiled.chains[1]!.tls?.validation).toMatchObject({
      crl: { file: '/certs/clients.crl' },
      hashes: ['ab'.repeat(32)],
      secret: 'file-root:/certs/clients.crt',
    });
  });

  it('reads Kubernetes Secrets as credentials, refusing a key that is not the certificate’s', async () => {
    const ca = await createRootCa({ ttlSeconds: 600 });
    const a = await issueTlsCertificate({ dnsNames: ['a.example.com'], issuer: ca, ttlSeconds: 600 });
    const b = await issueTlsCertificate({ dnsNames: ['b.example.com'], issuer: ca, ttlSeconds: 600 });
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    const crl = await createCrl({ issuer: ca, revokedSerials: ['01'] });
    const secrets: Record<string, V1Secret> = {
      'istio-system/good': { data: { 'tls.crt': b64(a.certificate), 'tls.key': b64(a.privateKeyPem) } },
      // A generic secret's client CA with its revocation list, in a separate -cacert secret.
      'istio-system/revoking': { data: { cert: b64(a.certificate), key: b64(a.privateKeyPem) } },
      'istio-system/revoking-cacert': { data: { cacert: b64(ca.certificate), crl: b64(crl) } },
      'istio-system/bad': { data: { 'tls.crt': b64(a.certificate), 'tls.key': b64(b.privateKeyPem) } },
    };
    let handler: ((event: 'add' | 'update' | 'delete' | 'resync') => void) | undefined;
    const store = new CredentialStore({
      get: (name, namespace) => secrets[`${namespace}/${name}`],
      on: (h) => {
        handler = h as typeof handler;
        return () => {};
      },
    });
    expect(store.resolve('istio-system', 'good')).toEqual({
      credential: { certificateChain: a.certificate, privateKey: a.privateKeyPem },
    });
    expect(store.resolve('istio-system', 'bad')).toEqual({
      problem: 'credential istio-system/bad: tls.key does not belong to the certificate in tls.crt',
    });
    expect(store.resolve('istio-system', 'revoking')).toEqual({
      credential: {
        certificateChain: a.certificate,
        privateKey: a.privateKeyPem,
        caCertificate: ca.certificate,
        caCrl: crl,
      },
    });
    expect(store.resolve('default', 'good')).toEqual({
      problem: 'credential default/good not found in Kubernetes Secrets',
    });
    let changes = 0;
    store.onChange(() => changes++);
    handler?.('update');
    handler?.('resync');
    expect(changes).toBe(1);
  });
});
