import { FILE_CERT_PREFIX, fileSecretPaths, isFileSecretName } from '@mizzen/xds';
import { type FileRead, WatchedFiles } from './file-secrets.js';

/** A certificate with its private key (Envoy's TlsCertificate), PEM. */
export interface CertificateSecret {
  readonly kind: 'certificate';
  readonly certChain: string;
  readonly privateKey: string;
}

/** Trusted roots (Envoy's CertificateValidationContext), PEM. */
export interface ValidationSecret {
  readonly kind: 'validation';
  readonly trustedCa: string;
  /** Revoked certificates (a credential's `ca.crl`), PEM. */
  readonly crl?: string;
}

export type Secret = CertificateSecret | ValidationSecret;

/**
 * The secrets TLS contexts refer to by name, as Envoy's SDS: the workload's
 * own certificate is provided locally (the agent's certificate manager, Istio's
 * `default`), the rest arrives over ADS (the mesh root bundle, `ROOTCA`).
 * Listeners see a change at once: contexts are rebuilt from here.
 */
export class SecretStore {
  private readonly local = new Map<string, Secret>();
  private readonly remote = new Map<string, Secret>();
  /** When each secret last changed (ISO time), for the admin config dump's `last_updated`. */
  private readonly updated = new Map<string, string>();
  private readonly listeners = new Set<(name: string) => void>();
  /** Files on this proxy's filesystem: Istio's `file-cert:`/`file-root:` secrets (read here, never asked of pilot) and CRLs. */
  private readonly files = new WatchedFiles();
  /** The `file-` secret names read so far, so a file change is reported under each name using it. */
  private readonly fileNames = new Set<string>();

  constructor() {
    this.files.onChange((path) => {
      for (const name of this.fileNames) if (fileSecretPaths(name).includes(path)) this.emit(name);
      this.emit(fileChangeName(path));
    });
  }

  /** A secret this process makes itself (never requested from pilot). */
  setLocal(name: string, secret: Secret): void {
    this.local.set(name, secret);
    this.updated.set(name, new Date().toISOString());
    this.emit(name);
  }

  isLocal(name: string): boolean {
    return this.local.has(name) || this.localNames.has(name) || isFileSecretName(name);
  }

  /** Names the local provider will supply even before it has (so they are never asked of pilot). */
  private readonly localNames = new Set<string>();

  reserveLocal(name: string): void {
    this.localNames.add(name);
  }

  /** SDS state of the world for the names we subscribed to: named secrets replace what was there. */
  applyRemote(secrets: readonly { name: string; secret: Secret }[]): void {
    for (const { name, secret } of secrets) {
      this.remote.set(name, secret);
      this.updated.set(name, new Date().toISOString());
      this.emit(name);
    }
  }

  retainRemote(names: readonly string[]): void {
    const keep = new Set(names);
    for (const name of this.remote.keys()) {
      if (keep.has(name)) continue;
      this.remote.delete(name);
      if (!this.local.has(name)) this.updated.delete(name);
    }
  }

  get(name: string): Secret | undefined {
    const found = this.local.get(name) ?? this.remote.get(name);
    if (found || !isFileSecretName(name)) return found;
    const read = this.readFileSecret(name);
    return 'secret' in read ? read.secret : undefined;
  }

  /** When a secret set locally or received over SDS last changed (ISO time); undefined for files and unknown names. */
  lastUpdated(name: string): string | undefined {
    return this.updated.get(name);
  }

  /** Why a secret this proxy reads itself cannot be had (a certificate file missing or unreadable). */
  problem(name: string): string | undefined {
    if (!isFileSecretName(name) || this.local.has(name)) return undefined;
    const read = this.readFileSecret(name);
    return 'problem' in read ? read.problem : undefined;
  }

  /** A file's text (a CRL), watched: a change is reported to onChange listeners as `fileChangeName(path)`. */
  readFile(path: string): FileRead {
    return this.files.read(path);
  }

  /** Stops watching files. */
  close(): void {
    this.files.close();
    this.fileNames.clear();
  }

  private readFileSecret(name: string): { secret: Secret } | { problem: string } {
    this.fileNames.add(name);
    const reads = fileSecretPaths(name).map((p) => this.files.read(p));
    for (const r of reads) if ('problem' in r) return { problem: r.problem };
    const [first, second] = reads.map((r) => (r as { text: string }).text);
    if (!name.startsWith(FILE_CERT_PREFIX)) return { secret: { kind: 'validation', trustedCa: first! } };
    if (second === undefined) return { problem: `${name} names no private key (file-cert:CERT~KEY)` };
    return { secret: { kind: 'certificate', certChain: first!, privateKey: second } };
  }

  onChange(listener: (name: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(name: string): void {
    for (const l of this.listeners) l(name);
  }
}

/** The name a change of a plain watched file (not a secret: a CRL) is reported under. */
export function fileChangeName(path: string): string {
  return `file:${path}`;
}
