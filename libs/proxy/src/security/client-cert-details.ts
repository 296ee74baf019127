import { createHash } from 'node:crypto';
import type tls from 'node:tls';
import type { HeaderMap } from '../config/headers.js';
import { peerSans } from './tls-provider.js';

/**
 * Envoy's `x-forwarded-client-cert` (XFCC): how a proxy tells the application
 * who called it over mutual TLS. Istio's sidecars append the caller's
 * identity on inbound (`By=<us>;Hash=…;Subject="";URI=<caller>`), so apps can
 * read the verified SPIFFE id without touching TLS.
 */
export const XFCC = 'x-forwarded-client-cert';

export type ForwardClientCertDetails =
  | 'SANITIZE'
  | 'FORWARD_ONLY'
  | 'APPEND_FORWARD'
  | 'SANITIZE_SET'
  | 'ALWAYS_FORWARD_ONLY';

/** Which parts of the client certificate go into the element this proxy adds. */
export interface ClientCertFields {
  readonly subject: boolean;
  readonly uri: boolean;
  readonly dns: boolean;
  readonly cert: boolean;
}

export interface ClientCertPolicy {
  readonly mode: ForwardClientCertDetails;
  readonly fields: ClientCertFields;
}

export const DEFAULT_CLIENT_CERT_POLICY: ClientCertPolicy = {
  mode: 'SANITIZE',
  fields: { subject: false, uri: false, dns: false, cert: false },
};

/** The verified client certificate of a connection, as XFCC describes it. */
export interface ClientCertificate {
  /** SHA-256 of the DER certificate, hex. */
  readonly hash: string;
  /** RFC 2253 form (`CN=a,O=b`); empty for Istio's workload certificates. */
  readonly subject: string;
  readonly uris: readonly string[];
  readonly dns: readonly string[];
  readonly pem: string;
  /** The URI SAN of the certificate this proxy presented (XFCC's `By`). */
  readonly localUri?: string;
}

const MODES = new Set<string>([
  'SANITIZE',
  'FORWARD_ONLY',
  'APPEND_FORWARD',
  'SANITIZE_SET',
  'ALWAYS_FORWARD_ONLY',
]);

export function isForwardClientCertDetails(value: string): value is ForwardClientCertDetails {
  return MODES.has(value);
}

function rfc2253(subject: tls.Certificate | undefined): string {
  if (!subject) return '';
  const parts: string[] = [];
  for (const [key, value] of Object.entries(subject)) {
    for (const v of Array.isArray(value) ? value : [value]) parts.push(`${key}=${v}`);
  }
  // RFC 2253 lists the most specific attribute first, the reverse of the certificate's order.
  return parts.reverse().join(',');
}

function pemOf(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64.replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
}

/** What XFCC needs from a mutual-TLS socket, or undefined when the client presented no certificate. */
export function clientCertificateOf(socket: tls.TLSSocket): ClientCertificate | undefined {
  const cert = socket.getPeerCertificate();
  if (!cert?.raw) return undefined;
  const sans = peerSans(cert);
  const local = socket.getCertificate();
  const localUri =
    local && 'subjectaltname' in local ? peerSans(local as tls.PeerCertificate).uris[0] : undefined;
  return {
    hash: createHash('sha256').update(cert.raw).digest('hex'),
    subject: rfc2253(cert.subject),
    uris: sans.uris,
    dns: sans.dns,
    pem: pemOf(cert.raw),
    ...(localUri ? { localUri } : {}),
  };
}

/** One XFCC element for this hop: `By`, `Hash`, then the fields the policy asks for. */
export function xfccElement(cert: ClientCertificate, fields: ClientCertFields): string {
  const parts: string[] = [];
  if (cert.localUri) parts.push(`By=${cert.localUri}`);
  parts.push(`Hash=${cert.hash}`);
  if (fields.cert) parts.push(`Cert="${encodeURIComponent(cert.pem)}"`);
  if (fields.subject) parts.push(`Subject="${cert.subject.replaceAll('"', '\\"')}"`);
  if (fields.uri) for (const uri of cert.uris) parts.push(`URI=${uri}`);
  if (fields.dns) for (const dns of cert.dns) parts.push(`DNS=${dns}`);
  return parts.join(';');
}

/**
 * Applies Envoy's forward_client_cert_details to a request's headers: the
 * XFCC a client sent is kept only in the forwarding modes and only over
 * mutual TLS (anyone could forge it over plaintext), and this hop's element
 * is appended or set when the client proved a certificate.
 */
export function applyClientCertPolicy(
  headers: HeaderMap,
  policy: ClientCertPolicy,
  cert: ClientCertificate | undefined,
): void {
  const incoming = headers[XFCC];
  switch (policy.mode) {
    case 'ALWAYS_FORWARD_ONLY':
      return;
    case 'FORWARD_ONLY':
      if (!cert) delete headers[XFCC];
      return;
    case 'SANITIZE':
      delete headers[XFCC];
      return;
    case 'SANITIZE_SET':
      if (cert) headers[XFCC] = xfccElement(cert, policy.fields);
      else delete headers[XFCC];
      return;
    case 'APPEND_FORWARD': {
      if (!cert) {
        delete headers[XFCC];
        return;
      }
      const previous = Array.isArray(incoming) ? incoming.join(',') : incoming;
      const element = xfccElement(cert, policy.fields);
      headers[XFCC] = previous ? `${previous},${element}` : element;
    }
  }
}
