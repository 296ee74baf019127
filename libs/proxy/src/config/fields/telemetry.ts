import { type Fields, HONOURED, honouredOnlyAs, INERT, OWN_CHECK, typed } from '../understood.js';
import { HEADER_VALUE_OPTION, PERCENT } from './common.js';

/** The HTTP connection manager's tracing and access logs, and Istio's stats filter config, as the proxy honours them. */

export const OTEL_TRACER_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';
export const FILE_ACCESS_LOG_TYPE =
  'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
export const OTEL_ACCESS_LOG_TYPE =
  'type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig';
export const CEL_FILTER_TYPE =
  'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter';

/** An exporter's gRPC service: the cluster is where the proxy sends; the authority only names it to the collector. */
const ENVOY_GRPC: Fields = { cluster_name: HONOURED, authority: INERT };

const OTEL_TRACER: Fields = {
  http_service: {
    http_uri: {
      uri: HONOURED,
      // Envoy sends through this cluster; the proxy posts to the uri, which names the same collector.
      cluster: INERT,
      timeout: HONOURED,
    },
    request_headers_to_add: HEADER_VALUE_OPTION,
  },
  // A gRPC exporter is recognised, and the proxy logs that it does not export spans to it
  // (libs/telemetry's tracer): its timeout has nothing to bound.
  grpc_service: { envoy_grpc: ENVOY_GRPC, timeout: INERT },
  service_name: HONOURED,
};

export const TRACING: Fields = {
  client_sampling: PERCENT,
  random_sampling: PERCENT,
  overall_sampling: PERCENT,
  custom_tags: {
    tag: HONOURED,
    literal: { value: HONOURED },
    request_header: { name: HONOURED, default_value: HONOURED },
    environment: { name: HONOURED, default_value: HONOURED },
  },
  max_path_tag_length: HONOURED,
  provider: {
    // Names the tracer's extension; the typed config says what it is.
    name: INERT,
    typed_config: typed({ [OTEL_TRACER_TYPE]: OTEL_TRACER }),
  },
};

export const ACCESS_LOG: Fields = {
  // Names the logger: the OpenTelemetry sink's default log name, else only an identifier.
  name: HONOURED,
  typed_config: typed({
    [FILE_ACCESS_LOG_TYPE]: {
      path: HONOURED,
      log_format: {
        json_format: HONOURED,
        text_format_source: { inline_string: HONOURED },
        text_format: HONOURED,
      },
    },
    [OTEL_ACCESS_LOG_TYPE]: {
      common_config: {
        log_name: HONOURED,
        grpc_service: { envoy_grpc: ENVOY_GRPC },
        transport_api_version: honouredOnlyAs(['V3', 'AUTO'], 'the collector takes the v3 API'),
      },
      body: { string_value: HONOURED },
      attributes: { values: { key: HONOURED, value: { string_value: HONOURED } } },
    },
  }),
  filter: {
    extension_filter: {
      // Names the filter's extension; the typed config says what it is.
      name: INERT,
      typed_config: typed({ [CEL_FILTER_TYPE]: { expression: HONOURED } }),
    },
  },
};

/** Istio's stats.PluginConfig (metric overrides for the proxy's Istio metrics). */
export const STATS_PLUGIN: Fields = {
  metrics: { name: HONOURED, dimensions: HONOURED, tags_to_remove: HONOURED, drop: HONOURED },
  disable_host_header_fallback: HONOURED,
};

/** udpa.type.v1.TypedStruct / xds.type.v3.TypedStruct around a config this proxy reads as its type_url. */
export const TYPED_STRUCT: Fields = { type_url: HONOURED, value: OWN_CHECK };
