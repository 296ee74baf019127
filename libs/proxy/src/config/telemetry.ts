import { durationToMs } from '@mizzen/xds';
import type {
  AccessLogFormat,
  AccessLogSettings,
  CustomTag,
  HttpTelemetryConfig,
  MetricOverrideSettings,
  StatsSettings,
  TracingProvider,
  TracingSettings,
} from '../observe/records.js';
import { fail } from './errors.js';
import {
  ACCESS_LOG,
  CEL_FILTER_TYPE,
  FILE_ACCESS_LOG_TYPE,
  OTEL_ACCESS_LOG_TYPE,
  OTEL_TRACER_TYPE,
  STATS_PLUGIN,
  TRACING,
  TYPED_STRUCT,
} from './fields/telemetry.js';
import { refuseUnknownFields } from './understood.js';

/**
 * The telemetry parts of an HTTP connection manager, compiled into what the
 * observers need: `tracing` (sampling, custom tags, the OpenTelemetry
 * tracer), `access_log` (file and OpenTelemetry loggers with CEL filters)
 * and the `istio.stats` filter's `stats.PluginConfig` (metric overrides).
 * Anything this proxy cannot honour is refused, so the listener is NACKed.
 */

type Json = Record<string, unknown>;

export { CEL_FILTER_TYPE, FILE_ACCESS_LOG_TYPE, OTEL_ACCESS_LOG_TYPE, OTEL_TRACER_TYPE };
export const TYPED_STRUCT_TYPES = new Set([
  'type.googleapis.com/udpa.type.v1.TypedStruct',
  'type.googleapis.com/xds.type.v3.TypedStruct',
]);
export const STATS_PLUGIN_TYPE = 'type.googleapis.com/stats.PluginConfig';

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** envoy.type.v3.Percent (`{ value }`), default when absent. */
function percent(v: unknown, where: string, fallback: number): number {
  if (v === undefined) return fallback;
  const value = isObj(v) ? (v.value ?? 0) : v;
  if (typeof value !== 'number' || !(value >= 0 && value <= 100))
    fail(where, `must be a percentage between 0 and 100, got ${JSON.stringify(value)}`);
  return value;
}

function customTag(t: Json, where: string): CustomTag {
  const tag = t.tag;
  if (typeof tag !== 'string' || tag === '') fail(`${where}.tag`, 'a custom tag needs a name');
  if (isObj(t.literal)) return { tag, kind: 'literal', value: String(t.literal.value ?? '') };
  if (isObj(t.request_header)) {
    const name = t.request_header.name;
    if (typeof name !== 'string' || name === '') fail(`${where}.request_header.name`, 'must not be empty');
    const def = t.request_header.default_value;
    return {
      tag,
      kind: 'header',
      name: name.toLowerCase(),
      defaultValue: typeof def === 'string' ? def : undefined,
    };
  }
  if (isObj(t.environment)) {
    const name = t.environment.name;
    if (typeof name !== 'string' || name === '') fail(`${where}.environment.name`, 'must not be empty');
    const def = t.environment.default_value;
    return { tag, kind: 'environment', name, defaultValue: typeof def === 'string' ? def : undefined };
  }
  fail(where, 'only literal, request_header and environment custom tags are supported by this proxy');
}

function tracingProvider(p: Json, where: string): TracingProvider {
  const tc = p.typed_config as Json | undefined;
  if (tc?.['@type'] !== OTEL_TRACER_TYPE) {
    fail(
      `${where}.typed_config`,
      `tracer ${String(p.name ?? '')} (${String(tc?.['@type'] ?? 'no type')}) is not supported by this proxy; use the OpenTelemetry tracer`,
    );
  }
  const http = tc.http_service as Json | undefined;
  const uri = (http?.http_uri as Json | undefined)?.uri;
  if (http && (typeof uri !== 'string' || !/^https?:\/\//.test(uri)))
    fail(`${where}.typed_config.http_service.http_uri.uri`, 'must be an http:// or https:// URL');
  const headers: Record<string, string> = {};
  for (const h of (http?.request_headers_to_add as Json[] | undefined) ?? []) {
    const header = h.header as Json | undefined;
    if (typeof header?.key === 'string') headers[header.key.toLowerCase()] = String(header.value ?? '');
  }
  const timeout = (http?.http_uri as Json | undefined)?.timeout;
  const grpc = (tc.grpc_service as Json | undefined)?.envoy_grpc as Json | undefined;
  return {
    kind: 'opentelemetry',
    serviceName: typeof tc.service_name === 'string' && tc.service_name ? tc.service_name : undefined,
    httpEndpoint: typeof uri === 'string' ? uri : undefined,
    headers,
    timeoutMs: typeof timeout === 'string' ? durationToMs(timeout) : undefined,
    grpcCluster: typeof grpc?.cluster_name === 'string' ? grpc.cluster_name : undefined,
  };
}

export function compileTracing(t: Json | undefined, where: string): TracingSettings | undefined {
  if (!t) return undefined;
  const tags = ((t.custom_tags as Json[] | undefined) ?? []).map((c, i) =>
    customTag(c, `${where}.custom_tags[${i}]`),
  );
  const maxPath = t.max_path_tag_length;
  const settings: TracingSettings = {
    // Envoy's defaults: every request is a candidate (100%) unless the HCM says otherwise.
    randomSamplingPercent: percent(t.random_sampling, `${where}.random_sampling`, 100),
    clientSamplingPercent: percent(t.client_sampling, `${where}.client_sampling`, 100),
    overallSamplingPercent: percent(t.overall_sampling, `${where}.overall_sampling`, 100),
    customTags: tags,
    maxPathTagLength: typeof maxPath === 'number' && maxPath > 0 ? maxPath : 256,
    provider: isObj(t.provider) ? tracingProvider(t.provider, `${where}.provider`) : undefined,
  };
  refuseUnknownFields(t, TRACING, where);
  return settings;
}

/** Envoy's SubstitutionFormatString: `json_format`, `text_format_source.inline_string` or `text_format`. */
function logFormat(f: Json | undefined, where: string): AccessLogFormat {
  if (!f) return { kind: 'default' };
  if (isObj(f.json_format)) return { kind: 'json', fields: f.json_format };
  const source = f.text_format_source as Json | undefined;
  if (typeof source?.inline_string === 'string') return { kind: 'text', template: source.inline_string };
  if (typeof f.text_format === 'string') return { kind: 'text', template: f.text_format };
  fail(where, 'only json_format and inline text formats are supported by this proxy');
}

/** An OTLP AnyValue holding a string (`{ string_value }`), as Envoy's OpenTelemetry logger takes its body. */
function anyString(v: unknown): string | undefined {
  return isObj(v) && typeof v.string_value === 'string' ? v.string_value : undefined;
}

function accessLogFilter(f: Json | undefined, where: string): string | undefined {
  if (!f) return undefined;
  const ext = f.extension_filter as Json | undefined;
  const tc = ext?.typed_config as Json | undefined;
  if (tc?.['@type'] !== CEL_FILTER_TYPE || typeof tc.expression !== 'string') {
    fail(where, 'only CEL expression filters (envoy.access_loggers.extension_filters.cel) are supported');
  }
  return tc.expression;
}

function accessLog(a: Json, where: string): AccessLogSettings {
  const tc = a.typed_config as Json | undefined;
  const name = typeof a.name === 'string' ? a.name : '';
  const filter = accessLogFilter(a.filter as Json | undefined, `${where}.filter`);
  switch (tc?.['@type']) {
    case FILE_ACCESS_LOG_TYPE: {
      const path = tc.path;
      if (typeof path !== 'string' || path === '') fail(`${where}.typed_config.path`, 'must not be empty');
      const format = logFormat((tc.log_format ?? undefined) as Json | undefined, `${where}.log_format`);
      return { name, filter, sink: { kind: 'file', path, format } };
    }
    case OTEL_ACCESS_LOG_TYPE: {
      const common = (tc.common_config as Json | undefined) ?? {};
      const grpc = (common.grpc_service as Json | undefined)?.envoy_grpc as Json | undefined;
      const attributes: Record<string, string> = {};
      for (const kv of ((tc.attributes as Json | undefined)?.values as Json[] | undefined) ?? []) {
        const v = anyString(kv.value);
        if (typeof kv.key === 'string' && v !== undefined) attributes[kv.key] = v;
      }
      const body = anyString(tc.body);
      return {
        name,
        filter,
        sink: {
          kind: 'otel',
          logName: typeof common.log_name === 'string' ? common.log_name : name,
          cluster: typeof grpc?.cluster_name === 'string' ? grpc.cluster_name : undefined,
          body: body === undefined ? { kind: 'default' } : { kind: 'text', template: body },
          attributes,
        },
      };
    }
    default:
      fail(
        `${where}.typed_config`,
        `access logger ${name} (${String(tc?.['@type'] ?? 'no type')}) is not supported by this proxy`,
      );
  }
}

export function compileAccessLogs(list: Json[] | undefined, where: string): AccessLogSettings[] {
  return (list ?? []).map((a, i) => {
    const at = `${where}.access_log[${i}]`;
    const settings = accessLog(a, at);
    refuseUnknownFields(a, ACCESS_LOG, at);
    return settings;
  });
}

/** `udpa.type.v1.TypedStruct` carrying `stats.PluginConfig`: Istio's stats filter with its metric overrides. */
export function isStatsFilter(typedConfig: Json | undefined): boolean {
  return (
    !!typedConfig &&
    (typedConfig['@type'] === STATS_PLUGIN_TYPE ||
      (TYPED_STRUCT_TYPES.has(String(typedConfig['@type'])) && typedConfig.type_url === STATS_PLUGIN_TYPE))
  );
}

/** Istio's TCP metadata exchange filter's config type (carried in a TypedStruct, as Istio sends it). */
export const METADATA_EXCHANGE_TYPE =
  'type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange';

/** `istio.metadata_exchange`: a TypedStruct carrying `envoy.tcp.metadataexchange.config.MetadataExchange`. */
export function isMetadataExchangeFilter(typedConfig: Json | undefined): boolean {
  return (
    !!typedConfig &&
    TYPED_STRUCT_TYPES.has(String(typedConfig['@type'])) &&
    typedConfig.type_url === METADATA_EXCHANGE_TYPE
  );
}

/**
 * The metadata exchange filter's settings: the ALPN that turns it on
 * (`protocol`, `istio-peer-exchange` from Istio). `enable_discovery` (fall
 * back to what the control plane says of the peer) is what this proxy
 * always does; anything else is refused.
 */
export function compileMetadataExchange(typedConfig: Json, where: string): { protocol: string } {
  const value = (typedConfig.value ?? {}) as Json;
  if (!isObj(value)) fail(`${where}.value`, 'must be an object');
  for (const key of Object.keys(value))
    if (key !== 'protocol' && key !== 'enable_discovery')
      fail(`${where}.value.${key}`, 'is not supported by this proxy');
  if (typeof value.protocol !== 'string' || value.protocol === '')
    fail(`${where}.value.protocol`, 'must name the ALPN protocol of the exchange (istio-peer-exchange)');
  if (value.enable_discovery !== undefined && typeof value.enable_discovery !== 'boolean')
    fail(`${where}.value.enable_discovery`, 'must be true or false');
  return { protocol: value.protocol };
}

export function compileStatsConfig(typedConfig: Json, where: string): StatsSettings {
  const value = (
    typedConfig['@type'] === STATS_PLUGIN_TYPE ? typedConfig : (typedConfig.value ?? {})
  ) as Json;
  const metrics: MetricOverrideSettings[] = [];
  for (const [i, m] of (((value.metrics as Json[] | undefined) ?? []) as Json[]).entries()) {
    const at = `${where}.metrics[${i}]`;
    if (!isObj(m)) fail(at, 'must be an object');
    const dimensions: Record<string, string> = {};
    for (const [k, v] of Object.entries((m.dimensions as Json | undefined) ?? {})) {
      if (typeof v !== 'string') fail(`${at}.dimensions.${k}`, 'must be a CEL expression string');
      dimensions[k] = v;
    }
    const remove = (m.tags_to_remove as unknown[] | undefined) ?? [];
    if (!Array.isArray(remove) || remove.some((t) => typeof t !== 'string'))
      fail(`${at}.tags_to_remove`, 'must be a list of tag names');
    metrics.push({
      name: typeof m.name === 'string' ? m.name : '',
      dimensions,
      tagsToRemove: remove as string[],
      drop: m.drop === true,
    });
  }
  if (value !== typedConfig) refuseUnknownFields(typedConfig, TYPED_STRUCT, where);
  refuseUnknownFields(value, STATS_PLUGIN, where, value === typedConfig ? '' : 'value');
  return { metrics, disableHostHeaderFallback: value.disable_host_header_fallback === true };
}

/** The telemetry an HCM asks for, from its JSON and the stats filter found among its HTTP filters. */
export function compileHcmTelemetry(
  hcm: Json,
  stats: StatsSettings | undefined,
  where: string,
): HttpTelemetryConfig {
  return {
    tracing: compileTracing(hcm.tracing as Json | undefined, `${where}.tracing`),
    accessLogs: compileAccessLogs(hcm.access_log as Json[] | undefined, where),
    stats,
  };
}
