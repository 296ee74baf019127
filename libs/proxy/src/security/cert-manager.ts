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
/** Istio's name for the mesh trust bundle pilot sends every proxy. */
export const TRUST_BUNDLE_SECRET = 'ROOTCA';

export interface CertManagerOptions {
  /** host:port of citadel's CreateCertificate service. */
  caAddress: string;
  /**
   * The PEM file of roots the CA's serving certificate must chain to (Istio's
   * mounted istio-ca-root-cert); re-read at every request, and joined with the
   * mesh trust bundle once pilot has sent it, so a rotated root is trusted
   * too. Without it the CA is reached in plaintext (`--ca-plaintext`).
   */
  caRootCertFile?: string;
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
  /**
   * How long a root must have been in the mesh trust bundle before this
   * workload presents a certificate chaining to it (so its peers, which get
   * the bundle from pilot at about the same time, trust it too); also the
   * wait, plus up to as much again of jitter, before re-issuing when the
   * bundle changes. Default 5 s.
   */
  rootSettleMs?: number;
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
  /** SHA-256 fingerprint of the root the chain ends at. */
  root: string;
  validFrom: number;
  validTo: number;
}

/** The SHA-256 fingerprints of every certificate in a PEM bundle. */
function fingerprints(pems: string): string[] {
  return (pems.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (pem) => new X509Certificate(pem).fingerprint256,
  );
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
 *
 * Root rotation (Istio's multi-root mesh): when the trust bundle pilot sends
 * (ROOTCA) changes, the agent re-issues, so workloads move to the CA's new
 * root while the bundle still holds the old one. It never presents a
 * certificate whose root its peers may not trust yet: the root must have been
 * in the bundle for `rootSettleMs`, else the current certificate is kept (unless
 * it is about to expire) and the request is made again later.
 */
export class WorkloadCertManager {
  /** The CA client, and the roots it was made with (a new one when they change). */
  private ca?: { client: CaClient; roots: string | undefined };
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly state: CertStatus;
  private backoffMs: number;
  /** A renewal is running; `again` asks for another one as soon as it ends. */
  private inFlight = false;
  private again = false;
  private readonly firstIssued: Promise<void>;
  private settleFirst!: () => void;
  /** Roots of the trust bundle by fingerprint, with when each first appeared (-Infinity: from the start). */
  private bundleRoots?: Map<string, number>;
  /** Root fingerprint and validity of the certificate in use. */
  private current?: Pick<Issued, 'root' | 'validFrom' | 'validTo'>;
  private readonly settleMs: number;
  private readonly unsubscribe: () => void;

  constructor(private readonly options: CertManagerOptions) {
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
    this.settleMs = options.rootSettleMs ?? 5_000;
    options.secrets.reserveLocal(WORKLOAD_SECRET);
    this.unsubscribe = options.secrets.onChange((name) => {
      if (name === TRUST_BUNDLE_SECRET) this.trustBundleChanged();
    });
  }

  /** Gets the first certificate (retrying until it succeeds or `stop()`), then keeps rotating. */
  async start(): Promise<void> {
    this.runSoon(0);
    await this.firstIssued;
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe();
    clearTimeout(this.timer);
    this.ca?.client.close();
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
    const holdFor = issued ? this.holdFor(issued) : undefined;
    if (issued && holdFor === 0) this.install(issued);
    if (this.again) {
      this.again = false;
      this.runSoon(0);
    } else if (issued && holdFor === 0) this.scheduleRotation(issued);
    else if (holdFor !== undefined && holdFor !== Number.POSITIVE_INFINITY) this.runSoon(holdFor);
    else this.runSoon(this.nextBackoff());
  }

  /**
   * 0 when a new certificate may be presented now; else how long to wait
   * before asking again (Infinity: until the trust bundle has its root, with
   * back-off). A first certificate, or one replacing a certificate about to
   * expire, is always taken.
   */
  private holdFor(issued: Issued): number {
    const seen = this.bundleRoots?.get(issued.root);
    const current = this.current;
    if (!this.bundleRoots || !current) return 0;
    const left = current.validTo - Date.now();
    if (left < (current.validTo - current.validFrom) * 0.1) return 0;
    if (seen === undefined) {
      this.state.lastError =
        `the CA signs under a root the mesh does not trust yet (serial ${issued.rootSerial}); ` +
        'keeping the current certificate until the trust bundle has it';
      this.options.logger.warn({ rootSerial: issued.rootSerial }, this.state.lastError);
      return Number.POSITIVE_INFINITY;
    }
    return Math.max(0, seen + this.settleMs - Date.now());
  }

  /**
   * The mesh trust bundle arrived or changed. The first one is what every peer
   * already trusts; a later change (a root added or removed) means the CA is
   * rotating: re-issue after the bundle had time to reach the peers, with
   * jitter so a fleet does not hit the CA at once.
   */
  private trustBundleChanged(): void {
    const secret = this.options.secrets.get(TRUST_BUNDLE_SECRET);
    if (secret?.kind !== 'validation') return;
    let roots: string[];
    try {
      roots = fingerprints(secret.trustedCa);
    } catch {
      return;
    }
    const before = this.bundleRoots;
    this.bundleRoots = new Map(roots.map((r) => [r, before ? (before.get(r) ?? Date.now()) : -Infinity]));
    const changed =
      before !== undefined && (before.size !== roots.length || roots.some((r) => !before.has(r)));
    const orphaned = this.current !== undefined && !this.bundleRoots.has(this.current.root);
    if (this.stopped || !this.current || !(changed || orphaned)) return;
    const delay = orphaned && !changed ? 0 : this.settleMs + Math.random() * this.settleMs;
    this.options.logger.info(
      { roots: roots.length, reissueInMs: Math.round(delay) },
      'the mesh trust bundle changed; re-issuing the workload certificate',
    );
    this.state.nextRotation = new Date(Date.now() + delay).toISOString();
    this.runSoon(delay);
  }

  /** One CSR round trip, its answer checked; throws with the reason it cannot be used. */
  private async request(): Promise<Issued> {
    const keys = await generateKeyPair(this.state.keyType);
    const csrPem = await createCsr({ keys, uris: [this.state.identity] });
    const token = fs.readFileSync(this.options.tokenFile, 'utf8').trim();
    const chain = await this.caClient().createCertificate({
      csrPem,
      token,
      ttlSeconds: this.options.ttlSeconds ?? 86_400,
    });
    return this.check(chain, keys);
  }

  /**
   * A client for the CA that trusts the roots in the root file plus the mesh
   * trust bundle (TLS), or a plaintext one; made again when the roots change.
   */
  private caClient(): CaClient {
    let roots: string | undefined;
    if (this.options.caRootCertFile !== undefined) {
      let file: string;
      try {
        file = fs.readFileSync(this.options.caRootCertFile, 'utf8');
      } catch (err) {
        throw new Error(
          `cannot read the CA's root certificate ${this.options.caRootCertFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
      const bundle = this.options.secrets.get(TRUST_BUNDLE_SECRET);
      roots = `${file.trim()}\n${bundle?.kind === 'validation' ? bundle.trustedCa : ''}`;
    }
    if (!this.ca || this.ca.roots !== roots) {
      this.ca?.client.close();
      this.ca = {
        client: new CaClient({
          address: this.options.caAddress,
          ...(roots !== undefined ? { rootCertificates: roots } : {}),
        }),
        roots,
      };
    }
    return this.ca.client;
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
      root: new X509Certificate(root).fingerprint256,
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
    // The life counts from receipt: CAs backdate notBefore for clock skew (see scheduleRotation).
    this.current = {
      root: issued.root,
      validFrom: Math.max(issued.validFrom, Date.now()),
      validTo: issued.validTo,
    };
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
