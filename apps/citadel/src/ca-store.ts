import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type CaBundle, type CaFiles, createRootCa, type KeyType, loadCaBundle } from '@mizzen/pki';
import type { Logger } from '@mizzen/runtime';

/** Istio's plug-in CA file names (the `cacerts` secret, as cert-manager or an operator writes it). */
export const CA_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  certChain: 'cert-chain.pem',
  rootCert: 'root-cert.pem',
} as const;

const WATCHED = new Set<string>(Object.values(CA_FILES));

/** A CA directory citadel cannot start from; the message names the directory and the problem. */
export class CaStoreError extends Error {}

export interface CaStoreOptions {
  dir: string;
  trustDomain: string;
  logger: Logger;
  /** Validity of a self-generated root. */
  selfSignedTtlSeconds: number;
  keyType: KeyType;
  /** Quiet time after the last file event before reloading; default 250 ms. */
  debounceMs?: number;
  /** Also re-read the files this often, for file systems where fs.watch misses changes; default 30 s. */
  pollIntervalMs?: number;
  /**
   * How long a replaced root stays in the trust bundle when this process
   * issued nothing under it (it was signing before a restart): the longest a
   * workload certificate issued then may still live. Default 24 h.
   */
  retainRootsMs?: number;
}

/** A root that no longer signs but is still trusted, until `until` (ms since the epoch). */
interface RetainedRoot {
  pem: string;
  until: number;
}

export type CaOrigin = 'generated' | 'files';

interface StoreEvents {
  reloaded: [CaBundle];
  'reload-failed': [string];
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function tempName(file: string): string {
  return `${file}.${process.pid}.tmp`;
}

async function writeTemp(file: string, content: string, mode: number): Promise<void> {
  const tmp = tempName(file);
  await fsp.writeFile(tmp, content, { mode });
  await fsp.chmod(tmp, mode);
}

/** Writes via a temporary file and a rename, so readers never see half a file. */
async function writeAtomic(file: string, content: string, mode: number): Promise<void> {
  await writeTemp(file, content, mode);
  await fsp.rename(tempName(file), file);
}

/**
 * The root of trust in `--ca-dir`. If Istio's plug-in files are there they are
 * used, and reloaded when they change (a set that does not form a valid CA
 * keeps the current one, with the reason logged); otherwise a self-signed root
 * is generated once and persisted in the same layout, so a restart keeps it.
 *
 * A reload that changes the roots signs with the new CA at once, but the
 * trust bundle ({@link trustBundle}) keeps the old roots until every
 * certificate issued under them has expired: workloads still presenting one
 * stay trusted while they re-issue (Istio's multi-root rotation).
 */
export class CaStore extends EventEmitter<StoreEvents> {
  private bundle?: CaBundle;
  private fingerprint = '';
  private failedFingerprint = '';
  private watcher?: fs.FSWatcher;
  private debounce?: NodeJS.Timeout;
  private poll?: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();
  private closed = false;
  /** Replaced roots still trusted, and the latest expiry of what the current CA issued. */
  private retained: RetainedRoot[] = [];
  private issuedUntil = 0;
  origin: CaOrigin = 'files';

  constructor(private readonly options: CaStoreOptions) {
    super();
  }

  get dir(): string {
    return this.options.dir;
  }

  /** The CA currently signing. Throws before `init`. */
  current(): CaBundle {
    if (!this.bundle) throw new Error('the CA is not loaded yet');
    return this.bundle;
  }

  /**
   * Every root workloads must trust now: the current CA's roots, then the
   * replaced ones that certificates still in use chain to.
   */
  trustBundle(now = Date.now()): string[] {
    const roots = this.current().roots;
    const kept = this.retained.filter((r) => r.until > now && !roots.includes(r.pem));
    return [...roots, ...kept.map((r) => r.pem)];
  }

  /** The signer tells the store what it issued with `bundle`, so replaced roots are kept as long as needed. */
  noteIssued(bundle: CaBundle, notAfter: Date): void {
    const until = notAfter.getTime();
    if (bundle === this.bundle) {
      this.issuedUntil = Math.max(this.issuedUntil, until);
      return;
    }
    // Signed with a CA that a reload replaced meanwhile: its roots must outlive this certificate too.
    for (const pem of bundle.roots) this.retain(pem, until);
  }

  private retain(pem: string, until: number): void {
    this.retained = this.retained.filter((r) => r.until > Date.now());
    if (this.bundle?.roots.includes(pem)) return;
    const known = this.retained.find((r) => r.pem === pem);
    if (known) known.until = Math.max(known.until, until);
    else this.retained.push({ pem, until });
  }

  async init(): Promise<CaBundle> {
    const { dir } = this.options;
    try {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new CaStoreError(`cannot create --ca-dir ${dir}: ${(err as Error).message}`);
    }
    const files = await this.read();
    if (Object.keys(files).length === 0) {
      await this.generate();
    } else {
      const missing = [
        files.caCert === undefined && CA_FILES.caCert,
        files.caKey === undefined && CA_FILES.caKey,
      ].filter(Boolean);
      if (missing.length) {
        throw new CaStoreError(`CA files in ${dir} are incomplete: ${missing.join(' and ')} missing`);
      }
      this.origin = 'files';
    }
    const loaded = await this.read();
    try {
      this.bundle = await loadCaBundle(this.asCaFiles(loaded));
    } catch (err) {
      throw new CaStoreError(`CA files in ${dir} are not a usable CA: ${(err as Error).message}`);
    }
    if (loaded.rootCert === undefined) await this.writeRootCert(this.bundle.root);
    this.fingerprint = fingerprintOf(await this.read());
    return this.bundle;
  }

  /** Starts following changes to the CA files. */
  watch(): void {
    if (this.closed || this.watcher) return;
    try {
      this.watcher = fs.watch(this.options.dir, (_event, name) => {
        // Kubernetes secret volumes swap a `..data` symlink; plain directories see the files themselves.
        if (name === null || WATCHED.has(String(name)) || String(name).startsWith('..')) this.schedule();
      });
      this.watcher.on('error', (err) => {
        this.options.logger.warn(
          { dir: this.options.dir, err: err.message },
          'CA directory watch failed; polling only',
        );
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch (err) {
      this.options.logger.warn(
        { dir: this.options.dir, err: (err as Error).message },
        'cannot watch the CA directory; polling only',
      );
    }
    this.poll = setInterval(() => this.schedule(), this.options.pollIntervalMs ?? 30_000);
    this.poll.unref();
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearTimeout(this.debounce);
    clearInterval(this.poll);
  }

  /** Re-reads the files now (the watcher calls this after its debounce); resolves when done. */
  reload(): Promise<void> {
    this.reloading = this.reloading
      .then(() => this.reloadNow())
      .catch((err: Error) =>
        this.options.logger.error({ err: err.message }, 'reloading the CA files failed'),
      );
    return this.reloading;
  }

  private schedule(): void {
    if (this.closed) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.reload(), this.options.debounceMs ?? 250);
  }

  private async reloadNow(): Promise<void> {
    if (this.closed) return;
    const log = this.options.logger;
    let files: Partial<CaFiles>;
    try {
      files = await this.read();
    } catch (err) {
      this.fail(`cannot read the CA files: ${(err as Error).message}`, '');
      return;
    }
    const fp = fingerprintOf(files);
    if (fp === this.fingerprint || fp === this.failedFingerprint) return;
    const missing = [
      files.caCert === undefined && CA_FILES.caCert,
      files.caKey === undefined && CA_FILES.caKey,
    ].filter(Boolean);
    if (missing.length) {
      this.fail(`${missing.join(' and ')} missing`, fp);
      return;
    }
    let bundle: CaBundle;
    try {
      bundle = await loadCaBundle(this.asCaFiles(files));
    } catch (err) {
      this.fail((err as Error).message, fp);
      return;
    }
    if (this.closed) return;
    const previous = this.bundle;
    const keepUntil =
      this.issuedUntil > Date.now()
        ? this.issuedUntil
        : Date.now() + (this.options.retainRootsMs ?? 86_400_000);
    this.bundle = bundle;
    if (previous) for (const pem of previous.roots) this.retain(pem, keepUntil);
    this.issuedUntil = 0;
    this.fingerprint = fp;
    this.failedFingerprint = '';
    this.origin = 'files';
    log.info(
      {
        dir: this.options.dir,
        signer: bundle.signerInfo.subject,
        signerSerial: bundle.signerInfo.serialNumber,
        rootSerial: bundle.rootInfo.serialNumber,
        rootExpiry: bundle.rootInfo.notAfter.toISOString(),
        retainedRoots: this.retained.map((r) => ({ until: new Date(r.until).toISOString() })),
      },
      'CA files changed; signing with the new CA',
    );
    this.emit('reloaded', bundle);
  }

  private fail(reason: string, fp: string): void {
    this.failedFingerprint = fp;
    this.options.logger.warn(
      { dir: this.options.dir, reason },
      'CA files changed but do not form a valid CA; keeping the current CA',
    );
    this.emit('reload-failed', reason);
  }

  private async read(): Promise<Partial<CaFiles>> {
    const at = (name: string) => readOptional(path.join(this.options.dir, name));
    const [caCert, caKey, certChain, rootCert] = await Promise.all([
      at(CA_FILES.caCert),
      at(CA_FILES.caKey),
      at(CA_FILES.certChain),
      at(CA_FILES.rootCert),
    ]);
    return {
      ...(caCert !== undefined ? { caCert } : {}),
      ...(caKey !== undefined ? { caKey } : {}),
      ...(certChain !== undefined ? { certChain } : {}),
      ...(rootCert !== undefined ? { rootCert } : {}),
    };
  }

  private asCaFiles(files: Partial<CaFiles>): CaFiles {
    return {
      caCert: files.caCert ?? '',
      caKey: files.caKey ?? '',
      ...(files.certChain !== undefined ? { certChain: files.certChain } : {}),
      ...(files.rootCert !== undefined ? { rootCert: files.rootCert } : {}),
    };
  }

  /** A self-signed root, written in the plug-in layout: ca-cert = root-cert = cert-chain, ca-key mode 0600. */
  private async generate(): Promise<void> {
    const { dir, trustDomain, selfSignedTtlSeconds, keyType, logger } = this.options;
    const root = await createRootCa({ organization: trustDomain, ttlSeconds: selfSignedTtlSeconds, keyType });
    const files: [string, string, number][] = [
      [CA_FILES.caKey, root.privateKeyPem, 0o600],
      [CA_FILES.caCert, root.certificate, 0o644],
      [CA_FILES.certChain, root.certificate, 0o644],
      [CA_FILES.rootCert, root.certificate, 0o644],
    ];
    try {
      // Everything is written aside first and then renamed into place, so a crash leaves no half-made CA.
      for (const [name, content, mode] of files) await writeTemp(path.join(dir, name), content, mode);
      for (const [name] of files) await fsp.rename(tempName(path.join(dir, name)), path.join(dir, name));
    } catch (err) {
      throw new CaStoreError(`cannot write the new root CA to ${dir}: ${(err as Error).message}`);
    }
    this.origin = 'generated';
    logger.info({ dir, trustDomain, keyType }, 'generated a self-signed root CA and saved it');
  }

  /** Publishes root-cert.pem next to a self-signed plug-in ca-cert that came without one (best effort). */
  private async writeRootCert(root: string): Promise<void> {
    try {
      await writeAtomic(path.join(this.options.dir, CA_FILES.rootCert), root, 0o644);
    } catch (err) {
      this.options.logger.debug({ err: (err as Error).message }, 'could not write root-cert.pem');
    }
  }
}

function fingerprintOf(files: Partial<CaFiles>): string {
  const hash = createHash('sha256');
  for (const key of ['caCert', 'caKey', 'certChain', 'rootCert'] as const) {
    hash.update(files[key] === undefined ? '\u0000absent' : files[key]!);
    hash.update('\u0000');
  }
  return hash.digest('hex');
}
