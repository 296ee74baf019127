/**
 * @mizzen/telemetry — what the proxies report and how: Istio's standard
 * metrics with the Telemetry API's overrides, Envoy-style access logs,
 * OpenTelemetry tracing with W3C and B3 propagation, the `/stats/prometheus`
 * server with metrics merging, and the Telemetry API's resolution.
 */
export {
  AccessLogger,
  type AccessLoggerOptions,
  formatAccessLog,
  formatText,
  ISTIO_JSON_FORMAT,
  ISTIO_TEXT_FORMAT,
  otlpLogsUrl,
} from './access-log.js';
export {
  APP_METRICS_FLAG,
  appMetricsFromAnnotations,
  parseTelemetryFlags,
  startProxyTelemetry,
  TELEMETRY_FLAGS,
  type TelemetryFlags,
} from './app.js';
export {
  compileExpression,
  connectionAttributes,
  evaluateFilter,
  evaluateTag,
  requestAttributes,
} from './attributes.js';
export {
  type Family,
  ISTIO_LINT_EXCEPTIONS,
  type LintException,
  PROM_CLIENT_LINT_EXCEPTIONS,
  parseExposition,
  withoutFamilies,
} from './exposition.js';
export {
  canonicalRevision,
  canonicalService,
  destinationService,
  HTTP_LABELS,
  httpLabels,
  identityFromNode,
  type Labels,
  type LocalProxy,
  spiffeId,
  TCP_LABELS,
  tcpLabels,
  type WorkloadIdentity,
} from './labels.js';
export {
  DURATION_BUCKETS_MS,
  IstioFamily,
  type IstioMetricName,
  IstioMetrics,
  SIZE_BUCKETS_BYTES,
} from './metrics.js';
export { ProxyTelemetry, type ProxyTelemetryOptions } from './observer.js';
export { OtlpLogExporter } from './otlp-logs.js';
export {
  type ExplainedReport,
  explainProblems,
  PROMTOOL,
  type PromtoolProblem,
  type PromtoolReport,
  promtoolCheckMetrics,
} from './promtool.js';
export { type AppProbe, StatsServer, type StatsServerOptions } from './stats-server.js';
export {
  applicableTelemetries,
  type EffectiveAccessLog,
  type EffectiveMetricOverride,
  type EffectiveMetrics,
  type EffectiveTelemetry,
  type EffectiveTracing,
  METRIC_NAMES,
  resolveTelemetry,
  type Side,
  statsPluginConfig,
  type TelemetryDefaults,
  type TelemetryResource,
  type TelemetryWorkload,
} from './telemetry-api.js';
export { type HeaderTraceContext, traceContextOf } from './trace-context.js';
export { ProxyTracer, type ProxyTracerOptions, type SamplingInput, samplingDecision } from './tracing.js';
