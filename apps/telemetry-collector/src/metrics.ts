import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The collector's own metrics, served on `/metrics` of the query port. */
export interface CollectorMetrics {
  registry: Registry;
  otlpRequests: Counter<'signal' | 'transport' | 'result'>;
  received: Counter<'signal'>;
  rejected: Counter<'signal'>;
  scrapes: Counter<'result'>;
  scrapeDuration: Histogram;
  scrapeTargets: Gauge<'state'>;
  redisUp: Gauge;
  redisErrors: Counter<'op'>;
  stored: Gauge<'kind'>;
  apiRequests: Counter<'route' | 'code'>;
}

export function createCollectorMetrics(): CollectorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'mizzen_collector_' });
  return {
    registry,
    otlpRequests: new Counter({
      name: 'mizzen_collector_otlp_requests_total',
      help: 'OTLP export requests by signal (traces, metrics, logs), transport (http, grpc) and result',
      labelNames: ['signal', 'transport', 'result'],
      registers: [registry],
    }),
    received: new Counter({
      name: 'mizzen_collector_received_items_total',
      help: 'Spans, log records and metric data points accepted',
      labelNames: ['signal'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'mizzen_collector_rejected_items_total',
      help: 'Spans, log records and metric data points rejected (bad ids, empty names)',
      labelNames: ['signal'],
      registers: [registry],
    }),
    scrapes: new Counter({
      name: 'mizzen_collector_scrapes_total',
      help: 'Proxy scrapes by result (success, error, timeout)',
      labelNames: ['result'],
      registers: [registry],
    }),
    scrapeDuration: new Histogram({
      name: 'mizzen_collector_scrape_duration_seconds',
      help: 'Time to scrape and parse one proxy',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    scrapeTargets: new Gauge({
      name: 'mizzen_collector_scrape_targets',
      help: 'Proxies known, by state (up, down, pending: no stats port yet)',
      labelNames: ['state'],
      registers: [registry],
    }),
    redisUp: new Gauge({
      name: 'mizzen_collector_redis_up',
      help: '1 while the Redis store is reachable (0 when configured and down; absent without Redis)',
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'mizzen_collector_redis_errors_total',
      help: 'Redis operations that failed or timed out, by operation',
      labelNames: ['op'],
      registers: [registry],
    }),
    stored: new Gauge({
      name: 'mizzen_collector_memory_items',
      help: 'Items held in memory by kind (spans, traces, logs, metric_points, intervals)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    apiRequests: new Counter({
      name: 'mizzen_collector_api_requests_total',
      help: 'Query API requests by route and status code',
      labelNames: ['route', 'code'],
      registers: [registry],
    }),
  };
}
