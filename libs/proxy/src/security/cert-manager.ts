import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import {
  certificateInfo,
  createCsr,
  exportPrivateKeyPem,
  formatSpiffeId,
  generateKeyPair,
  type KeyPair,
  type KeyType,
  privateKeyMatchesCertificate,
  verifyChain,
} from '@mizzen/pki';
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
  /** The workload key's type; ECDSA P-256 by default. */
  keyType?: KeyType;
  /** First retry delay after a failed request; doubles up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  /** Longest wait between retries; default 30 s. */
  maxBackoffMs?: number;
}

export interface CertStatus {
  identity: string;
  /** The workload key's type (`EC-P256`, `RSA-2048`…). */
  keyType: KeyType;
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  /** Serial of the root the certificate chains to (the last one of the CA's answer). */
  rootSerial?: string;
  rotations: number;
  lastError?: string;
  nextRotation?: string;
}

/** A CA answer checked and ready to install. */
interface Issued {
  certChain: string;
  privateKey: string;
  serial: string;
  rootSerial: string;
  validFrom: number;
  validTo: number;
}

/**
 * The workload's identity, kept fresh (Istio's agent): a private key made
 * here and never sent anywhere, a CSR for the workload's SPIFFE id to
 * citadel with the bootstrap token, and a new key and certificate at about
 * half of each certificate's life (with jitter, so a fleet does not rotate
 * in step), retrying with back-off when the CA is unreachable. Every new
 * certificate goes straight into the secret store, so listeners use it for
 * the next handshake. What the CA answers is checked before it is used: the
 * certificate must be for exactly this workload's identity and this key, and
 * chain to the root the CA sent.
 */
export class WorkloadCertManager {
  private readonly ca: CaClient;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly state: CertStatus;
  private backoffMs: number;
  /** A renewal is running; `again` asks for another one as soon as it ends. */
  private inFlight = false;
  private again = false;
  private readonly firstIssued: Promise<void>;
  private settleFirst!: () => void;

  constructor(private readonly options: CertManagerOptions) {
    this.ca = new CaClient({ address: options.caAddress });
    this.backoffMs = options.initialBackoffMs ?? 1_000;
    this.state = {
      identity: formatSpiffeId({
        trustDomain: options.trustDomain,
        namespace: options.namespace,
        serviceAccount: options.serviceAccount,
      }),
      keyType: options.keyType ?? 'EC-P256',
      rotations: 0,
    };
    this.firstIssued = new Promise((resolve) => {
      this.settleFirst = resolve;
    });
    options.secrets.reserveLocal(WORKLOAD_SECRET);
  }

  /** Gets the first certificate (retrying until it succeeds or `stop()`), then keeps rotating. */
  async start(): Promise<void> {
    this.runSoon(0);
    await this.firstIssued;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ca.close();
    this.settleFirst();
  }

  status(): CertStatus {
    return { ...this.state };
  }

  private nextBackoff(): number {
    const delay = this.backoffMs * (0.8 + Math.random() * 0.4);
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
    return delay;
  }

  /** (Re)arms the one timer that drives renewals. */
  private runSoon(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), delayMs);
    // Until the first certificate is here the retry keeps the process busy on purpose; afterwards it must not.
    if (this.state.serial !== undefined) this.timer.unref();
  }

  private async run(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    let issued: Issued | undefined;
    try {
      issued = await this.request();
    } catch (err) {
      this.state.lastError = (err as Error).message;
      this.options.logger.warn(
        { err: this.state.lastError },
        'could not get a workload certificate; retrying',
      );
    }
    this.inFlight = false;
    if (this.stopped) return;
    if (issued) this.install(issued);
    if (this.again) {
      this.again = false;
      this.runSoon(0);
    } else if (issued) this.scheduleRotation(issued);
    else this.runSoon(this.nextBackoff());
  }

  /** One CSR round trip, its answer checked; throws with the reason it cannot be used. */
  private async request(): Promise<Issued> {
    const keys = await generateKeyPair(this.state.keyType);
    const csrPem = await createCsr({ keys, uris: [this.state.identity] });
    const token = fs.readFileSync(this.options.tokenFile, 'utf8').trim();
    const chain = await this.ca.createCertificate({
      csrPem,
      token,
      ttlSeconds: this.options.ttlSeconds ?? 86_400,
    });
    return this.check(chain, keys);
  }

  /**
   * The CA's answer [leaf, intermediates…, root] must be a certificate for
   * exactly our SPIFFE id (a URI SAN compared whole: `…/sa/a` is not
   * `…/sa/ab`) and our key, chaining to that root and valid now.
   */
  private async check(chain: string[], keys: KeyPair): Promise<Issued> {
    if (chain.length === 0) throw new Error('the CA answered with an empty certificate chain');
    const leafPem = chain[0]!;
    const leaf = certificateInfo(leafPem);
    const identity = this.state.identity;
    if (leaf.uris.length !== 1 || leaf.uris[0] !== identity) {
      const got = leaf.uris.length ? leaf.uris.join(', ') : 'no URI SAN';
      throw new Error(`the CA issued a certificate for ${got}, not ${identity}`);
    }
    if (!(await privateKeyMatchesCertificate(keys.privateKey, leafPem)))
      throw new Error('the CA issued a certificate for another key than the one in our CSR');
    const root = chain[chain.length - 1]!;
    const verified = await verifyChain({ leaf: leafPem, intermediates: chain.slice(1, -1), roots: [root] });
    if (!verified.ok) throw new Error(`the certificate the CA issued does not verify: ${verified.reason}`);
    // Present the leaf and intermediates; the root is what peers already trust.
    const presented = chain.length > 1 ? chain.slice(0, -1) : chain;
    return {
      certChain: presented.join(''),
      privateKey: await exportPrivateKeyPem(keys.privateKey),
      serial: leaf.serialNumber,
      rootSerial: certificateInfo(root).serialNumber,
      validFrom: leaf.notBefore.getTime(),
      validTo: leaf.notAfter.getTime(),
    };
  }

  private install(issued: Issued): void {
    this.options.secrets.setLocal(WORKLOAD_SECRET, {
      kind: 'certificate',
      certChain: issued.certChain,
      privateKey: issued.privateKey,
    });
    this.state.serial = issued.serial;
    this.state.rootSerial = issued.rootSerial;
    this.state.notBefore = new Date(issued.validFrom).toISOString();
    this.state.notAfter = new Date(issued.validTo).toISOString();
    this.state.rotations++;
    this.state.lastError = undefined;
    this.backoffMs = this.options.initialBackoffMs ?? 1_000;
    this.options.logger.info(
      { identity: this.state.identity, serial: issued.serial, notAfter: this.state.notAfter },
      'workload certificate issued',
    );
    this.settleFirst();
  }

  /**
   * Rotation at 50% of the lifetime ± 10% jitter (never sooner than a second
   * from now). CAs backdate notBefore for clock skew (citadel by a minute):
   * the life is counted from receipt, or a short-lived certificate would look
   * half spent on arrival and rotate at once.
   */
  private scheduleRotation(issued: Issued): void {
    const from = Math.max(issued.validFrom, Date.now());
    const life = issued.validTo - from;
    const at = from + life * (0.4 + Math.random() * 0.2);
    const delay = Math.max(1_000, at - Date.now());
    this.state.nextRotation = new Date(Date.now() + delay).toISOString();
    this.runSoon(delay);
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
