import { type CaCredential, checkCaCredential, checkTlsCredential, type TlsCredential } from '@mizzen/pki';

export type { CaCredential, TlsCredential };

/** A credential ready to serve, or why it cannot be (missing, not a certificate, key of another certificate). */
export type CredentialLookup = { credential: TlsCredential } | { problem: string };

/** A CA ready to verify peers with, or why there is none (missing, not a certificate). */
export type CaLookup = { ca: CaCredential } | { problem: string };

/**
 * Istio's name for the credential that holds another one's CA: a MUTUAL
 * credential `NAME` may keep its CA in a separate `NAME-cacert`, and SDS
 * serves a credential's CA as `kubernetes://NAME-cacert`.
 */
export const CA_SUFFIX = '-cacert';

/**
 * Where a Gateway's (or DestinationRule's) `credentialName` is looked up:
 * Kubernetes Secrets in Kubernetes mode, the local credential store that
 * `mizzen create secret` fills otherwise. Only the proxy's own namespace
 * is searched, as Istio does for gateways.
 */
export interface CredentialSource {
  /** The certificate and key a server (or a MUTUAL client) presents. */
  resolve(namespace: string, name: string): CredentialLookup;
  /**
   * The CA that verifies peers: the credential's own `ca.crt` (with `ca.crl`),
   * whether or not it also holds a certificate and key, else the one in the
   * `<name>-cacert` credential beside it.
   */
  resolveCa(namespace: string, name: string): CaLookup;
  /** Called after any credential changed (rotation, creation, deletion); returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

/** Checks what a store found, turning a bad credential into a problem that names it. */
export function checked(
  namespace: string,
  name: string,
  credential: TlsCredential | undefined,
  where: string,
): CredentialLookup {
  if (!credential) return { problem: `credential ${namespace}/${name} not found in ${where}` };
  try {
    checkTlsCredential(credential, `credential ${namespace}/${name}`);
  } catch (err) {
    return { problem: (err as Error).message };
  }
  return { credential };
}

/** What a store found under one name when looking for a CA: whether the name exists, and its CA if it holds one. */
export interface CaCandidate {
  exists: boolean;
  ca?: CaCredential;
}

/**
 * Picks a credential's CA as Istio does — its own, else the `<name>-cacert`
 * one's — and checks it, or says why there is none, naming both places looked.
 */
export function checkedCa(
  namespace: string,
  name: string,
  own: CaCandidate,
  separate: CaCandidate,
  where: string,
): CaLookup {
  // Istio's SDS asks for `<name>-cacert` first and falls back to the credential's own ca.crt.
  const from = separate.ca ? `${name}${CA_SUFFIX}` : name;
  const ca = separate.ca ?? own.ca;
  if (!ca) {
    if (!own.exists && !separate.exists)
      return {
        problem: `credential ${namespace}/${name} not found in ${where} (nor ${name}${CA_SUFFIX} for its CA)`,
      };
    return {
      problem: `credential ${namespace}/${name} has no ca.crt, nor has ${namespace}/${name}${CA_SUFFIX} in ${where}`,
    };
  }
  try {
    checkCaCredential(ca, `credential ${namespace}/${from}`);
  } catch (err) {
    return { problem: (err as Error).message };
  }
  return { ca };
}

/** No credentials at all (tests, or pilot without a store). */
export const NO_CREDENTIALS: CredentialSource = {
  resolve: (namespace, name) => ({
    problem: `credential ${namespace}/${name} not found (no credential store)`,
  }),
  resolveCa: (namespace, name) => ({
    problem: `credential ${namespace}/${name} not found (no credential store)`,
  }),
  onChange: () => () => {},
};
