import fs from 'node:fs/promises';
import type { Logger } from '@mizzen/runtime';

/** Where the root certificate pilot distributes comes from. */
export type RootCertOrigin = { file: string } | { url: string };

/**
 * Reads the mesh root certificate (PEM) from a file (citadel's `root-cert.pem`
 * mounted from the cert-manager secret) or from citadel's `/root-cert.pem` URL,
 * and re-reads it periodically so a rotated root reaches every namespace and
 * every proxy. During a rotation it is a bundle: the new root and the old one.
 */
export class RootCertSource {
  private current?: string;
  private timer?: NodeJS.Timeout;
  private readonly listeners = new Set<(pem: string) => void>();
  private failing = false;
  private stopped = false;

  constructor(
    private readonly origin: RootCertOrigin,
    private readonly logger: Logger,
    private readonly refreshMs = 10_000,
  ) {}

  get(): string | undefined {
    return this.current;
  }

  onChange(listener: (pem: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.refresh();
    this.scheduleNext();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * Until a root has been read, retry every second: proxies cannot finish
   * their TLS setup without it, so waiting a full refresh period (as when the
   * CA starts a moment after pilot) would hold every sidecar unready.
   */
  private scheduleNext(): void {
    if (this.stopped) return;
    const wait = this.current === undefined ? 1_000 : this.refreshMs;
    this.timer = setTimeout(() => void this.refresh().finally(() => this.scheduleNext()), wait);
    this.timer.unref();
  }

  async refresh(): Promise<void> {
    let pem: string;
    try {
      if ('file' in this.origin) pem = await fs.readFile(this.origin.file, 'utf8');
      else {
        const res = await fetch(this.origin.url, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        pem = await res.text();
      }
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
      this.failing = false;
    } catch (err) {
      if (!this.failing) {
        const where = 'file' in this.origin ? this.origin.file : this.origin.url;
        this.logger.warn({ err: (err as Error).message }, `cannot read the root certificate from ${where}`);
      }
      this.failing = true;
      return;
    }
    if (pem === this.current) return;
    this.current = pem;
    for (const l of this.listeners) l(pem);
  }
}
