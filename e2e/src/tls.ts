import tls from 'node:tls';

/** The certificate a port presents in a TLS handshake, verified against `root`. */
export function presented(
  port: number,
  root: string,
): Promise<{ authorized: boolean; san?: string; serial: string; key: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: root, checkServerIdentity: () => undefined });
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      const key = cert.modulus ? `RSA ${cert.bits}` : `EC ${cert.asn1Curve}`;
      resolve({ authorized: s.authorized, san: cert.subjectaltname, serial: cert.serialNumber, key });
      s.destroy();
    });
    s.once('error', reject);
  });
}
