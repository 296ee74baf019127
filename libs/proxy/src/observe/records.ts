import type { HeaderMap } from '../config/headers.js';

/** The workload on the other end of a request, learned through Istio's metadata exchange. */
export interface PeerMetadata {
  /** Proxy node id (`x-envoy-peer-metadata-id`). */
  readonly id: string;
  readonly name?: string;
  readonly namespace?: string;
  readonly workload?: string;
  readonly serviceAccount?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly clusterId?: string;
}

export type TrafficDirection = 'inbound' | 'outbound';

/** One of Envoy's tracing custom tags: a literal, a request header, or an environment variable. */
export type CustomTag =
  | { readonly tag: string; readonly kind: 'literal'; readonly value: string }
  | { readonly tag: string; readonly kind: 'header'; readonly name: string; readonly defaultValue?: string }
  | {
      readonly tag: string;
      readonly kind: 'environment';
      readonly name: string;
      readonly defaultValue?: string;
    };

/** Where spans go: Envoy's OpenTelemetry tracer (`envoy.config.trace.v3.OpenTelemetryConfig`). */
export interface TracingProvider {
  readonly kind: 'opentelemetry';
  readonly serviceName?: string;
  /** OTLP/HTTP traces URL (`http_service.http_uri.uri`). */
  readonly httpEndpoint?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** The cluster an OTLP/gRPC exporter would use (`grpc_service.envoy_grpc.cluster_name`). */
  readonly grpcCluster?: string;
}

/** The HTTP connection manager's `tracing`, compiled. Percentages are 0-100. */
export interface TracingSettings {
  readonly randomSamplingPercent: number;
  readonly clientSamplingPercent: number;
  readonly overallSamplingPercent: number;
  readonly customTags: readonly CustomTag[];
  readonly maxPathTagLength: number;
  /** Absent: spans are made and propagated but the proxy has nowhere to send them. */
  readonly provider?: TracingProvider;
}

/** Envoy's access-log format: `json_format` fields, a `text_format_source` template, or the default line. */
export type AccessLogFormat =
  | { readonly kind: 'json'; readonly fields: Readonly<Record<string, unknown>> }
  | { readonly kind: 'text'; readonly template: string }
  | { readonly kind: 'default' };

export type AccessLogSink =
  | { readonly kind: 'file'; readonly path: string; readonly format: AccessLogFormat }
  | {
      /** Envoy's OpenTelemetry access logger: OTLP log records whose body is the formatted line. */
      readonly kind: 'otel';
      readonly logName: string;
      /** `outbound|4317||collector…`: the collector's cluster (`grpc_service.envoy_grpc`). */
      readonly cluster?: string;
      readonly body: AccessLogFormat;
      readonly attributes: Readonly<Record<string, string>>;
    };

/** One HCM `access_log` entry, compiled. */
export interface AccessLogSettings {
  readonly name: string;
  /** A CEL expression (Envoy's CEL extension filter): only requests for which it is true are logged. */
  readonly filter?: string;
  readonly sink: AccessLogSink;
}

/** One `stats.PluginConfig` metric entry: Istio's metric overrides (Telemetry API `metrics.overrides`). */
export interface MetricOverrideSettings {
  /** `requests_total`, `request_duration_milliseconds`…; empty for every metric. */
  readonly name: string;
  /** Tag → CEL expression whose value the tag takes. */
  readonly dimensions: Readonly<Record<string, string>>;
  readonly tagsToRemove: readonly string[];
  readonly drop: boolean;
}

/** The `istio.stats` filter's `stats.PluginConfig`: Istio's standard metrics are reported when present. */
export interface StatsSettings {
  readonly metrics: readonly MetricOverrideSettings[];
  readonly disableHostHeaderFallback: boolean;
}

/** What the listener's config asks of telemetry for each request (Istio's Telemetry API, as pilot sent it). */
export interface HttpTelemetryConfig {
  readonly tracing?: TracingSettings;
  readonly accessLogs: readonly AccessLogSettings[];
  readonly stats?: StatsSettings;
}

/** What an observer sees when a request arrives (before routing). */
export interface HttpRequestStart {
  readonly direction: TrafficDirection;
  readonly listener: string;
  /** The HTTP connection manager's stat_prefix (`inbound_0.0.0.0_9080`): Envoy's per-HCM stats carry it. */
  readonly statPrefix?: string;
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly scheme: string;
  readonly protocol: 'HTTP/1.1' | 'HTTP/1.0' | 'HTTP/2';
  /** The request headers as they will go upstream: an observer may add to them (trace context). */
  readonly headers: HeaderMap;
  readonly downstreamRemoteAddress: string;
  readonly downstreamLocalAddress: string;
  readonly startTime: Date;
  /** Telemetry settings of the listener that took the request (tracing, access logs, metric overrides). */
  readonly telemetry?: HttpTelemetryConfig;
}

/** Everything about one finished request, in Envoy's access-log and Istio's metric terms. */
export interface HttpRequestRecord extends HttpRequestStart {
  readonly durationMs: number;
  /** 0 when the downstream went away before any response. */
  readonly responseCode: number;
  readonly responseHeaders: HeaderMap;
  /** gRPC status from the response trailers or headers, if any. */
  readonly grpcStatus?: string;
  /** Envoy's %RESPONSE_FLAGS%: `-`, or `UH`, `UO,URX`… */
  readonly responseFlags: string;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly routeName?: string;
  readonly upstreamCluster?: string;
  readonly upstreamHost?: string;
  readonly upstreamServiceTimeMs?: number;
  readonly attempts: number;
  /** The workload that called (inbound) or answered (outbound), when it has a sidecar. */
  readonly peer?: PeerMetadata;
  /** `mutual_tls` when the hop was mTLS, else `none`. */
  readonly connectionSecurityPolicy: 'mutual_tls' | 'none' | 'unknown';
  readonly sourcePrincipal?: string;
  readonly destinationPrincipal?: string;
  /** Authorization's decision, when the listener has authorization filters. */
  readonly authz?: AuthzOutcomeRecord;
  /** Envoy's dynamic metadata by filter namespace (RBAC shadow results, jwt_authn payloads): `%DYNAMIC_METADATA(…)%`. */
  readonly dynamicMetadata?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
}

/** What the authorization filters decided for one request or connection. */
export interface AuthzOutcomeRecord {
  readonly allowed: boolean;
  /** The policy that denied or admitted it (`ns[foo]-policy[bar]-rule[0]`), when one matched. */
  readonly policy?: string;
  readonly deniedBy?: 'rbac' | 'ext_authz' | 'jwt';
  /** The external authorizer could not be asked or failed (Envoy's `ext_authz_error`), rather than said no. */
  readonly extAuthzError?: boolean;
  /** istio.io/dry-run policies: what they would have decided, never enforced. */
  readonly dryRun: readonly { action: string; allowed: boolean; policy?: string }[];
  /** AUDIT policies that matched. */
  readonly audited: readonly string[];
}

/** What a tcp_proxy chain asks of telemetry: Istio's `istio.stats` network filter before it, and its access logs. */
export interface TcpTelemetryConfig {
  readonly stats?: StatsSettings;
  /** tcp_proxy's `access_log` entries: one line per connection when it ends. */
  readonly accessLogs?: readonly AccessLogSettings[];
  /** `access_log_options.access_log_flush_interval`: a line every interval while the connection lives. */
  readonly accessLogFlushIntervalMs?: number;
  /** `access_log_options.flush_access_log_on_connected`: a line once the upstream connection is up. */
  readonly flushAccessLogOnConnected?: boolean;
}

export interface TcpConnectionStart {
  readonly direction: TrafficDirection;
  readonly listener: string;
  /** The cluster tcp_proxy picked (it may not exist: `NC`). */
  readonly upstreamCluster: string;
  readonly downstreamRemoteAddress: string;
  /** Where the downstream connected to (its original destination when it was redirected). */
  readonly downstreamLocalAddress: string;
  /** The SNI the downstream's TLS ClientHello named, if any. */
  readonly requestedServerName?: string;
  readonly startTime: Date;
  /** Telemetry settings of the chain that took the connection. */
  readonly telemetry?: TcpTelemetryConfig;
}

export interface TcpConnectionRecord extends TcpConnectionStart {
  /** The host picked, once there is one. */
  readonly upstreamHost?: string;
  /** This proxy's end of the upstream connection, once it is up. */
  readonly upstreamLocalAddress?: string;
  readonly durationMs: number;
  /** Bytes from the downstream to the upstream. */
  readonly receivedBytes: number;
  /** Bytes from the upstream to the downstream. */
  readonly sentBytes: number;
  /**
   * Envoy's %RESPONSE_FLAGS%: `-`, or `NC` (no cluster), `UH` (no healthy
   * host), `UO` (max connections), `UF` (connecting failed), `DC`, `DT`
   * (max_downstream_connection_duration reached).
   */
  readonly responseFlags: string;
  /** Why connecting upstream failed (Envoy's %UPSTREAM_TRANSPORT_FAILURE_REASON%), with `UF`. */
  readonly upstreamTransportFailureReason?: string;
  /**
   * Authorization closed the connection before tcp_proxy took it (Istio's
   * TCP denial): who denied it, for Envoy's %CONNECTION_TERMINATION_DETAILS%.
   */
  readonly denied?: Pick<AuthzOutcomeRecord, 'policy' | 'deniedBy' | 'extAuthzError'>;
  readonly connectionSecurityPolicy: 'mutual_tls' | 'none' | 'unknown';
  /**
   * The workload on the other end, from Istio's TCP metadata exchange when
   * the peer's sidecar took part in it; otherwise what the proxy knows
   * without it — inbound, the workload pilot's endpoints say runs as the
   * caller's certificate identity; outbound, the host's workload from its
   * endpoint metadata. Undefined when the proxy cannot know it.
   */
  readonly peer?: PeerMetadata;
  /** The caller's SPIFFE identity (inbound mTLS). */
  readonly sourcePrincipal?: string;
  /** The SPIFFE identity the upstream proved (outbound mTLS). */
  readonly destinationPrincipal?: string;
}

export interface HttpObservation {
  end(record: HttpRequestRecord): void;
}

export interface TcpObservation {
  /**
   * Called once the upstream connection is up and the peer is known (after
   * the metadata exchange, when there is one), then every few seconds with
   * the bytes so far (Istio reports TCP bytes while a connection lives).
   */
  progress?(record: TcpConnectionRecord): void;
  /** Called every `accessLogFlushIntervalMs` of the chain while the connection lives. */
  flush?(record: TcpConnectionRecord): void;
  /** Called once when the connection closes, or when it could not be proxied (its flags say why). */
  end(record: TcpConnectionRecord): void;
  /**
   * Called instead of `end` for a connection authorization closed: tcp_proxy
   * never saw it, yet its access logs write it when it goes (as Envoy's
   * tcp_proxy does); Istio's stats filter, after the RBAC filter, never counts it.
   */
  denied?(record: TcpConnectionRecord): void;
}

/**
 * Where telemetry plugs into the data plane: metrics, access logs and tracing
 * each observe requests and connections through this one interface.
 */
export interface ProxyObserver {
  startHttp?(start: HttpRequestStart): HttpObservation | undefined;
  startTcp?(start: TcpConnectionStart): TcpObservation | undefined;
}

/** Several observers as one. */
export function combineObservers(observers: readonly ProxyObserver[]): ProxyObserver | undefined {
  if (observers.length === 0) return undefined;
  if (observers.length === 1) return observers[0];
  return {
    startHttp: (start) => {
      const obs = observers
        .map((o) => o.startHttp?.(start))
        .filter((o): o is HttpObservation => o !== undefined);
      if (obs.length === 0) return undefined;
      return {
        end: (r) => {
          for (const o of obs) o.end(r);
        },
      };
    },
    startTcp: (start) => {
      const obs = observers
        .map((o) => o.startTcp?.(start))
        .filter((o): o is TcpObservation => o !== undefined);
      if (obs.length === 0) return undefined;
      return {
        progress: (r) => {
          for (const o of obs) o.progress?.(r);
        },
        flush: (r) => {
          for (const o of obs) o.flush?.(r);
        },
        end: (r) => {
          for (const o of obs) o.end(r);
        },
        denied: (r) => {
          for (const o of obs) o.denied?.(r);
        },
      };
    },
  };
}
