import { combineObservers, type ProxyObserver } from '@mizzen/proxy';
import type { Logger } from '@mizzen/runtime';
import type { XdsNode } from '@mizzen/xds';
import { Registry } from 'prom-client';
import { AccessLogger } from './access-log.js';
import { AuthzMetrics } from './authz-metrics.js';
import { canonicalRevision, canonicalService, identityFromNode, type LocalProxy } from './labels.js';
import { IstioMetrics } from './metrics.js';
import { type AppProbe, StatsServer } from './stats-server.js';
import { ProxyTracer } from './tracing.js';

export interface ProxyTelemetryOptions {
  node: XdsNode;
  logger?: Logger;
  /** Where `/stats/prometheus` listens (15020 in a pod); no server when undefined. */
  statsHost?: string;
  statsPort?: number;
  /** Istio's metrics merging: the application's metrics URL. */
  appMetricsUrl?: string;
  /** Sends traces and OpenTelemetry access logs here (an OTLP/HTTP base URL) whatever the providers say. */
  otlpEndpoint?: string;
  trustDomain?: string;
  domainSuffix?: string;
  /** How often spans and log records are exported (ms). */
  exportIntervalMs?: number;
  /** Where `/dev/stdout` access-log lines go. */
  stdout?: NodeJS.WritableStream;
  /** Kubelet's rewritten probes on the stats port (`/app-health/...`), as Istio's agent serves them on 15020. */
  appProbe?: AppProbe;
}

/**
 * A proxy's telemetry in one piece: Istio's metrics, access logs and tracing
 * as one observer for `MeshProxy`, and the `/stats/prometheus` server.
 */
export class ProxyTelemetry {
  readonly registry = new Registry();
  readonly metrics: IstioMetrics;
  readonly accessLogs: AccessLogger;
  readonly tracer: ProxyTracer;
  readonly observer: ProxyObserver;
  readonly local: LocalProxy;
  private stats?: StatsServer;

  constructor(private readonly options: ProxyTelemetryOptions) {
    const identity = identityFromNode(options.node);
    const md = options.node.metadata ?? {};
    const domain = options.domainSuffix ?? 'cluster.local';
    const service = typeof md.MIZZEN_SERVICE === 'string' ? md.MIZZEN_SERVICE : undefined;
    const inboundService = service ? `${service}.${identity.namespace}.svc.${domain}` : undefined;
    this.local = { identity, trustDomain: options.trustDomain ?? 'cluster.local', inboundService };
    const node = { id: options.node.id, cluster: options.node.cluster };
    this.metrics = new IstioMetrics({
      local: this.local,
      node,
      registry: this.registry,
      logger: options.logger,
    });
    this.accessLogs = new AccessLogger({
      node,
      logger: options.logger,
      otlpEndpoint: options.otlpEndpoint,
      stdout: options.stdout,
      exportIntervalMs: options.exportIntervalMs,
      resource: {
        'service.name': `${canonicalService(identity)}.${identity.namespace}`,
        'service.version': canonicalRevision(identity),
        'k8s.namespace.name': identity.namespace,
        'k8s.pod.name': identity.workload,
        node_name: options.node.id,
        cluster_name: options.node.cluster ?? '',
      },
    });
    this.tracer = new ProxyTracer({
      node,
      canonicalService: canonicalService(identity),
      namespace: identity.namespace,
      inboundService,
      logger: options.logger,
      otlpEndpoint: options.otlpEndpoint,
      exportIntervalMs: options.exportIntervalMs,
    });
    // Tracing first: it adds the trace context that access logs record.
    this.observer = combineObservers([
      this.tracer,
      this.metrics,
      new AuthzMetrics(this.registry),
      this.accessLogs,
    ])!;
  }

  /** Starts `/stats/prometheus`; resolves with its port (undefined without one). */
  async start(): Promise<number | undefined> {
    if (this.options.statsPort === undefined) return undefined;
    this.stats = new StatsServer({
      registry: this.registry,
      host: this.options.statsHost ?? '0.0.0.0',
      port: this.options.statsPort,
      appMetricsUrl: this.options.appMetricsUrl,
      logger: this.options.logger,
      ...(this.options.appProbe ? { appProbe: this.options.appProbe } : {}),
    });
    return this.stats.start();
  }

  /** Exports what is buffered (spans, log records). */
  async flush(): Promise<void> {
    await Promise.all([this.tracer.flush(), this.accessLogs.flush()]);
  }

  async close(): Promise<void> {
    await this.stats?.close();
    await Promise.all([this.tracer.close(), this.accessLogs.close()]);
  }
}
