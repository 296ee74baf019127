export { type CaBundle, type CaFiles, loadCaBundle, workloadChain } from './ca-bundle.js';
export {
  type CaCredentials,
  type CertificateInfo,
  type CertifiedKey,
  CLOCK_SKEW_SECONDS,
  certificateInfo,
  createIntermediateCa,
  createRootCa,
  DEFAULT_ROOT_TTL_SECONDS,
  type IntermediateCaOptions,
  type IssueTlsOptions,
  type IssueWorkloadOptions,
  isCaCertificate,
  issueTlsCertificate,
  issueWorkloadCertificate,
  privateKeyMatchesCertificate,
  type RootCaOptions,
} from './certificates.js';
export { type VerifyChainOptions, type VerifyChainResult, verifyChain } from './chain.js';
export { CredentialDirectory, checkTlsCredential, type TlsCredential } from './credentials.js';
export { type CrlOptions, createCrl } from './crl.js';
export {
  type CreateCsrOptions,
  type CsrPolicy,
  checkPublicKey,
  createCsr,
  DEFAULT_CSR_POLICY,
  type ParsedCsr,
  parseCsr,
} from './csr.js';
export { PkiError, type PkiErrorReason } from './errors.js';
export {
  describeKeyAlgorithm,
  exportPrivateKeyPem,
  exportPublicKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  isKeyType,
  KEY_TYPES,
  type KeyPair,
  type KeyType,
  keyPairMatches,
  parseKeyType,
  signingAlgorithm,
} from './keys.js';
export { certificatePem, joinPem, parseCertificate, parseCertificates } from './pem.js';
export type { CryptoKey, CryptoKeyPair } from './provider.js';
export {
  DEFAULT_TRUST_DOMAIN,
  formatSpiffeId,
  isSpiffeId,
  parsePrincipal,
  parseServiceAccountUsername,
  parseSpiffeId,
  type SpiffeIdentity,
  serviceAccountUsername,
  toPrincipal,
  validateNamespace,
  validateServiceAccount,
  validateTrustDomain,
} from './spiffe.js';
export {
  CA_AUDIENCE,
  generateTokenSecret,
  LOCAL_TOKEN_ISSUER,
  type MintWorkloadTokenOptions,
  mintWorkloadToken,
  TokenError,
  type TokenErrorReason,
  type VerifiedWorkloadToken,
  type VerifyWorkloadTokenOptions,
  verifyWorkloadToken,
  type WorkloadTokenClaims,
} from './tokens.js';
