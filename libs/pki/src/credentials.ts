import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PkiError } from './errors.js';

/**
 * A TLS credential as Istio reads one from a Kubernetes Secret for a
 * gateway's `credentialName` (or a DestinationRule's): the certificate chain,
 * its private key, and optionally the CA that verifies peers (client
 * certificates at a MUTUAL server, the server at TLS origination).
 */
export interface TlsCredential {
  certificateChain: string;
  privateKey: string;
  caCertificate?: string;
  /** Revoked peer certificates (Istio's `ca.crl` key), PEM: checked with `caCertificate`. */
  caCrl?: string;
}

/** The keys of a `kubernetes.io/tls` Secret, which the local store's files use too. */
const CERT_KEY = 'tls.crt';
const KEY_KEY = 'tls.key';
const CA_KEY = 'ca.crt';
const CRL_KEY = 'ca.crl';

/** Credential and namespace names are Kubernetes object names (DNS-1123 subdomains). */
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

function pemCertificates(text: string): crypto.X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new crypto.X509Certificate(b));
}

/**
 * Checks that a credential can be served: certificates that parse, a private
 * key that parses and belongs to the first certificate, a CA bundle that
 * parses. Synchronous (node:crypto), because pilot checks credentials while it
 * builds a push. Throws a PkiError naming the part and the reason.
 */
export function checkTlsCredential(credential: TlsCredential, what = 'the credential'): void {
  let chain: crypto.X509Certificate[];
  try {
    chain = pemCertificates(credential.certificateChain);
  } catch (err) {
    throw new PkiError(
      'malformed',
      `${what}: ${CERT_KEY} is not a PEM certificate (${(err as Error).message})`,
    );
  }
  if (chain.length === 0) throw new PkiError('malformed', `${what}: ${CERT_KEY} holds no PEM certificate`);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(credential.privateKey);
  } catch (err) {
    throw new PkiError(
      'malformed',
      `${what}: ${KEY_KEY} is not a PEM private key (${(err as Error).message})`,
    );
  }
  if (!chain[0]!.checkPrivateKey(key))
    throw new PkiError(
      'key-mismatch',
      `${what}: ${KEY_KEY} does not belong to the certificate in ${CERT_KEY}`,
    );
  if (credential.caCertificate !== undefined) {
    let ca: crypto.X509Certificate[];
    try {
      ca = pemCertificates(credential.caCertificate);
    } catch (err) {
      throw new PkiError(
        'malformed',
        `${what}: ${CA_KEY} is not a PEM certificate (${(err as Error).message})`,
      );
    }
    if (ca.length === 0) throw new PkiError('malformed', `${what}: ${CA_KEY} holds no PEM certificate`);
  }
  if (credential.caCrl !== undefined && !credential.caCrl.includes('-----BEGIN X509 CRL-----'))
    throw new PkiError('malformed', `${what}: ${CRL_KEY} holds no PEM certificate revocation list`);
}

/**
 * The local credential store: what a Kubernetes Secret holds, as one JSON
 * file per credential (`<dir>/<namespace>/<name>.json`, keys `tls.crt`,
 * `tls.key`, `ca.crt` with PEM values), readable by this user only.
 * `mizzen create secret tls` writes it; pilot serves it over SDS.
 */
export class CredentialDirectory {
  constructor(readonly dir: string) {}

  file(namespace: string, name: string): string {
    for (const [what, value] of [
      ['namespace', namespace],
      ['name', name],
    ] as const) {
      if (!NAME.test(value) || value.length > 253)
        throw new PkiError('invalid-identity', `"${value}" is not a valid credential ${what}`);
    }
    return path.join(this.dir, namespace, `${name}.json`);
  }

  /** Checks the credential, then replaces any earlier one atomically (a reader sees the old or the new, whole). */
  write(namespace: string, name: string, credential: TlsCredential): { created: boolean } {
    checkTlsCredential(credential, `credential ${namespace}/${name}`);
    const file = this.file(namespace, name);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const created = !fs.existsSync(file);
    const tmp = `${file}.${process.pid}.tmp`;
    const data: Record<string, string> = {
      [CERT_KEY]: credential.certificateChain,
      [KEY_KEY]: credential.privateKey,
    };
    if (credential.caCertificate !== undefined) data[CA_KEY] = credential.caCertificate;
    if (credential.caCrl !== undefined) data[CRL_KEY] = credential.caCrl;
    fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
    return { created };
  }

  /** The credential, or undefined when there is none; a file that is not a credential throws (PkiError). */
  read(namespace: string, name: string): TlsCredential | undefined {
    const file = this.file(namespace, name);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new PkiError('malformed', `${file} is not JSON`);
    }
    const cert = data[CERT_KEY];
    const key = data[KEY_KEY];
    const ca = data[CA_KEY];
    const crl = data[CRL_KEY];
    if (typeof cert !== 'string' || typeof key !== 'string')
      throw new PkiError('malformed', `${file} needs "${CERT_KEY}" and "${KEY_KEY}" strings`);
    return {
      certificateChain: cert,
      privateKey: key,
      ...(typeof ca === 'string' ? { caCertificate: ca } : {}),
      ...(typeof crl === 'string' ? { caCrl: crl } : {}),
    };
  }

  delete(namespace: string, name: string): boolean {
    const file = this.file(namespace, name);
    try {
      fs.unlinkSync(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every credential file with its modification time (cheap to poll for changes). */
  list(): { namespace: string; name: string; mtimeMs: number; size: number }[] {
    const out: { namespace: string; name: string; mtimeMs: number; size: number }[] = [];
    let namespaces: string[];
    try {
      namespaces = fs.readdirSync(this.dir);
    } catch {
      return out;
    }
    for (const namespace of namespaces.sort()) {
      if (!NAME.test(namespace)) continue;
      let files: string[];
      try {
        files = fs.readdirSync(path.join(this.dir, namespace));
      } catch {
        continue;
      }
      for (const f of files.sort()) {
        if (!f.endsWith('.json')) continue;
        const name = f.slice(0, -'.json'.length);
        if (!NAME.test(name)) continue;
        try {
          const st = fs.statSync(path.join(this.dir, namespace, f));
          out.push({ namespace, name, mtimeMs: st.mtimeMs, size: st.size });
        } catch {
          // removed while listing
        }
      }
    }
    return out;
  }
}
