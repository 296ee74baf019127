import { X509Certificate as NodeX509 } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import {
  type CaCredentials,
  certificateInfo,
  createCsr,
  createIntermediateCa,
  createRootCa,
  exportPrivateKeyPem,
  generateKeyPair,
  issueWorkloadCertificate,
  PkiError,
  parseCertificate,
  parseCsr,
  privateKeyMatchesCertificate,
} from '../src/index.js';
import { x509 } from '../src/provider.js';

const ID = 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews';

async function workload(issuer: CaCredentials, identity = ID, ttlSeconds = 3600, asked = [ID]) {
  const keys = await generateKeyPair();
  const csr = await parseCsr(await createCsr({ keys, uris: asked }));
  const certificate = await issueWorkloadCertificate({ csr, identity, issuer, ttlSeconds });
  return { keys, certificate, keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

describe('createRootCa', () => {
  it('makes a self-signed CA: CA:true critical, keyCertSign, SKI, random serial, named after the trust domain', async () => {
    const root = await createRootCa({ organization: 'example.org', ttlSeconds: 3600 });
    const cert = parseCertificate(root.certificate);
    const info = certificateInfo(root.certificate);
    expect(info).toMatchObject({
      subject: 'O=example.org, CN=Mizzen Root CA',
      isCa: true,
      keyType: 'ECDSA P-256',
    });
    expect(info.issuer).toBe(info.subject);
    expect(await cert.isSelfSigned()).toBe(true);
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.ca, bc.critical, bc.pathLength]).toEqual([true, true, undefined]);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
    expect(info.notAfter.getTime() - info.notBefore.getTime()).toBe(3660_000);
    expect(new NodeX509(root.certificate).ca).toBe(true);
    expect(root.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(await privateKeyMatchesCertificate(root.privateKey, root.certificate)).toBe(true);
    const other = await createRootCa();
    expect(certificateInfo(other.certificate).serialNumber).not.toBe(info.serialNumber);
  });

  it('honours an RSA key type, a subject and a path length', async () => {
    const root = await createRootCa({ keyType: 'RSA-2048', subject: 'CN=Test Root', pathLength: 1 });
    expect(certificateInfo(root.certificate)).toMatchObject({ subject: 'CN=Test Root', keyType: 'RSA 2048' });
    expect(parseCertificate(root.certificate).getExtension(x509.BasicConstraintsExtension)?.pathLength).toBe(
      1,
    );
  });

  it.each([[0], [-5], [Number.NaN]])('refuses a TTL of %s', async (ttlSeconds) => {
    await expect(createRootCa({ ttlSeconds })).rejects.toThrow(
      /root CA TTL must be a positive number of seconds/,
    );
  });
});

describe('createIntermediateCa', () => {
  it('is a CA signed by its root, with AKI = the root SKI, never outliving the root', async () => {
    const root = await createRootCa({ ttlSeconds: 7200 });
    const int = await createIntermediateCa({
      issuer: root,
      subject: 'O=cluster.local, CN=Intermediate',
      ttlSeconds: 99_999,
    });
    const cert = parseCertificate(int.certificate);
    expect(certificateInfo(cert)).toMatchObject({ isCa: true, issuer: 'O=cluster.local, CN=Mizzen Root CA' });
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(
      parseCertificate(root.certificate).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
    expect(cert.notAfter.getTime()).toBe(parseCertificate(root.certificate).notAfter.getTime());
    expect(new NodeX509(int.certificate).checkIssued(new NodeX509(root.certificate))).toBe(true);
  });
});

describe('issueWorkloadCertificate', () => {
  it('issues exactly the proven identity with Istio’s extensions', async () => {
    const root = await createRootCa();
    const before = Date.now();
    const { certificate } = await workload(root, ID, 3600, [
      'spiffe://cluster.local/ns/kube-system/sa/admin',
    ]);
    const cert = parseCertificate(certificate);
    const info = certificateInfo(certificate);
    expect(info.uris).toEqual([ID]);
    expect(info.spiffeId).toBe(ID);
    expect(info.dnsNames).toEqual([]);
    expect(info.subject).toBe('');
    expect(info.isCa).toBe(false);
    expect(info.serialNumber).toMatch(/^[0-9a-f]{1,32}$/);
    expect(info.notBefore.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 61_000);
    expect(info.notBefore.getTime()).toBeLessThanOrEqual(Date.now() - 59_000);
    expect(info.notAfter.getTime() - info.notBefore.getTime()).toBe(3660_000);
    const bc = cert.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.ca, bc.critical]).toEqual([false, true]);
    const ku = cert.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]);
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)?.critical).toBe(true);
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(
      parseCertificate(root.certificate).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
    expect(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId).toMatch(/^[0-9a-f]{40}$/);
    const node = new NodeX509(certificate);
    expect(node.subjectAltName).toBe(`URI:${ID}`);
    expect(node.verify(new NodeX509(root.certificate).publicKey)).toBe(true);
  });

  it('signs with an RSA CA and for an RSA workload key', async () => {
    const root = await createRootCa({ keyType: 'RSA-2048' });
    const keys = await generateKeyPair('RSA-2048');
    const csr = await parseCsr(await createCsr({ keys, uris: [ID] }));
    const pem = await issueWorkloadCertificate({ csr, identity: ID, issuer: root, ttlSeconds: 60 });
    expect(certificateInfo(pem).keyType).toBe('RSA 2048');
    expect(parseCertificate(pem).signatureAlgorithm).toMatchObject({ name: 'RSASSA-PKCS1-v1_5' });
  });

  it('never outlives its issuer', async () => {
    const root = await createRootCa({ ttlSeconds: 600 });
    const { certificate } = await workload(root, ID, 86_400);
    expect(certificateInfo(certificate).notAfter.getTime()).toBe(
      parseCertificate(root.certificate).notAfter.getTime(),
    );
  });

  it('takes the identity as a structured id too', async () => {
    const root = await createRootCa();
    const csr = await parseCsr(await createCsr({ keys: await generateKeyPair() }));
    const pem = await issueWorkloadCertificate({
      csr,
      identity: { trustDomain: 'example.org', namespace: 'shop', serviceAccount: 'cart' },
      issuer: root,
      ttlSeconds: 60,
    });
    expect(certificateInfo(pem).uris).toEqual(['spiffe://example.org/ns/shop/sa/cart']);
  });

  it('produces certificates node:tls accepts for mutual TLS with the SPIFFE id visible to both sides', async () => {
    const root = await createRootCa();
    const int = await createIntermediateCa({ issuer: root, subject: 'CN=Intermediate', ttlSeconds: 3600 });
    const server = await workload(int, 'spiffe://cluster.local/ns/default/sa/server');
    const client = await workload(int, 'spiffe://cluster.local/ns/default/sa/client');
    let seenByServer: string | undefined;
    const srv = tls.createServer(
      {
        key: server.keyPem,
        cert: server.certificate + int.certificate,
        ca: root.certificate,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) => {
        seenByServer = socket.getPeerCertificate().subjectaltname;
        socket.end('ok');
      },
    );
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    try {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: (srv.address() as AddressInfo).port,
        key: client.keyPem,
        cert: client.certificate + int.certificate,
        ca: root.certificate,
        checkServerIdentity: () => undefined,
      });
      await once(socket, 'secureConnect');
      expect(socket.authorized).toBe(true);
      expect(socket.getPeerCertificate().subjectaltname).toBe(
        'URI:spiffe://cluster.local/ns/default/sa/server',
      );
      const [data] = await once(socket, 'data');
      expect(String(data)).toBe('ok');
      expect(seenByServer).toBe('URI:spiffe://cluster.local/ns/default/sa/client');
      socket.destroy();
    } finally {
      srv.close();
    }
  });

  it.each([
    ['a non-CA issuer', 'not-a-ca', /is not a CA/],
    ['an issuer whose key does not match', 'key-mismatch', /private key does not match/],
    ['an expired issuer', 'invalid-validity', /issuer certificate expired at/],
    ['a zero TTL', 'invalid-validity', /certificate TTL must be a positive number/],
    ['an identity that is not a SPIFFE id', 'invalid-identity', /must start with spiffe:\/\//],
  ])('refuses %s', async (name, reason, message) => {
    const root = await createRootCa();
    const csr = await parseCsr(await createCsr({ keys: await generateKeyPair() }));
    let issuer: CaCredentials = root;
    let ttlSeconds = 60;
    let identity = ID;
    if (name === 'a non-CA issuer') {
      const w = await workload(root);
      issuer = { certificate: w.certificate, privateKey: w.keys.privateKey };
    } else if (name === 'an issuer whose key does not match') {
      issuer = { certificate: root.certificate, privateKey: (await generateKeyPair()).privateKey };
    } else if (name === 'an expired issuer') {
      issuer = await createRootCa({ ttlSeconds: 60, now: new Date(Date.now() - 86_400_000) });
    } else if (name === 'a zero TTL') {
      ttlSeconds = 0;
    } else {
      identity = 'cluster.local/ns/default/sa/x';
    }
    const err = await issueWorkloadCertificate({ csr, identity, issuer, ttlSeconds }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PkiError);
    expect((err as PkiError).reason).toBe(reason);
    expect((err as Error).message).toMatch(message);
  });
});

describe('certificateInfo', () => {
  it('reads serial, validity, SANs, subject and issuer', async () => {
    const root = await createRootCa();
    const { certificate } = await workload(root);
    const node = new NodeX509(certificate);
    const info = certificateInfo(certificate);
    // The same number (a random serial may start with a zero nibble, which the two print differently).
    expect(BigInt(`0x${info.serialNumber}`)).toBe(BigInt(`0x${node.serialNumber}`));
    expect(info.serialNumber).toMatch(/^[0-9a-f]+$/);
    expect(info.notAfter.toISOString()).toBe(new Date(node.validTo).toISOString());
    expect(info.issuer).toBe('O=cluster.local, CN=Mizzen Root CA');
  });

  it.each([
    ['', /no PEM block found/],
    ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', /not a valid X.509 certificate/],
  ])('refuses %j', (pem, message) => {
    expect(() => certificateInfo(pem)).toThrow(message);
  });
});
