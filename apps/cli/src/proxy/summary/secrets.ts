import { X509Certificate } from 'node:crypto';
import type { Json } from '../config-dump.js';
import { list } from '../json-lists.js';

export const SECRET_HEADERS = [
  'RESOURCE NAME',
  'TYPE',
  'STATUS',
  'VALID CERT',
  'SERIAL NUMBER',
  'NOT AFTER',
  'NOT BEFORE',
];

/** RFC 3339 to the second, as istioctl prints certificate times. */
function rfc3339(date: string): string {
  return new Date(date).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The first certificate of an inline data source (base64 `inline_bytes` or PEM `inline_string`). */
function firstCertificate(source: unknown): X509Certificate | undefined {
  const s = (source ?? {}) as Json;
  const pem =
    typeof s.inline_bytes === 'string'
      ? Buffer.from(s.inline_bytes, 'base64').toString()
      : typeof s.inline_string === 'string'
        ? s.inline_string
        : undefined;
  const first = pem?.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0];
  if (!first) return undefined;
  try {
    return new X509Certificate(first);
  } catch {
    return undefined;
  }
}

/** One secret's row: its kind, whether the proxy holds it, and its (leaf or first root) certificate. */
function secretRow(entry: Json, status: 'ACTIVE' | 'WARMING', now: number): string[] {
  const secret = (entry.secret ?? {}) as Json;
  const tls = secret.tls_certificate as Json | undefined;
  const validation = secret.validation_context as Json | undefined;
  const type = tls ? 'Cert Chain' : validation ? 'CA' : '-';
  const cert = firstCertificate(tls ? tls.certificate_chain : validation?.trusted_ca);
  const name = String(entry.name ?? secret.name ?? '');
  if (!cert) return [name, type, status, 'false', '-', '-', '-'];
  const valid = Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
  return [
    name,
    type,
    status,
    String(valid),
    // Hex without leading zeros, lower case, as istioctl prints a serial (Go's %x of a big.Int).
    cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, ''),
    rfc3339(cert.validTo),
    rfc3339(cert.validFrom),
  ];
}

/** istioctl's `proxy-config secret` rows, from the dump's SecretsConfigDump. */
export function secretRows(secrets: Json, now = Date.now()): string[][] {
  return [
    ...list(secrets.static_secrets).map((s) => secretRow(s, 'ACTIVE', now)),
    ...list(secrets.dynamic_active_secrets).map((s) => secretRow(s, 'ACTIVE', now)),
    ...list(secrets.dynamic_warming_secrets).map((s) => secretRow(s, 'WARMING', now)),
  ];
}
