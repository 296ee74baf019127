import { PkiError } from './errors.js';
import { describeKeyAlgorithm, type KeyPair, signingAlgorithm } from './keys.js';
import { errorSummary, pemBlocks } from './pem.js';
import { type Algorithm, type CryptoKeyPair, x509 } from './provider.js';

export interface CreateCsrOptions {
  keys: KeyPair | CryptoKeyPair;
  /** URI SANs; a workload asks for its SPIFFE id here. */
  uris?: string[];
  dnsNames?: string[];
  /** Subject DN (`O=cluster.local`); empty by default, as Istio's agent sends it. */
  subject?: string;
}

/** A PKCS#10 request (PEM) signed with `keys.privateKey`, asking for the given SANs. */
export async function createCsr(options: CreateCsrOptions): Promise<string> {
  const names: x509.JsonGeneralNames = [
    ...(options.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: options.subject ?? '',
    keys: { privateKey: options.keys.privateKey, publicKey: options.keys.publicKey },
    signingAlgorithm: signingAlgorithm(options.keys.privateKey),
    extensions: names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  const text = csr.toString('pem');
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** What a CA accepts in a request. The defaults are Istio's: ECDSA P-256/P-384 or RSA 2048-4096, SHA-2 signatures. */
export interface CsrPolicy {
  /** Largest accepted PEM, in bytes (UTF-8). Default 64 KiB. */
  maxBytes?: number;
  /** Accepted ECDSA curves (WebCrypto names). Default P-256 and P-384. */
  ecCurves?: readonly string[];
  minRsaBits?: number;
  maxRsaBits?: number;
}

export const DEFAULT_CSR_POLICY: Required<CsrPolicy> = {
  maxBytes: 64 * 1024,
  ecCurves: ['P-256', 'P-384'],
  minRsaBits: 2048,
  maxRsaBits: 4096,
};

const ACCEPTED_HASHES = new Set(['SHA-256', 'SHA-384', 'SHA-512']);

export interface ParsedCsr {
  /** The key the certificate will certify. */
  publicKey: x509.PublicKey;
  /** "ECDSA P-256", "RSA 2048". */
  keyType: string;
  subject: string;
  /** SANs the requester asked for (a CA decides what it actually issues). */
  uris: string[];
  dnsNames: string[];
}

function allowedKeysText(policy: Required<CsrPolicy>): string {
  return `ECDSA ${policy.ecCurves.join('/')} or RSA ${policy.minRsaBits}-${policy.maxRsaBits} bits`;
}

/** Throws unless the key is one the policy allows; returns its description. */
export function checkPublicKey(publicKey: x509.PublicKey, policy: CsrPolicy = {}): string {
  const p = { ...DEFAULT_CSR_POLICY, ...policy };
  const alg = publicKey.algorithm as Algorithm & { namedCurve?: string; modulusLength?: number };
  const description = describeKeyAlgorithm(alg);
  if (alg.name === 'ECDSA') {
    if (alg.namedCurve && p.ecCurves.includes(alg.namedCurve)) return description;
    throw new PkiError('unsupported-key', `${description} keys are not accepted (use ${allowedKeysText(p)})`);
  }
  if (alg.name === 'RSASSA-PKCS1-v1_5') {
    const bits = alg.modulusLength ?? 0;
    if (bits < p.minRsaBits) {
      throw new PkiError('weak-key', `RSA ${bits}-bit keys are too weak (at least ${p.minRsaBits} bits)`);
    }
    if (bits > p.maxRsaBits) {
      throw new PkiError(
        'unsupported-key',
        `RSA ${bits}-bit keys are larger than the ${p.maxRsaBits}-bit maximum`,
      );
    }
    return description;
  }
  throw new PkiError('unsupported-key', `${description} keys are not accepted (use ${allowedKeysText(p)})`);
}

function decode(text: string, maxBytes: number): x509.Pkcs10CertificateRequest {
  if (typeof text !== 'string' || text.trim() === '') throw new PkiError('malformed', 'the CSR is empty');
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes) {
    throw new PkiError('too-large', `the CSR is ${size} bytes; the limit is ${maxBytes}`);
  }
  const blocks = pemBlocks(text, 'CSR');
  const requests = blocks.filter(
    (b) => b.type === 'CERTIFICATE REQUEST' || b.type === 'NEW CERTIFICATE REQUEST',
  );
  if (requests.length !== 1 || blocks.length !== 1) {
    throw new PkiError(
      'malformed',
      `the CSR must be exactly one PEM CERTIFICATE REQUEST block (found ${blocks.map((b) => b.type).join(', ')})`,
    );
  }
  try {
    return new x509.Pkcs10CertificateRequest(requests[0]!.der);
  } catch (err) {
    throw new PkiError(
      'malformed',
      `the CSR is not a valid PKCS#10 request (${errorSummary((err as Error).message)})`,
    );
  }
}

function requestedNames(csr: x509.Pkcs10CertificateRequest): { uris: string[]; dnsNames: string[] } {
  const uris: string[] = [];
  const dnsNames: string[] = [];
  let extensions: x509.Extension[];
  try {
    extensions = csr.extensions;
  } catch (err) {
    throw new PkiError(
      'malformed',
      `the CSR's extensions do not decode (${errorSummary((err as Error).message)})`,
    );
  }
  for (const ext of extensions) {
    if (!(ext instanceof x509.SubjectAlternativeNameExtension)) continue;
    let items: readonly x509.GeneralName[];
    try {
      items = ext.names.items;
    } catch (err) {
      throw new PkiError(
        'malformed',
        `the CSR's subjectAltName does not decode (${errorSummary((err as Error).message)})`,
      );
    }
    for (const name of items) {
      if (name.type === 'url') uris.push(name.value);
      else if (name.type === 'dns') dnsNames.push(name.value);
    }
  }
  return { uris, dnsNames };
}

/**
 * Decodes and checks a PEM CSR: bounded size, exactly one request, an allowed
 * key type and size, a SHA-2 signature that verifies with the request's own
 * key (proof the requester holds the private key). Throws a PkiError whose
 * reason says which check failed.
 */
export async function parseCsr(text: string, policy: CsrPolicy = {}): Promise<ParsedCsr> {
  const p = { ...DEFAULT_CSR_POLICY, ...policy };
  const csr = decode(text, p.maxBytes);
  let publicKey: x509.PublicKey;
  try {
    publicKey = csr.publicKey;
  } catch (err) {
    throw new PkiError(
      'malformed',
      `the CSR's public key does not decode (${errorSummary((err as Error).message)})`,
    );
  }
  const keyType = checkPublicKey(publicKey, p);
  const hash = (csr.signatureAlgorithm as { hash?: { name?: string } }).hash?.name;
  if (!hash || !ACCEPTED_HASHES.has(hash)) {
    throw new PkiError(
      'weak-signature',
      `the CSR is signed with ${hash ?? 'an unknown algorithm'}; SHA-256, SHA-384 or SHA-512 is required`,
    );
  }
  let valid: boolean;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new PkiError('bad-signature', "the CSR's signature does not verify with its public key");
  const { uris, dnsNames } = requestedNames(csr);
  return { publicKey, keyType, subject: csr.subject, uris, dnsNames };
}
