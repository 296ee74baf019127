import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CredentialDirectory,
  certificateInfo,
  checkTlsCredential,
  createRootCa,
  issueTlsCertificate,
  PkiError,
} from '../src/index.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-credentials-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('TLS certificates for gateways and clients', () => {
  it('issues a certificate for DNS names, signed by the CA, for server and client use', async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const { certificate, privateKeyPem } = await issueTlsCertificate({
      dnsNames: ['bookinfo.local', '*.bookinfo.local'],
      issuer: ca,
      ttlSeconds: 600,
    });
    const info = certificateInfo(certificate);
    expect(info).toMatchObject({
      subject: 'CN=bookinfo.local',
      dnsNames: ['bookinfo.local', '*.bookinfo.local'],
      isCa: false,
    });
    const cert = new X509Certificate(certificate);
    expect(cert.verify(new X509Certificate(ca.certificate).publicKey)).toBe(true);
    expect(cert.checkHost('reviews.bookinfo.local')).toBeDefined();
    expect(cert.checkHost('other.example.com')).toBeUndefined();
    expect(cert.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(() =>
      checkTlsCredential({ certificateChain: certificate, privateKey: privateKeyPem }),
    ).not.toThrow();
  });

  it('carries IP address SANs for a server reached by address, and refuses what is not an address', async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const { certificate } = await issueTlsCertificate({
      dnsNames: ['istio-citadel.istio-system.svc'],
      ipAddresses: ['127.0.0.1', '::1'],
      issuer: ca,
      ttlSeconds: 600,
    });
    expect(certificateInfo(certificate)).toMatchObject({
      dnsNames: ['istio-citadel.istio-system.svc'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    const cert = new X509Certificate(certificate);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('10.0.0.1')).toBeUndefined();
    await expect(
      issueTlsCertificate({ dnsNames: [], ipAddresses: ['localhost'], issuer: ca, ttlSeconds: 600 }),
    ).rejects.toThrow(new PkiError('invalid-identity', '"localhost" is not an IP address'));
  });
});

describe('the local credential store', () => {
  it('writes, reads, lists and deletes credentials; refuses a key that is not the certificate’s', async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const a = await issueTlsCertificate({ dnsNames: ['a.example.com'], issuer: ca, ttlSeconds: 600 });
    const b = await issueTlsCertificate({ dnsNames: ['b.example.com'], issuer: ca, ttlSeconds: 600 });
    const store = new CredentialDirectory(dir);
    const cred = {
      certificateChain: a.certificate,
      privateKey: a.privateKeyPem,
      caCertificate: ca.certificate,
    };
    expect(store.write('istio-system', 'a-cred', cred)).toEqual({ created: true });
    expect(store.write('istio-system', 'a-cred', cred)).toEqual({ created: false });
    expect(store.read('istio-system', 'a-cred')).toEqual(cred);
    expect((fs.statSync(store.file('istio-system', 'a-cred')).mode & 0o777).toString(8)).toBe('600');
    expect(store.list().map((c) => `${c.namespace}/${c.name}`)).toEqual(['istio-system/a-cred']);
    expect(store.read('istio-system', 'missing')).toBeUndefined();

    const mismatch = () =>
      store.write('istio-system', 'bad', { certificateChain: a.certificate, privateKey: b.privateKeyPem });
    expect(mismatch).toThrow(PkiError);
    expect(mismatch).toThrow(
      'credential istio-system/bad: tls.key does not belong to the certificate in tls.crt',
    );
    expect(() =>
      store.write('istio-system', 'bad', { certificateChain: 'nope', privateKey: a.privateKeyPem }),
    ).toThrow('credential istio-system/bad: tls.crt holds no PEM certificate');
    expect(() => store.file('istio-system', '../escape')).toThrow(
      '"../escape" is not a valid credential name',
    );
    expect(store.read('istio-system', 'bad')).toBeUndefined();

    expect(store.delete('istio-system', 'a-cred')).toBe(true);
    expect(store.delete('istio-system', 'a-cred')).toBe(false);
  });
});
