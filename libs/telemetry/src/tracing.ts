import type {
  HttpObservation,
  HttpRequestRecord,
  HttpRequestStart,
  ProxyObserver,
  TracingProvider,
  TracingSettings,
} from '@mizzen/proxy';
import type { Logger } from '@mizzen/runtime';
import {
  type Attributes,
  type Context,
  createContextKey,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from '@opentelemetry/api';
import { CompositePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  type Sampler,
  SamplingDecision,
  type SamplingResult,
  type SpanExporter,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { destinationService } from './labels.js';

/**
 * The proxy's spans, as Envoy's OpenTelemetry tracer makes them for Istio:
 * a SERVER span for each inbound request and a CLIENT span for each outbound
 * one, child of whatever context the request carries (W3C `traceparent`, B3
 * single `b3` or multi `x-b3-*`), honouring the caller's sampling decision
 * and sampling the HCM's random percentage otherwise. The new span's context
 * goes upstream in all three header forms. Spans are exported as OTLP/HTTP
 * protobuf in bounded batches, off the request path.
 */

/** Where sampling decisions travel from the observer to the SDK (the SDK asks its sampler per span). */
const DECISION = createContextKey('mizzen.sampling-decision');

/** Samples exactly what the proxy decided (the caller's decision, or the HCM's percentages). */
class DecidedSampler implements Sampler {
  shouldSample(context: Context): SamplingResult {
    return {
      decision:
        context.getValue(DECISION) === true
          ? SamplingDecision.RECORD_AND_SAMPLED
          : SamplingDecision.NOT_RECORD,
    };
  }
  toString(): string {
    return 'MizzenDecidedSampler';
  }
}

type Carrier = Record<string, unknown>;

const getter: TextMapGetter<Carrier> = {
  keys: (c) => Object.keys(c),
  get: (c, key) => {
    const v = c[key.toLowerCase()];
    if (Array.isArray(v)) return v.map(String);
    return v === undefined ? undefined : String(v);
  },
};

const setter: TextMapSetter<Carrier> = {
  set: (c, key, value) => {
    c[key.toLowerCase()] = value;
  },
};

/** Extraction: B3 (single or multi) first, W3C last so it wins when a request carries both. */
const extractor = new CompositePropagator({
  propagators: [new B3Propagator(), new W3CTraceContextPropagator()],
});
/** Injection: W3C `traceparent`/`tracestate`, B3 multi and B3 single. */
const injectors = [
  new W3CTraceContextPropagator(),
  new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }),
  new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }),
];
const TRACE_HEADERS = [
  'traceparent',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
];

export interface SamplingInput {
  /** The caller's decision, when the request carried a trace context that says. */
  parentSampled?: boolean;
  /** `x-envoy-force-trace`, or `x-client-trace-id` with client sampling. */
  forced?: boolean;
  clientTraceId?: boolean;
}

/**
 * Envoy's decision: an upstream decision is honoured; a request with
 * `x-client-trace-id` is sampled at the client percentage, others at the
 * random percentage; the overall percentage then caps everything.
 */
export function samplingDecision(
  settings: Pick<
    TracingSettings,
    'randomSamplingPercent' | 'clientSamplingPercent' | 'overallSamplingPercent'
  >,
  input: SamplingInput,
  random: () => number = Math.random,
): boolean {
  let sampled: boolean;
  if (input.parentSampled !== undefined) sampled = input.parentSampled;
  else if (input.forced) sampled = true;
  else if (input.clientTraceId) sampled = random() * 100 < settings.clientSamplingPercent;
  else sampled = random() * 100 < settings.randomSamplingPercent;
  if (sampled && settings.overallSamplingPercent < 100)
    sampled = random() * 100 < settings.overallSamplingPercent;
  return sampled;
}

export interface ProxyTracerOptions {
  node: { id: string; cluster?: string };
  /** This workload's canonical service and namespace (the default `service.name`). */
  canonicalService: string;
  namespace: string;
  /** The FQDN this workload serves (names inbound spans as Istio's route decorators do). */
  inboundService?: string;
  logger?: Logger;
  /** Overrides where spans go: an OTLP/HTTP base URL (`http://host:4318`) or traces URL. */
  otlpEndpoint?: string;
  /** Batch delay (Envoy flushes every 5s; tests want it shorter). */
  exportIntervalMs?: number;
  maxQueueSize?: number;
  /** An exporter to use instead of OTLP/HTTP (tests). */
  exporterFor?: (url: string) => SpanExporter;
  random?: () => number;
}

function tracesUrl(provider: TracingProvider | undefined, override: string | undefined): string | undefined {
  if (override) {
    const base = override.replace(/\/+$/, '');
    return /\/v1\/traces$/.test(base) ? base : `${base.replace(/\/v1\/logs$/, '')}/v1/traces`;
  }
  return provider?.httpEndpoint;
}

function splitAuthority(authority: string): { host: string; port?: string } {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(authority);
  return m ? { host: m[1]!, port: m[2] } : { host: authority };
}

interface Pipeline {
  provider: TracerProvider;
  tracer: ReturnType<TracerProvider['getTracer']>;
}

/** The tracing half of a proxy's telemetry, as a {@link ProxyObserver}. */
export class ProxyTracer implements ProxyObserver {
  private readonly pipelines = new Map<string, Pipeline>();
  private readonly noop: Pipeline;
  private readonly warned = new Set<string>();

  constructor(private readonly options: ProxyTracerOptions) {
    const provider = new TracerProvider({ sampler: new DecidedSampler() });
    this.noop = { provider, tracer: provider.getTracer('mizzen-proxy') };
  }

  private pipeline(settings: TracingSettings): Pipeline {
    const url = tracesUrl(settings.provider, this.options.otlpEndpoint);
    if (!url) {
      const why = settings.provider?.grpcCluster
        ? `the OpenTelemetry provider uses gRPC (${settings.provider.grpcCluster}); this proxy exports OTLP/HTTP: give the provider an http section or set --otlp-endpoint`
        : 'no tracing provider is configured';
      if (!this.warned.has(why)) {
        this.warned.add(why);
        this.options.logger?.warn({ reason: why }, 'spans are propagated but not exported');
      }
      return this.noop;
    }
    const serviceName =
      settings.provider?.serviceName ?? `${this.options.canonicalService}.${this.options.namespace}`;
    const key = `${url}\n${serviceName}`;
    let p = this.pipelines.get(key);
    if (p) return p;
    const exporter =
      this.options.exporterFor?.(url) ??
      new OTLPTraceExporter({
        url,
        headers: { ...settings.provider?.headers },
        timeoutMillis: settings.provider?.timeoutMs ?? 10_000,
      });
    const provider = new TracerProvider({
      sampler: new DecidedSampler(),
      resource: resourceFromAttributes({
        'service.name': serviceName,
        'service.namespace': this.options.namespace,
        'k8s.namespace.name': this.options.namespace,
        'telemetry.sdk.name': 'mizzen-proxy',
      }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          maxQueueSize: this.options.maxQueueSize ?? 2048,
          maxExportBatchSize: 512,
          scheduledDelayMillis: this.options.exportIntervalMs ?? 1000,
          exportTimeoutMillis: 10_000,
        }),
      ],
    });
    p = { provider, tracer: provider.getTracer('mizzen-proxy') };
    this.pipelines.set(key, p);
    return p;
  }

  startHttp(start: HttpRequestStart): HttpObservation | undefined {
    const settings = start.telemetry?.tracing;
    if (!settings) return undefined;
    const headers = start.headers as Carrier;
    const parent = extractor.extract(ROOT_CONTEXT, headers, getter);
    const parentSpan = trace.getSpanContext(parent);
    const sampled = samplingDecision(
      settings,
      {
        parentSampled: parentSpan ? (parentSpan.traceFlags & 1) === 1 : undefined,
        forced: headers['x-envoy-force-trace'] !== undefined,
        clientTraceId: headers['x-client-trace-id'] !== undefined,
      },
      this.options.random,
    );
    const { tracer } = sampled ? this.pipeline(settings) : this.noop;
    const inbound = start.direction === 'inbound';
    const span = tracer.startSpan(
      `${start.authority}${start.path.split('?')[0]}`,
      { kind: inbound ? SpanKind.SERVER : SpanKind.CLIENT, startTime: start.startTime },
      parent.setValue(DECISION, sampled),
    );
    for (const h of TRACE_HEADERS) delete headers[h];
    const withSpan = trace.setSpan(parent, span);
    for (const injector of injectors) injector.inject(withSpan, headers, setter);
    return { end: (record) => this.finish(span, record, settings) };
  }

  /** Istio's operation name: `host:port/*` of the route's service, else the authority and path. */
  private spanName(record: HttpRequestRecord): string {
    const { port } = splitAuthority(record.authority);
    const inbound = record.direction === 'inbound';
    const parts = (record.upstreamCluster ?? '').split('|');
    if (parts.length === 4 && parts[0] === 'outbound' && parts[3]) return `${parts[3]}:${parts[1]}/*`;
    if (inbound && this.options.inboundService)
      return `${this.options.inboundService}:${port ?? parts[1] ?? '80'}/*`;
    return `${record.authority}${record.path.split('?')[0]}`;
  }

  private finish(span: Span, record: HttpRequestRecord, settings: TracingSettings): void {
    if (!span.isRecording()) {
      span.end();
      return;
    }
    const url = `${record.scheme}://${record.authority}${record.path.slice(0, settings.maxPathTagLength)}`;
    const { host, port } = splitAuthority(record.authority);
    const headers = record.headers as Carrier;
    const str = (v: unknown) => (Array.isArray(v) ? v.join(',') : v === undefined ? undefined : String(v));
    const dest = destinationService({
      cluster: record.upstreamCluster,
      authority: record.authority,
      inboundService: record.direction === 'inbound' ? this.options.inboundService : undefined,
      hostHeaderFallback: true,
    });
    const attributes: Attributes = {
      node_id: this.options.node.id,
      zone: '',
      component: 'proxy',
      upstream_cluster: record.upstreamCluster ?? '-',
      'upstream_cluster.name': record.upstreamCluster ?? '-',
      response_flags: record.responseFlags,
      'guid:x-request-id': str(headers['x-request-id']) ?? '',
      user_agent: str(headers['user-agent']) ?? '-',
      downstream_cluster: str(headers['x-envoy-downstream-service-cluster']) ?? '-',
      'peer.address': record.downstreamRemoteAddress,
      'http.method': record.method,
      'http.url': url,
      'http.protocol': record.protocol,
      'http.status_code': String(record.responseCode),
      request_size: String(record.requestBytes),
      response_size: String(record.responseBytes),
      'http.request.method': record.method,
      'url.full': url,
      'url.path': record.path.split('?')[0] ?? record.path,
      'url.scheme': record.scheme,
      'server.address': host,
      'network.protocol.name': 'http',
      'network.protocol.version': record.protocol.replace('HTTP/', ''),
      'http.response.status_code': record.responseCode,
      'http.request.body.size': record.requestBytes,
      'http.response.body.size': record.responseBytes,
      'client.address': record.downstreamRemoteAddress,
      'destination.service': dest.service,
    };
    if (port) attributes['server.port'] = Number(port);
    const ua = str(headers['user-agent']);
    if (ua) attributes['user_agent.original'] = ua;
    if (record.upstreamHost) attributes['upstream.address'] = record.upstreamHost;
    if (record.grpcStatus !== undefined) attributes['rpc.grpc.status_code'] = Number(record.grpcStatus);
    if (record.peer?.workload) attributes['istio.peer.workload'] = record.peer.workload;
    for (const tag of settings.customTags) {
      switch (tag.kind) {
        case 'literal':
          attributes[tag.tag] = tag.value;
          break;
        case 'header': {
          const v = str(headers[tag.name]) ?? tag.defaultValue;
          if (v !== undefined) attributes[tag.tag] = v;
          break;
        }
        case 'environment': {
          const v = process.env[tag.name] ?? tag.defaultValue;
          if (v !== undefined) attributes[tag.tag] = v;
          break;
        }
      }
    }
    span.setAttributes(attributes);
    span.updateName(this.spanName(record));
    // Envoy marks a span as an error for 5xx (and for no response at all).
    const failed = record.responseCode >= 500 || record.responseCode === 0;
    if (failed) {
      span.setAttribute('error', true);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: record.responseFlags !== '-' ? record.responseFlags : undefined,
      });
    }
    span.end(new Date(record.startTime.getTime() + record.durationMs));
  }

  /** Exports every finished span now. */
  async flush(): Promise<void> {
    await Promise.all([...this.pipelines.values()].map((p) => p.provider.forceFlush()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.pipelines.values()].map((p) => p.provider.shutdown()));
    await this.noop.provider.shutdown();
  }
}
