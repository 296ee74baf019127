import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { createCsr, exportPrivateKeyPem, formatSpiffeId, generateKeyPair, type KeyType } from '@mizzen/pki';
import type { Logger } from '@mizzen/runtime';
import { CaClient } from '@mizzen/xds';
import type { SecretStore } from './secret-store.js';

/** Istio's name for the workload certificate secret. */
export const WORKLOAD_SECRET = 'default';

export interface CertManagerOptions {
  /** host:port of citadel's CreateCertificate service. */
  caAddress: string;
  /** Where the bootstrap token proving this workload's identity is (read at every request: it may be refreshed). */
  tokenFile: string;
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
  secrets: SecretStore;
  logger: Logger;
  /** Requested lifetime (the CA may shorten it); default 24 h. */
  ttlSeconds?: number;
  keyType?: KeyType;
  /** First retry delay after a failed request; doubles up to 30 s. */
  initialBackoffMs?: number;
}

export interface CertStatus {
  identity: string;
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  rotations: number;
  lastError?: string;
  nextRotation?: string;
}

/**
 * The workload's identity, kept fresh (Istio's agent): a private key made
 * here and never sent anywhere, a CSR for the workload's SPIFFE id to
 * citadel with the bootstrap token, and a new key and certificate at about
 * half of each certificate's life (with jitter, so a fleet does not rotate
 * in step), retrying with back-off when the CA is unreachable. Every new
 * certificate goes straight into the secret store, so listeners use it for
 * the next handshake.
 */
export class WorkloadCertManager {
  private readonly ca: CaClient;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly state: CertStatus;
  private backoffMs: number;

  constructor(private readonly options: CertManagerOptions) {
    this.ca = new CaClient({ address: options.caAddress });
    this.backoffMs = options.initialBackoffMs ?? 1_000;
    this.state = {
      identity: formatSpiffeId({
        trustDomain: options.trustDomain,
        namespace: options.namespace,
        serviceAccount: options.serviceAccount,
      }),
      rotations: 0,
    };
    options.secrets.reserveLocal(WORKLOAD_SECRET);
  }

  /** Gets the first certificate (retrying until it succeeds or `stop()`), then keeps rotating. */
  async start(): Promise<void> {
    while (!this.stopped) {
      if (await this.renew()) return;
      await new Promise((r) => {
        this.timer = setTimeout(r, this.nextBackoff());
      });
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ca.close();
  }

  status(): CertStatus {
    return { ...this.state };
  }

  private nextBackoff(): number {
    const delay = this.backoffMs * (0.8 + Math.random() * 0.4);
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
    return delay;
  }

  /** One CSR round trip; true when a new certificate is in place. */
  private async renew(): Promise<boolean> {
    try {
      const keys = await generateKeyPair(this.options.keyType ?? 'EC-P256');
      const csrPem = await createCsr({ keys, uris: [this.state.identity] });
      const token = fs.readFileSync(this.options.tokenFile, 'utf8').trim();
      const chain = await this.ca.createCertificate({
        csrPem,
        token,
        ttlSeconds: this.options.ttlSeconds ?? 86_400,
      });
      if (chain.length === 0) throw new Error('the CA answered with an empty certificate chain');
      // Present the leaf and intermediates; the root is what peers already trust.
      const presented = chain.length > 1 ? chain.slice(0, -1) : chain;
      const leaf = new X509Certificate(chain[0]!);
      if (!leaf.subjectAltName?.includes(this.state.identity)) {
        throw new Error(`the CA issued a certificate for ${leaf.subjectAltName}, not ${this.state.identity}`);
      }
      this.options.secrets.setLocal(WORKLOAD_SECRET, {
        kind: 'certificate',
        certChain: presented.join(''),
        privateKey: await exportPrivateKeyPem(keys.privateKey),
      });
      const validFrom = new Date(leaf.validFrom).getTime();
      const validTo = new Date(leaf.validTo).getTime();
      this.state.serial = leaf.serialNumber;
      this.state.notBefore = new Date(validFrom).toISOString();
      this.state.notAfter = new Date(validTo).toISOString();
      this.state.rotations++;
      this.state.lastError = undefined;
      this.backoffMs = this.options.initialBackoffMs ?? 1_000;
      // CAs backdate notBefore for clock skew (citadel by a minute): count the life from receipt,
      // or a short-lived certificate would look half spent on arrival and rotate at once.
      this.schedule(Math.max(validFrom, Date.now()), validTo);
      this.options.logger.info(
        { identity: this.state.identity, serial: leaf.serialNumber, notAfter: this.state.notAfter },
        'workload certificate issued',
      );
      return true;
    } catch (err) {
      this.state.lastError = (err as Error).message;
      this.options.logger.warn(
        { err: this.state.lastError },
        'could not get a workload certificate; retrying',
      );
      return false;
    }
  }

  /** Rotation at 50% of the lifetime ± 10% jitter (never sooner than a second from now). */
  private schedule(validFrom: number, validTo: number): void {
    if (this.stopped) return;
    const life = validTo - validFrom;
    const at = validFrom + life * (0.4 + Math.random() * 0.2);
    const delay = Math.max(1_000, at - Date.now());
    this.state.nextRotation = new Date(Date.now() + delay).toISOString();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.rotate(), delay);
    this.timer.unref();
  }

  private async rotate(): Promise<void> {
    while (!this.stopped && !(await this.renew())) {
      await new Promise((r) => {
        this.timer = setTimeout(r, this.nextBackoff());
        this.timer.unref();
      });
    }
  }
}

/** Envoy's /certs view of the certificates a proxy holds. */
export function certsView(secrets: SecretStore, names: readonly string[]): Record<string, unknown> {
  const certificates = names.flatMap((name) => {
    const s = secrets.get(name);
    if (!s) return [];
    const pems =
      (s.kind === 'certificate' ? s.certChain : s.trustedCa).match(
        /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
      ) ?? [];
    const details = pems.map((pem) => {
      const c = new X509Certificate(pem);
      const expires = new Date(c.validTo);
      return {
        path: name,
        serial_number: c.serialNumber.toLowerCase(),
        subject_alt_names: (c.subjectAltName ?? '')
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
          .map((x) => (x.startsWith('URI:') ? { uri: x.slice(4) } : { dns: x.replace(/^DNS:/, '') })),
        days_until_expiration: String(Math.max(0, Math.floor((expires.getTime() - Date.now()) / 86_400_000))),
        valid_from: new Date(c.validFrom).toISOString(),
        expiration_time: expires.toISOString(),
      };
    });
    return [s.kind === 'certificate' ? { cert_chain: details } : { ca_cert: details }];
  });
  return { certificates };
}
