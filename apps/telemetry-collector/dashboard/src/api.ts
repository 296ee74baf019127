import type { GraphEdge, GraphNode, SignalSeries } from '../../src/mesh/graph.js';
import type { LogRecord, SpanRecord, TraceSummary } from '../../src/store/types.js';

export type { GraphEdge, GraphNode, LogRecord, SignalSeries, SpanRecord, TraceSummary };

export class ApiError extends Error {}

/** GETs JSON from the collector; the error message is the API's own reason. */
export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { signal, headers: { accept: 'application/json' } });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(`the collector is unreachable (${(err as Error).message})`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(`${path}: HTTP ${res.status}, not JSON`);
  }
  if (!res.ok) throw new ApiError((body as { error?: string }).error ?? `${path}: HTTP ${res.status}`);
  return body as T;
}

export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export interface GraphResponse {
  window: string;
  fromMs: number;
  toMs: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface ServiceRow {
  namespace: string;
  name: string;
  host?: string;
  meshed: boolean;
  workloads: string[];
  callers: string[];
  requestsPerSecond: number;
  errorRate: number | null;
  p50?: number | null;
  p99: number | null;
  mtls: string;
}

export interface SeriesResponse extends SignalSeries {
  window: string;
}

export interface TraceView {
  traceId: string;
  startUs: number;
  durationUs: number;
  services: string[];
  spans: (SpanRecord & { depth: number })[];
}

export interface PilotStatus {
  url: string;
  reachable: boolean;
  error?: string;
  lastSuccessMs?: number;
}

export interface ScrapeStatus {
  id: string;
  url?: string;
  state: 'up' | 'down' | 'pending';
  lastScrapeMs?: number;
  lastSuccessMs?: number;
  durationMs?: number;
  samples?: number;
  error?: string;
}

export interface ProxyRow {
  id: string;
  kind: string;
  workload: string;
  namespace: string;
  sync: Record<string, string>;
  errors: Record<string, string>;
  ports: Record<string, unknown>;
  connectedAt?: string;
  istioVersion?: string;
  scrape: ScrapeStatus | null;
}

export interface ConfigIssue {
  severity: 'error' | 'warning';
  source: string;
  document: number;
  line?: number;
  kind?: string;
  namespace?: string;
  name?: string;
  field?: string;
  message: string;
}

export interface ConfigResource {
  apiVersion?: string;
  kind?: string;
  name: string;
  namespace: string;
  source?: string;
  spec?: unknown;
  status: 'valid' | 'warning' | 'error';
  issues: ConfigIssue[];
}

export interface Health {
  status: 'ok' | 'degraded';
  reasons: string[];
  storage: { backend: string; ok: boolean; reason?: string; scrapeLeader?: boolean };
  pilot: PilotStatus | null;
  scrape: { intervalMs: number; targets: number; up: number; down: number; pending: number };
}
