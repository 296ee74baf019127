import type { V1Secret } from '@kubernetes/client-node';
import { caOnlyProblem } from '@mizzen/pki';
import {
  CA_SUFFIX,
  type CaCandidate,
  type CaCredential,
  type CaLookup,
  type CredentialLookup,
  type CredentialSource,
  checked,
  checkedCa,
} from '../credentials/source.js';

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

/** A Secret's CA: `ca.crt` (a `kubernetes.io/tls` Secret's key) or `cacert` (Istio's generic one), with `ca.crl`/`crl`. */
function caOf(secret: V1Secret | undefined): CaCredential | undefined {
  if (!secret) return undefined;
  const caCertificate = decode(secret, 'ca.crt', 'cacert');
  if (!caCertificate) return undefined;
  const caCrl = decode(secret, 'ca.crl', 'crl');
  return { caCertificate, ...(caCrl ? { caCrl } : {}) };
}

/**
 * TLS credentials from Kubernetes Secrets, read as Istio reads them: a
 * `kubernetes.io/tls` secret (`tls.crt`, `tls.key`, optional `ca.crt` and
 * `ca.crl`) or a generic one (`cert`, `key`, optional `cacert` and `crl`), the
 * CA also taken from a separate `<credentialName>-cacert` secret. A secret may
 * hold only a CA (`kubectl create secret generic NAME --from-file=ca.crt=…`),
 * which is all a DestinationRule's SIMPLE TLS or a MUTUAL server's
 * `caCertCredentialName` needs. Only secrets in the proxy's own namespace are
 * visible to it.
 */
export class CredentialStore implements CredentialSource {
  constructor(private readonly secrets: SecretLookup) {}

  /** The credential checked for serving (certificate, key that belongs to it, CA), or why it cannot be served. */
  resolve(namespace: string, credentialName: string): CredentialLookup {
    const secret = this.secrets.get(credentialName, namespace);
    const certificate = secret && decode(secret, 'tls.crt', 'cert');
    const key = secret && decode(secret, 'tls.key', 'key');
    if (secret && (!certificate || !key)) {
      const what = `credential ${namespace}/${credentialName}`;
      return {
        problem:
          !certificate && !key && caOf(secret)
            ? caOnlyProblem(what)
            : `${what}: Secret ${namespace}/${credentialName} needs tls.crt and tls.key (or cert and key)`,
      };
    }
    return checked(namespace, credentialName, this.lookup(namespace, credentialName), 'Kubernetes Secrets');
  }

  /** The CA checked for verifying peers: the Secret's own, else its `-cacert` Secret's, or why there is none. */
  resolveCa(namespace: string, credentialName: string): CaLookup {
    const candidate = (name: string): CaCandidate => {
      const secret = this.secrets.get(name, namespace);
      return { exists: secret !== undefined, ca: caOf(secret) };
    };
    return checkedCa(
      namespace,
      credentialName,
      candidate(credentialName),
      candidate(`${credentialName}${CA_SUFFIX}`),
      'Kubernetes Secrets',
    );
  }

  /** Secret changes (a cert-manager renewal, a new secret) push config again; resyncs do not. */
  onChange(listener: () => void): () => void {
    return (
      this.secrets.on?.((event) => {
        if (event !== 'resync') listener();
      }) ?? (() => {})
    );
  }

  /** The certificate, key and CA a Secret (and its `-cacert` Secret) hold, undefined without a certificate and key. */
  lookup(namespace: string, credentialName: string): Credential | undefined {
    const secret = this.secrets.get(credentialName, namespace);
    if (!secret) return undefined;
    const certificateChain = decode(secret, 'tls.crt', 'cert');
    const privateKey = decode(secret, 'tls.key', 'key');
    if (!certificateChain || !privateKey) return undefined;
    // As Istio's SDS: a `<name>-cacert` Secret's CA first, else the Secret's own ca.crt.
    const separate = caOf(this.secrets.get(`${credentialName}${CA_SUFFIX}`, namespace));
    const caCertificate = separate?.caCertificate ?? decode(secret, 'ca.crt', 'cacert');
    const caCrl = separate ? separate.caCrl : decode(secret, 'ca.crl', 'crl');
    return {
      certificateChain,
      privateKey,
      ...(caCertificate ? { caCertificate } : {}),
      ...(caCrl ? { caCrl } : {}),
    };
  }
}
