import net from 'node:net';
import type { ParsedCsr } from './csr.js';
import { PkiError } from './errors.js';
import {
  describeKeyAlgorithm,
  exportPrivateKeyPem,
  generateKeyPair,
  type KeyPair,
  type KeyType,
  keyPairMatches,
  signingAlgorithm,
} from './keys.js';
import { certificatePem, parseCertificate } from './pem.js';
import { type CryptoKey, x509 } from './provider.js';
import { formatSpiffeId, parseSpiffeId, type SpiffeIdentity } from './spiffe.js';

/** What signs: a CA certificate (PEM) and its private key. */
export interface CaCredentials {
  certificate: string;
  privateKey: CryptoKey;
}

/** A newly made CA: its certificate and key, the key also as PKCS#8 PEM to persist. */
export interface CertifiedKey extends CaCredentials {
  keys: KeyPair;
  privateKeyPem: string;
}

/** Workload certificates start this far in the past, so a peer whose clock runs behind accepts them. */
export const CLOCK_SKEW_SECONDS = 60;
export const DEFAULT_ROOT_TTL_SECONDS = 10 * 365 * 24 * 3600;

function randomSerial(): string {
  // 128 random bits; @peculiar/x509 encodes them as a positive DER INTEGER.
  return Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(16))).toString('hex');
}

function checkTtl(ttlSeconds: number, what: string): void {
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new PkiError(
      'invalid-validity',
      `${what} TTL must be a positive number of seconds, got ${ttlSeconds}`,
    );
  }
}

function basicConstraints(cert: x509.X509Certificate): x509.BasicConstraintsExtension | null {
  return cert.getExtension(x509.BasicConstraintsExtension);
}

function keyUsage(cert: x509.X509Certificate): x509.KeyUsagesExtension | null {
  return cert.getExtension(x509.KeyUsagesExtension);
}

/** True when the certificate may sign certificates (basicConstraints CA:true, keyCertSign if keyUsage is present). */
export function isCaCertificate(cert: x509.X509Certificate): boolean {
  if (!basicConstraints(cert)?.ca) return false;
  const usage = keyUsage(cert);
  return !usage || (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}

function subjectKeyId(cert: x509.X509Certificate): string | undefined {
  return cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
}

async function authorityKeyId(issuer: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = subjectKeyId(issuer);
  return ski
    ? new x509.AuthorityKeyIdentifierExtension(ski)
    : x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey);
}

async function loadIssuer(issuer: CaCredentials, now: Date): Promise<x509.X509Certificate> {
  const cert = parseCertificate(issuer.certificate, 'issuer certificate');
  if (!isCaCertificate(cert)) {
    throw new PkiError(
      'not-a-ca',
      `the issuer certificate (${cert.subject}) is not a CA (basicConstraints CA:true, keyCertSign)`,
    );
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    throw new PkiError(
      'invalid-validity',
      `the issuer certificate expired at ${cert.notAfter.toISOString()}`,
    );
  }
  if (!(await keyPairMatches(issuer.privateKey, cert.publicKey))) {
    throw new PkiError('key-mismatch', 'the issuer private key does not match the issuer certificate');
  }
  return cert;
}

function notAfterWithin(issuer: x509.X509Certificate | undefined, now: Date, ttlSeconds: number): Date {
  const wanted = now.getTime() + ttlSeconds * 1000;
  return new Date(issuer ? Math.min(wanted, issuer.notAfter.getTime()) : wanted);
}

function caExtensions(pathLength: number | undefined): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      true,
    ),
  ];
}

export interface RootCaOptions {
  /** Subject DN. Default `O=<organization>, CN=Mizzen Root CA`. */
  subject?: string;
  /** Default `cluster.local`, as Istio names its self-signed root after the trust domain. */
  organization?: string;
  keyType?: KeyType;
  ttlSeconds?: number;
  /** Maximum number of intermediates below the root; unlimited when absent. */
  pathLength?: number;
  now?: Date;
}

/** A self-signed root: CA:true, keyCertSign + cRLSign, SKI, random serial. */
export async function createRootCa(options: RootCaOptions = {}): Promise<CertifiedKey> {
  const ttl = options.ttlSeconds ?? DEFAULT_ROOT_TTL_SECONDS;
  checkTtl(ttl, 'root CA');
  const now = options.now ?? new Date();
  const keys = await generateKeyPair(options.keyType ?? 'EC-P256');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: options.subject ?? `O=${options.organization ?? 'cluster.local'}, CN=Mizzen Root CA`,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000),
    notAfter: notAfterWithin(undefined, now, ttl),
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: signingAlgorithm(keys.privateKey),
    extensions: [
      ...caExtensions(options.pathLength),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certificate: certificatePem(cert),
    privateKey: keys.privateKey,
    keys,
    privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

export interface IntermediateCaOptions {
  issuer: CaCredentials;
  subject: string;
  keyType?: KeyType;
  /** Clamped so the intermediate never outlives its issuer. */
  ttlSeconds: number;
  pathLength?: number;
  now?: Date;
}

/** An intermediate CA signed by `issuer` (CA:true, keyCertSign, AKI/SKI). */
export async function createIntermediateCa(options: IntermediateCaOptions): Promise<CertifiedKey> {
  checkTtl(options.ttlSeconds, 'intermediate CA');
  const now = options.now ?? new Date();
  const issuer = await loadIssuer(options.issuer, now);
  const keys = await generateKeyPair(options.keyType ?? 'EC-P256');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: options.subject,
    issuer: issuer.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000),
    notAfter: notAfterWithin(issuer, now, options.ttlSeconds),
    publicKey: keys.publicKey,
    signingKey: options.issuer.privateKey,
    signingAlgorithm: signingAlgorithm(options.issuer.privateKey),
    extensions: [
      ...caExtensions(options.pathLength),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await authorityKeyId(issuer),
    ],
  });
  return {
    certificate: certificatePem(cert),
    privateKey: keys.privateKey,
    keys,
    privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

export interface IssueWorkloadOptions {
  /** A request already checked by `parseCsr`; only its public key is used. */
  csr: ParsedCsr;
  /** The identity the caller PROVED; it becomes the only SAN, whatever the CSR asked for. */
  identity: SpiffeIdentity | string;
  issuer: CaCredentials;
  /** Clamped so the certificate never outlives its issuer. */
  ttlSeconds: number;
  now?: Date;
}

/**
 * A workload certificate as Istio issues it: empty subject, the SPIFFE id as
 * the only (critical) URI SAN, CA:false, digitalSignature + keyEncipherment,
 * serverAuth + clientAuth, AKI/SKI, a random 128-bit serial, valid from a
 * minute ago (clock skew) for `ttlSeconds`.
 */
export async function issueWorkloadCertificate(options: IssueWorkloadOptions): Promise<string> {
  checkTtl(options.ttlSeconds, 'certificate');
  const uri =
    typeof options.identity === 'string'
      ? formatSpiffeId(parseSpiffeId(options.identity))
      : formatSpiffeId(options.identity);
  const now = options.now ?? new Date();
  const issuer = await loadIssuer(options.issuer, now);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: '',
    issuer: issuer.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000),
    notAfter: notAfterWithin(issuer, now, options.ttlSeconds),
    publicKey: options.csr.publicKey,
    signingKey: options.issuer.privateKey,
    signingAlgorithm: signingAlgorithm(options.issuer.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      await authorityKeyId(issuer),
      await x509.SubjectKeyIdentifierExtension.create(options.csr.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], true),
    ],
  });
  return certificatePem(cert);
}

export interface IssueTlsOptions {
  /** DNS names the certificate is for (wildcards like `*.example.com` allowed); the first is also the CN. */
  dnsNames: readonly string[];
  /** URI SANs besides (a client certificate's SPIFFE id, say). */
  uris?: readonly string[];
  /** IP address SANs (a server reached by address, as `127.0.0.1:8060`). */
  ipAddresses?: readonly string[];
  issuer: CaCredentials;
  /** Clamped so the certificate never outlives its issuer. */
  ttlSeconds: number;
  keyType?: KeyType;
  /** Subject DN; default `CN=<first DNS name>`. */
  subject?: string;
  now?: Date;
}

/**
 * A certificate and key for a TLS server or client outside the mesh's SPIFFE
 * identities — a gateway's `credentialName` certificate for `bookinfo.local`,
 * a client certificate for mutual TLS at the ingress: DNS (and URI) SANs,
 * CA:false, digitalSignature + keyEncipherment, serverAuth + clientAuth,
 * AKI/SKI, random serial, valid from a minute ago.
 */
export async function issueTlsCertificate(
  options: IssueTlsOptions,
): Promise<{ certificate: string; privateKeyPem: string }> {
  checkTtl(options.ttlSeconds, 'certificate');
  if (options.dnsNames.length === 0 && !options.uris?.length && !options.ipAddresses?.length)
    throw new PkiError(
      'invalid-identity',
      'a TLS certificate needs at least one DNS name, URI or IP address',
    );
  for (const ip of options.ipAddresses ?? []) {
    if (net.isIP(ip) === 0) throw new PkiError('invalid-identity', `"${ip}" is not an IP address`);
  }
  const now = options.now ?? new Date();
  const issuer = await loadIssuer(options.issuer, now);
  const keys = await generateKeyPair(options.keyType ?? 'EC-P256');
  const names = [
    ...options.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...(options.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: options.subject ?? (options.dnsNames[0] ? `CN=${options.dnsNames[0]}` : ''),
    issuer: issuer.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_SECONDS * 1000),
    notAfter: notAfterWithin(issuer, now, options.ttlSeconds),
    publicKey: keys.publicKey,
    signingKey: options.issuer.privateKey,
    signingAlgorithm: signingAlgorithm(options.issuer.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      await authorityKeyId(issuer),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension(names, false),
    ],
  });
  return { certificate: certificatePem(cert), privateKeyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** What a certificate says, for logs, admin pages and checks. */
export interface CertificateInfo {
  /** Lowercase hex, no leading zero bytes. */
  serialNumber: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
  /** The first SAN that is a workload SPIFFE id. */
  spiffeId?: string;
  isCa: boolean;
  /** "ECDSA P-256", "RSA 2048". */
  keyType: string;
}

export function certificateInfo(input: string | x509.X509Certificate): CertificateInfo {
  const cert = parseCertificate(input);
  const uris: string[] = [];
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const ext of cert.getExtensions(x509.SubjectAlternativeNameExtension)) {
    for (const name of ext.names.items) {
      if (name.type === 'url') uris.push(name.value);
      else if (name.type === 'dns') dnsNames.push(name.value);
      else if (name.type === 'ip') ipAddresses.push(name.value);
    }
  }
  const spiffeId = uris.find((u) => {
    try {
      parseSpiffeId(u);
      return true;
    } catch {
      return false;
    }
  });
  return {
    serialNumber: cert.serialNumber.toLowerCase(),
    subject: cert.subject,
    issuer: cert.issuer,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    uris,
    dnsNames,
    ipAddresses,
    ...(spiffeId ? { spiffeId } : {}),
    isCa: isCaCertificate(cert),
    keyType: describeKeyAlgorithm(cert.publicKey.algorithm),
  };
}

/** True when `privateKey` belongs to the certificate's public key. */
export async function privateKeyMatchesCertificate(
  privateKey: CryptoKey,
  certificate: string,
): Promise<boolean> {
  return keyPairMatches(privateKey, parseCertificate(certificate).publicKey);
}
