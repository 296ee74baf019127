import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createRootCa,
  describeKeyAlgorithm,
  exportPrivateKeyPem,
  exportPublicKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  KEY_TYPES,
  type KeyType,
  keyPairMatches,
  PkiError,
  parseCertificate,
  parseKeyType,
  signingAlgorithm,
} from '../src/index.js';

const expected: Record<
  KeyType,
  { node: string; details: Record<string, unknown>; sig: Record<string, unknown> }
> = {
  'EC-P256': { node: 'ec', details: { namedCurve: 'prime256v1' }, sig: { name: 'ECDSA', hash: 'SHA-256' } },
  'EC-P384': { node: 'ec', details: { namedCurve: 'secp384r1' }, sig: { name: 'ECDSA', hash: 'SHA-384' } },
  'RSA-2048': { node: 'rsa', details: { modulusLength: 2048 }, sig: { name: 'RSASSA-PKCS1-v1_5' } },
  'RSA-3072': { node: 'rsa', details: { modulusLength: 3072 }, sig: { name: 'RSASSA-PKCS1-v1_5' } },
  'RSA-4096': { node: 'rsa', details: { modulusLength: 4096 }, sig: { name: 'RSASSA-PKCS1-v1_5' } },
};

describe('key pairs', () => {
  it.each(KEY_TYPES.map((t) => [t]))(
    '%s: generated, exported as PKCS#8 and SPKI PEM that Node reads back',
    async (type) => {
      const keys = await generateKeyPair(type);
      expect(keys.type).toBe(type);
      const privatePem = await exportPrivateKeyPem(keys.privateKey);
      expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/);
      const node = createPrivateKey(privatePem);
      expect(node.asymmetricKeyType).toBe(expected[type].node);
      expect(node.asymmetricKeyDetails).toMatchObject(expected[type].details);
      const publicPem = await exportPublicKeyPem(keys.publicKey);
      expect(publicPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
      expect(createPublicKey(publicPem).asymmetricKeyType).toBe(expected[type].node);
      expect(signingAlgorithm(keys.privateKey)).toEqual(expected[type].sig);
    },
    30_000,
  );

  it('refuses to export the wrong half and unknown key types', async () => {
    const keys = await generateKeyPair();
    await expect(exportPrivateKeyPem(keys.publicKey)).rejects.toThrow(/needs a private key/);
    await expect(exportPublicKeyPem(keys.privateKey)).rejects.toThrow(/needs a public key/);
    await expect(generateKeyPair('DSA-1024' as KeyType)).rejects.toThrow(PkiError);
  });

  it.each([
    ['ec-p256', 'EC-P256'],
    ['EC-P384', 'EC-P384'],
    ['rsa-4096', 'RSA-4096'],
  ])('parseKeyType(%s) = %s', (input, want) => {
    expect(parseKeyType(input)).toBe(want);
  });

  it.each([['ed25519'], ['RSA-1024'], ['']])(
    'parseKeyType(%j) refuses, naming the accepted types',
    (input) => {
      expect(() => parseKeyType(input)).toThrow(/unknown key type .*EC-P256, EC-P384, RSA-2048/);
    },
  );
});

describe('importPrivateKeyPem', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases: [string, string][] = [
    ['PKCS#8 EC', ec.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string],
    ['SEC1 EC (openssl, cert-manager)', ec.privateKey.export({ format: 'pem', type: 'sec1' }) as string],
    ['PKCS#8 RSA', rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string],
    ['PKCS#1 RSA (cert-manager default)', rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }) as string],
  ];

  it.each(cases)('reads %s into a signing key', async (_name, pem) => {
    expect(pem).toMatch(/-----BEGIN (EC |RSA )?PRIVATE KEY-----/);
    const key = await importPrivateKeyPem(pem);
    expect(key.type).toBe('private');
    expect(key.usages).toEqual(['sign']);
    expect(signingAlgorithm(key).name).toMatch(/ECDSA|RSASSA-PKCS1-v1_5/);
  });

  const refusals: [string, string, RegExp][] = [
    ['garbage', 'not a key', /not an unencrypted PEM private key/],
    [
      'an encrypted key',
      ec.privateKey.export({
        format: 'pem',
        type: 'pkcs8',
        cipher: 'aes-256-cbc',
        passphrase: 'pw',
      }) as string,
      /encrypted keys are not supported/,
    ],
    [
      'an Ed25519 key',
      generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
      /ed25519 private keys are not supported/,
    ],
    [
      'an EC key on secp256k1',
      generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({
        format: 'pem',
        type: 'pkcs8',
      }) as string,
      /curve secp256k1 are not supported/,
    ],
  ];

  it.each(refusals)('refuses %s with a clear reason and no key material', async (_name, pem, message) => {
    const err = await importPrivateKeyPem(pem).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PkiError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toMatch(/BEGIN|[A-Za-z0-9+/]{40}/);
  });
});

describe('keyPairMatches and describeKeyAlgorithm', () => {
  it('tells a matching key pair from a foreign one', async () => {
    const root = await createRootCa();
    const other = await generateKeyPair();
    const cert = parseCertificate(root.certificate);
    expect(await keyPairMatches(root.privateKey, cert.publicKey)).toBe(true);
    expect(await keyPairMatches(other.privateKey, cert.publicKey)).toBe(false);
    const rsa = await generateKeyPair('RSA-2048');
    expect(await keyPairMatches(rsa.privateKey, cert.publicKey)).toBe(false);
  });

  it.each([
    [{ name: 'ECDSA', namedCurve: 'P-256' }, 'ECDSA P-256'],
    [{ name: 'RSASSA-PKCS1-v1_5', modulusLength: 3072 }, 'RSA 3072'],
    [{ name: 'RSA-PSS', modulusLength: 2048 }, 'RSA-PSS 2048'],
    [{ name: 'Ed25519' }, 'Ed25519'],
    [{ name: '1.2.840.10040.4.1' }, 'unknown algorithm (OID 1.2.840.10040.4.1)'],
  ])('describeKeyAlgorithm(%j) = %s', (alg, text) => {
    expect(describeKeyAlgorithm(alg)).toBe(text);
  });
});
