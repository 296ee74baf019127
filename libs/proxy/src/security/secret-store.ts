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
  private readonly listeners = new Set<(name: string) => void>();

  /** A secret this process makes itself (never requested from pilot). */
  setLocal(name: string, secret: Secret): void {
    this.local.set(name, secret);
    this.emit(name);
  }

  isLocal(name: string): boolean {
    return this.local.has(name) || this.localNames.has(name);
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
      this.emit(name);
    }
  }

  retainRemote(names: readonly string[]): void {
    const keep = new Set(names);
    for (const name of this.remote.keys()) if (!keep.has(name)) this.remote.delete(name);
  }

  get(name: string): Secret | undefined {
    return this.local.get(name) ?? this.remote.get(name);
  }

  onChange(listener: (name: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(name: string): void {
    for (const l of this.listeners) l(name);
  }
}
