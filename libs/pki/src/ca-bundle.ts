import { type CaCredentials, type CertificateInfo, isCaCertificate } from './certificates.js';
import { verifyChain } from './chain.js';
import { PkiError } from './errors.js';
import { importPrivateKeyPem, keyPairMatches } from './keys.js';
import { certificatePem, parseCertificates } from './pem.js';
import type { CryptoKey } from './provider.js';

/**
 * Istio's plug-in CA layout (`cacerts`), as cert-manager or an operator
 * writes it: the signing certificate and key, the chain from it up to the
 * root, and the root bundle.
 */
export interface CaFiles {
  /** ca-cert.pem: the certificate workload certificates are signed with. */
  caCert: string;
  /** ca-key.pem: its private key (PKCS#8, PKCS#1 or SEC1 PEM). */
  caKey: string;
  /** cert-chain.pem: ca-cert and any intermediates up to the root (the root may be included). */
  certChain?: string;
  /** root-cert.pem: one or more trusted roots. Optional when ca-cert is itself a self-signed root. */
  rootCert?: string;
}

/** A checked, ready-to-sign CA. */
export interface CaBundle {
  signer: CaCredentials;
  /** From the signer up to, not including, the root; empty when the signer is the root. */
  intermediates: string[];
  /** The root the signer chains to. */
  root: string;
  /** Every trusted root (root-cert.pem may hold more than one while roots rotate). */
  roots: string[];
  signerInfo: CertificateInfo;
  rootInfo: CertificateInfo;
  /** The earliest notAfter from the signer up to the root. */
  chainExpiry: Date;
}

/**
 * Loads and checks a CA: the key matches ca-cert, ca-cert is a CA, and it
 * chains through cert-chain to a root in root-cert, all valid at `at`.
 * Throws a PkiError naming the file and the problem; never echoes key material.
 */
export async function loadCaBundle(files: CaFiles, at: Date = new Date()): Promise<CaBundle> {
  const [signerCert, ...extra] = parseCertificates(files.caCert, 'ca-cert.pem');
  if (!signerCert) throw new PkiError('malformed', 'ca-cert.pem: no certificate found');
  if (!isCaCertificate(signerCert)) {
    throw new PkiError(
      'not-a-ca',
      `ca-cert.pem (${signerCert.subject}) is not a CA certificate (CA:true, keyCertSign)`,
    );
  }
  let privateKey: CryptoKey;
  try {
    privateKey = await importPrivateKeyPem(files.caKey);
  } catch (err) {
    throw new PkiError(
      err instanceof PkiError ? err.reason : 'malformed',
      `ca-key.pem: ${(err as Error).message}`,
    );
  }
  if (!(await keyPairMatches(privateKey, signerCert.publicKey))) {
    throw new PkiError('key-mismatch', 'ca-key.pem does not match the certificate in ca-cert.pem');
  }
  const chain = [
    ...extra.map(certificatePem),
    ...(files.certChain?.trim()
      ? parseCertificates(files.certChain, 'cert-chain.pem').map(certificatePem)
      : []),
  ];
  const signerPem = certificatePem(signerCert);
  let roots: string[];
  if (files.rootCert?.trim()) {
    roots = parseCertificates(files.rootCert, 'root-cert.pem').map(certificatePem);
  } else if (signerCert.subject === signerCert.issuer && (await signerCert.isSelfSigned())) {
    roots = [signerPem];
  } else {
    throw new PkiError(
      'malformed',
      'root-cert.pem is missing or empty and ca-cert.pem is not a self-signed root',
    );
  }
  const verified = await verifyChain({ leaf: signerPem, intermediates: chain, roots, at });
  if (!verified.ok)
    throw new PkiError('untrusted-chain', `ca-cert.pem does not chain to root-cert.pem: ${verified.reason}`);
  const root = verified.pems[verified.pems.length - 1]!;
  return {
    signer: { certificate: signerPem, privateKey },
    intermediates: verified.pems.slice(0, -1),
    root,
    roots,
    signerInfo: verified.path[0]!,
    rootInfo: verified.path[verified.path.length - 1]!,
    chainExpiry: new Date(Math.min(...verified.path.map((c) => c.notAfter.getTime()))),
  };
}

/** The chain Istio's CA returns: the leaf, the intermediates from its issuer upwards, the root last. */
export function workloadChain(bundle: CaBundle, leaf: string): string[] {
  return [leaf, ...bundle.intermediates, bundle.root];
}
