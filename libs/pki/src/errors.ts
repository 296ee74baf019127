/** Why a PKI operation refused its input; callers map reasons to status codes and metric labels. */
export type PkiErrorReason =
  /** Not decodable as what it claims to be (PEM, DER, key, certificate, CSR). */
  | 'malformed'
  /** Larger than the configured bound. */
  | 'too-large'
  /** A signature that does not verify. */
  | 'bad-signature'
  /** A key algorithm or curve outside the allowed set. */
  | 'unsupported-key'
  /** A key of an allowed algorithm but too small (or too large). */
  | 'weak-key'
  /** A signature made with a hash that is no longer acceptable (SHA-1, MD5). */
  | 'weak-signature'
  /** A SPIFFE id, principal or service-account name that does not follow its format. */
  | 'invalid-identity'
  /** A validity period or TTL that cannot be honoured. */
  | 'invalid-validity'
  /** A private key that does not belong to the certificate it is paired with. */
  | 'key-mismatch'
  /** A credential holding only a CA where a certificate and its key are needed. */
  | 'ca-only'
  /** A certificate used as an issuer that is not allowed to sign certificates. */
  | 'not-a-ca'
  /** A chain that does not lead to a trusted root. */
  | 'untrusted-chain';

export class PkiError extends Error {
  override readonly name = 'PkiError';

  constructor(
    readonly reason: PkiErrorReason,
    message: string,
  ) {
    super(message);
  }
}
