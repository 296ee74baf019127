import type { CaCredentials } from './certificates.js';
import { signingAlgorithm } from './keys.js';
import { parseCertificate } from './pem.js';
import { x509 } from './provider.js';

export interface CrlOptions {
  issuer: CaCredentials;
  /** Serial numbers (hex, as X509Certificate.serialNumber prints them) of the certificates revoked. */
  revokedSerials: readonly string[];
  /** How long the list is current (nextUpdate); a day by default. */
  ttlSeconds?: number;
  now?: Date;
}

/**
 * A certificate revocation list signed by a CA, PEM (`X509 CRL`): what a
 * Gateway server's `caCrl` file or a credential's `ca.crl` holds, so clients
 * whose certificates it lists are refused.
 */
export async function createCrl(options: CrlOptions): Promise<string> {
  const now = options.now ?? new Date();
  const issuer = parseCertificate(options.issuer.certificate, 'issuer certificate');
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.subjectName,
    thisUpdate: new Date(now.getTime() - 60_000),
    nextUpdate: new Date(now.getTime() + (options.ttlSeconds ?? 24 * 3600) * 1000),
    entries: options.revokedSerials.map((serialNumber) => ({
      serialNumber: serialNumber.toLowerCase(),
      revocationDate: now,
    })),
    signingKey: options.issuer.privateKey,
    signingAlgorithm: signingAlgorithm(options.issuer.privateKey),
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey)],
  });
  // OpenSSL (and so Node and Envoy) reads `X509 CRL` PEM blocks; @peculiar/x509 writes `CRL`.
  const body = Buffer.from(crl.rawData).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN X509 CRL-----\n${body}\n-----END X509 CRL-----\n`;
}
