import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Pilot's own metrics, named as Istio's pilot names them so existing dashboards work. */
export interface PilotMetrics {
  registry: Registry;
  connectedProxies: Gauge;
  pushes: Counter<'type'>;
  rejects: Counter<'type'>;
  pushTime: Histogram;
  services: Gauge;
  configs: Gauge<'kind'>;
  convergence: Histogram;
  /** Istio's `pilot_xds_{cds,eds,lds,rds}_reject`: proxies whose latest config of that type is NACKed now. */
  rejectedNow: Record<'cds' | 'eds' | 'lds' | 'rds', Gauge>;
}

export function createPilotMetrics(): PilotMetrics {
  const registry = new Registry();
  return {
    registry,
    connectedProxies: new Gauge({
      name: 'pilot_xds',
      help: 'Number of proxies connected to this pilot.',
      registers: [registry],
    }),
    pushes: new Counter({
      name: 'pilot_xds_pushes',
      help: 'xDS pushes by type (cds, eds, lds, rds).',
      labelNames: ['type'],
      registers: [registry],
    }),
    rejects: new Counter({
      name: 'pilot_total_xds_rejects',
      help: 'Config rejected by proxies (NACKs), by type.',
      labelNames: ['type'],
      registers: [registry],
    }),
    pushTime: new Histogram({
      name: 'pilot_xds_push_time',
      help: 'Seconds to compute and send one push to every connected proxy.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    services: new Gauge({ name: 'pilot_services', help: 'Services in the registry.', registers: [registry] }),
    configs: new Gauge({
      name: 'pilot_config_resources',
      help: 'Config resources in force, by kind.',
      labelNames: ['kind'],
      registers: [registry],
    }),
    convergence: new Histogram({
      name: 'pilot_proxy_convergence_time',
      help: 'Seconds from a config push to the proxy ACKing it.',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 3, 5, 10],
      registers: [registry],
    }),
    rejectedNow: {
      cds: rejectGauge(registry, 'cds', 'CDS'),
      eds: rejectGauge(registry, 'eds', 'EDS'),
      lds: rejectGauge(registry, 'lds', 'LDS'),
      rds: rejectGauge(registry, 'rds', 'RDS'),
    },
  };
}

function rejectGauge(registry: Registry, type: string, name: string): Gauge {
  return new Gauge({
    name: `pilot_xds_${type}_reject`,
    help: `Proxies whose current ${name} config is rejected (NACKed).`,
    registers: [registry],
  });
}
