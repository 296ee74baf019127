import { createHash, X509Certificate } from 'node:crypto';
import https from 'node:https';
import tls from 'node:tls';
import {
  createCsr,
  createRootCa,
  exportPrivateKeyPem,
  formatSpiffeId,
  generateKeyPair,
  issueWorkloadCertificate,
  parseCsr,
} from '@mizzen/pki';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretStore } from '../src/security/secret-store.js';
import {
  type Backend,
  backend,
  HCM,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  ROUTER,
  staticCluster,
  svcRoutes,
} from './harness.js';

/**
 * Mutual TLS with real keys and certificates from a real CA (libs/pki):
 * STRICT and PERMISSIVE inbound chains, Istio's auto-mTLS transport socket
 * matches outbound, SPIFFE identity checks, SDS for the root, rotation.
 */
const DOWNSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const ADS = { ads: {}, resource_api_version: 'V3' };

type Ca = Awaited<ReturnType<typeof createRootCa>>;

async function workloadCert(ca: Ca, ns: string, sa: string, ttlSeconds = 3600, now?: Date) {
  const keys = await generateKeyPair();
  const csr = await parseCsr(
    await createCsr({
      keys,
      uris: [formatSpiffeId({ trustDomain: 'cluster.local', namespace: ns, serviceAccount: sa })],
    }),
  );
  const cert = await issueWorkloadCertificate({
    csr,
    identity: { trustDomain: 'cluster.local', namespace: ns, serviceAccount: sa },
    issuer: ca,
    ttlSeconds,
    ...(now ? { now } : {}),
  });
  return { certChain: cert, privateKey: await exportPrivateKeyPem(keys.privateKey) };
}

const commonTls = (sans?: string[]) => ({
  tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
  combined_validation_context: {
    default_validation_context: sans ? { match_subject_alt_names: sans.map((exact) => ({ exact })) } : {},
    validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS },
  },
});

const httpFilters = (name: string, cluster: string) => [
  {
    name: 'hcm',
    typed_config: {
      '@type': HCM,
      stat_prefix: name,
      route_config: {
        name,
        virtual_hosts: [
          { name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster, timeout: '0s' } }] },
        ],
      },
      http_filters: [{ name: 'r', typed_config: { '@type': ROUTER } }],
      // What Istio sets on a sidecar's inbound: the caller's identity appended for the app.
      forward_client_cert_details: 'APPEND_FORWARD',
      set_current_client_cert_details: { subject: true, dns: true, uri: true },
    },
  },
];

/** A GET over mutual TLS with extra headers (a new connection each time). */
function mtlsGet(
  port: number,
  client: { certChain: string; privateKey: string },
  caPem: string,
  headers: Record<string, string>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: '/xfcc',
        headers,
        ca: caPem,
        cert: client.certChain,
        key: client.privateKey,
        agent: false,
        checkServerIdentity: () => undefined,
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end();
  });
}

describe('mutual TLS', () => {
  const h = new ProxyHarness();
  const secrets = new SecretStore();
  let ca: Ca;
  let otherCa: Ca;
  let app: Backend;
  let strictPort = 0;
  let permissivePort = 0;
  const ME = 'spiffe://cluster.local/ns/default/sa/reviews';

  const resources = (allowedSan = ME) => ({
    [TypeUrl.Cluster]: [
      {
        ...staticCluster('mtls', []),
        load_assignment: {
          cluster_name: 'mtls',
          endpoints: [
            {
              lb_endpoints: [
                {
                  endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: strictPort } } },
                  metadata: { filter_metadata: { 'envoy.transport_socket_match': { tlsMode: 'istio' } } },
                },
              ],
            },
          ],
        },
        // Istio's auto-mTLS: mTLS to endpoints with a sidecar, plaintext to the others.
        transport_socket_matches: [
          {
            name: 'tlsMode-istio',
            match: { tlsMode: 'istio' },
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: {
                '@type': UPSTREAM,
                common_tls_context: { ...commonTls([allowedSan]), alpn_protocols: ['h2'] },
                sni: 'outbound_.9080_._.reviews.default.svc.cluster.local',
              },
            },
          },
          {
            name: 'tlsMode-disabled',
            match: {},
            transport_socket: {
              name: 'raw',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer',
              },
            },
          },
        ],
      },
      staticCluster('app', [app.port]),
      PASSTHROUGH,
    ],
    [TypeUrl.Listener]: [
      ...outboundListeners(h.outbound),
      {
        name: 'strict',
        traffic_direction: 'INBOUND',
        address: { socket_address: { address: '127.0.0.1', port_value: strictPort } },
        filter_chains: [
          {
            filter_chain_match: { transport_protocol: 'tls' },
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: {
                '@type': DOWNSTREAM,
                common_tls_context: commonTls(),
                require_client_certificate: true,
              },
            },
            filters: httpFilters('strict', 'app'),
          },
        ],
      },
      {
        name: 'permissive',
        traffic_direction: 'INBOUND',
        address: { socket_address: { address: '127.0.0.1', port_value: permissivePort } },
        listener_filters: [
          {
            name: 'tls_inspector',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
            },
          },
        ],
        filter_chains: [
          {
            filter_chain_match: { transport_protocol: 'tls' },
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: {
                '@type': DOWNSTREAM,
                common_tls_context: commonTls(),
                require_client_certificate: true,
              },
            },
            filters: httpFilters('permissive-tls', 'app'),
          },
          {
            filter_chain_match: { transport_protocol: 'raw_buffer' },
            filters: httpFilters('permissive-plain', 'app'),
          },
        ],
      },
    ],
    [TypeUrl.RouteConfiguration]: [
      svcRoutes([{ match: { prefix: '/' }, route: { cluster: 'mtls', timeout: '0s' } }]),
    ],
    [TypeUrl.Secret]: [
      { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: ca.certificate } } },
    ],
  });

  /** A TLS client from outside, with or without a client certificate. */
  const handshake = (
    port: number,
    cert?: { certChain: string; privateKey: string },
    caPem = ca.certificate,
  ) =>
    new Promise<{ ok: boolean; san?: string; error?: string }>((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        ca: caPem,
        cert: cert?.certChain,
        key: cert?.privateKey,
        checkServerIdentity: () => undefined,
        ALPNProtocols: ['http/1.1'],
      });
      s.once('secureConnect', () => {
        const san = s.getPeerCertificate().subjectaltname;
        s.write('GET /peek HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
        let answer = '';
        s.on('data', (d) => {
          answer += d.toString();
        });
        s.once('close', () =>
          resolve(
            answer.startsWith('HTTP/1.1 200')
              ? { ok: true, san }
              : { ok: false, san, error: answer || 'closed' },
          ),
        );
      });
      s.once('error', (err) => resolve({ ok: false, error: err.message }));
    });

  beforeAll(async () => {
    ca = await createRootCa({ organization: 'cluster.local' });
    otherCa = await createRootCa({ organization: 'elsewhere' });
    app = await backend('app');
    [strictPort, permissivePort] = await h.ports.takeMany(2);
    secrets.setLocal('default', { kind: 'certificate', ...(await workloadCert(ca, 'default', 'reviews')) });
    await h.start(() => resources(), secrets);
  });

  afterAll(async () => {
    await h.stop();
    await app.close();
  });

  it('serves its SPIFFE identity and accepts a client with a mesh certificate', async () => {
    const client = await workloadCert(ca, 'default', 'productpage');
    const r = await handshake(strictPort!, client);
    expect(r).toEqual({ ok: true, san: `URI:${ME}` });
  });

  it('STRICT refuses plaintext, clients without a certificate, expired ones and ones from another root', async () => {
    expect((await handshake(strictPort!)).ok).toBe(false);
    const foreign = await workloadCert(otherCa, 'default', 'productpage');
    expect((await handshake(strictPort!, foreign)).ok).toBe(false);
    const expired = await workloadCert(
      ca,
      'default',
      'productpage',
      3600,
      new Date(Date.now() - 3 * 3600_000),
    );
    expect((await handshake(strictPort!, expired)).ok).toBe(false);
    const plain = await fetch(`http://127.0.0.1:${strictPort}/`).then(
      (r) => r.status,
      () => 'refused',
    );
    expect(plain).toBe('refused');
  });

  it('PERMISSIVE accepts mTLS and plaintext on the same port, told apart by the first bytes', async () => {
    const client = await workloadCert(ca, 'default', 'productpage');
    expect((await handshake(permissivePort!, client)).ok).toBe(true);
    const plain = await fetch(`http://127.0.0.1:${permissivePort}/plain`);
    expect(plain.status).toBe(200);
    expect(await plain.json()).toEqual({ name: 'app', path: '/plain' });
  });

  it('tells the app who called: x-forwarded-client-cert appended over mTLS, a forged one dropped over plaintext', async () => {
    const client = await workloadCert(ca, 'default', 'productpage');
    const status = await mtlsGet(permissivePort!, client, ca.certificate, {
      'x-forwarded-client-cert': 'By=spiffe://upstream;Hash=abc',
    });
    expect(status).toBe(200);
    const der = new X509Certificate(client.certChain).raw;
    const hash = createHash('sha256').update(der).digest('hex');
    expect(app.lastHeaders?.['x-forwarded-client-cert']).toBe(
      `By=spiffe://upstream;Hash=abc,By=${ME};Hash=${hash};Subject="";URI=spiffe://cluster.local/ns/default/sa/productpage`,
    );
    const plain = await fetch(`http://127.0.0.1:${permissivePort}/plain`, {
      headers: { 'x-forwarded-client-cert': 'By=spiffe://x;URI=spiffe://cluster.local/ns/default/sa/admin' },
    });
    expect(plain.status).toBe(200);
    expect(app.lastHeaders?.['x-forwarded-client-cert']).toBeUndefined();
  });

  it('auto-mTLS: the outbound cluster speaks mTLS to an endpoint with a sidecar and checks its identity', async () => {
    const r = await h.request('http://svc:9080/through-mtls');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ name: 'app', path: '/through-mtls' });
    // Expect a different identity for that service: the handshake succeeds but the SAN check fails.
    await h.apply(resources('spiffe://cluster.local/ns/default/sa/someone-else'));
    const refused = await h.request('http://svc:9080/through-mtls');
    expect(refused.status).toBe(503);
    expect(refused.body).toContain('connection failure');
    await h.apply(resources());
    expect((await h.request('http://svc:9080/again')).status).toBe(200);
  });

  it('a rotated workload certificate is served to new connections at once, with no request lost', async () => {
    const before = await new Promise<string>((resolve) => {
      const s = tls.connect(
        { host: '127.0.0.1', port: strictPort!, ca: ca.certificate, checkServerIdentity: () => undefined },
        () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        },
      );
    });
    const failures: number[] = [];
    const load = (async () => {
      for (let i = 0; i < 60; i++) {
        const r = await h.request(`http://svc:9080/load/${i}`);
        if (r.status !== 200) failures.push(r.status);
      }
    })();
    secrets.setLocal('default', { kind: 'certificate', ...(await workloadCert(ca, 'default', 'reviews')) });
    await load;
    const after = await new Promise<string>((resolve) => {
      const s = tls.connect(
        { host: '127.0.0.1', port: strictPort!, ca: ca.certificate, checkServerIdentity: () => undefined },
        () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        },
      );
    });
    expect(after).not.toBe(before);
    expect(failures).toEqual([]);
  });
});
