import { randomBytes } from 'node:crypto';
import type { Logger } from '@mizzen/runtime';
import { Redis } from 'ioredis';
import type { IntervalRecord } from '../mesh/model.js';
import {
  type LogQuery,
  type LogRecord,
  logMatches,
  type MetricPoint,
  type MetricQuery,
  metricMatches,
  type RetentionLimits,
  type SpanRecord,
  summarise,
  type TelemetryStore,
  type TraceQuery,
  type TraceSummary,
} from './types.js';

/**
 * Telemetry shared by every collector pointed at one Redis (standalone Redis
 * ≥ 6.2; the Lua scripts address keys they derive, so not Redis Cluster).
 *
 * Keys, under a prefix (`mizzen:telemetry:` by default):
 * - `spans:<traceId>`   list of span JSON; expires after the retention (+10 min)
 * - `traces`            zset traceId → trace start (µs): time-range queries
 * - `traces:recv`       zset traceId → last receipt (ms): retention and size trimming, oldest first
 * - `svc:<service>`     zset traceId → trace start (µs): queries by service
 * - `services`          zset service → last seen (ms)
 * - `spancount`         spans currently stored, kept by the trimming script
 * - `logs`, `metrics`   zsets scored by the record's time (µs), trimmed by age and count
 * - `intervals`         zset of scrape interval records scored by their end (ms)
 * - `intervals:last`    hash target → end of the last stored interval
 * - `scrape:lease`      which collector writes scrape intervals (see {@link RedisStore.addIntervals})
 *
 * Every command is bounded by `commandTimeout`; while disconnected commands
 * fail at once (no offline queue), and the client reconnects by itself.
 */
export interface RedisStoreOptions {
  url: string;
  limits: RetentionLimits;
  logger: Logger;
  clock?: () => number;
  prefix?: string;
  commandTimeoutMs?: number;
  /** How long the scrape lease lasts without renewal. */
  leaseMs: number;
}

const TRIM_TRACES = `
local recv, starts, countKey = KEYS[1], KEYS[2], KEYS[3]
local prefix, maxSpans, cutoff = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local count = tonumber(redis.call('GET', countKey) or '0')
local removed = 0
while removed < 2000 do
  local oldest = redis.call('ZRANGE', recv, 0, 0, 'WITHSCORES')
  if #oldest == 0 then break end
  if count <= maxSpans and tonumber(oldest[2]) >= cutoff then break end
  local id = oldest[1]
  count = count - redis.call('LLEN', prefix .. id)
  redis.call('DEL', prefix .. id)
  redis.call('ZREM', recv, id)
  redis.call('ZREM', starts, id)
  removed = removed + 1
end
if count < 0 or redis.call('ZCARD', recv) == 0 then count = 0 end
redis.call('SET', countKey, count)
return removed
`;

/**
 * Stores scrape intervals only for the lease holder, and only intervals that
 * start where the last stored one of the same proxy ended, so a proxy's
 * traffic is never counted twice even when the lease moves between collectors.
 */
const ADD_INTERVALS = `
local lease, intervals, last = KEYS[1], KEYS[2], KEYS[3]
local token, leaseMs, cutoff, maxRecords, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local holder = redis.call('GET', lease)
if holder == false then
  redis.call('SET', lease, token, 'PX', leaseMs)
elseif holder == token then
  redis.call('PEXPIRE', lease, leaseMs)
else
  return -1
end
local stored = 0
for i = 6, #ARGV, 4 do
  local target, t1, t2, json = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
  local previous = tonumber(redis.call('HGET', last, target) or '-1')
  if t1 >= previous then
    redis.call('ZADD', intervals, t2, json)
    redis.call('HSET', last, target, t2)
    stored = stored + 1
  end
end
redis.call('PEXPIRE', last, ttl)
redis.call('ZREMRANGEBYSCORE', intervals, '-inf', '(' .. cutoff)
local size = redis.call('ZCARD', intervals)
if size > maxRecords then redis.call('ZREMRANGEBYRANK', intervals, 0, size - maxRecords - 1) end
return stored
`;

interface Scripts {
  mzTrimTraces(
    recv: string,
    starts: string,
    count: string,
    prefix: string,
    max: number,
    cutoff: number,
  ): Promise<number>;
  mzAddIntervals(
    lease: string,
    intervals: string,
    last: string,
    ...args: (string | number)[]
  ): Promise<number>;
}

export class RedisStore implements TelemetryStore {
  readonly redis: Redis;
  private readonly prefix: string;
  private readonly clock: () => number;
  private readonly limits: RetentionLimits;
  private readonly log: Logger;
  /** Identifies this collector as a lease holder. */
  readonly token = randomBytes(8).toString('hex');
  private lastError: string | undefined;
  private connectedOnce = false;
  private readonly changeListeners: ((up: boolean) => void)[] = [];

  constructor(private readonly options: RedisStoreOptions) {
    this.prefix = options.prefix ?? 'mizzen:telemetry:';
    this.clock = options.clock ?? Date.now;
    this.limits = options.limits;
    this.log = options.logger;
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
      reconnectOnError: () => false,
    });
    this.redis.defineCommand('mzTrimTraces', { numberOfKeys: 3, lua: TRIM_TRACES });
    this.redis.defineCommand('mzAddIntervals', { numberOfKeys: 3, lua: ADD_INTERVALS });
    this.redis.on('ready', () => {
      if (this.lastError !== undefined || !this.connectedOnce)
        this.log.info({ redis: this.where() }, 'redis connected');
      this.connectedOnce = true;
      this.lastError = undefined;
      for (const l of this.changeListeners) l(true);
    });
    this.redis.on('error', (err: Error) => {
      const message = describeError(err);
      if (message !== this.lastError)
        this.log.warn({ redis: this.where(), err: message }, 'redis unavailable');
      this.lastError = message;
    });
    this.redis.on('close', () => {
      if (this.lastError === undefined) this.lastError = 'connection closed';
      for (const l of this.changeListeners) l(false);
    });
  }

  /** Starts connecting; never waits for Redis to be up. */
  connect(): void {
    this.redis.connect().catch(() => {
      // Reported through the 'error' event; the client keeps retrying.
    });
  }

  onChange(listener: (up: boolean) => void): void {
    this.changeListeners.push(listener);
  }

  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  /** Why Redis is not usable, or undefined when it is. */
  problem(): string | undefined {
    if (this.connected) return undefined;
    return `redis at ${this.where()} is unreachable${this.lastError ? `: ${this.lastError}` : ''}`;
  }

  noteError(err: unknown): void {
    this.lastError = describeError(err);
  }

  /** host:port of the server, never the password. */
  where(): string {
    try {
      const u = new URL(this.options.url);
      return `${u.hostname}:${u.port || 6379}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
    } catch {
      return 'redis';
    }
  }

  private k(name: string): string {
    return this.prefix + name;
  }

  private get scripts(): Scripts {
    return this.redis as unknown as Scripts;
  }

  private ttlMs(): number {
    return this.limits.retentionMs + 10 * 60_000;
  }

  async addSpans(spans: readonly SpanRecord[]): Promise<void> {
    if (spans.length === 0) return;
    const now = this.clock();
    const byTrace = new Map<string, SpanRecord[]>();
    for (const s of spans) {
      const list = byTrace.get(s.traceId);
      if (list) list.push(s);
      else byTrace.set(s.traceId, [s]);
    }
    const multi = this.redis.multi();
    for (const [traceId, list] of byTrace) {
      const key = this.k(`spans:${traceId}`);
      const start = Math.min(...list.map((s) => s.startUs));
      multi.rpush(key, ...list.map((s) => JSON.stringify(s)));
      multi.pexpire(key, this.ttlMs());
      multi.zadd(this.k('traces'), 'LT', start, traceId);
      multi.zadd(this.k('traces:recv'), now, traceId);
      for (const service of new Set(list.map((s) => s.service))) {
        multi.zadd(this.k(`svc:${service}`), 'LT', start, traceId);
        multi.pexpire(this.k(`svc:${service}`), this.ttlMs());
        multi.zadd(this.k('services'), now, service);
      }
    }
    multi.incrby(this.k('spancount'), spans.length);
    await multi.exec();
    const cutoff = now - this.limits.retentionMs;
    await this.scripts.mzTrimTraces(
      this.k('traces:recv'),
      this.k('traces'),
      this.k('spancount'),
      this.k('spans:'),
      this.limits.maxSpans,
      cutoff,
    );
    const trim = this.redis.multi();
    trim.zremrangebyscore(this.k('services'), '-inf', `(${cutoff}`);
    for (const service of new Set(spans.map((s) => s.service))) {
      const key = this.k(`svc:${service}`);
      trim.zremrangebyrank(key, 0, -this.limits.maxSpans - 1);
    }
    await trim.exec();
  }

  async getTrace(traceId: string): Promise<SpanRecord[]> {
    const raw = await this.redis.lrange(this.k(`spans:${traceId}`), 0, -1);
    return dedupe(raw.map((r) => JSON.parse(r) as SpanRecord));
  }

  async findTraces(query: TraceQuery): Promise<TraceSummary[]> {
    const index = query.service ? this.k(`svc:${query.service}`) : this.k('traces');
    const fetch = query.minDurationUs ? Math.min(2000, query.limit * 10) : query.limit * 2;
    const ids = await this.redis.zrevrangebyscore(index, query.toUs, query.fromUs, 'LIMIT', 0, fetch);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.lrange(this.k(`spans:${id}`), 0, -1);
    const results = (await pipeline.exec()) ?? [];
    const out: TraceSummary[] = [];
    results.forEach(([err, raw], i) => {
      if (err || !Array.isArray(raw) || raw.length === 0) return;
      const summary = summarise(ids[i]!, dedupe((raw as string[]).map((r) => JSON.parse(r) as SpanRecord)));
      if (query.minDurationUs && summary.durationUs < query.minDurationUs) return;
      out.push(summary);
    });
    return out.slice(0, query.limit);
  }

  async traceServices(): Promise<string[]> {
    return this.redis.zrevrangebyscore(this.k('services'), '+inf', this.clock() - this.limits.retentionMs);
  }

  private async addScored(key: string, max: number, items: { score: number; json: string }[]): Promise<void> {
    if (items.length === 0) return;
    const multi = this.redis.multi();
    multi.zadd(key, ...items.flatMap((i) => [i.score, i.json]));
    multi.zremrangebyscore(key, '-inf', `(${(this.clock() - this.limits.retentionMs) * 1000}`);
    multi.zremrangebyrank(key, 0, -max - 1);
    multi.pexpire(key, this.ttlMs());
    await multi.exec();
  }

  /** Newest first, in pages, until `limit` matches or the range is exhausted (bounded pages). */
  private async scanScored<T>(
    key: string,
    fromUs: number,
    toUs: number,
    limit: number,
    keep: (item: T) => boolean,
  ): Promise<T[]> {
    const out: T[] = [];
    const page = 500;
    for (let offset = 0; offset < 20 * page && out.length < limit; offset += page) {
      const raw = await this.redis.zrevrangebyscore(key, toUs, fromUs, 'LIMIT', offset, page);
      for (const r of raw) {
        const { uid: _uid, ...item } = JSON.parse(r) as T & { uid?: string };
        if (keep(item as T)) out.push(item as T);
        if (out.length >= limit) break;
      }
      if (raw.length < page) break;
    }
    return out;
  }

  async addLogs(logs: readonly LogRecord[]): Promise<void> {
    await this.addScored(
      this.k('logs'),
      this.limits.maxLogs,
      logs.map((l) => ({ score: l.timeUs, json: JSON.stringify({ ...l, uid: uid() }) })),
    );
  }

  async queryLogs(query: LogQuery): Promise<LogRecord[]> {
    return this.scanScored<LogRecord>(this.k('logs'), query.fromUs, query.toUs, query.limit, (l) =>
      logMatches(l, query),
    );
  }

  async addMetricPoints(points: readonly MetricPoint[]): Promise<void> {
    await this.addScored(
      this.k('metrics'),
      this.limits.maxMetricPoints,
      points.map((p) => ({ score: p.timeUs, json: JSON.stringify({ ...p, uid: uid() }) })),
    );
  }

  async queryMetricPoints(query: MetricQuery): Promise<MetricPoint[]> {
    return this.scanScored<MetricPoint>(this.k('metrics'), query.fromUs, query.toUs, query.limit, (p) =>
      metricMatches(p, query),
    );
  }

  /**
   * Writes scrape intervals if this collector holds (or can take) the scrape
   * lease; renews the lease. Returns how many were stored, or -1 when
   * another collector holds the lease. Call it every round, even with no
   * records, so the lease stays with a live collector.
   */
  async addIntervals(records: readonly IntervalRecord[]): Promise<number> {
    const now = this.clock();
    const args: (string | number)[] = [
      this.token,
      this.options.leaseMs,
      now - this.limits.retentionMs,
      this.limits.maxIntervals,
      this.ttlMs(),
    ];
    for (const r of records) args.push(r.target, r.t1, r.t2, JSON.stringify(r));
    return this.scripts.mzAddIntervals(
      this.k('scrape:lease'),
      this.k('intervals'),
      this.k('intervals:last'),
      ...args,
    );
  }

  async leaseHolder(): Promise<string | null> {
    return this.redis.get(this.k('scrape:lease'));
  }

  async intervals(fromMs: number, toMs: number): Promise<IntervalRecord[]> {
    const raw = await this.redis.zrangebyscore(this.k('intervals'), `(${fromMs}`, toMs);
    return raw.map((r) => JSON.parse(r) as IntervalRecord);
  }

  async close(): Promise<void> {
    this.changeListeners.length = 0;
    this.redis.disconnect(false);
  }
}

function uid(): string {
  return randomBytes(6).toString('base64url');
}

/** A span sent twice (an exporter's retry) is kept once, the later copy winning. */
export function dedupe(spans: SpanRecord[]): SpanRecord[] {
  const byId = new Map<string, SpanRecord>();
  for (const s of spans) byId.set(s.spanId, s);
  return [...byId.values()];
}

function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { errors?: Error[] };
  if (e?.errors?.length) return e.errors.map((x) => x.message).join('; ');
  return e?.message || String(err);
}
