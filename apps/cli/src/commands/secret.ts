import fs from 'node:fs';
import path from 'node:path';
import { CredentialDirectory, PkiError } from '@mizzen/pki';
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
  const namespace = opts.namespace ?? DEFAULT_NAMESPACE;
  const credential = {
    certificateChain: readPem(opts.cert, '--cert'),
    privateKey: readPem(opts.key, '--key'),
    ...(opts.cacert ? { caCertificate: readPem(opts.cacert, '--cacert') } : {}),
    ...(opts.cacrl ? { caCrl: readPem(opts.cacrl, '--cacrl') } : {}),
  };
  let created: boolean;
  try {
    ({ created } = new CredentialDirectory(credentialsDir()).write(namespace, opts.name, credential));
  } catch (err) {
    if (err instanceof PkiError) throw new CliError(err.message);
    throw err;
  }
  out.write(`secret/${opts.name} ${created ? 'created' : 'configured'}\n`);
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
