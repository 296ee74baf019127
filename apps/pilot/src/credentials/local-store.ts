import { CredentialDirectory, PkiError } from '@mizzen/pki';
import type { Logger } from '@mizzen/runtime';
import {
  CA_SUFFIX,
  type CaCandidate,
  type CaLookup,
  type CredentialLookup,
  type CredentialSource,
  checked,
  checkedCa,
} from './source.js';

/** How often the directory is checked for changes: rotation reaches gateways within about this long. */
const POLL_MS = 500;

/**
 * The local-mode credential store: the directory `mizzen create secret`
 * writes (`<dir>/<namespace>/<name>.json`). Pilot polls it (a handful of
 * small files) and pushes when anything changed, so a rotated certificate
 * reaches the gateways without a restart.
 */
export class LocalCredentialStore implements CredentialSource {
  private readonly store: CredentialDirectory;
  private readonly listeners = new Set<() => void>();
  private fingerprint = '';
  private timer?: NodeJS.Timeout;

  constructor(
    readonly dir: string,
    private readonly logger: Logger,
  ) {
    this.store = new CredentialDirectory(dir);
  }

  start(): void {
    this.fingerprint = this.currentFingerprint();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  resolve(namespace: string, name: string): CredentialLookup {
    try {
      return checked(namespace, name, this.store.read(namespace, name), this.where);
    } catch (err) {
      return { problem: this.problem(namespace, name, err) };
    }
  }

  resolveCa(namespace: string, name: string): CaLookup {
    const candidate = (credential: string): CaCandidate => ({
      exists: this.store.has(namespace, credential),
      ca: this.store.readCa(namespace, credential),
    });
    try {
      return checkedCa(namespace, name, candidate(name), candidate(`${name}${CA_SUFFIX}`), this.where);
    } catch (err) {
      return { problem: this.problem(namespace, name, err) };
    }
  }

  private get where(): string {
    return `the local credential store ${this.dir}`;
  }

  /** A store error as one sentence: the store's own (it names the file or credential), else one naming the credential. */
  private problem(namespace: string, name: string, err: unknown): string {
    if (err instanceof PkiError) return err.message;
    return `credential ${namespace}/${name}: ${(err as Error).message}`;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private currentFingerprint(): string {
    return this.store
      .list()
      .map((c) => `${c.namespace}/${c.name}@${c.mtimeMs}:${c.size}`)
      .join(',');
  }

  private poll(): void {
    const now = this.currentFingerprint();
    if (now === this.fingerprint) return;
    this.fingerprint = now;
    this.logger.info({ dir: this.dir }, 'gateway credentials changed');
    for (const l of this.listeners) l();
  }
}
