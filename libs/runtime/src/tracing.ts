import { type Attributes, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { onShutdown } from './lifecycle.js';
import type { Logger } from './logger.js';

export interface ComponentTracingOptions {
  /**
   * What else describes this process (a proxy's node id and namespace…):
   * `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` override them.
   */
  resourceAttributes?: Attributes;
}

/**
 * A component's own tracing (pilot's pushes, citadel's signing, the
 * collector's scrapes, a proxy's config updates) with OpenTelemetry's Node
 * SDK, configured the standard way: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns it on, OTLP over HTTP/protobuf
 * unless `OTEL_EXPORTER_OTLP_PROTOCOL` says otherwise, `OTEL_SERVICE_NAME`
 * (default: the component), `OTEL_RESOURCE_ATTRIBUTES`,
 * `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`… `OTEL_SDK_DISABLED=true`
 * turns it off. Without an endpoint nothing is started and spans are no-ops.
 * Only traces: metrics stay on the Prometheus endpoints, logs on stdout.
 * What is buffered is flushed at shutdown.
 */
export function startComponentTracing(
  component: string,
  logger: Logger,
  options: ComponentTracingOptions = {},
): { enabled: boolean } {
  const env = process.env;
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint || env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none')
    return { enabled: false };
  const sdk = new NodeSDK({
    // The lowest-priority attributes: the SDK's detectors (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) win over them.
    resource: defaultResource().merge(
      resourceFromAttributes({ 'service.name': component, ...options.resourceAttributes }),
    ),
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  logger.info({ endpoint, service: env.OTEL_SERVICE_NAME || component }, 'exporting own traces over OTLP');
  // Last out: spans of the shutdown itself are flushed too.
  onShutdown(() => sdk.shutdown().catch(() => undefined));
  return { enabled: true };
}

/** The component's tracer (a no-op until `startComponentTracing` found an endpoint). */
export function componentTracer(component: string): Tracer {
  return trace.getTracer(`mizzen-${component}`);
}

/**
 * Runs `fn` inside a span: ended when it settles, its status ERROR with the
 * message when it throws (and the error rethrown).
 */
export async function withSpan<T>(
  tracer: Tracer,
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes },
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  return tracer.startActiveSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes ?? {} },
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

export { SpanKind, SpanStatusCode };
