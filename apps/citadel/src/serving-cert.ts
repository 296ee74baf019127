import net from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { certificateInfo, issueTlsCertificate } from '@mizzen/pki';
import type { Logger } from '@mizzen/runtime';
import type { CaStore } from './ca-store.js';

/** The names citadel's gRPC certificate is for by default: its Service in istio-system, and loopback for local mode. */
export const DEFAULT_SERVING_NAMES = [
  'istio-citadel',
  'istio-citadel.istio-system',
  'istio-citadel.istio-system.svc',
  'istio-citadel.istio-system.svc.cluster.local',
  'localhost',
  '127.0.0.1',
  '::1',
];

/**
 * gRPC server credentials whose certificate can be replaced while the server
 * runs: grpc-js hands every update to its TLS server, so new connections get
 * the new certificate and open ones keep theirs.
 */
class ReplaceableServerCredentials extends grpc.ServerCredentials {
  constructor(initial: SecureContextOptions) {
    super({}, initial);
  }

  replace(options: SecureContextOptions): void {
    this.updateSecureContextOptions(options);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export interface ServingCertificateOptions {
  store: CaStore;
  /** DNS names and IP addresses clients reach citadel by (each becomes a SAN of its type). */
  names: readonly string[];
  logger: Logger;
  /** Lifetime of each serving certificate; renewed at half of it. Default 24 h. */
  ttlSeconds?: number;
}

/** What `citadel ready` and tests report about the serving certificate. */
export interface ServingCertificateInfo {
  serial: string;
  notAfter: Date;
  dnsNames: string[];
  ipAddresses: string[];
}

/**
 * citadel's own TLS certificate for its gRPC port, as istiod serves its CA
 * (15012) with a certificate for its names signed by the mesh CA: issued from
 * the signing CA in the store, presented with the chain up to (not including)
 * the root, so agents verify it with the mesh root they already have. It is
 * renewed at half its life with whatever CA signs then — not at once when the
 * CA files change, so agents have had time to receive a rotated root first.
 */
export class ServingCertificate {
  private credentials?: ReplaceableServerCredentials;
  private timer?: NodeJS.Timeout;
  private current?: ServingCertificateInfo;

  constructor(private readonly options: ServingCertificateOptions) {
    if (options.names.length === 0) throw new Error('the gRPC serving certificate needs at least one name');
  }

  /** Issues the first certificate; the credentials to serve gRPC with. */
  async start(): Promise<grpc.ServerCredentials> {
    const first = await this.issue();
    this.credentials = new ReplaceableServerCredentials(first);
    return this.credentials;
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  info(): ServingCertificateInfo | undefined {
    return this.current;
  }

  private async issue(): Promise<SecureContextOptions> {
    const bundle = this.options.store.current();
    const ttlSeconds = this.options.ttlSeconds ?? 86_400;
    const names = this.options.names;
    const issued = await issueTlsCertificate({
      dnsNames: names.filter((n) => net.isIP(n) === 0),
      ipAddresses: names.filter((n) => net.isIP(n) !== 0),
      subject: 'CN=istio-citadel',
      issuer: bundle.signer,
      ttlSeconds,
    });
    const info = certificateInfo(issued.certificate);
    this.current = {
      serial: info.serialNumber,
      notAfter: info.notAfter,
      dnsNames: info.dnsNames,
      ipAddresses: info.ipAddresses,
    };
    const life = info.notAfter.getTime() - Date.now();
    this.timer = setTimeout(() => void this.renew(), Math.max(1_000, life / 2));
    this.timer.unref();
    return { cert: [issued.certificate, ...bundle.intermediates].join(''), key: issued.privateKeyPem };
  }

  private async renew(): Promise<void> {
    try {
      this.credentials?.replace(await this.issue());
      this.options.logger.info(
        { serial: this.current?.serial, notAfter: this.current?.notAfter.toISOString() },
        'renewed the gRPC serving certificate',
      );
    } catch (err) {
      this.options.logger.error(
        { err: (err as Error).message },
        'could not renew the gRPC serving certificate; retrying in a minute',
      );
      this.timer = setTimeout(() => void this.renew(), 60_000);
      this.timer.unref();
    }
  }
}
