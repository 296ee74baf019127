import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createCsr,
  createIntermediateCa,
  createRootCa,
  generateKeyPair,
  issueWorkloadCertificate,
  loadCaBundle,
  PkiError,
  type PkiErrorReason,
  parseCsr,
  verifyChain,
  workloadChain,
} from '../src/index.js';

async function plugIn() {
  const root = await createRootCa({ ttlSeconds: 86_400 });
  const int = await createIntermediateCa({
    issuer: root,
    subject: 'O=cluster.local, CN=Intermediate',
    ttlSeconds: 3600,
  });
  return { root, int };
}

describe('loadCaBundle', () => {
  it('loads Istio’s plug-in layout (cert-chain = ca-cert + root) and issues chains that verify', async () => {
    const { root, int } = await plugIn();
    const bundle = await loadCaBundle({
      caCert: int.certificate,
      caKey: int.privateKeyPem,
      certChain: int.certificate + root.certificate,
      rootCert: root.certificate,
    });
    expect(bundle.intermediates).toEqual([int.certificate]);
    expect(bundle.root).toBe(root.certificate);
    expect(bundle.roots).toEqual([root.certificate]);
    expect(bundle.signerInfo.subject).toBe('O=cluster.local, CN=Intermediate');
    expect(bundle.chainExpiry.getTime()).toBe(bundle.signerInfo.notAfter.getTime());
    const csr = await parseCsr(await createCsr({ keys: await generateKeyPair() }));
    const leaf = await issueWorkloadCertificate({
      csr,
      identity: 'spiffe://cluster.local/ns/a/sa/b',
      issuer: bundle.signer,
      ttlSeconds: 60,
    });
    const chain = workloadChain(bundle, leaf);
    expect(chain).toEqual([leaf, int.certificate, root.certificate]);
    const verified = await verifyChain({ leaf, intermediates: chain.slice(1, -1), roots: bundle.roots });
    expect(verified.ok).toBe(true);
  });

  it('loads a self-signed root alone (no cert-chain, no root-cert): the chain is leaf + root', async () => {
    const root = await createRootCa();
    const bundle = await loadCaBundle({ caCert: root.certificate, caKey: root.privateKeyPem });
    expect(bundle.intermediates).toEqual([]);
    expect(bundle.root).toBe(root.certificate);
    expect(workloadChain(bundle, 'LEAF')).toEqual(['LEAF', root.certificate]);
  });

  it('accepts a root bundle with several roots and a PKCS#1 / SEC1 key as cert-manager writes them', async () => {
    const { root, int } = await plugIn();
    const other = await createRootCa();
    const sec1 = createPrivateKey(int.privateKeyPem).export({ format: 'pem', type: 'sec1' }) as string;
    const bundle = await loadCaBundle({
      caCert: int.certificate,
      caKey: sec1,
      rootCert: other.certificate + root.certificate,
    });
    expect(bundle.root).toBe(root.certificate);
    expect(bundle.roots).toHaveLength(2);
    const rsaRoot = await createRootCa({ keyType: 'RSA-2048' });
    const pkcs1 = createPrivateKey(rsaRoot.privateKeyPem).export({ format: 'pem', type: 'pkcs1' }) as string;
    expect((await loadCaBundle({ caCert: rsaRoot.certificate, caKey: pkcs1 })).signerInfo.keyType).toBe(
      'RSA 2048',
    );
  });

  const refusals: [string, () => Promise<Parameters<typeof loadCaBundle>[0]>, PkiErrorReason, RegExp][] = [
    [
      'a key that belongs to another certificate',
      async () => {
        const { root, int } = await plugIn();
        return { caCert: int.certificate, caKey: root.privateKeyPem, rootCert: root.certificate };
      },
      'key-mismatch',
      /ca-key.pem does not match the certificate in ca-cert.pem/,
    ],
    [
      'a ca-cert that is not a CA',
      async () => {
        const root = await createRootCa();
        const keys = await generateKeyPair();
        const csr = await parseCsr(await createCsr({ keys }));
        const leaf = await issueWorkloadCertificate({
          csr,
          identity: 'spiffe://cluster.local/ns/a/sa/b',
          issuer: root,
          ttlSeconds: 60,
        });
        return { caCert: leaf, caKey: root.privateKeyPem, rootCert: root.certificate };
      },
      'not-a-ca',
      /ca-cert.pem .* is not a CA certificate/,
    ],
    [
      'a root-cert that is not the issuer',
      async () => {
        const { int } = await plugIn();
        const other = await createRootCa({ organization: 'other' });
        return { caCert: int.certificate, caKey: int.privateKeyPem, rootCert: other.certificate };
      },
      'untrusted-chain',
      /ca-cert.pem does not chain to root-cert.pem: .*is not among the intermediates or trusted roots/,
    ],
    [
      'an intermediate with no root-cert',
      async () => {
        const { int } = await plugIn();
        return { caCert: int.certificate, caKey: int.privateKeyPem };
      },
      'malformed',
      /root-cert.pem is missing or empty/,
    ],
    [
      'an expired CA',
      async () => {
        const root = await createRootCa({ ttlSeconds: 60, now: new Date(Date.now() - 86_400_000) });
        return { caCert: root.certificate, caKey: root.privateKeyPem };
      },
      'untrusted-chain',
      /expired at/,
    ],
    [
      'a truncated ca-cert (half-written file)',
      async () => {
        const root = await createRootCa();
        return { caCert: root.certificate.slice(0, 100), caKey: root.privateKeyPem };
      },
      'malformed',
      /ca-cert.pem/,
    ],
    [
      'an unsupported key type',
      async () => {
        const root = await createRootCa();
        const ed = generateKeyPairSync('ed25519').privateKey.export({
          format: 'pem',
          type: 'pkcs8',
        }) as string;
        return { caCert: root.certificate, caKey: ed };
      },
      'unsupported-key',
      /ca-key.pem: ed25519 private keys are not supported/,
    ],
    [
      'a key file that is not a key',
      async () => ({ caCert: (await createRootCa()).certificate, caKey: '' }),
      'malformed',
      /ca-key.pem: not an unencrypted PEM private key/,
    ],
  ];

  it.each(refusals)('refuses %s, naming the file and never the key', async (_name, make, reason, message) => {
    const err = await loadCaBundle(await make()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PkiError);
    expect((err as PkiError).reason).toBe(reason);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toMatch(/PRIVATE KEY/);
  });
});
