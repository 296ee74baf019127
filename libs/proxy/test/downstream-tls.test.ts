import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { createCrl, createRootCa, issueTlsCertificate } from '@mizzen/pki';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Backend,
  backend,
  HCM,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  ROUTER,
  staticCluster,
} from './harness.js';

/**
 * TLS termination as a gateway server does it, with real certificates, real
 * files and real TLS clients: an RSA and an ECDSA certificate on one server
 * (picked by the client's signature algorithms), certificates read from files
 * by Istio's `file-cert:`/`file-root:` SDS names (a missing file closes only
 * its own chain, and the chain opens when the file appears), client
 * certificates checked against a CRL and against SPKI and hash pins, as
 * Envoy's CertificateValidationContext does.
 */
const DOWNSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const TLS_INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
const ADS = { ads: {}, resource_api_version: 'V3' };
type Json = Record<string, unknown>;
type Pem = { certificate: string; privateKeyPem: string };

const sds = (name: string) => ({ name, sds_config: ADS });

function hcm(name: string): Json {
  return {
    name: 'hcm',
    typed_config: {
      '@type': HCM,
      stat_prefix: name,
      route_config: {
        name,
        virtual_hosts: [
          {
            name,
            domains: ['*'],
            routes: [{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } }],
          },
        ],
      },
      http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
    },
  };
}

/** One SNI-selected chain terminating TLS with these certificates and client checks. */
function chain(sni: string, certificates: string[], validation?: { ca: string; checks: Json }): Json {
  return {
    name: sni,
    filter_chain_match: { server_names: [sni] },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': DOWNSTREAM,
        common_tls_context: {
          tls_certificate_sds_secret_configs: certificates.map(sds),
          ...(validation
            ? {
                combined_validation_context: {
                  default_validation_context: validation.checks,
                  validation_context_sds_secret_config: sds(validation.ca),
                },
              }
            : {}),
        },
        require_client_certificate: validation !== undefined,
      },
    },
    filters: [hcm(sni)],
  };
}

interface Handshake {
  ok: boolean;
  /** The server certificate's key type: RSA or EC. */
  key?: 'RSA' | 'EC';
  subject?: string;
  error?: string;
}

/** A TLS client: handshake by SNI, then one HTTP request; ok when the proxy answered 200. */
function connect(
  port: number,
  servername: string,
  opts: { ca: string; client?: Pem; sigalgs?: string },
): Promise<Handshake> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      servername,
      ca: opts.ca,
      ...(opts.client ? { cert: opts.client.certificate, key: opts.client.privateKeyPem } : {}),
      ...(opts.sigalgs ? { sigalgs: opts.sigalgs } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    s.setTimeout(5_000, () => s.destroy(new Error('timed out')));
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      const key = cert.modulus ? 'RSA' : 'EC';
      const subject = String(cert.subject?.CN ?? '');
      s.write(`GET / HTTP/1.1\r\nhost: ${servername}\r\nconnection: close\r\n\r\n`);
      let answer = '';
      s.on('data', (d: Buffer) => {
        answer += d.toString();
      });
      s.once('close', () =>
        resolve(
          answer.startsWith('HTTP/1.1 200')
            ? { ok: true, key, subject }
            : { ok: false, key, subject, error: answer || 'closed after the handshake' },
        ),
      );
    });
    s.once('error', (err) => resolve({ ok: false, error: err.message }));
  });
}

const sha256 = (der: Buffer, encoding: 'hex' | 'base64') => createHash('sha256').update(der).digest(encoding);
const spkiPin = (pem: string) =>
  sha256(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }), 'base64');
/** As `openssl x509 -fingerprint -sha256` prints it: upper case, colons. */
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

describe('gateway TLS termination: certificate lists, files, CRLs and pins', () => {
  const h = new ProxyHarness();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-dtls-'));
  const file = (name: string) => path.join(dir, name);
  let app: Backend;
  let port = 0;
  let serverCa: Awaited<ReturnType<typeof createRootCa>>;
  let good: Pem;
  let other: Pem;
  let revoked: Pem;

  const listener = (chains: Json[]): Json => ({
    name: 'gateway_8443',
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    listener_filters: [{ name: 'tls_inspector', typed_config: { '@type': TLS_INSPECTOR } }],
    filter_chains: chains,
  });
  const clientChecks = (checks: Json) => ({ ca: `file-root:${file('clients.crt')}`, checks });
  const chains = (): Json[] => [
    chain('both.test', [
      `file-cert:${file('rsa.crt')}~${file('rsa.key')}`,
      `file-cert:${file('ec.crt')}~${file('ec.key')}`,
    ]),
    chain(
      'crl.test',
      [`file-cert:${file('ec.crt')}~${file('ec.key')}`],
      clientChecks({ crl: { filename: file('clients.crl') } }),
    ),
    chain(
      'spki.test',
      [`file-cert:${file('ec.crt')}~${file('ec.key')}`],
      clientChecks({ verify_certificate_spki: [spkiPin(good.certificate)] }),
    ),
    chain(
      'hash.test',
      [`file-cert:${file('ec.crt')}~${file('ec.key')}`],
      clientChecks({ verify_certificate_hash: [fingerprint(good.certificate)] }),
    ),
    chain('late.test', [`file-cert:${file('late.crt')}~${file('late.key')}`]),
  ];
  const resources = (gatewayChains: Json[]) => ({
    [TypeUrl.Cluster]: [staticCluster('app', [app.port]), PASSTHROUGH],
    [TypeUrl.Listener]: [...outboundListeners(h.outbound), listener(gatewayChains)],
    [TypeUrl.RouteConfiguration]: [{ name: '9080', virtual_hosts: [] }],
  });

  beforeAll(async () => {
    serverCa = await createRootCa({ ttlSeconds: 3600 });
    const clientCa = await createRootCa({ ttlSeconds: 3600 });
    const rsa = await issueTlsCertificate({
      dnsNames: ['both.test'],
      issuer: serverCa,
      ttlSeconds: 3600,
      keyType: 'RSA-2048',
    });
    const ec = await issueTlsCertificate({
      dnsNames: ['both.test', 'crl.test', 'spki.test', 'hash.test'],
      issuer: serverCa,
      ttlSeconds: 3600,
    });
    [good, other, revoked] = await Promise.all(
      ['good', 'other', 'revoked'].map((n) =>
        issueTlsCertificate({ dnsNames: [`${n}.client.test`], issuer: clientCa, ttlSeconds: 3600 }),
      ),
    );
    const crl = await createCrl({
      issuer: clientCa,
      revokedSerials: [new X509Certificate(revoked!.certificate).serialNumber],
    });
    fs.writeFileSync(file('rsa.crt'), rsa.certificate);
    fs.writeFileSync(file('rsa.key'), rsa.privateKeyPem);
    fs.writeFileSync(file('ec.crt'), ec.certificate);
    fs.writeFileSync(file('ec.key'), ec.privateKeyPem);
    fs.writeFileSync(file('clients.crt'), clientCa.certificate);
    fs.writeFileSync(file('clients.crl'), crl);
    app = await backend('app');
    port = await h.ports.take();
    await h.start(() => resources(chains()));
  });

  afterAll(async () => {
    await h.stop();
    await app.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves the RSA or the ECDSA certificate of one server, as the client’s signature algorithms ask', async () => {
    const ca = serverCa.certificate;
    expect(await connect(port, 'both.test', { ca, sigalgs: 'ECDSA+SHA256' })).toMatchObject({
      ok: true,
      key: 'EC',
    });
    expect(await connect(port, 'both.test', { ca, sigalgs: 'rsa_pss_rsae_sha256:RSA+SHA256' })).toMatchObject(
      {
        ok: true,
        key: 'RSA',
      },
    );
  });

  it('refuses a client certificate the CRL revokes, and accepts one it does not', async () => {
    const ca = serverCa.certificate;
    expect(await connect(port, 'crl.test', { ca, client: good })).toMatchObject({ ok: true });
    expect((await connect(port, 'crl.test', { ca, client: revoked })).ok).toBe(false);
    expect((await connect(port, 'crl.test', { ca })).ok).toBe(false);
  });

  it('accepts only the pinned client certificate (verify_certificate_spki and verify_certificate_hash)', async () => {
    const ca = serverCa.certificate;
    for (const sni of ['spki.test', 'hash.test']) {
      expect(await connect(port, sni, { ca, client: good })).toMatchObject({ ok: true });
      // From the same trusted CA, but not pinned.
      expect((await connect(port, sni, { ca, client: other })).ok).toBe(false);
    }
  });

  it('keeps a chain whose certificate files are missing closed while the others serve, and opens it once they exist', async () => {
    const ca = serverCa.certificate;
    expect(h.proxy.isReady()).toBe(true);
    expect((await connect(port, 'late.test', { ca })).ok).toBe(false);
    expect((await connect(port, 'both.test', { ca })).ok).toBe(true);
    const late = await issueTlsCertificate({ dnsNames: ['late.test'], issuer: serverCa, ttlSeconds: 3600 });
    fs.writeFileSync(file('late.key'), late.privateKeyPem);
    fs.writeFileSync(file('late.crt'), late.certificate);
    await h.until(
      'late.test to be served from its files',
      async () => (await connect(port, 'late.test', { ca })).ok,
    );
    expect(await connect(port, 'late.test', { ca })).toMatchObject({ ok: true, subject: 'late.test' });
  });

  it('rejects (NACKs) a pin that is not a SHA-256 digest, and keeps serving its last good config', async () => {
    const bad = chains();
    bad[2] = chain(
      'spki.test',
      [`file-cert:${file('ec.crt')}~${file('ec.key')}`],
      clientChecks({ verify_certificate_spki: ['abc'] }),
    );
    h.push(resources(bad));
    await h.until('the listener update to be rejected', () => h.state(TypeUrl.Listener)?.state === 'NACKED');
    expect(h.state(TypeUrl.Listener)?.error).toContain(
      'verify_certificate_spki[0]: "abc" is not a base64 SHA-256 digest (44 characters)',
    );
    expect(await connect(port, 'spki.test', { ca: serverCa.certificate, client: good })).toMatchObject({
      ok: true,
    });
  });
});
