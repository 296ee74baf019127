import type {
  AccessLogging,
  ConfigResource,
  Metrics,
  MetricsOverrides,
  TelemetrySpec,
  Tracing,
  TracingCustomTag,
  WorkloadMode,
} from '@mizzen/api';

/**
 * Istio's Telemetry API resolution, pure: given every `Telemetry` resource
 * and one workload, the effective tracing, access logging and metrics for
 * its client side (outbound listeners, and gateways) and its server side
 * (inbound listeners). Scopes apply from the least to the most specific —
 * mesh (root namespace, no selector), namespace (no selector), workload
 * (selector matching its labels) — and a more specific scope overrides a
 * less specific one field by field, provider by provider.
 */

export type TelemetryResource = ConfigResource<'Telemetry'>;

/** The side of a workload a setting is for. Gateways are clients, as in Istio. */
export type Side = 'client' | 'server';

export interface TelemetryWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
}

export interface TelemetryDefaults {
  rootNamespace: string;
  /** MeshConfig `defaultProviders`. */
  defaultProviders: { tracing: string[]; metrics: string[]; accessLogging: string[] };
  /** MeshConfig `defaultConfig.tracing.sampling` (percent) when tracing is on and nothing sets a percentage. */
  defaultSamplingPercentage: number;
}

export interface EffectiveTracing {
  provider: string;
  randomSamplingPercentage: number;
  disableSpanReporting: boolean;
  customTags: Record<string, TracingCustomTag>;
  useRequestIdForTraceSampling: boolean;
}

export interface EffectiveAccessLog {
  provider: string;
  /** CEL expression; only matching requests are logged. */
  filter?: string;
}

/** One metric's overrides after merging every scope (`stats.PluginConfig` metric entry). */
export interface EffectiveMetricOverride {
  /** `requests_total`… or a custom metric name. */
  name: string;
  drop: boolean;
  dimensions: Record<string, string>;
  tagsToRemove: string[];
}

export interface EffectiveMetrics {
  providers: string[];
  overrides: EffectiveMetricOverride[];
  reportingInterval?: string;
}

export interface EffectiveTelemetry {
  /** The Telemetry resources that applied, least specific first (`namespace/name`). */
  sources: string[];
  tracing: Record<Side, EffectiveTracing | undefined>;
  accessLogs: Record<Side, EffectiveAccessLog[]>;
  metrics: Record<Side, EffectiveMetrics>;
}

/** Istio's metric names in the Telemetry API → the names the stats filter uses. */
export const METRIC_NAMES: Record<string, string> = {
  REQUEST_COUNT: 'requests_total',
  REQUEST_DURATION: 'request_duration_milliseconds',
  REQUEST_SIZE: 'request_bytes',
  RESPONSE_SIZE: 'response_bytes',
  TCP_OPENED_CONNECTIONS: 'tcp_connections_opened_total',
  TCP_CLOSED_CONNECTIONS: 'tcp_connections_closed_total',
  TCP_SENT_BYTES: 'tcp_sent_bytes_total',
  TCP_RECEIVED_BYTES: 'tcp_received_bytes_total',
  GRPC_REQUEST_MESSAGES: 'request_messages_total',
  GRPC_RESPONSE_MESSAGES: 'response_messages_total',
};

const SIDES: Side[] = ['client', 'server'];

function modeMatches(mode: WorkloadMode | undefined, side: Side): boolean {
  if (mode === undefined || mode === 'CLIENT_AND_SERVER') return true;
  return mode === (side === 'client' ? 'CLIENT' : 'SERVER');
}

function labelsMatch(selector: Record<string, string>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function olderFirst(a: TelemetryResource, b: TelemetryResource): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = `${a.metadata.namespace}/${a.metadata.name}`;
  const nb = `${b.metadata.namespace}/${b.metadata.name}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

function hasSelector(spec: TelemetrySpec): boolean {
  return spec.selector !== undefined || spec.targetRef !== undefined || (spec.targetRefs?.length ?? 0) > 0;
}

/**
 * The Telemetry resources that apply to a workload, least specific first:
 * the mesh-wide one (root namespace, no selector), the namespace-wide one,
 * then the one whose selector matches the workload. Where several compete
 * for one scope, the oldest wins, as in Istio.
 */
export function applicableTelemetries(
  resources: readonly TelemetryResource[],
  workload: TelemetryWorkload,
  rootNamespace: string,
): TelemetryResource[] {
  const sorted = [...resources].sort(olderFirst);
  const mesh = sorted.find((t) => t.metadata.namespace === rootNamespace && !hasSelector(t.spec));
  const namespace =
    workload.namespace === rootNamespace
      ? undefined
      : sorted.find((t) => t.metadata.namespace === workload.namespace && !hasSelector(t.spec));
  const selected = sorted.find(
    (t) =>
      t.metadata.namespace === workload.namespace &&
      t.spec.selector !== undefined &&
      Object.keys(t.spec.selector.matchLabels ?? {}).length > 0 &&
      labelsMatch(t.spec.selector.matchLabels ?? {}, workload.labels),
  );
  return [mesh, namespace, selected].filter((t): t is TelemetryResource => t !== undefined);
}

function resolveTracing(
  scopes: readonly TelemetrySpec[],
  side: Side,
  defaults: TelemetryDefaults,
): EffectiveTracing | undefined {
  let provider = defaults.defaultProviders.tracing[0];
  let sampling: number | undefined;
  let disable = false;
  let useRequestId = true;
  const tags: Record<string, TracingCustomTag> = {};
  for (const spec of scopes) {
    for (const t of (spec.tracing ?? []) as Tracing[]) {
      if (!modeMatches(t.match?.mode, side)) continue;
      if (t.providers?.length) provider = t.providers[0]!.name;
      if (t.randomSamplingPercentage !== undefined) sampling = t.randomSamplingPercentage;
      if (t.disableSpanReporting !== undefined) disable = t.disableSpanReporting;
      if (t.useRequestIdForTraceSampling !== undefined) useRequestId = t.useRequestIdForTraceSampling;
      Object.assign(tags, t.customTags ?? {});
    }
  }
  if (!provider) return undefined;
  return {
    provider,
    randomSamplingPercentage: sampling ?? defaults.defaultSamplingPercentage,
    disableSpanReporting: disable,
    customTags: tags,
    useRequestIdForTraceSampling: useRequestId,
  };
}

function resolveAccessLogs(
  scopes: readonly TelemetrySpec[],
  side: Side,
  defaults: TelemetryDefaults,
): EffectiveAccessLog[] {
  // Provider → its settings; an entry without providers speaks for the default providers.
  const byProvider = new Map<string, { disabled: boolean; filter?: string }>();
  for (const p of defaults.defaultProviders.accessLogging) byProvider.set(p, { disabled: false });
  for (const spec of scopes) {
    for (const a of (spec.accessLogging ?? []) as AccessLogging[]) {
      if (!modeMatches(a.match?.mode, side)) continue;
      const names = a.providers?.length
        ? a.providers.map((p) => p.name)
        : defaults.defaultProviders.accessLogging;
      for (const name of names) {
        const prev = byProvider.get(name);
        byProvider.set(name, {
          disabled: a.disabled ?? false,
          // A filter stays in force until a more specific scope sets another.
          filter: a.filter?.expression ?? prev?.filter,
        });
      }
    }
  }
  return [...byProvider.entries()]
    .filter(([, v]) => !v.disabled)
    .map(([provider, v]) => (v.filter ? { provider, filter: v.filter } : { provider }));
}

function applyOverride(
  merged: Map<string, EffectiveMetricOverride>,
  names: string[],
  o: MetricsOverrides,
): void {
  for (const name of names) {
    const m = merged.get(name) ?? { name, drop: false, dimensions: {}, tagsToRemove: [] };
    if (o.disabled !== undefined) m.drop = o.disabled;
    for (const [tag, t] of Object.entries(o.tagOverrides ?? {})) {
      if ((t.operation ?? 'UPSERT') === 'REMOVE') {
        delete m.dimensions[tag];
        if (!m.tagsToRemove.includes(tag)) m.tagsToRemove.push(tag);
      } else if (t.value !== undefined) {
        m.dimensions[tag] = t.value;
        m.tagsToRemove = m.tagsToRemove.filter((x) => x !== tag);
      }
    }
    merged.set(name, m);
  }
}

const STANDARD_METRICS = Object.values(METRIC_NAMES).filter((n) => !n.endsWith('messages_total'));

function resolveMetrics(
  scopes: readonly TelemetrySpec[],
  side: Side,
  defaults: TelemetryDefaults,
): EffectiveMetrics {
  let providers = [...defaults.defaultProviders.metrics];
  let interval: string | undefined;
  const merged = new Map<string, EffectiveMetricOverride>();
  for (const spec of scopes) {
    for (const m of (spec.metrics ?? []) as Metrics[]) {
      if (m.providers?.length) providers = m.providers.map((p) => p.name);
      if (m.reportingInterval) interval = m.reportingInterval;
      for (const o of m.overrides ?? []) {
        if (!modeMatches(o.match?.mode, side)) continue;
        const metric = o.match?.metric;
        const names = o.match?.customMetric
          ? [o.match.customMetric]
          : metric && metric !== 'ALL_METRICS'
            ? [METRIC_NAMES[metric]!]
            : STANDARD_METRICS;
        applyOverride(merged, names, o);
      }
    }
  }
  const overrides = [...merged.values()]
    .filter((o) => o.drop || o.tagsToRemove.length || Object.keys(o.dimensions).length)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { providers, overrides, ...(interval ? { reportingInterval: interval } : {}) };
}

/** The effective telemetry of one workload. */
export function resolveTelemetry(
  resources: readonly TelemetryResource[],
  workload: TelemetryWorkload,
  defaults: TelemetryDefaults,
): EffectiveTelemetry {
  const applied = applicableTelemetries(resources, workload, defaults.rootNamespace);
  const scopes = applied.map((t) => t.spec);
  const result: EffectiveTelemetry = {
    sources: applied.map((t) => `${t.metadata.namespace}/${t.metadata.name}`),
    tracing: { client: undefined, server: undefined },
    accessLogs: { client: [], server: [] },
    metrics: { client: { providers: [], overrides: [] }, server: { providers: [], overrides: [] } },
  };
  for (const side of SIDES) {
    result.tracing[side] = resolveTracing(scopes, side, defaults);
    result.accessLogs[side] = resolveAccessLogs(scopes, side, defaults);
    result.metrics[side] = resolveMetrics(scopes, side, defaults);
  }
  return result;
}

/** The `stats.PluginConfig` (proto JSON field names) for one side's metric overrides. */
export function statsPluginConfig(metrics: EffectiveMetrics): Record<string, unknown> {
  const entries = metrics.overrides.map((o) => ({
    ...(o.name ? { name: o.name } : {}),
    ...(Object.keys(o.dimensions).length ? { dimensions: { ...o.dimensions } } : {}),
    ...(o.tagsToRemove.length ? { tags_to_remove: [...o.tagsToRemove] } : {}),
    ...(o.drop ? { drop: true } : {}),
  }));
  return entries.length ? { metrics: entries } : {};
}
