import { PkiError } from './errors.js';
import { x509 } from './provider.js';

interface PemBlock {
  type: string;
  der: ArrayBuffer;
}

function firstLine(message: string): string {
  const line = message.split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** Every PEM block in `text`, with its label. Throws when there is none or a block does not decode. */
export function pemBlocks(text: string, what: string): PemBlock[] {
  if (typeof text !== 'string' || !text.includes('-----BEGIN ')) {
    throw new PkiError('malformed', `${what}: no PEM block found`);
  }
  let structs: { type: string; rawData: ArrayBuffer }[];
  try {
    structs = x509.PemConverter.decodeWithHeaders(text);
  } catch (err) {
    throw new PkiError('malformed', `${what}: not valid PEM (${firstLine((err as Error).message)})`);
  }
  if (structs.length === 0) throw new PkiError('malformed', `${what}: no PEM block found`);
  return structs.map((s) => ({ type: s.type, der: s.rawData }));
}

/** One certificate from PEM (or DER); throws a PkiError naming `what` when it is not one. */
export function parseCertificate(
  input: string | x509.X509Certificate,
  what = 'certificate',
): x509.X509Certificate {
  if (input instanceof x509.X509Certificate) return input;
  const certs = parseCertificates(input, what);
  if (certs.length !== 1) {
    throw new PkiError('malformed', `${what}: expected one certificate, found ${certs.length}`);
  }
  return certs[0]!;
}

/** Every certificate in a PEM bundle (a chain or a trust bundle), in order. */
export function parseCertificates(text: string, what = 'certificate bundle'): x509.X509Certificate[] {
  return pemBlocks(text, what).map((block, i) => {
    if (block.type !== 'CERTIFICATE') {
      throw new PkiError('malformed', `${what}: block ${i + 1} is a ${block.type}, not a CERTIFICATE`);
    }
    try {
      return new x509.X509Certificate(block.der);
    } catch (err) {
      throw new PkiError(
        'malformed',
        `${what}: block ${i + 1} is not a valid X.509 certificate (${firstLine((err as Error).message)})`,
      );
    }
  });
}

/** PEM text of one certificate, ending with a newline. */
export function certificatePem(cert: x509.X509Certificate): string {
  const text = cert.toString('pem');
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** Joins PEM certificates into one bundle, one block after another. */
export function joinPem(pems: readonly string[]): string {
  return pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}

export { firstLine as errorSummary };
