import type { TracingCustomTag } from '@mizzen/api';
import {
  canonicalRevision,
  canonicalService,
  type EffectiveTelemetry,
  ISTIO_JSON_FORMAT,
  ISTIO_TEXT_FORMAT,
  resolveTelemetry,
  type Side,
  statsPluginConfig,
  type TelemetryResource,
} from '@mizzen/telemetry';
import type { ProxyInfo } from '../model/proxy.js';
import { type Json, TCP_PROXY_TYPE } from './envoy.js';
import type { PushContext } from './push-context.js';

/**
 * Istio's telemetry translation: the Telemetry API resolved per proxy (mesh,
 * namespace, workload) against MeshConfig's extension providers, turned into
 * what Envoy reads — the HCM's `tracing` (OpenTelemetry tracer, sampling,
 * custom tags), its `access_log` entries (file and OpenTelemetry loggers with
 * CEL filters), and the `istio.stats` filter with the metric overrides.
 */

export const OTEL_TRACER_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';
export const FILE_ACCESS_LOG_TYPE =
  'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
export const OTEL_ACCESS_LOG_TYPE =
  'type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig';
export const CEL_FILTER_TYPE =
  'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter';
export const TYPED_STRUCT_TYPE = 'type.googleapis.com/udpa.type.v1.TypedStruct';
export const STATS_PLUGIN_TYPE = 'type.googleapis.com/stats.PluginConfig';

/** MeshConfig `extensionProviders` entries pilot can act on. */
export type ExtensionProvider =
  | {
      name: string;
      kind: 'opentelemetry';
      service: string;
      port: number;
      maxTagLength?: number;
      /** OTLP/HTTP (`http:` set); OTLP/gRPC otherwise. */
      http?: { path: string; timeout?: string; headers: { name: string; value: string }[] };
      grpcTimeout?: string;
    }
  | {
      name: string;
      kind: 'envoyFileAccessLog';
      path: string;
      text?: string;
      labels?: Record<string, unknown>;
    }
  | {
      name: string;
      kind: 'envoyOtelAls';
      service: string;
      port: number;
      logName?: string;
      text?: string;
      labels?: Record<string, unknown>;
    }
  | { name: string; kind: 'prometheus' }
  | { name: string; kind: 'unsupported'; type: string };

/** The telemetry part of MeshConfig. */
export interface MeshTelemetry {
  extensionProviders: ExtensionProvider[];
  defaultProviders: { tracing: string[]; metrics: string[]; accessLogging: string[] };
  enableTracing: boolean;
  /** `defaultConfig.tracing.sampling`: percent of new traces sampled when nothing more specific says. */
  samplingPercentage: number;
  /** `accessLogFile`: turns the built-in `envoy` provider on by default. */
  accessLogFile?: string;
  accessLogEncoding: 'TEXT' | 'JSON';
  accessLogFormat?: string;
}

export const DEFAULT_MESH_TELEMETRY: MeshTelemetry = {
  extensionProviders: [],
  defaultProviders: { tracing: [], metrics: ['prometheus'], accessLogging: [] },
  enableTracing: true,
  samplingPercentage: 1,
  accessLogEncoding: 'TEXT',
};

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fieldError(field: string, what: string): never {
  throw new Error(`mesh config: ${field} ${what}`);
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    fieldError(field, 'must be a list of provider names');
  return v as string[];
}

function logFormat(v: unknown, field: string): { text?: string; labels?: Record<string, unknown> } {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) fieldError(field, 'must be a mapping with text or labels');
  if (v.text !== undefined && typeof v.text !== 'string') fieldError(`${field}.text`, 'must be a string');
  if (v.labels !== undefined && !isObj(v.labels)) fieldError(`${field}.labels`, 'must be a mapping');
  return {
    ...(typeof v.text === 'string' ? { text: v.text } : {}),
    ...(isObj(v.labels) ? { labels: v.labels } : {}),
  };
}

function servicePort(p: Obj, field: string): { service: string; port: number } {
  if (typeof p.service !== 'string' || p.service === '')
    fieldError(`${field}.service`, 'must be a host name');
  const port = Number(p.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    fieldError(`${field}.port`, 'must be a port number');
  return { service: p.service, port };
}

function provider(entry: unknown, i: number): ExtensionProvider {
  const at = `extensionProviders[${i}]`;
  if (!isObj(entry) || typeof entry.name !== 'string' || entry.name === '')
    fieldError(`${at}.name`, 'must be set');
  const name = entry.name;
  if (isObj(entry.opentelemetry)) {
    const o = entry.opentelemetry;
    const http = o.http;
    if (http !== undefined && !isObj(http)) fieldError(`${at}.opentelemetry.http`, 'must be a mapping');
    const headers = (isObj(http) && Array.isArray(http.headers) ? http.headers : []).map((h, j) => {
      if (!isObj(h) || typeof h.name !== 'string')
        fieldError(`${at}.opentelemetry.http.headers[${j}]`, 'needs a name and a value');
      return { name: h.name, value: String(h.value ?? '') };
    });
    return {
      name,
      kind: 'opentelemetry',
      ...servicePort(o, `${at}.opentelemetry`),
      ...(typeof o.maxTagLength === 'number' ? { maxTagLength: o.maxTagLength } : {}),
      ...(isObj(http)
        ? {
            http: {
              path: typeof http.path === 'string' && http.path ? http.path : '/v1/traces',
              ...(typeof http.timeout === 'string' ? { timeout: http.timeout } : {}),
              headers,
            },
          }
        : {}),
      ...(isObj(o.grpc) && typeof o.grpc.timeout === 'string' ? { grpcTimeout: o.grpc.timeout } : {}),
    };
  }
  if (isObj(entry.envoyFileAccessLog)) {
    const f = entry.envoyFileAccessLog;
    return {
      name,
      kind: 'envoyFileAccessLog',
      path: typeof f.path === 'string' && f.path ? f.path : '/dev/stdout',
      ...logFormat(f.logFormat, `${at}.envoyFileAccessLog.logFormat`),
    };
  }
  if (isObj(entry.envoyOtelAls)) {
    const o = entry.envoyOtelAls;
    return {
      name,
      kind: 'envoyOtelAls',
      ...servicePort(o, `${at}.envoyOtelAls`),
      ...(typeof o.logName === 'string' ? { logName: o.logName } : {}),
      ...logFormat(o.logFormat, `${at}.envoyOtelAls.logFormat`),
    };
  }
  if (isObj(entry.prometheus) || entry.prometheus === null) return { name, kind: 'prometheus' };
  const type = Object.keys(entry).find((k) => k !== 'name') ?? 'none';
  return { name, kind: 'unsupported', type };
}

/** The telemetry fields of a MeshConfig document (YAML already parsed); what it omits keeps `base`. */
export function parseMeshTelemetry(doc: Obj, base: MeshTelemetry = DEFAULT_MESH_TELEMETRY): MeshTelemetry {
  const out: MeshTelemetry = { ...base, defaultProviders: { ...base.defaultProviders } };
  if (doc.extensionProviders !== undefined) {
    if (!Array.isArray(doc.extensionProviders)) fieldError('extensionProviders', 'must be a list');
    out.extensionProviders = doc.extensionProviders.map(provider);
  }
  if (doc.defaultProviders !== undefined) {
    if (!isObj(doc.defaultProviders)) fieldError('defaultProviders', 'must be a mapping');
    const d = doc.defaultProviders;
    if (d.tracing !== undefined)
      out.defaultProviders.tracing = stringList(d.tracing, 'defaultProviders.tracing');
    if (d.metrics !== undefined)
      out.defaultProviders.metrics = stringList(d.metrics, 'defaultProviders.metrics');
    if (d.accessLogging !== undefined)
      out.defaultProviders.accessLogging = stringList(d.accessLogging, 'defaultProviders.accessLogging');
  }
  if (doc.enableTracing !== undefined) {
    if (typeof doc.enableTracing !== 'boolean') fieldError('enableTracing', 'must be true or false');
    out.enableTracing = doc.enableTracing;
  }
  const sampling = (
    isObj(doc.defaultConfig) && isObj(doc.defaultConfig.tracing) ? doc.defaultConfig.tracing : {}
  ).sampling;
  if (sampling !== undefined) {
    if (typeof sampling !== 'number' || sampling < 0 || sampling > 100)
      fieldError('defaultConfig.tracing.sampling', 'must be a percentage between 0 and 100');
    out.samplingPercentage = sampling;
  }
  if (doc.accessLogFile !== undefined) {
    if (typeof doc.accessLogFile !== 'string') fieldError('accessLogFile', 'must be a path');
    out.accessLogFile = doc.accessLogFile || undefined;
  }
  if (doc.accessLogEncoding !== undefined) {
    if (doc.accessLogEncoding !== 'TEXT' && doc.accessLogEncoding !== 'JSON')
      fieldError('accessLogEncoding', 'must be TEXT or JSON');
    out.accessLogEncoding = doc.accessLogEncoding;
  }
  if (doc.accessLogFormat !== undefined) {
    if (typeof doc.accessLogFormat !== 'string') fieldError('accessLogFormat', 'must be a string');
    out.accessLogFormat = doc.accessLogFormat || undefined;
  }
  for (const list of Object.values(out.defaultProviders))
    for (const name of list)
      if (!providerNamed(out, name))
        fieldError('defaultProviders', `names "${name}", which is not an extension provider`);
  return out;
}

/** A provider by name, including Istio's built-ins: `prometheus`, and `envoy` (the file access log). */
export function providerNamed(mesh: MeshTelemetry, name: string): ExtensionProvider | undefined {
  const found = mesh.extensionProviders.find((p) => p.name === name);
  if (found) return found;
  if (name === 'prometheus') return { name, kind: 'prometheus' };
  if (name === 'envoy') {
    const path = mesh.accessLogFile ?? '/dev/stdout';
    if (mesh.accessLogFormat)
      return mesh.accessLogEncoding === 'JSON'
        ? {
            name,
            kind: 'envoyFileAccessLog',
            path,
            labels: JSON.parse(mesh.accessLogFormat) as Record<string, unknown>,
          }
        : { name, kind: 'envoyFileAccessLog', path, text: mesh.accessLogFormat };
    return mesh.accessLogEncoding === 'JSON'
      ? { name, kind: 'envoyFileAccessLog', path, labels: { ...ISTIO_JSON_FORMAT } }
      : { name, kind: 'envoyFileAccessLog', path, text: ISTIO_TEXT_FORMAT };
  }
  return undefined;
}

const cache = new WeakMap<PushContext, Map<string, EffectiveTelemetry>>();

/** The Telemetry API resolved for one proxy (once per push). */
export function effectiveTelemetry(push: PushContext, proxy: ProxyInfo): EffectiveTelemetry {
  let perPush = cache.get(push);
  if (!perPush) {
    perPush = new Map();
    cache.set(push, perPush);
  }
  let t = perPush.get(proxy.id);
  if (t) return t;
  const mesh = push.mesh.telemetry ?? DEFAULT_MESH_TELEMETRY;
  const telemetries = push.resources.filter((r): r is TelemetryResource => r.kind === 'Telemetry');
  const accessDefaults = [...mesh.defaultProviders.accessLogging];
  if (mesh.accessLogFile && !accessDefaults.includes('envoy')) accessDefaults.push('envoy');
  t = resolveTelemetry(
    telemetries,
    { namespace: proxy.namespace, labels: proxy.labels },
    {
      rootNamespace: push.mesh.rootNamespace,
      defaultProviders: {
        tracing: mesh.enableTracing ? mesh.defaultProviders.tracing : [],
        metrics: mesh.defaultProviders.metrics,
        accessLogging: accessDefaults,
      },
      defaultSamplingPercentage: mesh.samplingPercentage,
    },
  );
  perPush.set(proxy.id, t);
  return t;
}

function customTag(tag: string, t: TracingCustomTag): Json {
  if (t.literal) return { tag, literal: { value: t.literal.value } };
  if (t.header)
    return {
      tag,
      request_header: {
        name: t.header.name,
        ...(t.header.defaultValue ? { default_value: t.header.defaultValue } : {}),
      },
    };
  return {
    tag,
    environment: {
      name: t.environment?.name ?? '',
      ...(t.environment?.defaultValue ? { default_value: t.environment.defaultValue } : {}),
    },
  };
}

function outboundCluster(service: string, port: number): string {
  return `outbound|${port}||${service}`;
}

function tracingFor(push: PushContext, proxy: ProxyInfo, side: Side): Json | undefined {
  const mesh = push.mesh.telemetry ?? DEFAULT_MESH_TELEMETRY;
  const t = effectiveTelemetry(push, proxy).tracing[side];
  if (!t) return undefined;
  const p = providerNamed(mesh, t.provider);
  if (p?.kind !== 'opentelemetry') return undefined;
  const identity = { workload: proxy.workloadName, labels: proxy.labels };
  // Istio's own tags on every span, then the Telemetry API's.
  const tags: Json[] = [
    { tag: 'istio.canonical_revision', literal: { value: canonicalRevision(identity) } },
    { tag: 'istio.canonical_service', literal: { value: canonicalService(identity) } },
    { tag: 'istio.mesh_id', literal: { value: push.mesh.trustDomain } },
    { tag: 'istio.namespace', literal: { value: proxy.namespace } },
    ...Object.keys(t.customTags)
      .sort()
      .map((k) => customTag(k, t.customTags[k]!)),
  ];
  const exporter: Json = p.http
    ? {
        http_service: {
          http_uri: {
            uri: `http://${p.service}:${p.port}${p.http.path.startsWith('/') ? '' : '/'}${p.http.path}`,
            cluster: outboundCluster(p.service, p.port),
            timeout: p.http.timeout ?? '3s',
          },
          ...(p.http.headers.length
            ? {
                request_headers_to_add: p.http.headers.map((h) => ({
                  header: { key: h.name, value: h.value },
                })),
              }
            : {}),
        },
      }
    : {
        grpc_service: {
          envoy_grpc: { cluster_name: outboundCluster(p.service, p.port), authority: p.service },
          ...(p.grpcTimeout ? { timeout: p.grpcTimeout } : {}),
        },
      };
  return {
    client_sampling: { value: 100 },
    random_sampling: { value: t.randomSamplingPercentage },
    overall_sampling: { value: 100 },
    custom_tags: tags,
    max_path_tag_length: p.maxTagLength ?? 256,
    // disableSpanReporting: spans are still made and propagated, and go nowhere.
    ...(t.disableSpanReporting
      ? {}
      : {
          provider: {
            name: 'envoy.tracers.opentelemetry',
            typed_config: {
              '@type': OTEL_TRACER_TYPE,
              ...exporter,
              service_name: `${canonicalService(identity)}.${proxy.namespace}`,
            },
          },
        }),
  };
}

function celFilter(expression: string | undefined): Json {
  if (expression === undefined) return {};
  return {
    filter: {
      extension_filter: {
        name: 'envoy.access_loggers.extension_filters.cel',
        typed_config: { '@type': CEL_FILTER_TYPE, expression },
      },
    },
  };
}

function accessLogsFor(push: PushContext, proxy: ProxyInfo, side: Side): Json[] {
  const mesh = push.mesh.telemetry ?? DEFAULT_MESH_TELEMETRY;
  const out: Json[] = [];
  for (const entry of effectiveTelemetry(push, proxy).accessLogs[side]) {
    const p = providerNamed(mesh, entry.provider);
    if (p?.kind === 'envoyFileAccessLog') {
      out.push({
        name: 'envoy.access_loggers.file',
        typed_config: {
          '@type': FILE_ACCESS_LOG_TYPE,
          path: p.path,
          log_format: p.labels
            ? { json_format: p.labels }
            : { text_format_source: { inline_string: p.text ?? ISTIO_TEXT_FORMAT } },
        },
        ...celFilter(entry.filter),
      });
    } else if (p?.kind === 'envoyOtelAls') {
      const attributes = Object.entries(p.labels ?? {}).map(([key, v]) => ({
        key,
        value: { string_value: String(v) },
      }));
      out.push({
        name: 'otel_envoy_accesslog',
        typed_config: {
          '@type': OTEL_ACCESS_LOG_TYPE,
          common_config: {
            log_name: p.logName ?? 'otel_envoy_accesslog',
            grpc_service: {
              envoy_grpc: { cluster_name: outboundCluster(p.service, p.port), authority: p.service },
            },
            transport_api_version: 'V3',
          },
          ...(p.text ? { body: { string_value: p.text } } : {}),
          ...(attributes.length ? { attributes: { values: attributes } } : {}),
        },
        ...celFilter(entry.filter),
      });
    }
  }
  return out;
}

/** The HCM fields telemetry adds (`tracing`, `access_log`) for one side of a proxy. */
export function hcmTelemetry(push: PushContext, proxy: ProxyInfo, side: Side): Json {
  const tracing = tracingFor(push, proxy, side);
  const accessLog = accessLogsFor(push, proxy, side);
  return { ...(tracing ? { tracing } : {}), ...(accessLog.length ? { access_log: accessLog } : {}) };
}

/** Istio's `istio.stats` HTTP filter, when a Prometheus provider collects this side's metrics. */
export function statsFilter(push: PushContext, proxy: ProxyInfo, side: Side): Json | undefined {
  const mesh = push.mesh.telemetry ?? DEFAULT_MESH_TELEMETRY;
  const metrics = effectiveTelemetry(push, proxy).metrics[side];
  if (!metrics.providers.some((name) => providerNamed(mesh, name)?.kind === 'prometheus')) return undefined;
  const value: Json = { ...statsPluginConfig(metrics) };
  // Inbound and at gateways the Host header could be anything a client sends: Istio does not trust it.
  if (side === 'server' || proxy.type === 'router') value.disable_host_header_fallback = true;
  return {
    name: 'istio.stats',
    typed_config: { '@type': TYPED_STRUCT_TYPE, type_url: STATS_PLUGIN_TYPE, value },
  };
}

/**
 * Every tcp_proxy chain of these listeners with the Telemetry API's TCP
 * telemetry, as Istio builds TCP chains: the `istio.stats` network filter
 * right before tcp_proxy (when a Prometheus provider collects that side's
 * metrics) and the side's access logs on tcp_proxy itself (a line per
 * connection) — the server side's on inbound listeners, the client side's on
 * outbound ones and at gateways.
 */
export function withTcpTelemetry(push: PushContext, proxy: ProxyInfo, listeners: Json[]): Json[] {
  const sides = {
    client: { stats: statsFilter(push, proxy, 'client'), accessLog: accessLogsFor(push, proxy, 'client') },
    server: { stats: statsFilter(push, proxy, 'server'), accessLog: accessLogsFor(push, proxy, 'server') },
  };
  const withTelemetry = (chain: Json, side: (typeof sides)['client']): Json => {
    const list = (chain.filters ?? []) as Json[];
    const last = list[list.length - 1];
    const typed = last?.typed_config as Json | undefined;
    if (typed?.['@type'] !== TCP_PROXY_TYPE) return chain;
    const tcpProxy = side.accessLog.length
      ? { ...last, typed_config: { ...typed, access_log: side.accessLog } }
      : last!;
    return { ...chain, filters: [...list.slice(0, -1), ...(side.stats ? [side.stats] : []), tcpProxy] };
  };
  return listeners.map((l) => {
    const side = sides[l.traffic_direction === 'INBOUND' && proxy.type !== 'router' ? 'server' : 'client'];
    if (!side.stats && side.accessLog.length === 0) return l;
    return {
      ...l,
      ...(Array.isArray(l.filter_chains)
        ? { filter_chains: (l.filter_chains as Json[]).map((c) => withTelemetry(c, side)) }
        : {}),
      ...(l.default_filter_chain
        ? { default_filter_chain: withTelemetry(l.default_filter_chain as Json, side) }
        : {}),
    };
  });
}

/** HTTP filters with the stats filter placed right before the router, as Istio orders them. */
export function withStatsFilter(filters: Json[], stats: Json | undefined): Json[] {
  if (!stats) return filters;
  return [...filters.slice(0, -1), stats, ...filters.slice(-1)];
}
