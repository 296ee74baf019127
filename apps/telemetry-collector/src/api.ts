import type { FastifyInstance, FastifyReply } from 'fastify';
import { formatDuration, parseDuration } from './flags.js';
import {
  buildGraph,
  type GraphNode,
  type KnownProxy,
  type ServiceGraph,
  signalSeries,
  toService,
  toWorkload,
} from './mesh/graph.js';
import type { PilotClient } from './pilot.js';
import type { Scraper } from './scrape.js';
import type { Storage } from './store/storage.js';
import type { SpanRecord } from './store/types.js';

export interface ApiDeps {
  storage: Storage;
  scraper: Scraper;
  pilot?: PilotClient;
  clock: () => number;
  retentionMs: number;
  scrapeIntervalMs: number;
}

class BadQuery extends Error {}

type Query = Record<string, string | undefined>;

const TRACE_ID = /^[0-9a-f]{32}$/;

function windowOf(
  q: Query,
  deps: ApiDeps,
  fallback = 300_000,
): { fromMs: number; toMs: number; windowMs: number } {
  let windowMs = fallback;
  if (q.window !== undefined) {
    const ms = parseDuration(q.window);
    if (ms === undefined)
      throw new BadQuery(`window must be a duration like 1m, 5m or 1h, got "${q.window}"`);
    windowMs = ms;
  }
  if (windowMs < 1000) throw new BadQuery('window must be at least 1s');
  windowMs = Math.min(windowMs, deps.retentionMs);
  const toMs = deps.clock();
  return { fromMs: toMs - windowMs, toMs, windowMs };
}

/** Absolute times (`start`, `end`: ms since the epoch or ISO 8601) or `lookback` (a duration, default 1h). */
function timeRange(q: Query, deps: ApiDeps): { fromUs: number; toUs: number } {
  const parseTime = (value: string, name: string) => {
    const n = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
    if (!Number.isFinite(n))
      throw new BadQuery(`${name} must be milliseconds since the epoch or an ISO date, got "${value}"`);
    return n;
  };
  const now = deps.clock();
  const endMs = q.end ? parseTime(q.end, 'end') : now;
  let startMs: number;
  if (q.start) startMs = parseTime(q.start, 'start');
  else {
    const lookback = q.lookback ? parseDuration(q.lookback) : deps.retentionMs;
    if (lookback === undefined)
      throw new BadQuery(`lookback must be a duration like 15m or 1h, got "${q.lookback}"`);
    startMs = endMs - lookback;
  }
  if (startMs > endMs) throw new BadQuery('start must not be after end');
  // Spans stamped slightly ahead of this clock still count as recent.
  return { fromUs: startMs * 1000, toUs: (q.end ? endMs : endMs + 60_000) * 1000 };
}

function limitOf(q: Query, fallback: number, max: number): number {
  if (q.limit === undefined) return fallback;
  if (!/^\d+$/.test(q.limit) || Number(q.limit) < 1)
    throw new BadQuery(`limit must be a positive whole number, got "${q.limit}"`);
  return Math.min(Number(q.limit), max);
}

function required(q: Query, name: string): string {
  const v = q[name];
  if (v === undefined || v === '') throw new BadQuery(`${name} is required`);
  return v;
}

function stepOf(q: Query, windowMs: number, intervalMs: number): number {
  if (q.step !== undefined) {
    const ms = parseDuration(q.step);
    if (ms === undefined || ms < 1000)
      throw new BadQuery(`step must be a duration of at least 1s, got "${q.step}"`);
    return Math.max(ms, Math.ceil(windowMs / 1000));
  }
  // About 60 points, never finer than the scrape interval.
  return Math.max(intervalMs, Math.ceil(windowMs / 60 / 1000) * 1000);
}

/** The query API under /api (JSON). */
export function registerApi(app: FastifyInstance, deps: ApiDeps): void {
  const handle =
    <T>(fn: (q: Query, params: Record<string, string>) => Promise<T>) =>
    async (req: { query: unknown; params: unknown }, reply: FastifyReply) => {
      try {
        return await fn((req.query ?? {}) as Query, (req.params ?? {}) as Record<string, string>);
      } catch (err) {
        if (err instanceof BadQuery) return reply.code(400).send({ error: err.message });
        throw err;
      }
    };

  const proxies = (): KnownProxy[] => deps.scraper.knownProxies();

  const graph = async (q: Query): Promise<ServiceGraph & { window: string }> => {
    const w = windowOf(q, deps);
    const records = await deps.storage.intervals(w.fromMs, w.toMs);
    return { window: formatDuration(w.windowMs), ...buildGraph(records, w, proxies()) };
  };

  app.get(
    '/api/graph',
    handle(async (q) => graph(q)),
  );

  app.get(
    '/api/services',
    handle(async (q) => {
      const g = await graph(q);
      const services = new Map<string, Record<string, unknown>>();
      for (const n of g.nodes.filter((x) => x.kind === 'service')) {
        const workloads = g.edges.filter((e) => e.source === n.id).map((e) => nodeName(g.nodes, e.target));
        const callers = g.edges.filter((e) => e.target === n.id).map((e) => nodeName(g.nodes, e.source));
        services.set(n.host ?? n.id, {
          namespace: n.namespace,
          name: n.name,
          host: n.host,
          meshed: n.meshed,
          workloads,
          callers,
          ...summaryOf(n),
        });
      }
      let registry: unknown[] = [];
      if (deps.pilot) {
        try {
          const body = await deps.pilot.get('/debug/registryz');
          if (Array.isArray(body)) registry = body;
        } catch {
          // Pilot away: traffic-derived services only.
        }
      }
      for (const s of registry as { hostname?: string; namespace?: string }[]) {
        if (!s.hostname || services.has(s.hostname)) continue;
        const m = /^([^.]+)\.([^.]+)\.svc\./.exec(s.hostname);
        services.set(s.hostname, {
          namespace: s.namespace ?? m?.[2] ?? '',
          name: m?.[1] ?? s.hostname,
          host: s.hostname,
          meshed: false,
          workloads: [],
          callers: [],
          requestsPerSecond: 0,
          errorRate: null,
          p99: null,
          mtls: 'unknown',
        });
      }
      return {
        window: g.window,
        services: [...services.values()].sort(
          (a, b) =>
            String(a.namespace).localeCompare(String(b.namespace)) ||
            String(a.name).localeCompare(String(b.name)),
        ),
      };
    }),
  );

  app.get(
    '/api/workloads',
    handle(async (q) => {
      const g = await graph(q);
      const status = new Map(deps.scraper.statuses().map((s) => [`${s.namespace}/${s.workload}`, s]));
      const pilot = new Map(deps.scraper.pilotProxies().map((p) => [`${p.namespace}/${p.workload}`, p]));
      return {
        window: g.window,
        workloads: g.nodes
          .filter((n) => n.kind === 'workload')
          .map((n) => {
            const key = `${n.namespace}/${n.name}`;
            const proxy = pilot.get(key);
            const scrape = status.get(key);
            return {
              namespace: n.namespace,
              name: n.name,
              app: n.app,
              version: n.version,
              meshed: n.meshed,
              gateway: n.gateway ?? false,
              proxy: proxy ? { id: proxy.id, kind: proxy.kind, sync: proxy.sync } : null,
              scrape: scrape
                ? { state: scrape.state, error: scrape.error, lastSuccessMs: scrape.lastSuccessMs }
                : null,
              outboundRequestsPerSecond: n.outboundRequestsPerSecond,
              ...summaryOf(n),
            };
          }),
      };
    }),
  );

  const series = async (q: Query, select: 'service' | 'workload') => {
    const namespace = q.namespace ?? '';
    const name = required(q, 'name');
    const w = windowOf(q, deps, 900_000);
    const stepMs = stepOf(q, w.windowMs, deps.scrapeIntervalMs);
    // One step of history before the window so the first point has data.
    const records = await deps.storage.intervals(w.fromMs - stepMs, w.toMs);
    const filter = select === 'service' ? toService(namespace, name) : toWorkload(namespace, name);
    return {
      [select]: { namespace, name },
      window: formatDuration(w.windowMs),
      ...signalSeries(records, { fromMs: w.fromMs, toMs: w.toMs, stepMs }, filter, proxies()),
    };
  };
  app.get(
    '/api/metrics/service',
    handle(async (q) => series(q, 'service')),
  );
  app.get(
    '/api/metrics/workload',
    handle(async (q) => series(q, 'workload')),
  );

  app.get(
    '/api/traces',
    handle(async (q) => {
      const range = timeRange(q, deps);
      let minDurationUs: number | undefined;
      if (q.minDuration) {
        const ms = parseDuration(q.minDuration);
        if (ms === undefined)
          throw new BadQuery(`minDuration must be a duration like 100ms, got "${q.minDuration}"`);
        minDurationUs = ms * 1000;
      }
      const traces = await deps.storage.findTraces({
        service: q.service || undefined,
        ...range,
        limit: limitOf(q, 50, 500),
        minDurationUs,
      });
      return { traces };
    }),
  );

  app.get('/api/traces/:traceId', async (req: { params: unknown }, reply: FastifyReply) => {
    const traceId = String((req.params as { traceId: string }).traceId).toLowerCase();
    if (!TRACE_ID.test(traceId)) return reply.code(400).send({ error: 'trace id must be 32 hex digits' });
    const spans = await deps.storage.getTrace(traceId);
    if (spans.length === 0) return reply.code(404).send({ error: `trace ${traceId} not found` });
    return { traceId, ...traceView(spans) };
  });

  app.get(
    '/api/trace-services',
    handle(async () => ({ services: await deps.storage.traceServices() })),
  );

  app.get(
    '/api/logs',
    handle(async (q) => {
      const range = timeRange(q, deps);
      if (q.traceId && !TRACE_ID.test(q.traceId)) throw new BadQuery('traceId must be 32 hex digits');
      const logs = await deps.storage.queryLogs({
        ...range,
        service: q.service || undefined,
        traceId: q.traceId || undefined,
        contains: q.q || undefined,
        limit: limitOf(q, 100, 1000),
      });
      return { logs };
    }),
  );

  app.get(
    '/api/otlp-metrics',
    handle(async (q) => {
      const range = timeRange(q, deps);
      const points = await deps.storage.queryMetricPoints({
        ...range,
        name: q.name || undefined,
        service: q.service || undefined,
        limit: limitOf(q, 200, 5000),
      });
      return { points };
    }),
  );

  app.get(
    '/api/targets',
    handle(async () => ({ targets: deps.scraper.statuses() })),
  );

  app.get(
    '/api/proxies',
    handle(async () => {
      const status = new Map(deps.scraper.statuses().map((s) => [s.id, s]));
      let proxies: Record<string, unknown>[] = [];
      if (deps.pilot) {
        try {
          proxies = (await deps.pilot.proxies()).map((p) => ({
            id: p.id,
            kind: p.kind,
            workload: p.workload,
            namespace: p.namespace,
            sync: p.sync,
            errors: p.errors ?? {},
            ports: p.entry.ports ?? {},
            connectedAt: p.entry.connected_at,
            istioVersion: p.entry.istio_version,
            scrape: status.get(p.id) ?? null,
          }));
        } catch {
          // reported through `pilot` below
        }
      }
      return { pilot: deps.pilot?.status() ?? null, proxies };
    }),
  );

  app.get(
    '/api/config',
    handle(async () => {
      if (!deps.pilot) return { pilot: null, resources: [], issues: [] };
      let body: { resources?: unknown[]; issues?: unknown[] };
      try {
        body = (await deps.pilot.get('/debug/configz')) as typeof body;
      } catch {
        return { pilot: deps.pilot.status(), resources: [], issues: [] };
      }
      const issues = (Array.isArray(body.issues) ? body.issues : []) as Record<string, unknown>[];
      const matched = new Set<Record<string, unknown>>();
      const resources = (Array.isArray(body.resources) ? body.resources : []).map((raw) => {
        const r = raw as {
          apiVersion?: string;
          kind?: string;
          metadata?: { name?: string; namespace?: string };
          spec?: unknown;
          source?: string;
        };
        const name = r.metadata?.name ?? '';
        const namespace = r.metadata?.namespace ?? '';
        const own = issues.filter(
          (i) => i.kind === r.kind && i.name === name && (i.namespace ?? namespace) === namespace,
        );
        for (const i of own) matched.add(i);
        return {
          apiVersion: r.apiVersion,
          kind: r.kind,
          name,
          namespace,
          source: r.source,
          spec: r.spec,
          status: own.some((i) => i.severity === 'error') ? 'error' : own.length ? 'warning' : 'valid',
          issues: own,
        };
      });
      return {
        pilot: deps.pilot.status(),
        resources,
        // Problems with documents that are not in force (rejected), or with no resource to attach to.
        issues: issues.filter((i) => !matched.has(i)),
      };
    }),
  );
}

function nodeName(nodes: GraphNode[], id: string): string {
  const n = nodes.find((x) => x.id === id);
  return n ? (n.namespace ? `${n.name}.${n.namespace}` : n.name) : id;
}

function summaryOf(n: GraphNode) {
  return {
    requestsPerSecond: n.inbound.requestsPerSecond,
    errorRate: n.inbound.errorRate,
    p50: n.inbound.latencyMs.p50,
    p99: n.inbound.latencyMs.p99,
    mtls: n.inbound.mtls.status,
  };
}

/** A trace ready for a waterfall: spans ordered depth-first from the roots, each with its depth. */
export function traceView(spans: SpanRecord[]) {
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map<string, SpanRecord[]>();
  const roots: SpanRecord[] = [];
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId)) {
      const list = children.get(s.parentSpanId) ?? [];
      list.push(s);
      children.set(s.parentSpanId, list);
    } else roots.push(s);
  }
  const ordered: (SpanRecord & { depth: number })[] = [];
  const visit = (s: SpanRecord, depth: number) => {
    ordered.push({ ...s, depth });
    for (const c of (children.get(s.spanId) ?? []).sort((a, b) => a.startUs - b.startUs)) visit(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => a.startUs - b.startUs)) visit(r, 0);
  const start = Math.min(...spans.map((s) => s.startUs));
  const end = Math.max(...spans.map((s) => s.startUs + s.durationUs));
  return {
    startUs: start,
    durationUs: end - start,
    services: [...new Set(spans.map((s) => s.service))].sort(),
    spans: ordered,
  };
}
