/**
 * Istio's SDS names for certificates in files on the proxy's own filesystem
 * (a Gateway server's `serverCertificate`/`privateKey`, `tlsCertificates`,
 * `caCertificates`): `file-cert:CERT~KEY` for a certificate and its key,
 * `file-root:CA` for trusted roots. Pilot names them; the proxy reads the
 * files itself (as Istio's agent does) instead of asking pilot.
 */
export const FILE_CERT_PREFIX = 'file-cert:';
export const FILE_ROOT_PREFIX = 'file-root:';
const SEPARATOR = '~';

export function fileCertSecretName(certificate: string, privateKey: string): string {
  return `${FILE_CERT_PREFIX}${certificate}${SEPARATOR}${privateKey}`;
}

export function fileRootSecretName(ca: string): string {
  return `${FILE_ROOT_PREFIX}${ca}`;
}

export function isFileSecretName(name: string): boolean {
  return name.startsWith(FILE_CERT_PREFIX) || name.startsWith(FILE_ROOT_PREFIX);
}

/** The files a `file-cert:`/`file-root:` name reads, in order (certificate then key; or the CA). */
export function fileSecretPaths(name: string): string[] {
  if (name.startsWith(FILE_ROOT_PREFIX)) return [name.slice(FILE_ROOT_PREFIX.length)];
  const rest = name.slice(FILE_CERT_PREFIX.length);
  const cut = rest.lastIndexOf(SEPARATOR);
  return cut < 0 ? [rest] : [rest.slice(0, cut), rest.slice(cut + 1)];
}
