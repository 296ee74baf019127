import type { Logger } from '@mizzen/runtime';
import { Redis } from 'ioredis';
import {
  type CounterRequest,
  type CounterResult,
  type CounterStore,
  CounterStoreError,
} from './counter-store.js';
import { periodUs, retentionMs } from './gcra.js';
import { GCRA_SCRIPT } from './gcra-script.js';

export interface RedisCounterStoreOptions {
  /** `redis://[:password@]host:port[/db]` (or `rediss://`). */
  url: string;
  logger: Logger;
  /** The most a request waits for Redis, in milliseconds, before its policy fails open or closed. */
  timeoutMs?: number;
  /** Prefix of every key this store writes. */
  keyPrefix?: string;
  /** Told whenever Redis becomes usable or stops being usable (metrics). */
  onAvailability?: (up: boolean) => void;
}

type GcraCommand = (numKeys: number, ...keysAndArgs: (string | number)[]) => Promise<number[]>;

/**
 * Counters shared by every proxy through one Redis: each request is one
 * EVALSHA of the GCRA script (ioredis loads it on NOSCRIPT), concurrent
 * requests are pipelined onto the connection automatically, and nothing
 * waits longer than `timeoutMs`. While Redis is away, calls fail at once
 * (no offline queue) and the client reconnects with back-off by itself.
 */
export class RedisCounterStore implements CounterStore {
  readonly kind = 'redis';
  readonly redis: Redis;
  private readonly timeoutMs: number;
  private readonly prefix: string;
  private readonly log: Logger;
  private readyOnce = false;
  private lastError: string | undefined;
  private closed = false;

  constructor(private readonly options: RedisCounterStoreOptions) {
    this.timeoutMs = options.timeoutMs ?? 100;
    this.prefix = options.keyPrefix ?? 'mizzen:ratelimit:';
    this.log = options.logger;
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.timeoutMs,
      connectTimeout: 2000,
      // Reconnect quickly at first, then every second: a limit that fails open should not stay open long.
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
      reconnectOnError: () => false,
    });
    this.redis.defineCommand('mizzenGcra', { lua: GCRA_SCRIPT });
    this.redis.on('ready', () => {
      if (!this.readyOnce || this.lastError !== undefined)
        this.log.info({ redis: this.where() }, 'rate limit counters: redis connected');
      this.readyOnce = true;
      this.lastError = undefined;
      options.onAvailability?.(true);
    });
    this.redis.on('error', (err: Error) => this.noteError(err.message));
    this.redis.on('close', () => {
      if (!this.closed) this.noteError(this.lastError ?? 'connection closed');
      options.onAvailability?.(false);
    });
    this.redis.connect().catch(() => {
      // Reported through 'error'; the client keeps retrying.
    });
  }

  isUp(): boolean {
    return this.redis.status === 'ready';
  }

  async hit(counters: readonly CounterRequest[], nowUs?: number): Promise<CounterResult[]> {
    if (counters.length === 0) return [];
    const started = Date.now();
    if (!this.isUp()) {
      // Only the very first connection is worth waiting for (a proxy that just started);
      // once Redis was seen and lost, requests fail at once instead of queueing behind it.
      if (this.readyOnce || this.closed) throw this.unavailable();
      await this.waitReady(this.timeoutMs);
    }
    const keys = counters.map((c) => this.prefix + c.key);
    const args: (string | number)[] = [nowUs === undefined ? '' : nowUs];
    for (const c of counters) args.push(periodUs(c.limit), c.limit.requests, c.enforce ? 1 : 0);
    for (const c of counters) args.push(retentionMs(c.limit));
    const remaining = Math.max(1, this.timeoutMs - (Date.now() - started));
    const reply = await this.bounded(
      (this.redis as unknown as { mizzenGcra: GcraCommand }).mizzenGcra(keys.length, ...keys, ...args),
      remaining,
    );
    return counters.map((c, i) => ({
      allowed: reply[i * 4] === 1,
      limit: c.limit.requests,
      remaining: Number(reply[i * 4 + 1]),
      resetMs: Number(reply[i * 4 + 2]),
      retryAfterMs: Number(reply[i * 4 + 3]),
    }));
  }

  /** The command's answer, or a CounterStoreError once `ms` have passed (ioredis' own commandTimeout backs this up). */
  private bounded<T>(command: Promise<T>, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new CounterStoreError(`redis did not answer within ${this.timeoutMs}ms`, 'timeout')),
        ms,
      );
      command.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (err: Error) => {
          clearTimeout(timer);
          reject(this.classify(err));
        },
      );
    });
  }

  private classify(err: Error): CounterStoreError {
    if (err instanceof CounterStoreError) return err;
    if (/timed out/i.test(err.message)) return new CounterStoreError(err.message, 'timeout');
    if (/writeable|closed|connect|ECONNREFUSED|ECONNRESET/i.test(err.message)) {
      this.noteError(err.message);
      return this.unavailable();
    }
    this.log.warn({ err: err.message }, 'rate limit counters: redis script failed');
    return new CounterStoreError(err.message, 'error');
  }

  private unavailable(): CounterStoreError {
    return new CounterStoreError(
      `redis at ${this.where()} is unavailable${this.lastError ? `: ${this.lastError}` : ''}`,
      'unavailable',
    );
  }

  private waitReady(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: CounterStoreError) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => done();
      const timer = setTimeout(() => done(this.unavailable()), ms);
      this.redis.once('ready', onReady);
    });
  }

  /** Logged once per distinct problem, not once per request. */
  private noteError(message: string): void {
    if (message !== this.lastError)
      this.log.warn({ redis: this.where(), err: message }, 'rate limit counters: redis unavailable');
    this.lastError = message;
  }

  /** host:port of the server, never the password. */
  where(): string {
    try {
      const u = new URL(this.options.url);
      return `${u.hostname}:${u.port || 6379}`;
    } catch {
      return 'redis';
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.redis.disconnect();
  }
}
