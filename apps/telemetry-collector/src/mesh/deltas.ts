import type { Sample } from '../prometheus/parse.js';
import { type EntryDelta, type IntervalRecord, KEPT_LABELS, normaliseLe } from './model.js';

type Field =
  | 'requests'
  | 'bucket'
  | 'durationSum'
  | 'durationCount'
  | 'requestBytes'
  | 'responseBytes'
  | 'tcpSent'
  | 'tcpReceived'
  | 'tcpOpened'
  | 'tcpClosed';

const FIELDS: Record<string, Field> = {
  istio_requests_total: 'requests',
  istio_request_duration_milliseconds_bucket: 'bucket',
  istio_request_duration_milliseconds_sum: 'durationSum',
  istio_request_duration_milliseconds_count: 'durationCount',
  istio_request_bytes_sum: 'requestBytes',
  istio_response_bytes_sum: 'responseBytes',
  istio_tcp_sent_bytes_total: 'tcpSent',
  istio_tcp_received_bytes_total: 'tcpReceived',
  istio_tcp_connections_opened_total: 'tcpOpened',
  istio_tcp_connections_closed_total: 'tcpClosed',
};

interface SeriesValue {
  field: Field;
  /** Kept label values in KEPT_LABELS order. */
  labels: string[];
  le?: string;
  value: number;
}

/** The cumulative Istio counters of one proxy at one scrape. */
export interface TargetSnapshot {
  t: number;
  /** `process_start_time_seconds`, when the proxy exposes it: a change means every counter restarted. */
  startTime?: number;
  series: Map<string, SeriesValue>;
}

function seriesId(name: string, labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  let id = name;
  for (const k of keys) id += `\u0001${k}\u0002${labels[k]}`;
  return id;
}

/** Keeps the Istio counters of a scrape, by full series identity (every label, not only the kept ones). */
export function snapshotOf(t: number, samples: readonly Sample[]): TargetSnapshot {
  const series = new Map<string, SeriesValue>();
  let startTime: number | undefined;
  for (const s of samples) {
    if (s.name === 'process_start_time_seconds' && Object.keys(s.labels).length === 0) {
      startTime = s.value;
      continue;
    }
    const field = FIELDS[s.name];
    if (!field || !Number.isFinite(s.value)) continue;
    const labels = KEPT_LABELS.map((l) => s.labels[l] ?? '');
    const value: SeriesValue = { field, labels, value: s.value };
    if (field === 'bucket') {
      if (s.labels.le === undefined) continue;
      value.le = normaliseLe(s.labels.le);
    }
    series.set(seriesId(s.name, s.labels), value);
  }
  return { t, startTime, series };
}

/**
 * What grew between two scrapes of one proxy, summed by kept labels. Counter
 * rules are Prometheus's: a value lower than before is a reset (the whole new
 * value is the increase); a series absent before started at zero after the
 * earlier scrape, so its whole value is the increase; a changed process start
 * time resets everything.
 */
export function intervalBetween(target: string, prev: TargetSnapshot, cur: TargetSnapshot): IntervalRecord {
  const restarted =
    prev.startTime !== undefined && cur.startTime !== undefined && prev.startTime !== cur.startTime;
  const entries = new Map<string, EntryDelta & { hasBuckets?: boolean }>();
  for (const [id, s] of cur.series) {
    const before = restarted ? undefined : prev.series.get(id)?.value;
    const delta = before === undefined || s.value < before ? s.value : s.value - before;
    const key = s.labels.join('\u0001');
    let entry = entries.get(key);
    if (!entry) {
      entry = { labels: s.labels };
      entries.set(key, entry);
    }
    if (s.field === 'bucket') {
      entry.buckets ??= {};
      entry.buckets[s.le!] = (entry.buckets[s.le!] ?? 0) + delta;
      if (delta > 0) entry.hasBuckets = true;
    } else if (delta !== 0) {
      entry[s.field] = (entry[s.field] ?? 0) + delta;
    }
  }
  const out: EntryDelta[] = [];
  for (const entry of entries.values()) {
    const { hasBuckets, ...clean } = entry;
    if (!hasBuckets) delete clean.buckets;
    if (Object.keys(clean).length > 1) out.push(clean);
  }
  return { target, t1: prev.t, t2: cur.t, entries: out };
}
