/**
 * Istio's standard request and TCP metrics, reduced to what the service graph
 * and the golden signals need: per scrape interval of one proxy, how much each
 * label set grew. Records are small (only label sets that changed), carry
 * their own time span, and add up across proxies and intervals.
 */

/** The labels kept from every Istio metric, in the order {@link EntryDelta.labels} stores them. */
export const KEPT_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_app',
  'source_version',
  'source_principal',
  'source_canonical_service',
  'destination_workload',
  'destination_workload_namespace',
  'destination_app',
  'destination_version',
  'destination_principal',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

export type KeptLabel = (typeof KEPT_LABELS)[number];
export type EntryLabels = Record<KeptLabel, string>;

export const LABEL_INDEX: Readonly<Record<KeptLabel, number>> = Object.fromEntries(
  KEPT_LABELS.map((l, i) => [l, i]),
) as Record<KeptLabel, number>;

/** How much one label set grew during one interval of one proxy. */
export interface EntryDelta {
  /** Label values in {@link KEPT_LABELS} order. */
  labels: string[];
  /** istio_requests_total */
  requests?: number;
  /** istio_request_duration_milliseconds_bucket, cumulative per `le` (`+Inf` included). */
  buckets?: Record<string, number>;
  /** istio_request_duration_milliseconds_sum / _count */
  durationSum?: number;
  durationCount?: number;
  /** istio_request_bytes_sum, istio_response_bytes_sum */
  requestBytes?: number;
  responseBytes?: number;
  /** istio_tcp_* */
  tcpSent?: number;
  tcpReceived?: number;
  tcpOpened?: number;
  tcpClosed?: number;
}

/** One proxy, between two successive successful scrapes. Times are milliseconds since the epoch. */
export interface IntervalRecord {
  target: string;
  t1: number;
  t2: number;
  entries: EntryDelta[];
}

export function labelOf(entry: EntryDelta, label: KeptLabel): string {
  return entry.labels[LABEL_INDEX[label]] ?? '';
}

/** Normalises a bucket bound (`1.0`, `1`, `+Inf`) so different clients' buckets add up. */
export function normaliseLe(le: string): string {
  const n = Number(le === '+Inf' || le === 'Inf' ? Number.POSITIVE_INFINITY : le);
  if (Number.isNaN(n)) return le;
  return n === Number.POSITIVE_INFINITY ? '+Inf' : String(n);
}

/** Response flags that mean the request never reached the destination proxy, so only the source saw it. */
export const SOURCE_ONLY_FLAGS = new Set([
  'FI', // fault injection abort
  'UH', // no healthy upstream
  'UF', // upstream connection failure
  'UO', // upstream overflow (circuit breaker)
  'NR', // no route
  'NC', // no cluster
  'URX', // retry / connect attempts exhausted
  'RL', // locally rate limited
  'UAEX', // denied by external authorisation
  'RLSE', // rate limit service error
  'DPE', // downstream protocol error
]);

export function neverReachedDestination(flags: string): boolean {
  if (!flags || flags === '-') return false;
  return flags.split(',').some((f) => SOURCE_ONLY_FLAGS.has(f.trim()));
}

/** 5xx, or a gRPC status other than OK: what counts as an error in error rates. */
export function isError(entry: EntryDelta): boolean {
  const code = labelOf(entry, 'response_code');
  if (code.startsWith('5')) return true;
  const grpc = labelOf(entry, 'grpc_response_status');
  return grpc !== '' && grpc !== '0' && grpc !== 'unknown';
}

export function isUnknown(value: string): boolean {
  return value === '' || value === 'unknown';
}
