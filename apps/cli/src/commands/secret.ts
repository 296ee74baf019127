import fs from 'node:fs';
import path from 'node:path';
import { CredentialDirectory, PkiError, type StoredCredential } from '@mizzen/pki';
import { CliError } from '../errors.js';
import { mizzenHome } from '../local/paths.js';

/** Where gateways' credentials live locally: pilot (`mizzen up` starts it with this) serves them over SDS. */
export function credentialsDir(): string {
  return path.join(mizzenHome(), 'credentials');
}

/** Gateways run in istio-system, and a gateway only sees credentials in its own namespace. */
const DEFAULT_NAMESPACE = 'istio-system';

function readPem(file: string, flag: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * `mizzen create secret tls NAME --cert F --key F [--cacert F [--cacrl F]] [-n NS]`,
 * as kubectl's: the certificate chain, its key and optionally the CA that
 * verifies peers (clients at a MUTUAL server) with the certificates it revoked
 * (a Secret's `ca.crl`), checked, then stored where
 * pilot serves them to gateways as `credentialName: NAME`. Replacing a
 * credential rotates it: gateways pick the new certificate up for new
 * connections without a restart.
 */
export function createTlsSecret(
  opts: {
    name?: string;
    cert?: string;
    key?: string;
    cacert?: string;
    cacrl?: string;
    namespace?: string;
  },
  out: NodeJS.WritableStream,
): void {
  if (!opts.name) throw new CliError('create secret tls: give the secret a NAME', 2);
  if (!opts.cert || !opts.key)
    throw new CliError('create secret tls: --cert FILE and --key FILE are required', 2);
  if (opts.cacrl && !opts.cacert)
    throw new CliError('create secret tls: --cacrl needs --cacert (the CA whose revocations it lists)', 2);
  const credential = {
    certificateChain: readPem(opts.cert, '--cert'),
    privateKey: readPem(opts.key, '--key'),
    ...(opts.cacert ? { caCertificate: readPem(opts.cacert, '--cacert') } : {}),
    ...(opts.cacrl ? { caCrl: readPem(opts.cacrl, '--cacrl') } : {}),
  };
  storeCredential(opts.namespace ?? DEFAULT_NAMESPACE, opts.name, credential, out);
}

type CredentialPart = 'certificateChain' | 'privateKey' | 'caCertificate' | 'caCrl';

/** The keys a credential Secret holds: kubectl's `kubernetes.io/tls` names, then Istio's generic ones. */
const SECRET_KEYS: Record<string, CredentialPart> = {
  'tls.crt': 'certificateChain',
  'tls.key': 'privateKey',
  'ca.crt': 'caCertificate',
  'ca.crl': 'caCrl',
  cert: 'certificateChain',
  key: 'privateKey',
  cacert: 'caCertificate',
  crl: 'caCrl',
};

/** `KEY=FILE`, or `FILE` whose name is the key (as kubectl's `--from-file`). */
function parseFromFile(entry: string): { key: string; file: string } {
  const eq = entry.indexOf('=');
  if (eq > 0) return { key: entry.slice(0, eq), file: entry.slice(eq + 1) };
  return { key: path.basename(entry), file: entry };
}

/**
 * `mizzen create secret generic NAME --from-file=KEY=FILE… [-n NS]`, as
 * kubectl's and as Istio's docs use it: keys `tls.crt`, `tls.key`, `ca.crt`,
 * `ca.crl` (or Istio's generic `cert`, `key`, `cacert`, `crl`). A certificate
 * needs its key and a key its certificate; `ca.crt` alone is a credential too —
 * the CA a DestinationRule's SIMPLE TLS verifies the server with, or a
 * `NAME-cacert` beside a certificate. Checked, then stored with `create secret
 * tls`'s, where pilot serves them.
 */
export function createGenericSecret(
  opts: { name?: string; fromFiles: string[]; namespace?: string },
  out: NodeJS.WritableStream,
): void {
  const usage = (message: string) => new CliError(`create secret generic: ${message}`, 2);
  if (!opts.name) throw usage('give the secret a NAME');
  if (opts.fromFiles.length === 0)
    throw usage('give its contents with --from-file=KEY=FILE (ca.crt, or tls.crt and tls.key)');
  const parts: Partial<Record<CredentialPart, { key: string; file: string }>> = {};
  for (const entry of opts.fromFiles) {
    const { key, file } = parseFromFile(entry);
    const part = SECRET_KEYS[key];
    if (!part)
      throw usage(
        `key "${key}" is not one a credential holds; use tls.crt, tls.key, ca.crt, ca.crl (or cert, key, cacert, crl)`,
      );
    const earlier = parts[part];
    if (earlier)
      throw usage(
        earlier.key === key
          ? `key "${key}" is given twice`
          : `keys "${earlier.key}" and "${key}" hold the same thing; give one`,
      );
    parts[part] = { key, file };
  }
  const { certificateChain: cert, privateKey: key, caCertificate: ca, caCrl: crl } = parts;
  if (key && !cert) throw usage(`${key.key} needs the certificate it belongs to (tls.crt)`);
  if (cert && !key) throw usage(`${cert.key} needs its private key (tls.key)`);
  if (crl && !ca) throw usage(`${crl.key} needs ca.crt (the CA whose revocations it lists)`);
  const pem = (p: { file: string }) => readPem(p.file, '--from-file');
  const caPart = ca ? { caCertificate: pem(ca), ...(crl ? { caCrl: pem(crl) } : {}) } : undefined;
  let credential: StoredCredential;
  if (cert && key) credential = { certificateChain: pem(cert), privateKey: pem(key), ...caPart };
  else if (caPart) credential = caPart;
  else throw usage('give ca.crt, or tls.crt and tls.key');
  storeCredential(opts.namespace ?? DEFAULT_NAMESPACE, opts.name, credential, out);
}

/** Checks and stores a credential (replacing one rotates it), printing what kubectl prints. */
function storeCredential(
  namespace: string,
  name: string,
  credential: StoredCredential,
  out: NodeJS.WritableStream,
): void {
  let created: boolean;
  try {
    ({ created } = new CredentialDirectory(credentialsDir()).write(namespace, name, credential));
  } catch (err) {
    if (err instanceof PkiError) throw new CliError(err.message);
    throw err;
  }
  out.write(`secret/${name} ${created ? 'created' : 'configured'}\n`);
}

/** `mizzen delete secret NAME [-n NS]`: gateways close the servers that named it with their next config. */
export function deleteSecret(opts: { name?: string; namespace?: string }, out: NodeJS.WritableStream): void {
  if (!opts.name) throw new CliError('delete secret: give the secret a NAME', 2);
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  let deleted: boolean;
  try {
    deleted = new CredentialDirectory(credentialsDir()).delete(namespace, opts.name);
  } catch (err) {
    if (err instanceof PkiError) throw new CliError(err.message);
    throw err;
  }
  if (!deleted) throw new CliError(`secret ${namespace}/${opts.name} not found`);
  out.write(`secret/${opts.name} deleted\n`);
}
