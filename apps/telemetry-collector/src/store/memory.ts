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

interface TraceEntry {
  spans: SpanRecord[];
  startUs: number;
  endUs: number;
  services: Set<string>;
  receivedMs: number;
}

/**
 * Everything in this process's memory, bounded by age (time of receipt, so a
 * sender's skewed clock cannot keep data forever or drop it at once) and by
 * count (oldest first). Also the fallback a Redis-backed collector serves
 * from while Redis is away.
 */
export class MemoryStore implements TelemetryStore {
  private readonly traces = new Map<string, TraceEntry>();
  private spanCount = 0;
  private logs: { at: number; log: LogRecord }[] = [];
  private points: { at: number; point: MetricPoint }[] = [];
  private records: IntervalRecord[] = [];
  private readonly serviceSeen = new Map<string, number>();

  constructor(
    private readonly limits: RetentionLimits,
    private readonly clock: () => number = Date.now,
  ) {}

  counts(): { spans: number; traces: number; logs: number; metricPoints: number; intervals: number } {
    return {
      spans: this.spanCount,
      traces: this.traces.size,
      logs: this.logs.length,
      metricPoints: this.points.length,
      intervals: this.records.length,
    };
  }

  async addSpans(spans: readonly SpanRecord[]): Promise<void> {
    const now = this.clock();
    for (const span of spans) {
      let entry = this.traces.get(span.traceId);
      if (!entry) {
        entry = {
          spans: [],
          startUs: span.startUs,
          endUs: span.startUs + span.durationUs,
          services: new Set(),
          receivedMs: now,
        };
        this.traces.set(span.traceId, entry);
      }
      const existing = entry.spans.findIndex((s) => s.spanId === span.spanId);
      if (existing >= 0) entry.spans[existing] = span;
      else {
        entry.spans.push(span);
        this.spanCount++;
      }
      entry.startUs = Math.min(entry.startUs, span.startUs);
      entry.endUs = Math.max(entry.endUs, span.startUs + span.durationUs);
      entry.services.add(span.service);
      entry.receivedMs = now;
      // Keep the map in order of last receipt so pruning stops at the first young trace.
      this.traces.delete(span.traceId);
      this.traces.set(span.traceId, entry);
      this.serviceSeen.delete(span.service);
      this.serviceSeen.set(span.service, now);
    }
    this.pruneTraces(now);
  }

  private pruneTraces(now: number): void {
    const cutoff = now - this.limits.retentionMs;
    for (const [id, entry] of this.traces) {
      if (this.spanCount <= this.limits.maxSpans && entry.receivedMs >= cutoff) break;
      this.traces.delete(id);
      this.spanCount -= entry.spans.length;
    }
    for (const [service, seen] of this.serviceSeen) {
      if (seen >= cutoff) break;
      this.serviceSeen.delete(service);
    }
  }

  async getTrace(traceId: string): Promise<SpanRecord[]> {
    this.pruneTraces(this.clock());
    return [...(this.traces.get(traceId)?.spans ?? [])];
  }

  async findTraces(query: TraceQuery): Promise<TraceSummary[]> {
    this.pruneTraces(this.clock());
    const found: [string, TraceEntry][] = [];
    for (const [id, entry] of this.traces) {
      if (entry.startUs < query.fromUs || entry.startUs > query.toUs) continue;
      if (query.service && !entry.services.has(query.service)) continue;
      if (query.minDurationUs && entry.endUs - entry.startUs < query.minDurationUs) continue;
      found.push([id, entry]);
    }
    found.sort((a, b) => b[1].startUs - a[1].startUs);
    return found.slice(0, query.limit).map(([id, entry]) => summarise(id, entry.spans));
  }

  async traceServices(): Promise<string[]> {
    this.pruneTraces(this.clock());
    return [...this.serviceSeen.keys()].reverse();
  }

  async addLogs(logs: readonly LogRecord[]): Promise<void> {
    const at = this.clock();
    for (const log of logs) this.logs.push({ at, log });
    this.logs = prune(this.logs, at - this.limits.retentionMs, this.limits.maxLogs);
  }

  async queryLogs(query: LogQuery): Promise<LogRecord[]> {
    this.logs = prune(this.logs, this.clock() - this.limits.retentionMs, this.limits.maxLogs);
    const out: LogRecord[] = [];
    for (let i = this.logs.length - 1; i >= 0 && out.length < query.limit; i--) {
      const { log } = this.logs[i]!;
      if (logMatches(log, query)) out.push(log);
    }
    return out;
  }

  async addMetricPoints(points: readonly MetricPoint[]): Promise<void> {
    const at = this.clock();
    for (const point of points) this.points.push({ at, point });
    this.points = prune(this.points, at - this.limits.retentionMs, this.limits.maxMetricPoints);
  }

  async queryMetricPoints(query: MetricQuery): Promise<MetricPoint[]> {
    this.points = prune(this.points, this.clock() - this.limits.retentionMs, this.limits.maxMetricPoints);
    const out: MetricPoint[] = [];
    for (let i = this.points.length - 1; i >= 0 && out.length < query.limit; i--) {
      const { point } = this.points[i]!;
      if (metricMatches(point, query)) out.push(point);
    }
    return out;
  }

  async addIntervals(records: readonly IntervalRecord[]): Promise<number> {
    for (const r of records) {
      let i = this.records.length;
      while (i > 0 && this.records[i - 1]!.t2 > r.t2) i--;
      this.records.splice(i, 0, r);
    }
    this.pruneIntervals();
    return records.length;
  }

  private pruneIntervals(): void {
    const cutoff = this.clock() - this.limits.retentionMs;
    let drop = 0;
    while (drop < this.records.length && this.records[drop]!.t2 < cutoff) drop++;
    drop = Math.max(drop, this.records.length - this.limits.maxIntervals);
    if (drop > 0) this.records = this.records.slice(drop);
  }

  async intervals(fromMs: number, toMs: number): Promise<IntervalRecord[]> {
    this.pruneIntervals();
    return this.records.filter((r) => r.t2 > fromMs && r.t2 <= toMs);
  }

  async close(): Promise<void> {}
}

/** Drops entries older than `cutoff` and the oldest beyond `max`; keeps order. */
function prune<T extends { at: number }>(items: T[], cutoff: number, max: number): T[] {
  let drop = 0;
  while (drop < items.length && items[drop]!.at < cutoff) drop++;
  drop = Math.max(drop, items.length - max);
  return drop > 0 ? items.slice(drop) : items;
}
