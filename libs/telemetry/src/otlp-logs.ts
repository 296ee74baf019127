import type { Logger } from '@mizzen/runtime';
import { encodeOtlpRequest } from '@mizzen/xds';
import { request } from 'undici';

/**
 * OTLP/HTTP log export, batched and bounded: records wait in a queue of at
 * most `maxQueue` (the oldest are dropped beyond it), go out every
 * `flushIntervalMs` or as soon as `maxBatch` are waiting, one request at a
 * time, with a timeout. Nothing here ever makes a request wait.
 */

export type OtlpAttribute = { key: string; value: { stringValue: string } | { intValue: string } };

export interface OtlpLogRecord {
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: { stringValue: string };
  attributes: OtlpAttribute[];
  traceId?: string;
  spanId?: string;
}

export interface OtlpLogExporterOptions {
  /** Full URL of the receiver's logs endpoint (`…/v1/logs`). */
  url: string;
  resource: Record<string, string>;
  scope: string;
  logger?: Logger;
  flushIntervalMs?: number;
  maxBatch?: number;
  maxQueue?: number;
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export function stringAttributes(values: Record<string, string>): OtlpAttribute[] {
  return Object.entries(values).map(([key, v]) => ({ key, value: { stringValue: v } }));
}

export class OtlpLogExporter {
  private queue: OtlpLogRecord[] = [];
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  private failing = false;
  private closed = false;
  /** Counters for the admin API and tests. */
  readonly stats = { exported: 0, dropped: 0, failedBatches: 0 };

  constructor(private readonly options: OtlpLogExporterOptions) {}

  get url(): string {
    return this.options.url;
  }

  add(record: OtlpLogRecord): void {
    if (this.closed) return;
    const max = this.options.maxQueue ?? 4096;
    if (this.queue.length >= max) {
      this.queue.shift();
      this.stats.dropped++;
    }
    this.queue.push(record);
    if (this.queue.length >= (this.options.maxBatch ?? 512)) this.kick();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.kick(), this.options.flushIntervalMs ?? 1000);
      this.timer.unref();
    }
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sending) return;
    this.sending = this.drain().finally(() => {
      this.sending = undefined;
      if (this.queue.length && !this.closed) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.options.maxBatch ?? 512);
      await this.send(batch);
    }
  }

  private async send(batch: OtlpLogRecord[]): Promise<void> {
    const body = encodeOtlpRequest('logs', {
      resourceLogs: [
        {
          resource: { attributes: stringAttributes(this.options.resource) },
          scopeLogs: [{ scope: { name: this.options.scope }, logRecords: batch }],
        },
      ],
    });
    const timeout = this.options.timeoutMs ?? 5000;
    try {
      const res = await request(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf', ...this.options.headers },
        body: Buffer.from(body),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout),
      });
      await res.body.dump();
      if (res.statusCode >= 300) throw new Error(`HTTP ${res.statusCode}`);
      this.stats.exported += batch.length;
      if (this.failing) this.options.logger?.info({ url: this.options.url }, 'access-log export works again');
      this.failing = false;
    } catch (err) {
      this.stats.failedBatches++;
      this.stats.dropped += batch.length;
      if (!this.failing)
        this.options.logger?.warn(
          { url: this.options.url, err: (err as Error).message },
          'access-log export failed; records dropped until it works again',
        );
      this.failing = true;
    }
  }

  /** Sends what is queued and stops. */
  async close(): Promise<void> {
    if (this.queue.length) this.kick();
    await this.sending;
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Waits until everything queued so far was sent (or failed). */
  async flush(): Promise<void> {
    if (this.queue.length) this.kick();
    while (this.sending) await this.sending;
  }
}
