import { createHash, X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { CertificateSource, TlsContextSpec, ValidationSpec } from '../config/tls-context.js';
import { fileChangeName, type SecretStore } from './secret-store.js';

/** The SANs of a peer certificate, by type (`URI:spiffe://…`, `DNS:…`). */
export function peerSans(cert: tls.PeerCertificate | undefined): { uris: string[]; dns: string[] } {
  const out = { uris: [] as string[], dns: [] as string[] };
  for (const part of (cert?.subjectaltname ?? '').split(',')) {
    const p = part.trim();
    if (p.startsWith('URI:')) out.uris.push(p.slice(4));
    else if (p.startsWith('DNS:')) out.dns.push(p.slice(4));
  }
  return out;
}

/**
 * Envoy's certificate pins: the peer passes when its certificate's SHA-256
 * fingerprint is one of `hashes` or its public key's (SubjectPublicKeyInfo)
 * SHA-256 is one of `spki`; no pins, no check. Undefined when it passes.
 */
export function checkPins(
  cert: tls.PeerCertificate | undefined,
  pins: Pick<ValidationSpec, 'spki' | 'hashes'> | undefined,
): string | undefined {
  if (!pins || (pins.spki.length === 0 && pins.hashes.length === 0)) return undefined;
  if (!cert?.raw) return 'no peer certificate to check against verify_certificate_spki/hash';
  const hash = createHash('sha256').update(cert.raw).digest('hex');
  if (pins.hashes.includes(hash)) return undefined;
  const spkiDer = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' });
  const spki = createHash('sha256').update(spkiDer).digest('base64');
  if (pins.spki.includes(spki)) return undefined;
  return `peer certificate (SHA-256 ${hash}, SPKI ${spki}) matches none of the pinned certificates`;
}

/** The peer's SPIFFE identity, if its certificate carries one. */
export function spiffeIdOf(cert: tls.PeerCertificate | undefined): string | undefined {
  return peerSans(cert).uris.find((u) => u.startsWith('spiffe://'));
}

/**
 * What keeps a TLS context from being built for good, as far as this proxy
 * can tell by itself: certificate or CRL files it cannot read. (Secrets still
 * to come from pilot are not problems.)
 */
export function localTlsProblems(spec: TlsContextSpec, store: SecretStore): string[] {
  const problems: string[] = [];
  for (const name of spec.secrets) {
    const p = store.problem(name);
    if (p) problems.push(p);
  }
  const crl = spec.validation?.crl;
  if (crl && 'file' in crl) {
    const read = store.readFile(crl.file);
    if ('problem' in read) problems.push(`certificate revocation list: ${read.problem}`);
  }
  return problems;
}

export type ContextResult =
  | { ok: true; context: tls.SecureContext; options: tls.SecureContextOptions }
  | { ok: false; reason: string };

/** What an upstream TLS connection needs: the context, the SNI, and how to check the server. */
export interface UpstreamTls {
  /** Identifies this TLS setup: connections are pooled per setup (a rotated certificate gets new ones). */
  readonly key: string;
  readonly context: tls.SecureContext;
  readonly servername?: string;
  /** Undefined when the server's certificate is acceptable, else why not. */
  readonly verify: (host: string, cert: tls.PeerCertificate) => Error | undefined;
  /** The client presents a certificate (mutual TLS). */
  readonly mutual: boolean;
  /** The context's ALPN (`alpn_protocols`): what a TCP connection offers; HTTP connections offer their own. */
  readonly alpn: readonly string[];
  /** The SPIFFE id the host proved in its latest handshake (telemetry's destination_principal). */
  peerPrincipal(): string | undefined;
}

let nextProviderId = 0;
/** A bound on remembered upstream identities (hosts come and go with EDS). */
const MAX_REMEMBERED_PEERS = 4096;

/**
 * Turns a TLS context spec plus the current secrets into a Node secure
 * context, rebuilt whenever a secret it uses changes (certificate rotation
 * takes effect for the next handshake, connections already up are kept).
 */
export class TlsContextProvider {
  private cached?: ContextResult;
  private readonly id = ++nextProviderId;
  private version = 0;
  /** By `address:port`: the identity each host proved when we last connected to it. */
  private readonly verifiedPeers = new Map<string, string | undefined>();

  constructor(
    readonly spec: TlsContextSpec,
    private readonly store: SecretStore,
  ) {
    const crl = spec.validation?.crl;
    const watched = [...spec.secrets, ...(crl && 'file' in crl ? [fileChangeName(crl.file)] : [])];
    if (watched.length) {
      store.onChange((name) => {
        if (watched.includes(name)) this.cached = undefined;
      });
    }
  }

  context(): ContextResult {
    if (!this.cached) {
      this.cached = this.build();
      this.version++;
    }
    return this.cached;
  }

  /** The client side of this context for one host (`address`, `key` = address:port), or why it cannot be used yet. */
  upstream(host: { address: string; key: string }): UpstreamTls | { error: string } {
    const result = this.context();
    if (!result.ok) return { error: result.reason };
    const servername = this.spec.sni ?? (net.isIP(host.address) ? undefined : host.address);
    const sanRules = (this.spec.validation?.sans.length ?? 0) > 0;
    return {
      key: `${this.id}#${this.version}`,
      context: result.context,
      servername,
      mutual: this.spec.certificates.length > 0,
      alpn: this.spec.alpn,
      peerPrincipal: () => this.verifiedPeers.get(host.key),
      verify: (name, cert) => {
        const refusal = sanRules
          ? this.checkPeer(cert)
          : // No SAN rules: the usual hostname check against the SNI (or the address dialled).
            (tls.checkServerIdentity(servername ?? name, cert)?.message ??
            checkPins(cert, this.spec.validation));
        if (refusal) return new Error(refusal);
        if (this.verifiedPeers.size > MAX_REMEMBERED_PEERS) this.verifiedPeers.clear();
        this.verifiedPeers.set(host.key, spiffeIdOf(cert));
        return undefined;
      },
    };
  }

  /** Checks a peer certificate against the SAN rules and the pins; undefined when it passes, else why not. */
  checkPeer(cert: tls.PeerCertificate | undefined): string | undefined {
    return this.checkSans(cert) ?? checkPins(cert, this.spec.validation);
  }

  private checkSans(cert: tls.PeerCertificate | undefined): string | undefined {
    const sans = this.spec.validation?.sans ?? [];
    if (sans.length === 0) return undefined;
    const { uris, dns } = peerSans(cert);
    const ok = sans.some((s) =>
      s.type === 'URI'
        ? uris.some(s.match)
        : s.type === 'DNS'
          ? dns.some(s.match)
          : [...uris, ...dns].some(s.match),
    );
    return ok
      ? undefined
      : `peer certificate SANs [${[...uris, ...dns].join(', ')}] match none of the allowed identities`;
  }

  /** A certificate and key, or why it cannot be had (not received yet, its files unreadable). */
  private certificate(
    source: CertificateSource,
  ): { certChain: string; privateKey: string } | { reason: string } {
    if ('inline' in source) return source.inline;
    const s = this.store.get(source.secret);
    if (s?.kind === 'certificate') return s;
    const problem = this.store.problem(source.secret);
    return { reason: problem ?? `certificate secret ${source.secret} has not been received` };
  }

  private build(): ContextResult {
    const options: tls.SecureContextOptions = {};
    const pairs = [];
    for (const source of this.spec.certificates) {
      const pair = this.certificate(source);
      if ('reason' in pair) return { ok: false, reason: pair.reason };
      pairs.push(pair);
    }
    // Node takes one chain per key; OpenSSL keeps one per key type and serves what the client's signature algorithms accept.
    if (pairs.length === 1) {
      options.cert = pairs[0]!.certChain;
      options.key = pairs[0]!.privateKey;
    } else if (pairs.length > 1) {
      options.cert = pairs.map((p) => p.certChain);
      options.key = pairs.map((p) => p.privateKey);
    }
    const v = this.spec.validation;
    const crls: string[] = [];
    if (v?.secret) {
      const s = this.store.get(v.secret);
      if (s?.kind !== 'validation')
        return {
          ok: false,
          reason: this.store.problem(v.secret) ?? `validation secret ${v.secret} has not been received`,
        };
      options.ca = s.trustedCa;
      if (s.crl) crls.push(s.crl);
    } else if (v?.inlineCa) options.ca = v.inlineCa;
    if (v?.crl) {
      const crl = 'inline' in v.crl ? { text: v.crl.inline } : this.store.readFile(v.crl.file);
      if ('problem' in crl) return { ok: false, reason: `certificate revocation list: ${crl.problem}` };
      crls.push(crl.text);
    }
    if (crls.length) options.crl = crls;
    if (this.spec.minVersion) options.minVersion = this.spec.minVersion;
    else options.minVersion = 'TLSv1.2';
    if (this.spec.maxVersion) options.maxVersion = this.spec.maxVersion;
    if (this.spec.ciphers) options.ciphers = this.spec.ciphers;
    // OpenSSL 3 refuses TLS 1.0/1.1 at its default security level: asking for them must lower it, or they never work.
    if (options.minVersion === 'TLSv1' || options.minVersion === 'TLSv1.1')
      options.ciphers = `${options.ciphers ?? tls.DEFAULT_CIPHERS}:@SECLEVEL=0`;
    try {
      return { ok: true, context: tls.createSecureContext(options), options };
    } catch (err) {
      return { ok: false, reason: `invalid TLS material: ${(err as Error).message}` };
    }
  }
}
