import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createCsr,
  createRootCa,
  DEFAULT_CSR_POLICY,
  generateKeyPair,
  KEY_TYPES,
  PkiError,
  type PkiErrorReason,
  parseCsr,
} from '../src/index.js';

/** CSRs WebCrypto cannot make, written once with `openssl req -new` (secp256k1, DSA, RSA signed with SHA-1). */
const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

const ID = 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews';

async function refusal(pem: string, policy = {}): Promise<PkiError> {
  const err = await parseCsr(pem, policy).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PkiError);
  return err as PkiError;
}

function reencode(pem: string, edit: (der: Buffer) => void): string {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(b64, 'base64');
  edit(der);
  const body = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${body}\n-----END CERTIFICATE REQUEST-----\n`;
}

describe('createCsr + parseCsr', () => {
  it.each(KEY_TYPES.filter((t) => t !== 'RSA-4096' && t !== 'RSA-3072').map((t) => [t]))(
    '%s: a workload CSR asking for its SPIFFE id verifies and shows what it asks for',
    async (type) => {
      const keys = await generateKeyPair(type);
      const pem = await createCsr({ keys, uris: [ID], dnsNames: ['reviews.default.svc'] });
      expect(pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/);
      const csr = await parseCsr(pem);
      expect(csr.uris).toEqual([ID]);
      expect(csr.dnsNames).toEqual(['reviews.default.svc']);
      expect(csr.subject).toBe('');
      expect(csr.keyType).toBe(type.startsWith('EC') ? `ECDSA P-${type.slice(4)}` : `RSA ${type.slice(4)}`);
    },
  );

  it('keeps a subject when one is given, and a CSR with no SANs has none', async () => {
    const keys = await generateKeyPair();
    const csr = await parseCsr(await createCsr({ keys, subject: 'O=cluster.local' }));
    expect(csr.subject).toBe('O=cluster.local');
    expect(csr.uris).toEqual([]);
  });

  it('accepts the legacy NEW CERTIFICATE REQUEST label', async () => {
    const pem = (await createCsr({ keys: await generateKeyPair(), uris: [ID] })).replace(
      /CERTIFICATE REQUEST/g,
      'NEW CERTIFICATE REQUEST',
    );
    expect((await parseCsr(pem)).uris).toEqual([ID]);
  });
});

describe('parseCsr refusals', () => {
  it('has Istio-like defaults: 64 KiB, P-256/P-384, RSA 2048-4096', () => {
    expect(DEFAULT_CSR_POLICY).toEqual({
      maxBytes: 65536,
      ecCurves: ['P-256', 'P-384'],
      minRsaBits: 2048,
      maxRsaBits: 4096,
    });
  });

  const cases: [string, () => Promise<string>, PkiErrorReason, RegExp, object?][] = [
    ['an empty string', async () => '', 'malformed', /the CSR is empty/],
    ['text without PEM', async () => 'hello', 'malformed', /no PEM block found/],
    [
      'a PEM block of garbage',
      async () => '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      'malformed',
      /not a valid PKCS#10 request/,
    ],
    [
      'a certificate instead of a CSR',
      async () => (await createRootCa()).certificate,
      'malformed',
      /exactly one PEM CERTIFICATE REQUEST block \(found CERTIFICATE\)/,
    ],
    [
      'two CSRs in one',
      async () => {
        const keys = await generateKeyPair();
        return (await createCsr({ keys })) + (await createCsr({ keys }));
      },
      'malformed',
      /exactly one PEM CERTIFICATE REQUEST block/,
    ],
    [
      'a CSR over 64 KiB',
      async () => `${await createCsr({ keys: await generateKeyPair() })}${' '.repeat(64 * 1024)}`,
      'too-large',
      /the CSR is \d+ bytes; the limit is 65536/,
    ],
    [
      'a CSR over a smaller configured bound',
      async () => createCsr({ keys: await generateKeyPair() }),
      'too-large',
      /the limit is 100/,
      { maxBytes: 100 },
    ],
    [
      'an RSA-1024 key',
      async () => {
        const pair = (await webcrypto.subtle.generateKey(
          {
            name: 'RSASSA-PKCS1-v1_5',
            modulusLength: 1024,
            publicExponent: new Uint8Array([1, 0, 1]),
            hash: 'SHA-256',
          },
          true,
          ['sign', 'verify'],
        )) as webcrypto.CryptoKeyPair;
        return createCsr({ keys: pair, uris: [ID] });
      },
      'weak-key',
      /RSA 1024-bit keys are too weak \(at least 2048 bits\)/,
    ],
    [
      'an RSA key above the configured maximum',
      async () => createCsr({ keys: await generateKeyPair('RSA-3072') }),
      'unsupported-key',
      /RSA 3072-bit keys are larger than the 2048-bit maximum/,
      { maxRsaBits: 2048 },
    ],
    [
      'an ECDSA P-521 key',
      async () => {
        const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, true, [
          'sign',
          'verify',
        ])) as webcrypto.CryptoKeyPair;
        return createCsr({ keys: pair });
      },
      'unsupported-key',
      /ECDSA P-521 keys are not accepted \(use ECDSA P-256\/P-384 or RSA 2048-4096 bits\)/,
    ],
    [
      'an Ed25519 key',
      async () => {
        const pair = (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, true, [
          'sign',
          'verify',
        ])) as webcrypto.CryptoKeyPair;
        const { x509 } = await import('../src/provider.js');
        const csr = await x509.Pkcs10CertificateRequestGenerator.create({
          keys: pair,
          signingAlgorithm: { name: 'Ed25519' },
        });
        return csr.toString('pem');
      },
      'unsupported-key',
      /Ed25519 keys are not accepted/,
    ],
    [
      'an ECDSA secp256k1 key',
      async () => fixture('csr-secp256k1.pem'),
      'unsupported-key',
      /ECDSA K-256 keys/,
    ],
    [
      'a DSA key',
      async () => fixture('csr-dsa.pem'),
      'unsupported-key',
      /unknown algorithm \(OID 1\.2\.840\.10040\.4\.1\) keys are not accepted/,
    ],
    [
      'an RSA CSR signed with SHA-1',
      async () => fixture('csr-rsa-sha1.pem'),
      'weak-signature',
      /signed with SHA-1; SHA-256, SHA-384 or SHA-512 is required/,
    ],
    [
      'a CSR whose signature was tampered with',
      async () =>
        reencode(await createCsr({ keys: await generateKeyPair('RSA-2048'), uris: [ID] }), (der) => {
          der[der.length - 1] = (der[der.length - 1]! + 1) & 0xff;
        }),
      'bad-signature',
      /signature does not verify with its public key/,
    ],
    [
      'a CSR whose requested SAN was changed after signing',
      async () => {
        const pem = await createCsr({ keys: await generateKeyPair(), uris: [ID] });
        return reencode(pem, (der) => {
          const at = der.indexOf(Buffer.from('bookinfo-reviews'));
          der[at] = 'B'.charCodeAt(0);
        });
      },
      'bad-signature',
      /signature does not verify/,
    ],
  ];

  it.each(cases)('refuses %s', async (_name, make, reason, message, policy) => {
    const err = await refusal(await make(), policy);
    expect(err.reason).toBe(reason);
    expect(err.message).toMatch(message);
    expect(err.message).not.toMatch(/-----BEGIN/);
  });
});
