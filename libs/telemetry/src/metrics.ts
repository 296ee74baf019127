import type {
  HttpObservation,
  HttpRequestRecord,
  HttpRequestStart,
  MetricOverrideSettings,
  ProxyObserver,
  StatsSettings,
  TcpConnectionRecord,
  TcpConnectionStart,
  TcpObservation,
} from '@mizzen/proxy';
import type { Logger } from '@mizzen/runtime';
import type { Metric, Registry } from 'prom-client';
import { compileExpression, connectionAttributes, evaluateTag, requestAttributes } from './attributes.js';
import { httpLabels, type Labels, type LocalProxy, tcpLabels } from './labels.js';

/**
 * Istio's standard metrics, recorded by the proxy for every request and TCP
 * connection it sees, with the Telemetry API's overrides (a metric dropped,
 * tags added from request attributes or removed) as pilot sends them in the
 * `istio.stats` filter's `stats.PluginConfig`.
 */

/** Istio's `istio_request_duration_milliseconds` buckets. */
export const DURATION_BUCKETS_MS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
];
/** Istio's `istio_request_bytes` / `istio_response_bytes` buckets. */
export const SIZE_BUCKETS_BYTES = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000];

/** The metric names `stats.PluginConfig` and the Telemetry API's overrides use (without `istio_`). */
export type IstioMetricName =
  | 'requests_total'
  | 'request_duration_milliseconds'
  | 'request_bytes'
  | 'response_bytes'
  | 'tcp_sent_bytes_total'
  | 'tcp_received_bytes_total'
  | 'tcp_connections_opened_total'
  | 'tcp_connections_closed_total';

const DEFINITIONS: Record<IstioMetricName, { help: string; buckets?: number[] }> = {
  requests_total: { help: 'Requests, by Istio standard labels.' },
  request_duration_milliseconds: {
    help: 'Request duration in milliseconds, from the first byte received to the last byte sent.',
    buckets: DURATION_BUCKETS_MS,
  },
  request_bytes: { help: 'Request body size in bytes.', buckets: SIZE_BUCKETS_BYTES },
  response_bytes: { help: 'Response body size in bytes.', buckets: SIZE_BUCKETS_BYTES },
  tcp_sent_bytes_total: { help: 'Bytes sent to the downstream on TCP connections.' },
  tcp_received_bytes_total: { help: 'Bytes received from the downstream on TCP connections.' },
  tcp_connections_opened_total: { help: 'TCP connections opened.' },
  tcp_connections_closed_total: { help: 'TCP connections closed.' },
};

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface CounterSeries {
  labels: Labels;
  value: number;
}
interface HistogramSeries {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

/**
 * One metric family whose series may carry different label sets (a Telemetry
 * override adds a tag from some point on, as Envoy's stats do), exposed
 * through a prom-client Registry, which formats it.
 */
export class IstioFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum' as const;
  private readonly series = new Map<string, CounterSeries | HistogramSeries>();
  private warned = false;

  constructor(
    readonly metric: IstioMetricName,
    private readonly maxSeries: number,
    private readonly logger?: Logger,
  ) {
    this.name = `istio_${metric}`;
    this.help = DEFINITIONS[metric].help;
    this.type = DEFINITIONS[metric].buckets ? 'histogram' : 'counter';
  }

  private key(labels: Labels): string {
    return JSON.stringify(Object.keys(labels).map((k) => [k, labels[k]]));
  }

  private entry(labels: Labels): CounterSeries | HistogramSeries | undefined {
    const key = this.key(labels);
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxSeries) {
        if (!this.warned) this.logger?.warn({ metric: this.name }, 'too many series; new label sets dropped');
        this.warned = true;
        return undefined;
      }
      const buckets = DEFINITIONS[this.metric].buckets;
      s = buckets ? { labels, counts: buckets.map(() => 0), sum: 0, count: 0 } : { labels, value: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  inc(labels: Labels, by = 1): void {
    const s = this.entry(labels) as CounterSeries | undefined;
    if (s) s.value += by;
  }

  observe(labels: Labels, value: number): void {
    const s = this.entry(labels) as HistogramSeries | undefined;
    if (!s) return;
    const buckets = DEFINITIONS[this.metric].buckets!;
    for (let i = 0; i < buckets.length; i++) if (value <= buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** prom-client's collection contract: the family's values for the registry to format. */
  get() {
    const values: { labels: Labels; value: number; metricName?: string }[] = [];
    const buckets = DEFINITIONS[this.metric].buckets;
    for (const s of this.series.values()) {
      if (!buckets) {
        values.push({ labels: s.labels, value: (s as CounterSeries).value });
        continue;
      }
      const h = s as HistogramSeries;
      for (const [i, le] of buckets.entries()) {
        values.push({
          metricName: `${this.name}_bucket`,
          labels: { ...h.labels, le: String(le) },
          value: h.counts[i]!,
        });
      }
      values.push({ metricName: `${this.name}_bucket`, labels: { ...h.labels, le: '+Inf' }, value: h.count });
      values.push({ metricName: `${this.name}_sum`, labels: h.labels, value: h.sum });
      values.push({ metricName: `${this.name}_count`, labels: h.labels, value: h.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }

  /** Every series' labels and value (counters) or count (histograms), for tests and the admin API. */
  snapshot(): { labels: Labels; value: number }[] {
    return [...this.series.values()].map((s) =>
      'value' in s ? { labels: s.labels, value: s.value } : { labels: s.labels, value: s.count },
    );
  }
}

/** How the overrides of one stats config apply to one metric, compiled once per config. */
interface MetricPlan {
  drop: boolean;
  add: { tag: string; expression: ReturnType<typeof compileExpression> }[];
  remove: Set<string>;
}

function planFor(
  metric: IstioMetricName,
  overrides: readonly MetricOverrideSettings[],
  logger?: Logger,
): MetricPlan {
  const plan: MetricPlan = { drop: false, add: [], remove: new Set() };
  for (const o of overrides) {
    if (o.name !== '' && o.name !== metric) continue;
    if (o.drop) plan.drop = true;
    for (const t of o.tagsToRemove) plan.remove.add(t);
    for (const [tag, source] of Object.entries(o.dimensions)) {
      if (!LABEL_NAME.test(tag) || tag === 'le') {
        logger?.warn({ metric, tag }, 'metric tag name is not a valid Prometheus label; ignored');
        continue;
      }
      const expression = compileExpression(source);
      if (expression.error) {
        logger?.warn(
          { metric, tag, expression: source, err: expression.error },
          'metric tag expression does not parse; ignored',
        );
        continue;
      }
      plan.remove.delete(tag);
      const existing = plan.add.findIndex((a) => a.tag === tag);
      if (existing >= 0) plan.add.splice(existing, 1);
      plan.add.push({ tag, expression });
    }
  }
  return plan;
}

export interface IstioMetricsOptions {
  local: LocalProxy;
  node: { id: string; cluster?: string };
  /** Where the families are registered (the proxy's `/stats/prometheus` registry). */
  registry: Registry;
  logger?: Logger;
  /** Bound on distinct label sets per metric. */
  maxSeriesPerMetric?: number;
}

const HTTP_METRICS: IstioMetricName[] = [
  'requests_total',
  'request_duration_milliseconds',
  'request_bytes',
  'response_bytes',
];

/**
 * The metrics half of a proxy's telemetry: a {@link ProxyObserver} that
 * records Istio's standard metrics for every HTTP request and TCP connection
 * on chains that have the `istio.stats` filter (among the HTTP filters, or
 * before tcp_proxy), with that filter's overrides.
 */
export class IstioMetrics implements ProxyObserver {
  readonly families: Record<IstioMetricName, IstioFamily>;
  private readonly plans = new WeakMap<StatsSettings, Map<IstioMetricName, MetricPlan>>();

  constructor(private readonly options: IstioMetricsOptions) {
    const max = options.maxSeriesPerMetric ?? 10_000;
    this.families = Object.fromEntries(
      (Object.keys(DEFINITIONS) as IstioMetricName[]).map((m) => [
        m,
        new IstioFamily(m, max, options.logger),
      ]),
    ) as Record<IstioMetricName, IstioFamily>;
    for (const f of Object.values(this.families)) {
      // prom-client formats any object honouring its collection contract (name, help, type, get()).
      options.registry.registerMetric(f as unknown as Metric);
    }
  }

  private plan(stats: StatsSettings, metric: IstioMetricName): MetricPlan {
    let byMetric = this.plans.get(stats);
    if (!byMetric) {
      byMetric = new Map();
      this.plans.set(stats, byMetric);
    }
    let p = byMetric.get(metric);
    if (!p) {
      p = planFor(metric, stats.metrics, this.options.logger);
      byMetric.set(metric, p);
    }
    return p;
  }

  private labelsFor(
    base: Labels,
    plan: MetricPlan,
    attrs: () => ReturnType<typeof requestAttributes>,
  ): Labels {
    if (plan.add.length === 0 && plan.remove.size === 0) return base;
    const out: Labels = {};
    for (const [k, v] of Object.entries(base)) if (!plan.remove.has(k)) out[k] = v;
    for (const a of plan.add) out[a.tag] = evaluateTag(a.expression, attrs()) ?? 'unknown';
    return out;
  }

  startHttp(start: HttpRequestStart): HttpObservation | undefined {
    const stats = start.telemetry?.stats;
    if (!stats) return undefined;
    return { end: (record) => this.recordHttp(record, stats) };
  }

  /** Records one finished request (exported for callers that observe requests themselves). */
  recordHttp(record: HttpRequestRecord, stats: StatsSettings): void {
    const base = httpLabels(this.options.local, record, {
      hostHeaderFallback: record.direction === 'outbound' || !stats.disableHostHeaderFallback,
    });
    let attributes: ReturnType<typeof requestAttributes> | undefined;
    const attrs = () => {
      attributes ??= requestAttributes(record, this.options.node);
      return attributes;
    };
    for (const metric of HTTP_METRICS) {
      const plan = this.plan(stats, metric);
      if (plan.drop) continue;
      const labels = this.labelsFor(base, plan, attrs);
      const family = this.families[metric];
      switch (metric) {
        case 'requests_total':
          family.inc(labels);
          break;
        case 'request_duration_milliseconds':
          family.observe(labels, record.durationMs);
          break;
        case 'request_bytes':
          family.observe(labels, record.requestBytes);
          break;
        case 'response_bytes':
          family.observe(labels, record.responseBytes);
          break;
      }
    }
  }

  /**
   * Istio's TCP metrics for a connection on a chain with the `istio.stats`
   * filter: opened once the upstream is up (or when it failed, with its
   * flags), bytes as they flow, closed at the end, each with the overrides.
   */
  startTcp(start: TcpConnectionStart): TcpObservation | undefined {
    const stats = start.telemetry?.stats;
    if (!stats) return undefined;
    let opened = false;
    let sent = 0;
    let received = 0;
    const report = (r: TcpConnectionRecord, closing: boolean) => {
      const base = tcpLabels(this.options.local, r);
      let attributes: ReturnType<typeof connectionAttributes> | undefined;
      const attrs = () => {
        attributes ??= connectionAttributes(r, this.options.node);
        return attributes;
      };
      const add = (metric: IstioMetricName, by: number) => {
        const plan = this.plan(stats, metric);
        if (!plan.drop && by > 0) this.families[metric].inc(this.labelsFor(base, plan, attrs), by);
      };
      if (!opened) add('tcp_connections_opened_total', 1);
      opened = true;
      add('tcp_sent_bytes_total', r.sentBytes - sent);
      add('tcp_received_bytes_total', r.receivedBytes - received);
      sent = Math.max(sent, r.sentBytes);
      received = Math.max(received, r.receivedBytes);
      if (closing) add('tcp_connections_closed_total', 1);
    };
    return { progress: (r) => report(r, false), end: (r) => report(r, true) };
  }
}
