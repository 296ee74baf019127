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

/**
 * The CA half of a credential, which is all some credentials hold: Istio's
 * DestinationRule `tls: { mode: SIMPLE, credentialName }` only verifies the
 * server, and its docs create that Secret with `ca.crt` alone (or a separate
 * `<name>-cacert` Secret holds the CA of a MUTUAL one).
 */
export interface CaCredential {
  caCertificate: string;
  /** Revoked peer certificates (`ca.crl`), PEM. */
  caCrl?: string;
}

/** What the local store keeps under one name: a certificate and key (with or without a CA), or a CA alone. */
export type StoredCredential = TlsCredential | CaCredential;

export function isTlsCredential(credential: StoredCredential): credential is TlsCredential {
  return 'certificateChain' in credential;
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

/** Checks a CA bundle (`ca.crt`) and its revocation list (`ca.crl`): certificates and a CRL that parse. */
export function checkCaCredential(ca: CaCredential, what = 'the credential'): void {
  let certificates: crypto.X509Certificate[];
  try {
    certificates = pemCertificates(ca.caCertificate);
  } catch (err) {
    throw new PkiError(
      'malformed',
      `${what}: ${CA_KEY} is not a PEM certificate (${(err as Error).message})`,
    );
  }
  if (certificates.length === 0)
    throw new PkiError('malformed', `${what}: ${CA_KEY} holds no PEM certificate`);
  if (ca.caCrl !== undefined) checkCrl(ca.caCrl, what);
}

function checkCrl(crl: string, what: string): void {
  if (!crl.includes('-----BEGIN X509 CRL-----'))
    throw new PkiError('malformed', `${what}: ${CRL_KEY} holds no PEM certificate revocation list`);
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
  if (credential.caCertificate !== undefined)
    checkCaCredential({ caCertificate: credential.caCertificate }, what);
  if (credential.caCrl !== undefined) checkCrl(credential.caCrl, what);
}

/** Why a credential holding only a CA cannot stand where a certificate and key are needed (a server, a client certificate). */
export function caOnlyProblem(what: string): string {
  return `${what} holds only a CA (${CA_KEY}), not the certificate and key (${CERT_KEY}, ${KEY_KEY}) a server or client certificate needs`;
}

/**
 * The local credential store: what a Kubernetes Secret holds, as one JSON
 * file per credential (`<dir>/<namespace>/<name>.json`, keys `tls.crt`,
 * `tls.key`, `ca.crt`, `ca.crl` with PEM values — a CA-only credential has
 * just `ca.crt` and maybe `ca.crl`), readable by this user only.
 * `mizzen create secret tls|generic` writes it; pilot serves it over SDS.
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
  write(namespace: string, name: string, credential: StoredCredential): { created: boolean } {
    const what = `credential ${namespace}/${name}`;
    const data: Record<string, string> = {};
    if (isTlsCredential(credential)) {
      checkTlsCredential(credential, what);
      data[CERT_KEY] = credential.certificateChain;
      data[KEY_KEY] = credential.privateKey;
    } else checkCaCredential(credential, what);
    if (credential.caCertificate !== undefined) data[CA_KEY] = credential.caCertificate;
    if (credential.caCrl !== undefined) data[CRL_KEY] = credential.caCrl;
    const file = this.file(namespace, name);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const created = !fs.existsSync(file);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
    return { created };
  }

  /**
   * The certificate and key (with the CA, when there is one), or undefined
   * when there is no such credential; a file that is not a credential, or holds
   * only a CA, throws (PkiError) saying so.
   */
  read(namespace: string, name: string): TlsCredential | undefined {
    const data = this.readData(namespace, name);
    if (!data) return undefined;
    const cert = data[CERT_KEY];
    const key = data[KEY_KEY];
    if (cert === undefined && key === undefined && data[CA_KEY] !== undefined)
      throw new PkiError('ca-only', caOnlyProblem(`credential ${namespace}/${name}`));
    if (cert === undefined || key === undefined)
      throw new PkiError(
        'malformed',
        `${this.file(namespace, name)} needs "${CERT_KEY}" and "${KEY_KEY}" strings`,
      );
    return { certificateChain: cert, privateKey: key, ...this.caOf(data) };
  }

  /**
   * The CA a credential holds (`ca.crt`, with `ca.crl`), whether or not it has
   * a certificate and key too; undefined when there is no such credential or
   * it holds no CA. A file that is not a credential throws (PkiError).
   */
  readCa(namespace: string, name: string): CaCredential | undefined {
    const data = this.readData(namespace, name);
    if (!data) return undefined;
    return this.caOf(data);
  }

  /** Whether a credential of that name is stored (whatever it holds). */
  has(namespace: string, name: string): boolean {
    return fs.existsSync(this.file(namespace, name));
  }

  /** A credential file's string values by key, or undefined when there is none. */
  private readData(namespace: string, name: string): Record<string, string> | undefined {
    const file = this.file(namespace, name);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new PkiError('malformed', `${file} is not JSON`);
    }
    if (!data || typeof data !== 'object' || Array.isArray(data))
      throw new PkiError('malformed', `${file} is not a JSON object of PEM strings`);
    return Object.fromEntries(
      Object.entries(data).filter((e): e is [string, string] => typeof e[1] === 'string'),
    );
  }

  private caOf(data: Record<string, string>): CaCredential | undefined {
    const caCertificate = data[CA_KEY];
    const caCrl = data[CRL_KEY];
    if (caCertificate === undefined) return undefined;
    return { caCertificate, ...(caCrl !== undefined ? { caCrl } : {}) };
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
