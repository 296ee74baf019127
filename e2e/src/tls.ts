import net from 'node:net';
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

const VERSION_NAMES: Record<number, string> = {
  769: 'TLSv1',
  770: 'TLSv1.1',
  771: 'TLSv1.2',
  772: 'TLSv1.3',
};

/**
 * The version a ServerHello settles on, read from the first bytes a TLS
 * server sends: the supported_versions extension (TLS 1.3), else the
 * ServerHello's own version field. Undefined when the bytes are not a
 * complete ServerHello record.
 */
export function serverHelloVersion(bytes: Buffer): string | undefined {
  if (bytes.length < 9 || bytes[0] !== 0x16 || bytes[5] !== 0x02) return undefined;
  const recordEnd = 5 + bytes.readUInt16BE(3);
  if (bytes.length < recordEnd) return undefined;
  let p = 9;
  const legacy = bytes.readUInt16BE(p);
  p += 2 + 32;
  p += 1 + bytes[p]!;
  p += 2 + 1;
  if (p + 2 <= recordEnd) {
    const extensionsEnd = p + 2 + bytes.readUInt16BE(p);
    for (p += 2; p + 4 <= extensionsEnd; p += 4 + bytes.readUInt16BE(p + 2)) {
      if (bytes.readUInt16BE(p) === 0x002b && bytes.readUInt16BE(p + 2) === 2)
        return VERSION_NAMES[bytes.readUInt16BE(p + 4)] ?? 'unknown';
    }
  }
  return VERSION_NAMES[legacy] ?? 'unknown';
}

/**
 * A TCP relay in front of `targetPort` that reads, from outside, which TLS
 * version each connection through it negotiated (from the server's
 * ServerHello on the wire), and passes every byte through untouched.
 */
export async function tlsVersionTap(targetPort: number): Promise<{
  port: number;
  versions: string[];
  close: () => Promise<void>;
}> {
  const versions: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((down) => {
    const up = net.connect(targetPort, '127.0.0.1');
    for (const s of [down, up]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => {
        down.destroy();
        up.destroy();
      });
    }
    let head = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const version = serverHelloVersion(head);
      if (version !== undefined || head.length > 16_384) {
        versions.push(version ?? 'not TLS');
        up.off('data', sniff);
      }
    };
    up.on('data', sniff);
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    versions,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
