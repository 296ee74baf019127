import { checkTlsCredential, type TlsCredential } from '@mizzen/pki';

export type { TlsCredential };

/** A credential ready to serve, or why it cannot be (missing, not a certificate, key of another certificate). */
export type CredentialLookup = { credential: TlsCredential } | { problem: string };

/**
 * Where a Gateway's (or DestinationRule's) `credentialName` is looked up:
 * Kubernetes Secrets in Kubernetes mode, the local credential store that
 * `mizzen create secret tls` fills otherwise. Only the proxy's own namespace
 * is searched, as Istio does for gateways.
 */
export interface CredentialSource {
  resolve(namespace: string, name: string): CredentialLookup;
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

/** No credentials at all (tests, or pilot without a store). */
export const NO_CREDENTIALS: CredentialSource = {
  resolve: (namespace, name) => ({
    problem: `credential ${namespace}/${name} not found (no credential store)`,
  }),
  onChange: () => () => {},
};
