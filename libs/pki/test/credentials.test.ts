import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CredentialDirectory,
  certificateInfo,
  checkCaCredential,
  checkTlsCredential,
  createCrl,
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

  it('keeps a credential that holds only a CA (ca.crt, ca.crl): readCa gives it, read refuses it as a certificate', async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const leaf = await issueTlsCertificate({ dnsNames: ['c.example.com'], issuer: ca, ttlSeconds: 600 });
    const crl = await createCrl({ issuer: ca, revokedSerials: ['01'] });
    const store = new CredentialDirectory(dir);
    expect(store.write('istio-system', 'ext-ca', { caCertificate: ca.certificate, caCrl: crl })).toEqual({
      created: true,
    });
    // The file is a Secret's data: ca.crt and ca.crl, nothing else.
    expect(JSON.parse(fs.readFileSync(store.file('istio-system', 'ext-ca'), 'utf8'))).toEqual({
      'ca.crt': ca.certificate,
      'ca.crl': crl,
    });
    expect(store.readCa('istio-system', 'ext-ca')).toEqual({ caCertificate: ca.certificate, caCrl: crl });
    expect(store.has('istio-system', 'ext-ca')).toBe(true);
    const asCertificate = () => store.read('istio-system', 'ext-ca');
    expect(asCertificate).toThrow(PkiError);
    expect(asCertificate).toThrow(
      'credential istio-system/ext-ca holds only a CA (ca.crt), not the certificate and key (tls.crt, tls.key) a server or client certificate needs',
    );

    // A full credential gives its CA too; one without a CA, or none at all, gives none.
    store.write('istio-system', 'full', {
      certificateChain: leaf.certificate,
      privateKey: leaf.privateKeyPem,
      caCertificate: ca.certificate,
    });
    expect(store.readCa('istio-system', 'full')).toEqual({ caCertificate: ca.certificate });
    store.write('istio-system', 'no-ca', {
      certificateChain: leaf.certificate,
      privateKey: leaf.privateKeyPem,
    });
    expect(store.readCa('istio-system', 'no-ca')).toBeUndefined();
    expect(store.readCa('istio-system', 'absent')).toBeUndefined();
    expect(store.has('istio-system', 'absent')).toBe(false);

    // Replacing a CA-only credential with a new CA rotates it.
    const next = await createRootCa({ ttlSeconds: 3600 });
    expect(store.write('istio-system', 'ext-ca', { caCertificate: next.certificate })).toEqual({
      created: false,
    });
    expect(store.readCa('istio-system', 'ext-ca')).toEqual({ caCertificate: next.certificate });
  });

  it('refuses a malformed CA or CRL, naming the credential and the key, and writes nothing', async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const store = new CredentialDirectory(dir);
    const garbled = ca.certificate.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!');
    const cases: [string, { caCertificate: string; caCrl?: string }, string][] = [
      ['text', { caCertificate: 'not a certificate' }, 'ca.crt holds no PEM certificate'],
      ['garbled', { caCertificate: garbled }, 'ca.crt is not a PEM certificate ('],
      [
        'crl',
        { caCertificate: ca.certificate, caCrl: ca.certificate },
        'ca.crl holds no PEM certificate revocation list',
      ],
    ];
    for (const [name, credential, reason] of cases) {
      const write = () => store.write('default', `bad-${name}`, credential);
      expect(write).toThrow(PkiError);
      expect(write).toThrow(`credential default/bad-${name}: ${reason}`);
      expect(store.has('default', `bad-${name}`)).toBe(false);
      expect(() => checkCaCredential(credential, 'the CA')).toThrow(`the CA: ${reason}`);
    }
    // The same check applies to the CA beside a certificate and key.
    const leaf = await issueTlsCertificate({ dnsNames: ['d.example.com'], issuer: ca, ttlSeconds: 600 });
    expect(() =>
      store.write('default', 'bad-beside', {
        certificateChain: leaf.certificate,
        privateKey: leaf.privateKeyPem,
        caCertificate: 'nope',
      }),
    ).toThrow('credential default/bad-beside: ca.crt holds no PEM certificate');
    // A file that is no credential object is refused by name.
    fs.mkdirSync(path.join(dir, 'default'), { recursive: true });
    fs.writeFileSync(store.file('default', 'list'), '["ca.crt"]');
    expect(() => store.readCa('default', 'list')).toThrow(
      `${store.file('default', 'list')} is not a JSON object of PEM strings`,
    );
  });
});
