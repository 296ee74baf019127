import { type CertificateInfo, certificateInfo, isCaCertificate } from './certificates.js';
import { PkiError } from './errors.js';
import { certificatePem, parseCertificate, parseCertificates } from './pem.js';
import { x509 } from './provider.js';

export interface VerifyChainOptions {
  /** The certificate to verify (PEM). */
  leaf: string;
  /** Untrusted certificates that may link the leaf to a root: a PEM bundle or a list of PEMs. */
  intermediates?: string | readonly string[];
  /** Trust anchors: a PEM bundle or a list of PEMs. */
  roots: string | readonly string[];
  /** When the chain must be valid; now by default. */
  at?: Date;
}

export type VerifyChainResult =
  | { ok: true /** leaf first, the trusted root last */; path: CertificateInfo[]; pems: string[] }
  | { ok: false; reason: string };

const MAX_DEPTH = 8;

function bundle(input: string | readonly string[] | undefined, what: string): x509.X509Certificate[] {
  if (input === undefined) return [];
  const texts = typeof input === 'string' ? [input] : input;
  return texts.filter((t) => t.trim() !== '').flatMap((t) => parseCertificates(t, what));
}

function sameCertificate(a: x509.X509Certificate, b: x509.X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

function label(cert: x509.X509Certificate, depth: number): string {
  const who = cert.subject || (certificateInfo(cert).uris[0] ?? 'no subject');
  return `${depth === 0 ? 'the leaf' : `chain certificate ${depth}`} (${who}, serial ${cert.serialNumber.toLowerCase()})`;
}

function validityProblem(cert: x509.X509Certificate, depth: number, at: Date): string | undefined {
  if (at.getTime() < cert.notBefore.getTime()) {
    return `${label(cert, depth)} is not valid until ${cert.notBefore.toISOString()}`;
  }
  if (at.getTime() > cert.notAfter.getTime()) {
    return `${label(cert, depth)} expired at ${cert.notAfter.toISOString()}`;
  }
  return undefined;
}

async function signedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

function keyIdsAgree(cert: x509.X509Certificate, issuer: x509.X509Certificate): boolean {
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  return !aki || !ski || aki.toLowerCase() === ski.toLowerCase();
}

/**
 * Verifies leaf → intermediates → a trusted root: each link's issuer name,
 * key identifiers and signature, every certificate's validity window at
 * `at`, and that every issuer is a CA within its path-length limit. The
 * answer says which link failed and why.
 */
export async function verifyChain(options: VerifyChainOptions): Promise<VerifyChainResult> {
  let leaf: x509.X509Certificate;
  let pool: x509.X509Certificate[];
  let roots: x509.X509Certificate[];
  try {
    leaf = parseCertificate(options.leaf, 'leaf');
    pool = bundle(options.intermediates, 'intermediates');
    roots = bundle(options.roots, 'roots');
  } catch (err) {
    if (err instanceof PkiError) return { ok: false, reason: err.message };
    throw err;
  }
  if (roots.length === 0) return { ok: false, reason: 'no trusted roots were given' };
  const at = options.at ?? new Date();
  const path: x509.X509Certificate[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth <= MAX_DEPTH; depth++) {
    const problem = validityProblem(current, depth, at);
    if (problem) return { ok: false, reason: problem };
    if (roots.some((r) => sameCertificate(r, current))) {
      return { ok: true, path: path.map((c) => certificateInfo(c)), pems: path.map(certificatePem) };
    }
    const named = [...roots, ...pool].filter(
      (c) =>
        c.subject === current.issuer && !path.some((p) => sameCertificate(p, c)) && keyIdsAgree(current, c),
    );
    if (named.length === 0) {
      return {
        ok: false,
        reason: `${label(current, depth)}: its issuer "${current.issuer}" is not among the intermediates or trusted roots`,
      };
    }
    let issuer: x509.X509Certificate | undefined;
    for (const candidate of named) {
      if (await signedBy(current, candidate)) {
        issuer = candidate;
        break;
      }
    }
    if (!issuer) {
      return {
        ok: false,
        reason: `${label(current, depth)}: its signature does not verify with the key of "${current.issuer}"`,
      };
    }
    if (!isCaCertificate(issuer)) {
      return {
        ok: false,
        reason: `${label(issuer, depth + 1)} signed ${label(current, depth)} but is not a CA`,
      };
    }
    const limit = issuer.getExtension(x509.BasicConstraintsExtension)?.pathLength;
    const casBelow = path.length - 1;
    if (limit !== undefined && casBelow > limit) {
      return {
        ok: false,
        reason: `${label(issuer, depth + 1)} allows ${limit} intermediate(s) below it, the chain has ${casBelow}`,
      };
    }
    path.push(issuer);
    current = issuer;
  }
  return { ok: false, reason: `the chain is longer than ${MAX_DEPTH} certificates` };
}
