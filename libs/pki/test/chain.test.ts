import { describe, expect, it } from 'vitest';
import {
  type CaCredentials,
  type CryptoKey,
  createCsr,
  createIntermediateCa,
  createRootCa,
  generateKeyPair,
  issueWorkloadCertificate,
  parseCertificate,
  parseCsr,
  signingAlgorithm,
  verifyChain,
} from '../src/index.js';
import { x509 } from '../src/provider.js';

const ID = 'spiffe://cluster.local/ns/default/sa/a';

async function leafOf(issuer: CaCredentials, ttlSeconds = 3600): Promise<string> {
  const csr = await parseCsr(await createCsr({ keys: await generateKeyPair() }));
  return issueWorkloadCertificate({ csr, identity: ID, issuer, ttlSeconds });
}

/** A certificate claiming `issuer`'s name, signed by `signingKey` — for links the CA functions refuse to make. */
async function forged(
  issuerCert: string,
  signingKey: CryptoKey,
  extensions: x509.Extension[] = [],
): Promise<string> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'CN=forged',
    issuer: parseCertificate(issuerCert).subject,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: signingAlgorithm(signingKey),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    extensions,
  });
  return cert.toString('pem');
}

describe('verifyChain', () => {
  it('accepts leaf → root and leaf → intermediate → root, returning the path', async () => {
    const root = await createRootCa();
    const int = await createIntermediateCa({ issuer: root, subject: 'CN=Int', ttlSeconds: 3600 });
    const direct = await verifyChain({ leaf: await leafOf(root), roots: root.certificate });
    expect(direct.ok && direct.path.map((c) => c.subject)).toEqual([
      '',
      'O=cluster.local, CN=Mizzen Root CA',
    ]);
    const viaInt = await verifyChain({
      leaf: await leafOf(int),
      intermediates: [int.certificate],
      roots: [root.certificate],
    });
    expect(viaInt.ok && viaInt.path.map((c) => c.subject)).toEqual([
      '',
      'CN=Int',
      'O=cluster.local, CN=Mizzen Root CA',
    ]);
    expect(viaInt.ok && viaInt.pems.length).toBe(3);
  });

  it('finds the right root in a bundle of several (root rotation)', async () => {
    const [a, b] = await Promise.all([createRootCa(), createRootCa()]);
    const result = await verifyChain({ leaf: await leafOf(b), roots: a.certificate + b.certificate });
    expect(result.ok).toBe(true);
  });

  it('accepts a trusted root as its own chain', async () => {
    const root = await createRootCa();
    expect((await verifyChain({ leaf: root.certificate, roots: root.certificate })).ok).toBe(true);
  });

  const cases: [string, () => Promise<Parameters<typeof verifyChain>[0]>, RegExp][] = [
    [
      'a missing intermediate',
      async () => {
        const root = await createRootCa();
        const int = await createIntermediateCa({ issuer: root, subject: 'CN=Int', ttlSeconds: 3600 });
        return { leaf: await leafOf(int), roots: root.certificate };
      },
      /the leaf .*: its issuer "CN=Int" is not among the intermediates or trusted roots/,
    ],
    [
      'another root',
      async () => {
        const root = await createRootCa({ organization: 'a.example' });
        const other = await createRootCa({ organization: 'b.example' });
        return { leaf: await leafOf(root), roots: other.certificate };
      },
      /its issuer "O=a.example, CN=Mizzen Root CA" is not among/,
    ],
    [
      'a root with the same name but another key',
      async () => {
        const root = await createRootCa();
        const impostor = await createRootCa();
        const leaf = await forged(root.certificate, impostor.privateKey);
        return { leaf, roots: root.certificate };
      },
      /its signature does not verify with the key of "O=cluster.local, CN=Mizzen Root CA"/,
    ],
    [
      'an expired leaf',
      async () => {
        const root = await createRootCa();
        return { leaf: await leafOf(root, 60), roots: root.certificate, at: new Date(Date.now() + 3600_000) };
      },
      /the leaf \(spiffe:\/\/cluster.local\/ns\/default\/sa\/a, serial [0-9a-f]+\) expired at/,
    ],
    [
      'a leaf not yet valid',
      async () => {
        const root = await createRootCa();
        return { leaf: await leafOf(root), roots: root.certificate, at: new Date(Date.now() - 3600_000) };
      },
      /the leaf .* is not valid until/,
    ],
    [
      'an expired intermediate',
      async () => {
        const root = await createRootCa();
        const int = await createIntermediateCa({
          issuer: root,
          subject: 'CN=Int',
          ttlSeconds: 60,
          now: new Date(Date.now() - 86_400_000),
        });
        const leaf = await forged(int.certificate, int.privateKey);
        return { leaf, intermediates: int.certificate, roots: root.certificate };
      },
      /chain certificate 1 \(CN=Int, serial [0-9a-f]+\) expired at/,
    ],
    [
      'a link signed by a certificate that is not a CA',
      async () => {
        const root = await createRootCa();
        const keys = await generateKeyPair();
        const csr = await parseCsr(await createCsr({ keys }));
        const middle = await issueWorkloadCertificate({ csr, identity: ID, issuer: root, ttlSeconds: 3600 });
        const fakeMiddle = parseCertificate(middle);
        // Re-issue the workload cert with a subject so a child can name it as issuer.
        const named = await x509.X509CertificateGenerator.create({
          subject: 'CN=not-a-ca',
          issuer: parseCertificate(root.certificate).subject,
          publicKey: fakeMiddle.publicKey,
          signingKey: root.privateKey,
          signingAlgorithm: signingAlgorithm(root.privateKey),
          notBefore: new Date(Date.now() - 60_000),
          notAfter: new Date(Date.now() + 3600_000),
          extensions: [new x509.BasicConstraintsExtension(false, undefined, true)],
        });
        const leaf = await forged(named.toString('pem'), keys.privateKey);
        return { leaf, intermediates: named.toString('pem'), roots: root.certificate };
      },
      /chain certificate 1 \(CN=not-a-ca, .*\) signed the leaf .* but is not a CA/,
    ],
    [
      'more intermediates than the root allows',
      async () => {
        const root = await createRootCa({ pathLength: 0 });
        const int = await createIntermediateCa({ issuer: root, subject: 'CN=Int', ttlSeconds: 3600 });
        return { leaf: await leafOf(int), intermediates: int.certificate, roots: root.certificate };
      },
      /allows 0 intermediate\(s\) below it, the chain has 1/,
    ],
    [
      'no roots',
      async () => ({ leaf: (await createRootCa()).certificate, roots: [] }),
      /no trusted roots were given/,
    ],
    [
      'a leaf that is not a certificate',
      async () => ({ leaf: 'nope', roots: [] }),
      /leaf: no PEM block found/,
    ],
    [
      'roots that do not decode',
      async () => ({
        leaf: (await createRootCa()).certificate,
        roots: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      }),
      /roots: block 1 is not a valid X.509 certificate/,
    ],
  ];

  it.each(cases)('refuses %s, saying why', async (_name, make, reason) => {
    const result = await verifyChain(await make());
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(reason);
  });
});
