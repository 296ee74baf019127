import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { parseConfig } from '@mizzen/api';
import { CredentialDirectory, createCrl, createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { createLogger } from '@mizzen/runtime';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCredentialStore } from '../src/credentials/local-store.js';
import type { CredentialSource } from '../src/credentials/source.js';
import { CredentialStore } from '../src/kube/credentials.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { gatewayNotices } from '../src/networking/gateway.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

/**
 * Credentials that hold only a CA, as Istio's docs create them (`kubectl
 * create secret generic NAME --from-file=ca.crt=…`, or a separate
 * `NAME-cacert` Secret beside a certificate and key): pilot serves their CA as
 * `kubernetes://NAME-cacert` to a DestinationRule's SIMPLE (and MUTUAL) TLS
 * origination and to a MUTUAL gateway server's client check, from Kubernetes
 * Secrets and from the local credential store alike, and says why when a
 * credential cannot stand where it is named.
 */
type Json = Record<string, unknown>;
type Ca = Awaited<ReturnType<typeof createRootCa>>;

const CONFIG = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext, namespace: default }
spec:
  hosts: [ext.test, partner.test, broken.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{ number: 443, name: https, protocol: HTTPS }]
---
# SIMPLE origination verified by a CA-only credential.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: originate-simple, namespace: istio-system }
spec:
  host: ext.test
  exportTo: ["."]
  trafficPolicy: { tls: { mode: SIMPLE, credentialName: ext-ca } }
---
# MUTUAL origination: the client certificate in partner-client, its CA in partner-client-cacert.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: originate-mutual, namespace: istio-system }
spec:
  host: partner.test
  exportTo: ["."]
  trafficPolicy: { tls: { mode: MUTUAL, credentialName: partner-client } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: originate-broken, namespace: istio-system }
spec:
  host: broken.test
  exportTo: ["."]
  trafficPolicy: { tls: { mode: SIMPLE, credentialName: broken-ca } }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: edge, namespace: istio-system }
spec:
  selector: { istio: egressgateway }
  servers:
    - port: { number: 443, name: https-clients, protocol: HTTPS }
      hosts: [clients.example.com]
      tls: { mode: MUTUAL, credentialName: edge-cred, caCertCredentialName: clients-ca }
    - port: { number: 443, name: https-partners, protocol: HTTPS }
      hosts: [partners.example.com]
      tls: { mode: MUTUAL, credentialName: partner-client }
    - port: { number: 443, name: https-ca-only, protocol: HTTPS }
      hosts: [ca-only.example.com]
      tls: { mode: SIMPLE, credentialName: ext-ca }
    - port: { number: 443, name: https-no-ca, protocol: HTTPS }
      hosts: [no-ca.example.com]
      tls: { mode: MUTUAL, credentialName: edge-cred }
`;

const GATEWAY: XdsNode = {
  id: 'router~127.0.0.1~istio-egressgateway.istio-system~istio-system.svc.cluster.local',
  metadata: {
    NAMESPACE: 'istio-system',
    LABELS: { istio: 'egressgateway' },
    INSTANCE_IPS: '127.0.0.1',
    MIZZEN_CAPTURE_MODE: 'proxy',
    MIZZEN_GATEWAY_PORTS: { '443': 8443 },
  },
};

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('CA-only credentials: served as kubernetes://NAME-cacert', () => {
  let extCa: Ca;
  let partnerCa: Ca;
  let clientsCa: Ca;
  let partnerCrl: string;
  let clientsCrl: string;
  let edge: { certificate: string; privateKeyPem: string };
  let partner: { certificate: string; privateKeyPem: string };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-ca-credentials-'));

  beforeAll(async () => {
    [extCa, partnerCa, clientsCa] = await Promise.all(
      [1, 2, 3].map(() => createRootCa({ ttlSeconds: 3600 })),
    );
    partnerCrl = await createCrl({ issuer: partnerCa!, revokedSerials: ['0a'] });
    clientsCrl = await createCrl({ issuer: clientsCa!, revokedSerials: ['0b'] });
    edge = await issueTlsCertificate({ dnsNames: ['*.example.com'], issuer: extCa, ttlSeconds: 600 });
    partner = await issueTlsCertificate({ dnsNames: ['mesh.local'], issuer: extCa, ttlSeconds: 600 });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The Secrets of Istio's docs, each with the keys kubectl would give it. */
  function kubernetesSecrets(): CredentialStore {
    const secrets: Record<string, V1Secret> = {
      // kubectl create secret generic ext-ca --from-file=ca.crt=ext-ca.pem
      'istio-system/ext-ca': { type: 'Opaque', data: { 'ca.crt': b64(extCa.certificate) } },
      'istio-system/partner-client': {
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': b64(partner.certificate), 'tls.key': b64(partner.privateKeyPem) },
      },
      // Istio's generic keys, in the separate -cacert Secret.
      'istio-system/partner-client-cacert': {
        type: 'Opaque',
        data: { cacert: b64(partnerCa.certificate), crl: b64(partnerCrl) },
      },
      'istio-system/edge-cred': {
        type: 'Opaque',
        data: { cert: b64(edge.certificate), key: b64(edge.privateKeyPem) },
      },
      'istio-system/clients-ca': {
        type: 'Opaque',
        data: { 'ca.crt': b64(clientsCa.certificate), 'ca.crl': b64(clientsCrl) },
      },
      'istio-system/broken-ca': { type: 'Opaque', data: { 'ca.crt': b64('not a certificate') } },
      // Both a ca.crt of its own and a -cacert Secret: Istio's SDS takes the -cacert one.
      'istio-system/both': { type: 'Opaque', data: { 'ca.crt': b64(extCa.certificate) } },
      'istio-system/both-cacert': { type: 'Opaque', data: { 'ca.crt': b64(clientsCa.certificate) } },
      // The same CA in another namespace: proxies of istio-system never see it.
      'default/other-ca': { type: 'Opaque', data: { 'ca.crt': b64(extCa.certificate) } },
    };
    return new CredentialStore({ get: (name, namespace) => secrets[`${namespace}/${name}`] });
  }

  /** The same credentials in the local store, as `mizzen create secret generic` writes them. */
  function localStore(): LocalCredentialStore {
    const store = new CredentialDirectory(dir);
    store.write('istio-system', 'ext-ca', { caCertificate: extCa.certificate });
    store.write('istio-system', 'partner-client', {
      certificateChain: partner.certificate,
      privateKey: partner.privateKeyPem,
    });
    store.write('istio-system', 'partner-client-cacert', {
      caCertificate: partnerCa.certificate,
      caCrl: partnerCrl,
    });
    store.write('istio-system', 'edge-cred', {
      certificateChain: edge.certificate,
      privateKey: edge.privateKeyPem,
    });
    store.write('istio-system', 'clients-ca', { caCertificate: clientsCa.certificate, caCrl: clientsCrl });
    store.write('default', 'other-ca', { caCertificate: extCa.certificate });
    store.write('istio-system', 'both', { caCertificate: extCa.certificate });
    store.write('istio-system', 'both-cacert', { caCertificate: clientsCa.certificate });
    // A broken file, as a hand edit would leave it: the store refuses to write one.
    fs.writeFileSync(
      store.file('istio-system', 'broken-ca'),
      JSON.stringify({ 'ca.crt': 'not a certificate' }),
    );
    return new LocalCredentialStore(dir, createLogger('ca-credentials-test', { level: 'silent' }));
  }

  function generate(credentials: CredentialSource) {
    const parsed = parseConfig(CONFIG, 'ca-credentials.yaml');
    expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
    const push = new PushContext(
      1,
      parsed.resources,
      buildRegistry(parsed.resources),
      DEFAULT_MESH_CONFIG,
      undefined,
      credentials,
    );
    const proxy = proxyFromNode(GATEWAY);
    return {
      resources: generateResources(push, proxy) as Record<string, Json[]>,
      notices: gatewayNotices(push, proxy),
    };
  }

  it('prefers the <name>-cacert credential to the credential’s own ca.crt, as Istio’s SDS does', () => {
    for (const credentials of [kubernetesSecrets(), localStore()]) {
      expect(credentials.resolveCa('istio-system', 'both')).toEqual({
        ca: expect.objectContaining({ caCertificate: clientsCa.certificate }),
      });
      expect(credentials.resolveCa('istio-system', 'ext-ca')).toEqual({
        ca: expect.objectContaining({ caCertificate: extCa.certificate }),
      });
    }
  });

  for (const [source, make, where] of [
    ['Kubernetes Secrets', kubernetesSecrets, 'Kubernetes Secrets'],
    ['the local credential store', localStore, `the local credential store ${dir}`],
  ] as const) {
    it(`from ${source}: each CA as its -cacert secret, for origination and for client checks`, () => {
      const credentials = make();
      const { resources, notices } = generate(credentials);
      expect(() => Snapshot.build(resources)).not.toThrow();
      const secrets = Object.fromEntries(resources[TypeUrl.Secret]!.map((s) => [s.name, s]));
      expect(Object.keys(secrets)).toEqual([
        'kubernetes://clients-ca-cacert',
        'kubernetes://edge-cred',
        'kubernetes://ext-ca-cacert',
        'kubernetes://partner-client',
        'kubernetes://partner-client-cacert',
      ]);
      // ext-ca holds nothing but ca.crt: its CA verifies the server SIMPLE TLS is originated to.
      expect(secrets['kubernetes://ext-ca-cacert']).toEqual({
        name: 'kubernetes://ext-ca-cacert',
        validation_context: { trusted_ca: { inline_string: extCa.certificate } },
      });
      // partner-client keeps its CA (and CRL) in partner-client-cacert.
      expect(secrets['kubernetes://partner-client-cacert']).toEqual({
        name: 'kubernetes://partner-client-cacert',
        validation_context: {
          trusted_ca: { inline_string: partnerCa.certificate },
          crl: { inline_string: partnerCrl },
        },
      });
      expect(secrets['kubernetes://clients-ca-cacert']).toEqual({
        name: 'kubernetes://clients-ca-cacert',
        validation_context: {
          trusted_ca: { inline_string: clientsCa.certificate },
          crl: { inline_string: clientsCrl },
        },
      });
      const originationTo = (host: string) =>
        (
          resources[TypeUrl.Cluster]!.find((c) => c.name === `outbound|443||${host}`)!.transport_socket as {
            typed_config: { common_tls_context: Json };
          }
        ).typed_config.common_tls_context;
      expect(originationTo('ext.test')).toMatchObject({
        combined_validation_context: {
          validation_context_sds_secret_config: { name: 'kubernetes://ext-ca-cacert' },
        },
      });
      expect(originationTo('ext.test').tls_certificate_sds_secret_configs).toBeUndefined();
      expect(originationTo('partner.test')).toMatchObject({
        tls_certificate_sds_secret_configs: [{ name: 'kubernetes://partner-client' }],
        combined_validation_context: {
          validation_context_sds_secret_config: { name: 'kubernetes://partner-client-cacert' },
        },
      });

      // Gateway servers: a CA-only credential verifies clients (caCertCredentialName, or NAME-cacert),
      // but cannot be a server's certificate; a MUTUAL server with no CA anywhere stays closed.
      expect(notices).toEqual([
        'Gateway istio-system/edge server https-ca-only (port 443) not opened: credential istio-system/ext-ca holds only a CA (ca.crt), not the certificate and key (tls.crt, tls.key) a server or client certificate needs',
        `Gateway istio-system/edge server https-no-ca (port 443) not opened: tls mode MUTUAL needs a CA to verify clients: credential istio-system/edge-cred has no ca.crt, nor has istio-system/edge-cred-cacert in ${where}`,
      ]);
      const https = resources[TypeUrl.Listener]!.find((l) => l.name === '0.0.0.0_8443') as {
        filter_chains: { filter_chain_match: { server_names: string[] }; transport_socket: Json }[];
      };
      expect(https.filter_chains.map((c) => c.filter_chain_match.server_names)).toEqual([
        ['clients.example.com'],
        ['partners.example.com'],
      ]);
      const clientCa = (i: number) =>
        JSON.stringify(https.filter_chains[i]!.transport_socket).match(/kubernetes:\/\/[a-z-]+-cacert/)?.[0];
      expect([clientCa(0), clientCa(1)]).toEqual([
        'kubernetes://clients-ca-cacert',
        'kubernetes://partner-client-cacert',
      ]);

      // What resolveCa says of each kind of credential.
      expect(credentials.resolveCa('istio-system', 'ext-ca')).toEqual({
        ca: { caCertificate: extCa.certificate },
      });
      expect(credentials.resolveCa('istio-system', 'broken-ca')).toEqual({
        problem: 'credential istio-system/broken-ca: ca.crt holds no PEM certificate',
      });
      expect(credentials.resolveCa('istio-system', 'missing')).toEqual({
        problem: `credential istio-system/missing not found in ${where} (nor missing-cacert for its CA)`,
      });
      // Only the proxy's own namespace: default's CA is not istio-system's.
      expect(credentials.resolveCa('istio-system', 'other-ca')).toEqual({
        problem: `credential istio-system/other-ca not found in ${where} (nor other-ca-cacert for its CA)`,
      });
      expect(credentials.resolveCa('default', 'other-ca')).toEqual({
        ca: { caCertificate: extCa.certificate },
      });
    });
  }

  it('says what a Kubernetes Secret lacks when it is named for a certificate', () => {
    const store = new CredentialStore({
      get: (name) =>
        ({
          'half-tls': { type: 'kubernetes.io/tls', data: { 'tls.crt': b64(edge.certificate) } },
          empty: { type: 'Opaque', data: { 'token.txt': b64('x') } },
        })[name] as V1Secret | undefined,
    });
    expect(store.resolve('istio-system', 'half-tls')).toEqual({
      problem:
        'credential istio-system/half-tls: Secret istio-system/half-tls needs tls.crt and tls.key (or cert and key)',
    });
    expect(store.resolve('istio-system', 'empty')).toEqual({
      problem:
        'credential istio-system/empty: Secret istio-system/empty needs tls.crt and tls.key (or cert and key)',
    });
    expect(store.resolveCa('istio-system', 'empty')).toEqual({
      problem:
        'credential istio-system/empty has no ca.crt, nor has istio-system/empty-cacert in Kubernetes Secrets',
    });
  });
});
