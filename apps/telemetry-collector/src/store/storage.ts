import type { Logger } from '@mizzen/runtime';
import type { IntervalRecord } from '../mesh/model.js';
import { MemoryStore } from './memory.js';
import { dedupe, RedisStore } from './redis.js';
import type {
  LogQuery,
  LogRecord,
  MetricPoint,
  MetricQuery,
  RetentionLimits,
  SpanRecord,
  TraceQuery,
  TraceSummary,
} from './types.js';

export interface StorageOptions {
  limits: RetentionLimits;
  logger: Logger;
  clock: () => number;
  redisUrl?: string;
  /** Bound on any single Redis operation. */
  redisTimeoutMs?: number;
  /** Scrape lease duration (Redis only). */
  leaseMs: number;
  onRedisError?: (op: string) => void;
}

export interface StorageHealth {
  backend: 'memory' | 'redis';
  ok: boolean;
  /** Why reads are served from memory instead of Redis. */
  reason?: string;
  /** Redis only: whether this collector holds the scrape lease. */
  scrapeLeader?: boolean;
}

class TimeoutError extends Error {}

function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`${what} took longer than ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Memory always, Redis when configured. Every write lands in memory first
 * and then in Redis (bounded, failures noted, never thrown to the sender).
 * Reads come from Redis while it is up, so collectors sharing it answer
 * alike; traces and logs this collector received while Redis was away are
 * merged in. While Redis is down, reads come from memory and health says so.
 *
 * Scrape intervals: every collector scrapes into its own memory (so it can
 * answer alone at any moment); only the holder of the Redis scrape lease
 * writes them to Redis (see RedisStore.addIntervals).
 */
export class Storage {
  readonly memory: MemoryStore;
  readonly redis?: RedisStore;
  private readonly timeoutMs: number;
  private leader = false;
  private readonly log: Logger;

  constructor(private readonly options: StorageOptions) {
    this.memory = new MemoryStore(options.limits, options.clock);
    this.log = options.logger;
    this.timeoutMs = options.redisTimeoutMs ?? 1500;
    if (options.redisUrl) {
      this.redis = new RedisStore({
        url: options.redisUrl,
        limits: options.limits,
        logger: options.logger,
        clock: options.clock,
        commandTimeoutMs: Math.max(100, this.timeoutMs - 250),
        leaseMs: options.leaseMs,
      });
      this.redis.onChange((up) => {
        if (!up) this.leader = false;
      });
    }
  }

  start(): void {
    this.redis?.connect();
  }

  async close(): Promise<void> {
    await this.redis?.close();
  }

  health(): StorageHealth {
    if (!this.redis) return { backend: 'memory', ok: true };
    const reason = this.redis.problem();
    return reason
      ? { backend: 'redis', ok: false, reason: `${reason}; serving from memory`, scrapeLeader: false }
      : { backend: 'redis', ok: true, scrapeLeader: this.leader };
  }

  /** Whether reads currently come from Redis. */
  get shared(): boolean {
    return this.redis?.connected ?? false;
  }

  private async write(op: string, fn: (r: RedisStore) => Promise<unknown>): Promise<void> {
    if (!this.redis?.connected) return;
    try {
      await bounded(fn(this.redis), this.timeoutMs, `redis ${op}`);
    } catch (err) {
      this.redis.noteError(err);
      this.options.onRedisError?.(op);
      this.log.warn({ op, err: (err as Error).message }, 'redis write failed; data kept in memory');
    }
  }

  private async read<T>(op: string, fromRedis: (r: RedisStore) => Promise<T>, fromMemory: () => Promise<T>) {
    if (this.redis?.connected) {
      try {
        return { value: await bounded(fromRedis(this.redis), this.timeoutMs, `redis ${op}`), shared: true };
      } catch (err) {
        this.redis.noteError(err);
        this.options.onRedisError?.(op);
        this.log.warn({ op, err: (err as Error).message }, 'redis read failed; answering from memory');
      }
    }
    return { value: await fromMemory(), shared: false };
  }

  async addSpans(spans: readonly SpanRecord[]): Promise<void> {
    await this.memory.addSpans(spans);
    await this.write('addSpans', (r) => r.addSpans(spans));
  }

  async getTrace(traceId: string): Promise<SpanRecord[]> {
    const { value, shared } = await this.read(
      'getTrace',
      (r) => r.getTrace(traceId),
      () => this.memory.getTrace(traceId),
    );
    if (!shared) return value;
    const local = await this.memory.getTrace(traceId);
    return local.length ? dedupe([...value, ...local]) : value;
  }

  async findTraces(query: TraceQuery): Promise<TraceSummary[]> {
    const { value, shared } = await this.read(
      'findTraces',
      (r) => r.findTraces(query),
      () => this.memory.findTraces(query),
    );
    if (!shared) return value;
    const byId = new Map(value.map((t) => [t.traceId, t]));
    for (const t of await this.memory.findTraces(query)) {
      const remote = byId.get(t.traceId);
      if (!remote || remote.spanCount < t.spanCount) byId.set(t.traceId, t);
    }
    return [...byId.values()].sort((a, b) => b.startUs - a.startUs).slice(0, query.limit);
  }

  async traceServices(): Promise<string[]> {
    const { value, shared } = await this.read(
      'traceServices',
      (r) => r.traceServices(),
      () => this.memory.traceServices(),
    );
    if (!shared) return value;
    return [...new Set([...value, ...(await this.memory.traceServices())])];
  }

  async addLogs(logs: readonly LogRecord[]): Promise<void> {
    await this.memory.addLogs(logs);
    await this.write('addLogs', (r) => r.addLogs(logs));
  }

  async queryLogs(query: LogQuery): Promise<LogRecord[]> {
    const { value, shared } = await this.read(
      'queryLogs',
      (r) => r.queryLogs(query),
      () => this.memory.queryLogs(query),
    );
    if (!shared) return value;
    const seen = new Set(value.map((l) => JSON.stringify(l)));
    const merged = [...value];
    for (const l of await this.memory.queryLogs(query)) if (!seen.has(JSON.stringify(l))) merged.push(l);
    return merged.sort((a, b) => b.timeUs - a.timeUs).slice(0, query.limit);
  }

  async addMetricPoints(points: readonly MetricPoint[]): Promise<void> {
    await this.memory.addMetricPoints(points);
    await this.write('addMetricPoints', (r) => r.addMetricPoints(points));
  }

  async queryMetricPoints(query: MetricQuery): Promise<MetricPoint[]> {
    return (
      await this.read(
        'queryMetricPoints',
        (r) => r.queryMetricPoints(query),
        () => this.memory.queryMetricPoints(query),
      )
    ).value;
  }

  /** This collector's own scrape intervals: always to memory, to Redis when it holds the lease. */
  async addIntervals(records: readonly IntervalRecord[]): Promise<void> {
    await this.memory.addIntervals(records);
    if (!this.redis?.connected) return;
    try {
      const stored = await bounded(this.redis.addIntervals(records), this.timeoutMs, 'redis addIntervals');
      const wasLeader = this.leader;
      this.leader = stored >= 0;
      if (this.leader !== wasLeader) {
        this.log.info(
          { leader: this.leader },
          this.leader ? 'took the scrape lease' : 'another collector holds the scrape lease',
        );
      }
    } catch (err) {
      this.leader = false;
      this.redis.noteError(err);
      this.options.onRedisError?.('addIntervals');
    }
  }

  async intervals(fromMs: number, toMs: number): Promise<IntervalRecord[]> {
    return (
      await this.read(
        'intervals',
        (r) => r.intervals(fromMs, toMs),
        () => this.memory.intervals(fromMs, toMs),
      )
    ).value;
  }
}
