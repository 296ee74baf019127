import fs from 'node:fs';
import type { Logger } from '@mizzen/runtime';
import { request } from 'undici';

/** Where the mesh's trust bundle comes from: citadel's `/root-cert.pem`, or a file (cert-manager's `ca.crt`). */
export type RootSource = { url: string } | { file: string };

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Keeps pilot's copy of the root bundle current, so every proxy gets the
 * roots it must trust (Istio's trust distribution): polls the CA's URL with
 * an ETag, or watches a file. A bundle that holds no certificate is refused
 * and the last good one kept.
 */
export class RootBundle {
  private current?: string;
  private etag?: string;
  private timer?: NodeJS.Timeout;
  private watcher?: fs.FSWatcher;

  constructor(
    private readonly source: RootSource,
    private readonly logger: Logger,
    private readonly onChange: (pem: string) => void,
    private readonly pollMs = 5_000,
  ) {}

  get pem(): string | undefined {
    return this.current;
  }

  async start(): Promise<void> {
    await this.refresh();
    if ('url' in this.source) {
      this.timer = setInterval(() => void this.refresh(), this.pollMs);
      this.timer.unref();
    } else {
      const file = this.source.file;
      this.watcher = fs.watch(file, () => void this.refresh());
      this.watcher.on('error', (err) =>
        this.logger.warn({ file, err: err.message }, 'cannot watch the root bundle file'),
      );
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.watcher?.close();
  }

  private async refresh(): Promise<void> {
    try {
      const text =
        'url' in this.source ? await this.fetch(this.source.url) : fs.readFileSync(this.source.file, 'utf8');
      if (text === undefined) return;
      const certs = text.match(PEM);
      if (!certs?.length) throw new Error('it holds no PEM certificate');
      const bundle = `${certs.join('\n')}\n`;
      if (bundle === this.current) return;
      this.current = bundle;
      this.logger.info({ roots: certs.length }, 'mesh root bundle updated');
      this.onChange(bundle);
    } catch (err) {
      this.logger.warn(
        { source: this.source, err: (err as Error).message },
        'cannot load the mesh root bundle; keeping the last one',
      );
    }
  }

  /** The body when it changed, undefined when the CA says 304. */
  private async fetch(url: string): Promise<string | undefined> {
    const res = await request(url, {
      headers: this.etag ? { 'if-none-match': this.etag } : {},
      headersTimeout: 5_000,
      bodyTimeout: 5_000,
    });
    const body = await res.body.text();
    if (res.statusCode === 304) return undefined;
    if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}`);
    const etag = res.headers.etag;
    if (typeof etag === 'string') this.etag = etag;
    return body;
  }
}
