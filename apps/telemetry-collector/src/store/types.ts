import type { IntervalRecord } from '../mesh/model.js';

/** An attribute value after flattening OTLP's AnyValue. */
export type AttrValue = string | number | boolean | null | AttrValue[] | { [key: string]: AttrValue };
export type Attributes = Record<string, AttrValue>;

export type SpanKindName = 'unspecified' | 'internal' | 'server' | 'client' | 'producer' | 'consumer';

export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: SpanKindName;
  /** resource attribute `service.name` */
  service: string;
  /** Microseconds since the epoch. */
  startUs: number;
  durationUs: number;
  status: { code: 'unset' | 'ok' | 'error'; message?: string };
  attributes: Attributes;
  resource: Attributes;
  events: { timeUs: number; name: string; attributes: Attributes }[];
  links: { traceId: string; spanId: string; attributes: Attributes }[];
  scope?: string;
}

export interface TraceSummary {
  traceId: string;
  startUs: number;
  durationUs: number;
  spanCount: number;
  services: string[];
  rootService: string;
  rootName: string;
  errorCount: number;
}

export interface TraceQuery {
  service?: string;
  fromUs: number;
  toUs: number;
  limit: number;
  /** Only traces at least this long. */
  minDurationUs?: number;
}

export interface LogRecord {
  timeUs: number;
  service: string;
  severityNumber: number;
  severityText: string;
  /** The body: Envoy's access-log fields as an object for access logs, or a string. */
  body: AttrValue;
  attributes: Attributes;
  traceId?: string;
  spanId?: string;
}

export interface LogQuery {
  service?: string;
  fromUs: number;
  toUs: number;
  limit: number;
  traceId?: string;
  /** Case-insensitive text that must appear in the record. */
  contains?: string;
}

export type MetricPointKind = 'gauge' | 'sum' | 'histogram' | 'exponential_histogram' | 'summary';

export interface MetricPoint {
  name: string;
  service: string;
  kind: MetricPointKind;
  unit: string;
  attributes: Attributes;
  timeUs: number;
  value?: number;
  count?: number;
  sum?: number;
  /** Explicit-bucket histograms: bounds and per-bucket (not cumulative) counts. */
  bounds?: number[];
  bucketCounts?: number[];
  quantiles?: { quantile: number; value: number }[];
  temporality?: 'delta' | 'cumulative';
  monotonic?: boolean;
}

export interface MetricQuery {
  name?: string;
  service?: string;
  fromUs: number;
  toUs: number;
  limit: number;
}

/**
 * Where telemetry lives: memory (one collector) or Redis (shared by every
 * collector pointed at it). Every method is bounded in time: a backend that
 * cannot answer rejects, it never hangs.
 */
export interface TelemetryStore {
  addSpans(spans: readonly SpanRecord[]): Promise<void>;
  getTrace(traceId: string): Promise<SpanRecord[]>;
  findTraces(query: TraceQuery): Promise<TraceSummary[]>;
  /** Services that sent spans, most recent first. */
  traceServices(): Promise<string[]>;
  addLogs(logs: readonly LogRecord[]): Promise<void>;
  queryLogs(query: LogQuery): Promise<LogRecord[]>;
  addMetricPoints(points: readonly MetricPoint[]): Promise<void>;
  queryMetricPoints(query: MetricQuery): Promise<MetricPoint[]>;
  /** Scrape intervals; returns how many were stored (a shared store may refuse duplicates). */
  addIntervals(records: readonly IntervalRecord[]): Promise<number>;
  /** Intervals whose end lies in (fromMs, toMs]. */
  intervals(fromMs: number, toMs: number): Promise<IntervalRecord[]>;
  close(): Promise<void>;
}

export interface RetentionLimits {
  retentionMs: number;
  maxSpans: number;
  maxLogs: number;
  maxMetricPoints: number;
  maxIntervals: number;
}

/** Builds a trace's summary from its spans (root = the span without a parent in the trace, earliest first). */
export function summarise(traceId: string, spans: readonly SpanRecord[]): TraceSummary {
  const ids = new Set(spans.map((s) => s.spanId));
  const sorted = [...spans].sort((a, b) => a.startUs - b.startUs);
  const root = sorted.find((s) => !s.parentSpanId || !ids.has(s.parentSpanId)) ?? sorted[0];
  let start = Number.POSITIVE_INFINITY;
  let end = 0;
  for (const s of spans) {
    start = Math.min(start, s.startUs);
    end = Math.max(end, s.startUs + s.durationUs);
  }
  return {
    traceId,
    startUs: Number.isFinite(start) ? start : 0,
    durationUs: Number.isFinite(start) ? end - start : 0,
    spanCount: spans.length,
    services: [...new Set(spans.map((s) => s.service))].sort(),
    rootService: root?.service ?? '',
    rootName: root?.name ?? '',
    errorCount: spans.filter((s) => s.status.code === 'error').length,
  };
}

export function logMatches(log: LogRecord, query: LogQuery): boolean {
  if (log.timeUs < query.fromUs || log.timeUs > query.toUs) return false;
  if (query.service && log.service !== query.service) return false;
  if (query.traceId && log.traceId !== query.traceId) return false;
  if (query.contains) {
    const text = `${JSON.stringify(log.body)} ${JSON.stringify(log.attributes)}`.toLowerCase();
    if (!text.includes(query.contains.toLowerCase())) return false;
  }
  return true;
}

export function metricMatches(point: MetricPoint, query: MetricQuery): boolean {
  if (point.timeUs < query.fromUs || point.timeUs > query.toUs) return false;
  if (query.name && point.name !== query.name) return false;
  if (query.service && point.service !== query.service) return false;
  return true;
}
