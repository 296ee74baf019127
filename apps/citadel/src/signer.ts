import {
  type CsrPolicy,
  certificateInfo,
  formatSpiffeId,
  issueWorkloadCertificate,
  type ParsedCsr,
  PkiError,
  parseCsr,
  workloadChain,
} from '@mizzen/pki';
import type { Caller } from './authn.js';
import type { CaStore } from './ca-store.js';
import type { FailureReason } from './metrics.js';

/** A request that gets no certificate: the gRPC status, the metric reason and one readable sentence. */
export class SignError extends Error {
  constructor(
    readonly status: 'INVALID_ARGUMENT' | 'INTERNAL' | 'UNAVAILABLE',
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
  }
}

export interface SignerOptions {
  trustDomain: string;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  csrPolicy?: CsrPolicy;
}

export interface SignRequest {
  csrPem: string;
  /** IstioCertificateRequest.validity_duration: seconds, 0 for the default. */
  requestedTtlSeconds: number;
  caller: Caller;
}

export interface Issued {
  /** [leaf, intermediates…, root] */
  chain: string[];
  identity: string;
  serialNumber: string;
  notAfter: Date;
  ttlSeconds: number;
  /** The URI SANs the CSR asked for (informational: only the proven identity is issued). */
  requestedUris: string[];
  keyType: string;
}

/** Human form of a TTL for messages: 90d, 24h, 1h30m, 45s. */
export function formatTtl(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [h && `${h}h`, m && `${m}m`, s && `${s}s`].filter(Boolean).join('') || '0s';
}

/**
 * Signs workload CSRs for the caller's proven identity only, with the CA the
 * store holds at the moment of the request.
 */
export class WorkloadSigner {
  constructor(
    private readonly store: CaStore,
    private readonly options: SignerOptions,
  ) {}

  /** The trust domain identities are issued in. */
  get trustDomain(): string {
    return this.options.trustDomain;
  }

  ttlFor(requested: number): number {
    if (!Number.isFinite(requested) || requested < 0) {
      throw new SignError(
        'INVALID_ARGUMENT',
        'TTL_ERROR',
        `validity_duration must not be negative, got ${requested}`,
      );
    }
    if (requested === 0) return this.options.defaultTtlSeconds;
    if (requested > this.options.maxTtlSeconds) {
      throw new SignError(
        'INVALID_ARGUMENT',
        'TTL_ERROR',
        `requested TTL ${formatTtl(requested)} is greater than the max allowed TTL ${formatTtl(this.options.maxTtlSeconds)}`,
      );
    }
    return requested;
  }

  async sign(request: SignRequest): Promise<Issued> {
    const ttlSeconds = this.ttlFor(request.requestedTtlSeconds);
    let csr: ParsedCsr;
    try {
      csr = await parseCsr(request.csrPem, this.options.csrPolicy);
    } catch (err) {
      if (err instanceof PkiError)
        throw new SignError('INVALID_ARGUMENT', 'CSR_ERROR', `bad CSR: ${err.message}`);
      throw err;
    }
    const identity = formatSpiffeId({
      trustDomain: this.options.trustDomain,
      namespace: request.caller.namespace,
      serviceAccount: request.caller.serviceAccount,
    });
    let bundle: ReturnType<CaStore['current']>;
    try {
      bundle = this.store.current();
    } catch {
      throw new SignError('UNAVAILABLE', 'CA_NOT_READY', 'the CA is not ready');
    }
    let leaf: string;
    try {
      leaf = await issueWorkloadCertificate({ csr, identity, issuer: bundle.signer, ttlSeconds });
    } catch (err) {
      throw new SignError(
        'INTERNAL',
        'CERT_GEN_ERROR',
        `cannot sign the certificate: ${(err as Error).message}`,
      );
    }
    const info = certificateInfo(leaf);
    this.store.noteIssued(bundle, info.notAfter);
    return {
      chain: workloadChain(bundle, leaf),
      identity,
      serialNumber: info.serialNumber,
      notAfter: info.notAfter,
      ttlSeconds,
      requestedUris: csr.uris,
      keyType: csr.keyType,
    };
  }
}
