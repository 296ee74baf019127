import type { V1Secret } from '@kubernetes/client-node';
import { type CredentialLookup, type CredentialSource, checked } from '../credentials/source.js';

/** A TLS credential a Gateway's `credentialName` names, in PEM. */
export interface Credential {
  certificateChain: string;
  privateKey: string;
  /** Client CA for MUTUAL servers: `ca.crt`/`cacert` in the secret, or the `<name>-cacert` secret. */
  caCertificate?: string;
  /** Revoked client certificates: `ca.crl`/`crl`, beside the CA. */
  caCrl?: string;
}

/** Something holding the secrets (the Secret informer's cache), and telling when they change. */
export interface SecretLookup {
  get(name: string, namespace: string): V1Secret | undefined;
  on?(handler: (event: 'add' | 'update' | 'delete' | 'resync', secret: V1Secret) => void): () => void;
}

function decode(secret: V1Secret, ...keys: string[]): string | undefined {
  for (const k of keys) {
    const v = secret.data?.[k];
    if (v) return Buffer.from(v, 'base64').toString('utf8');
    const s = secret.stringData?.[k];
    if (s) return s;
  }
  return undefined;
}

/**
 * Gateway TLS credentials from Kubernetes Secrets, read as Istio reads them: a
 * `kubernetes.io/tls` secret (`tls.crt`, `tls.key`, optional `ca.crt` and
 * `ca.crl`) or a generic one (`cert`, `key`, optional `cacert` and `crl`), with the client CA also
 * taken from a separate `<credentialName>-cacert` secret. Only secrets in the
 * gateway's own namespace are visible to it.
 */
export class CredentialStore implements CredentialSource {
  constructor(private readonly secrets: SecretLookup) {}

  /** The credential checked for serving (certificate, key that belongs to it, CA), or why it cannot be served. */
  resolve(namespace: string, credentialName: string): CredentialLookup {
    const found = this.lookup(namespace, credentialName);
    return checked(namespace, credentialName, found, 'Kubernetes Secrets');
  }

  /** Secret changes (a cert-manager renewal, a new secret) push config again; resyncs do not. */
  onChange(listener: () => void): () => void {
    return (
      this.secrets.on?.((event) => {
        if (event !== 'resync') listener();
      }) ?? (() => {})
    );
  }

  lookup(namespace: string, credentialName: string): Credential | undefined {
    const secret = this.secrets.get(credentialName, namespace);
    if (!secret) return undefined;
    const certificateChain = decode(secret, 'tls.crt', 'cert');
    const privateKey = decode(secret, 'tls.key', 'key');
    if (!certificateChain || !privateKey) return undefined;
    let caCertificate = decode(secret, 'ca.crt', 'cacert');
    let caCrl = decode(secret, 'ca.crl', 'crl');
    if (!caCertificate) {
      const ca = this.secrets.get(`${credentialName}-cacert`, namespace);
      if (ca) {
        caCertificate = decode(ca, 'ca.crt', 'cacert');
        caCrl ??= decode(ca, 'ca.crl', 'crl');
      }
    }
    return {
      certificateChain,
      privateKey,
      ...(caCertificate ? { caCertificate } : {}),
      ...(caCrl ? { caCrl } : {}),
    };
  }
}
