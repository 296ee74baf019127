import fs from 'node:fs';
import tls from 'node:tls';
import type { StringMatcherJson } from '../envoy/types.js';
import { fail } from './errors.js';
import { compileStringMatcher, type Matcher } from './string-matcher.js';

export const DOWNSTREAM_TLS_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const RAW_BUFFER_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

interface DataSourceJson {
  inline_string?: string;
  inline_bytes?: string;
  filename?: string;
}

interface ValidationContextJson {
  trusted_ca?: DataSourceJson;
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

/** A checked TLS context (downstream or upstream): where its certificate and roots come from, and its rules. */
export interface TlsContextSpec {
  readonly certificate?: { secret?: string; inline?: { certChain: string; privateKey: string } };
  readonly validation?: { secret?: string; inlineCa?: string; sans: readonly SanMatcher[] };
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
  return { inlineCa: inline(v?.trusted_ca, `${where}.trusted_ca`), sans };
}

/** Compiles an Envoy Downstream/UpstreamTlsContext; anything it cannot honour is an error (never a weaker connection). */
export function compileTlsContext(json: TlsContextJson, where: string): TlsContextSpec {
  const c = json.common_tls_context ?? {};
  const secrets: string[] = [];
  let certificate: TlsContextSpec['certificate'];
  if (c.tls_certificate_sds_secret_configs?.length) {
    const name = c.tls_certificate_sds_secret_configs[0]!.name;
    secrets.push(name);
    certificate = { secret: name };
  } else if (c.tls_certificates?.length) {
    const t = c.tls_certificates[0]!;
    const certChain = inline(t.certificate_chain, `${where}.tls_certificates[0].certificate_chain`);
    const privateKey = inline(t.private_key, `${where}.tls_certificates[0].private_key`);
    if (!certChain || !privateKey)
      fail(`${where}.tls_certificates[0]`, 'needs certificate_chain and private_key');
    certificate = { inline: { certChain, privateKey } };
  }
  let validation: TlsContextSpec['validation'];
  const combined = c.combined_validation_context;
  if (combined) {
    const v = compileValidation(combined.default_validation_context, `${where}.combined_validation_context`);
    const secret = combined.validation_context_sds_secret_config?.name;
    if (secret) secrets.push(secret);
    validation = { secret, inlineCa: v.inlineCa, sans: v.sans };
  } else if (c.validation_context_sds_secret_config) {
    secrets.push(c.validation_context_sds_secret_config.name);
    validation = { secret: c.validation_context_sds_secret_config.name, sans: [] };
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
    certificate,
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
  if (type === RAW_BUFFER_TYPE) return undefined;
  const wanted = expected === 'downstream' ? DOWNSTREAM_TLS_TYPE : UPSTREAM_TLS_TYPE;
  if (type !== wanted)
    fail(where, `transport socket ${ts.name ?? ''} (${type ?? 'no type'}) is not supported here`);
  return compileTlsContext(ts.typed_config!, where);
}
