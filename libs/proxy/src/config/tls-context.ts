import fs from 'node:fs';
import tls from 'node:tls';
import type { StringMatcherJson } from '../envoy/types.js';
import { fail } from './errors.js';
import { DOWNSTREAM_TLS_TYPE, RAW_BUFFER_TYPE, TRANSPORT_SOCKET, UPSTREAM_TLS_TYPE } from './fields/tls.js';
import { compileStringMatcher, type Matcher } from './string-matcher.js';
import { refuseUnknownFields } from './understood.js';

export { DOWNSTREAM_TLS_TYPE, UPSTREAM_TLS_TYPE };

interface DataSourceJson {
  inline_string?: string;
  inline_bytes?: string;
  filename?: string;
}

interface ValidationContextJson {
  trusted_ca?: DataSourceJson;
  crl?: DataSourceJson;
  verify_certificate_spki?: string[];
  verify_certificate_hash?: string[];
  match_subject_alt_names?: StringMatcherJson[];
  match_typed_subject_alt_names?: { san_type?: string; matcher: StringMatcherJson }[];
  trust_chain_verification?: string;
}

interface CommonTlsContextJson {
  tls_certificates?: { certificate_chain?: DataSourceJson; private_key?: DataSourceJson }[];
  tls_certificate_sds_secret_configs?: { name: string }[];
  validation_context?: ValidationContextJson;
  validation_context_sds_secret_config?: { name: string };
  combined_validation_context?: {
    default_validation_context?: ValidationContextJson;
    validation_context_sds_secret_config?: { name: string };
  };
  alpn_protocols?: string[];
  tls_params?: {
    tls_minimum_protocol_version?: string;
    tls_maximum_protocol_version?: string;
    cipher_suites?: string[];
  };
}

export interface TlsContextJson {
  '@type'?: string;
  common_tls_context?: CommonTlsContextJson;
  require_client_certificate?: boolean;
  sni?: string;
}

/** A SAN check on the peer's certificate: which SAN type, and the matcher. */
export interface SanMatcher {
  readonly type: 'URI' | 'DNS' | 'ANY';
  readonly match: Matcher;
}

/** Where one certificate and its key come from: an SDS secret, or inline PEM. */
export type CertificateSource =
  | { readonly secret: string }
  | { readonly inline: { readonly certChain: string; readonly privateKey: string } };

/** A certificate revocation list: inline PEM, or a file on this proxy read (and watched) when the context is built. */
export type CrlSource = { readonly inline: string } | { readonly file: string };

/** How the peer's certificate is checked, beyond the chain to the trusted CA. */
export interface ValidationSpec {
  readonly secret?: string;
  readonly inlineCa?: string;
  readonly sans: readonly SanMatcher[];
  readonly crl?: CrlSource;
  /** verify_certificate_spki: base64 SHA-256 digests of the certificate's SubjectPublicKeyInfo. */
  readonly spki: readonly string[];
  /** verify_certificate_hash: SHA-256 fingerprints of the certificate, lower-case hex without colons. */
  readonly hashes: readonly string[];
}

/** A checked TLS context (downstream or upstream): where its certificate and roots come from, and its rules. */
export interface TlsContextSpec {
  /**
   * The certificates offered, at most one per key type: a server with an RSA
   * and an ECDSA certificate presents the one the client's signature
   * algorithms accept (Istio's credentialNames).
   */
  readonly certificates: readonly CertificateSource[];
  readonly validation?: ValidationSpec;
  readonly alpn: readonly string[];
  readonly requireClientCertificate: boolean;
  readonly sni?: string;
  readonly minVersion?: tls.SecureVersion;
  readonly maxVersion?: tls.SecureVersion;
  readonly ciphers?: string;
  /** The secret names it needs (SDS). */
  readonly secrets: readonly string[];
}

/** Envoy's TlsParameters versions, as Node names them (TLS_AUTO: the defaults). */
const VERSIONS: Record<string, tls.SecureVersion | undefined> = {
  TLS_AUTO: undefined,
  TLSv1_0: 'TLSv1',
  TLSv1_1: 'TLSv1.1',
  TLSv1_2: 'TLSv1.2',
  TLSv1_3: 'TLSv1.3',
};

/**
 * Envoy's cipher_suites (BoringSSL names, `[A|B]` for equal preference) as an
 * OpenSSL cipher string. They govern TLS 1.2 and below only, as in Envoy:
 * TLS 1.3 keeps its own suites. A name OpenSSL does not know is an error, so
 * a typo never silently widens or empties the list.
 */
function compileCiphers(suites: readonly string[] | undefined, where: string): string | undefined {
  if (!suites?.length) return undefined;
  const known = new Set(tls.getCiphers());
  const names = suites.flatMap((s) => s.replace(/^\[|\]$/g, '').split('|')).map((s) => s.trim());
  for (const [i, name] of names.entries()) {
    if (!known.has(name.toLowerCase()))
      fail(`${where}.tls_params.cipher_suites[${i}]`, `cipher suite ${name} is not supported`);
  }
  return names.join(':');
}

function inline(d: DataSourceJson | undefined, where: string): string | undefined {
  if (!d) return undefined;
  if (d.filename) {
    // A path on this proxy's filesystem (DestinationRule caCertificates, clientCertificate, privateKey).
    try {
      return fs.readFileSync(d.filename, 'utf8');
    } catch (err) {
      fail(
        where,
        `cannot read ${d.filename}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  if (d.inline_string !== undefined) return d.inline_string;
  if (d.inline_bytes !== undefined) return Buffer.from(d.inline_bytes, 'base64').toString('utf8');
  return undefined;
}

/** A SHA-256 digest written as Envoy takes it: 32 bytes, base64 (SPKI) or hex with optional colons (hash). */
function compileDigests(
  values: readonly string[] | undefined,
  kind: 'spki' | 'hash',
  where: string,
): string[] {
  return (values ?? []).map((value, i) => {
    const at = `${where}.verify_certificate_${kind}[${i}]`;
    if (kind === 'spki') {
      const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(value) ? Buffer.from(value, 'base64') : Buffer.alloc(0);
      if (bytes.length !== 32) fail(at, `"${value}" is not a base64 SHA-256 digest (44 characters)`);
      return bytes.toString('base64');
    }
    const hex = value.replace(/:/g, '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex))
      fail(at, `"${value}" is not a hex SHA-256 fingerprint (64 hex digits, colons allowed)`);
    return hex;
  });
}

function compileCrl(d: DataSourceJson | undefined, where: string): CrlSource | undefined {
  if (!d) return undefined;
  // A file is read when the context is built, so a CRL that cannot be read closes only the chains using it.
  if (d.filename) return { file: d.filename };
  const text = inline(d, where);
  if (!text) fail(where, 'the CRL is empty');
  return { inline: text };
}

function compileValidation(v: ValidationContextJson | undefined, where: string) {
  const sans: SanMatcher[] = [];
  for (const [i, m] of (v?.match_subject_alt_names ?? []).entries()) {
    sans.push({ type: 'ANY', match: compileStringMatcher(m, `${where}.match_subject_alt_names[${i}]`) });
  }
  for (const [i, m] of (v?.match_typed_subject_alt_names ?? []).entries()) {
    const type = m.san_type === 'URI' ? 'URI' : m.san_type === 'DNS' ? 'DNS' : undefined;
    if (!type)
      fail(`${where}.match_typed_subject_alt_names[${i}]`, `SAN type ${m.san_type} is not supported`);
    sans.push({
      type,
      match: compileStringMatcher(m.matcher, `${where}.match_typed_subject_alt_names[${i}]`),
    });
  }
  return {
    inlineCa: inline(v?.trusted_ca, `${where}.trusted_ca`),
    sans,
    crl: compileCrl(v?.crl, `${where}.crl`),
    spki: compileDigests(v?.verify_certificate_spki, 'spki', where),
    hashes: compileDigests(v?.verify_certificate_hash, 'hash', where),
  };
}

/** Compiles an Envoy Downstream/UpstreamTlsContext; anything it cannot honour is an error (never a weaker connection). */
export function compileTlsContext(json: TlsContextJson, where: string): TlsContextSpec {
  const c = json.common_tls_context ?? {};
  const secrets: string[] = [];
  const certificates: CertificateSource[] = [];
  for (const { name } of c.tls_certificate_sds_secret_configs ?? []) {
    secrets.push(name);
    certificates.push({ secret: name });
  }
  for (const [i, t] of (c.tls_certificates ?? []).entries()) {
    const certChain = inline(t.certificate_chain, `${where}.tls_certificates[${i}].certificate_chain`);
    const privateKey = inline(t.private_key, `${where}.tls_certificates[${i}].private_key`);
    if (!certChain || !privateKey)
      fail(`${where}.tls_certificates[${i}]`, 'needs certificate_chain and private_key');
    certificates.push({ inline: { certChain, privateKey } });
  }
  let validation: TlsContextSpec['validation'];
  const combined = c.combined_validation_context;
  if (combined) {
    const v = compileValidation(combined.default_validation_context, `${where}.combined_validation_context`);
    const secret = combined.validation_context_sds_secret_config?.name;
    if (secret) secrets.push(secret);
    validation = { ...v, secret };
  } else if (c.validation_context_sds_secret_config) {
    secrets.push(c.validation_context_sds_secret_config.name);
    validation = { secret: c.validation_context_sds_secret_config.name, sans: [], spki: [], hashes: [] };
  } else if (c.validation_context) {
    validation = compileValidation(c.validation_context, `${where}.validation_context`);
  }
  const params = c.tls_params ?? {};
  for (const [field, value] of [
    ['tls_minimum_protocol_version', params.tls_minimum_protocol_version],
    ['tls_maximum_protocol_version', params.tls_maximum_protocol_version],
  ] as const) {
    if (value !== undefined && !(value in VERSIONS))
      fail(`${where}.tls_params.${field}`, `${value} is not a TLS version (TLS_AUTO, TLSv1_0 … TLSv1_3)`);
  }
  return {
    certificates,
    validation,
    alpn: c.alpn_protocols ?? [],
    requireClientCertificate: json.require_client_certificate === true,
    sni: json.sni || undefined,
    minVersion: VERSIONS[params.tls_minimum_protocol_version ?? 'TLS_AUTO'],
    maxVersion: VERSIONS[params.tls_maximum_protocol_version ?? 'TLS_AUTO'],
    ciphers: compileCiphers(params.cipher_suites, where),
    secrets,
  };
}

/** A transport_socket: TLS (with its context), or plain (raw_buffer / absent). */
export function compileTransportSocket(
  ts: { name?: string; typed_config?: TlsContextJson & { '@type'?: string } } | undefined,
  expected: 'downstream' | 'upstream',
  where: string,
): TlsContextSpec | undefined {
  if (!ts) return undefined;
  const type = ts.typed_config?.['@type'];
  const wanted = expected === 'downstream' ? DOWNSTREAM_TLS_TYPE : UPSTREAM_TLS_TYPE;
  if (type !== RAW_BUFFER_TYPE && type !== wanted)
    fail(where, `transport socket ${ts.name ?? ''} (${type ?? 'no type'}) is not supported here`);
  const spec = type === RAW_BUFFER_TYPE ? undefined : compileTlsContext(ts.typed_config!, where);
  refuseUnknownFields(ts, TRANSPORT_SOCKET, where);
  return spec;
}
