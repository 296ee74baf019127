import fs from 'node:fs';
import os from 'node:os';
import type {
  AccessLogFormat,
  AccessLogSettings,
  HttpObservation,
  HttpRequestRecord,
  HttpRequestStart,
  PeerMetadata,
  ProxyObserver,
  TcpConnectionRecord,
  TcpConnectionStart,
  TcpObservation,
} from '@mizzen/proxy';
import type { Logger } from '@mizzen/runtime';
import {
  compileExpression,
  connectionAttributes,
  denialDetails,
  evaluateFilter,
  evaluateTag,
  requestAttributes,
  responseCodeDetails,
} from './attributes.js';
import { OtlpLogExporter, stringAttributes } from './otlp-logs.js';
import { traceContextOf } from './trace-context.js';

/**
 * Envoy's access logs: each HCM `access_log` entry formats the finished
 * request, and each tcp_proxy `access_log` entry the connection, with
 * Envoy's command operators (`%REQ(:METHOD)%`, `%RESPONSE_FLAGS%`…) as a JSON
 * line (`json_format`) or a text line, filtered by its CEL expression, and
 * writes it to a file (`/dev/stdout`) or sends it as an OTLP log record whose
 * body is the line.
 */

/** Istio's JSON access-log format (`accessLogEncoding: JSON`), with the peers' identities. */
export const ISTIO_JSON_FORMAT: Readonly<Record<string, string>> = {
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_peer: '%FILTER_STATE(upstream_peer)%',
  downstream_peer: '%FILTER_STATE(downstream_peer)%',
  trace_id: '%TRACE_ID%',
};

/** Istio's default text access-log line. */
export const ISTIO_TEXT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

type Value = string | number | Record<string, unknown> | null;

type Attributes = ReturnType<typeof requestAttributes>;

function header(headers: Record<string, unknown>, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : String(v);
}

function peerJson(peer: PeerMetadata | undefined): Record<string, unknown> | null {
  if (!peer) return null;
  const out: Record<string, unknown> = {};
  if (peer.workload) out.workload = peer.workload;
  if (peer.namespace) out.namespace = peer.namespace;
  if (peer.serviceAccount) out.service_account = peer.serviceAccount;
  if (peer.labels.app) out.app = peer.labels.app;
  if (peer.labels.version) out.version = peer.labels.version;
  if (peer.clusterId) out.cluster = peer.clusterId;
  if (peer.id) out.id = peer.id;
  return out;
}

function withoutPort(address: string): string {
  const m = /^(\[[^\]]+\]|[^:]+|.*?)(?::\d+)?$/.exec(address);
  return m?.[1] ?? address;
}

/** Envoy's %ACCESS_LOG_TYPE% of a TCP connection's lines: once connected, periodic, at the end. */
export type TcpAccessLogType = 'TcpUpstreamConnected' | 'TcpPeriodic' | 'TcpConnectionEnd';

/** Everything a command operator may read: a finished request, or a TCP connection at one of its log points. */
export type LogContext =
  | { record: HttpRequestRecord; node: { id: string; cluster?: string } }
  | { connection: TcpConnectionRecord; type: TcpAccessLogType; node: { id: string; cluster?: string } };

/**
 * What Envoy's command operators see of a request or a connection, in one
 * shape: a TCP connection has no headers, route or response code (0), as in
 * Envoy's TCP access logs.
 */
interface LogView {
  readonly direction: 'inbound' | 'outbound';
  readonly startTime: Date;
  readonly durationMs: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly responseCode: number;
  readonly responseFlags: string;
  readonly responseCodeDetails?: string;
  /** Why the proxy closed a connection itself (Envoy's %CONNECTION_TERMINATION_DETAILS%). */
  readonly connectionTerminationDetails?: string;
  readonly protocol?: string;
  readonly upstreamTransportFailureReason?: string;
  readonly upstreamHost?: string;
  readonly upstreamCluster?: string;
  readonly upstreamLocalAddress?: string;
  readonly routeName?: string;
  readonly downstreamRemoteAddress?: string;
  readonly downstreamLocalAddress?: string;
  readonly requestedServerName?: string;
  readonly attempts?: number;
  readonly grpcStatus?: string;
  readonly upstreamServiceTimeMs?: number;
  readonly peer?: PeerMetadata;
  readonly sourcePrincipal?: string;
  readonly destinationPrincipal?: string;
  readonly dynamicMetadata?: HttpRequestRecord['dynamicMetadata'];
  readonly accessLogType: string;
  readonly trace?: { traceId: string; spanId: string };
  /** A request header or pseudo-header (`:method`, `:path`…); TCP has none. */
  requestHeader(name: string): string | undefined;
  responseHeader(name: string): string | undefined;
  /** Envoy's attributes, for `%CEL(…)%` and filters. */
  attributes(): Attributes;
}

function httpView(r: HttpRequestRecord, node: LogContext['node']): LogView {
  const reqHeaders = r.headers as Record<string, unknown>;
  let attributes: Attributes | undefined;
  const trace = traceContextOf(reqHeaders);
  return {
    direction: r.direction,
    startTime: r.startTime,
    durationMs: r.durationMs,
    bytesReceived: r.requestBytes,
    bytesSent: r.responseBytes,
    responseCode: r.responseCode,
    responseFlags: r.responseFlags,
    responseCodeDetails: responseCodeDetails(r),
    protocol: r.protocol,
    upstreamHost: r.upstreamHost,
    upstreamCluster: r.upstreamCluster,
    routeName: r.routeName,
    downstreamRemoteAddress: r.downstreamRemoteAddress || undefined,
    downstreamLocalAddress: r.downstreamLocalAddress || undefined,
    attempts: r.attempts,
    grpcStatus: r.grpcStatus,
    upstreamServiceTimeMs: r.upstreamServiceTimeMs,
    peer: r.peer,
    sourcePrincipal: r.sourcePrincipal,
    destinationPrincipal: r.destinationPrincipal,
    dynamicMetadata: r.dynamicMetadata,
    accessLogType: 'DownstreamEnd',
    ...(trace ? { trace: { traceId: trace.traceId, spanId: trace.spanId } } : {}),
    requestHeader: (n) => {
      switch (n.toLowerCase()) {
        case ':method':
          return r.method;
        case ':path':
          return r.path;
        case ':authority':
          return r.authority;
        case ':scheme':
          return r.scheme;
        default:
          return header(reqHeaders, n);
      }
    },
    responseHeader: (n) => header(r.responseHeaders as Record<string, unknown>, n),
    attributes: () => {
      attributes ??= requestAttributes(r, node);
      return attributes;
    },
  };
}

function tcpView(c: TcpConnectionRecord, type: TcpAccessLogType, node: LogContext['node']): LogView {
  let attributes: Attributes | undefined;
  return {
    direction: c.direction,
    startTime: c.startTime,
    durationMs: c.durationMs,
    bytesReceived: c.receivedBytes,
    bytesSent: c.sentBytes,
    responseCode: 0,
    responseFlags: c.responseFlags,
    upstreamTransportFailureReason: c.upstreamTransportFailureReason,
    upstreamHost: c.upstreamHost,
    // A connection authorization closed never reached tcp_proxy: no cluster was chosen.
    upstreamCluster: c.upstreamCluster || undefined,
    ...(c.denied ? { connectionTerminationDetails: denialDetails(c.denied) } : {}),
    upstreamLocalAddress: c.upstreamLocalAddress,
    downstreamRemoteAddress: c.downstreamRemoteAddress || undefined,
    downstreamLocalAddress: c.downstreamLocalAddress || undefined,
    requestedServerName: c.requestedServerName,
    // tcp_proxy's connect attempts: one, once it had a host to try.
    attempts: c.upstreamHost ? 1 : 0,
    peer: c.peer,
    sourcePrincipal: c.sourcePrincipal,
    destinationPrincipal: c.destinationPrincipal,
    accessLogType: type,
    requestHeader: () => undefined,
    responseHeader: () => undefined,
    attributes: () => {
      attributes ??= connectionAttributes(c, node);
      return attributes;
    },
  };
}

function viewOf(ctx: LogContext): LogView {
  return 'record' in ctx ? httpView(ctx.record, ctx.node) : tcpView(ctx.connection, ctx.type, ctx.node);
}

function truncate(v: string | undefined, max: string | undefined): string | undefined {
  if (v === undefined || !max) return v;
  const n = Number(max);
  return Number.isInteger(n) && n > 0 ? v.slice(0, n) : v;
}

/**
 * `%DYNAMIC_METADATA(NAMESPACE:KEY:…):Z%`: a filter's dynamic metadata (the
 * RBAC filter's `…shadow_effective_policy_id`, jwt_authn's payload), the
 * whole namespace when no key is given; strings truncated to Z.
 */
function dynamicMetadata(v: LogView, arg: string | undefined, max: string | undefined): Value | undefined {
  const [namespace, ...keys] = (arg ?? '').split(':');
  let value: unknown = v.dynamicMetadata?.[namespace ?? ''];
  for (const key of keys) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return truncate(value, max);
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return String(value);
  return value as Record<string, unknown>;
}

/** One command operator's value: undefined when Envoy would print `-` (or JSON null). */
function operator(
  name: string,
  arg: string | undefined,
  max: string | undefined,
  v: LogView,
): Value | undefined {
  switch (name) {
    case 'START_TIME':
      return v.startTime.toISOString();
    case 'REQ': {
      const [main, alt] = (arg ?? '').split('?');
      return truncate(v.requestHeader(main ?? '') ?? (alt ? v.requestHeader(alt) : undefined), max);
    }
    case 'RESP': {
      const [main, alt] = (arg ?? '').split('?');
      let value = v.responseHeader(main ?? '') ?? (alt ? v.responseHeader(alt) : undefined);
      if (
        value === undefined &&
        main?.toLowerCase() === 'x-envoy-upstream-service-time' &&
        v.upstreamServiceTimeMs !== undefined
      )
        value = String(Math.round(v.upstreamServiceTimeMs));
      return truncate(value, max);
    }
    case 'TRAILER':
      return undefined;
    case 'PROTOCOL':
      return v.protocol;
    case 'RESPONSE_CODE':
      return v.responseCode;
    case 'RESPONSE_CODE_DETAILS':
      return v.responseCodeDetails;
    case 'CONNECTION_TERMINATION_DETAILS':
      return v.connectionTerminationDetails;
    case 'RESPONSE_FLAGS':
      return v.responseFlags;
    case 'UPSTREAM_TRANSPORT_FAILURE_REASON':
      return v.upstreamTransportFailureReason;
    case 'GRPC_STATUS':
    case 'GRPC_STATUS_NUMBER':
      return v.grpcStatus;
    case 'BYTES_RECEIVED':
      return v.bytesReceived;
    case 'BYTES_SENT':
      return v.bytesSent;
    case 'DURATION':
      return Math.round(v.durationMs);
    case 'UPSTREAM_REQUEST_ATTEMPT_COUNT':
      return v.attempts;
    case 'UPSTREAM_HOST':
      return v.upstreamHost;
    case 'UPSTREAM_CLUSTER':
    case 'UPSTREAM_CLUSTER_RAW':
      return v.upstreamCluster;
    case 'UPSTREAM_LOCAL_ADDRESS':
      return v.upstreamLocalAddress;
    case 'ROUTE_NAME':
      return v.routeName;
    case 'DOWNSTREAM_REMOTE_ADDRESS':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS':
      return v.downstreamRemoteAddress;
    case 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT':
      return v.downstreamRemoteAddress ? withoutPort(v.downstreamRemoteAddress) : undefined;
    case 'DOWNSTREAM_LOCAL_ADDRESS':
      return v.downstreamLocalAddress;
    case 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT':
      return v.downstreamLocalAddress ? withoutPort(v.downstreamLocalAddress) : undefined;
    case 'REQUESTED_SERVER_NAME':
      return v.requestedServerName;
    case 'DOWNSTREAM_PEER_URI_SAN':
      return v.direction === 'inbound' ? v.sourcePrincipal : undefined;
    case 'UPSTREAM_PEER_URI_SAN':
      return v.direction === 'outbound' ? v.destinationPrincipal : undefined;
    case 'FILTER_STATE': {
      const key = (arg ?? '').split(':')[0];
      if (key === 'upstream_peer') return v.direction === 'outbound' ? peerJson(v.peer) : null;
      if (key === 'downstream_peer') return v.direction === 'inbound' ? peerJson(v.peer) : null;
      return undefined;
    }
    case 'DYNAMIC_METADATA':
      return dynamicMetadata(v, arg, max);
    case 'ACCESS_LOG_TYPE':
      return v.accessLogType;
    case 'TRACE_ID':
      return v.trace?.traceId;
    case 'HOSTNAME':
      return os.hostname();
    case 'ENVIRONMENT': {
      const [n, max2] = (arg ?? '').split(':');
      return truncate(process.env[n ?? ''], max2 ?? max);
    }
    case 'CEL':
      return evaluateTag(compileExpression(arg ?? ''), v.attributes());
    default:
      return undefined;
  }
}

const OPERATOR = /%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%/g;
const WHOLE_OPERATOR = /^%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%$/;

function replaceOperators(template: string, v: LogView): string {
  return template.replace(OPERATOR, (_m, name: string, arg: string | undefined, max: string | undefined) => {
    const value = operator(name, arg, max, v);
    if (value === undefined || value === null) return '-';
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  });
}

function formatJsonValue(value: unknown, v: LogView): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE_OPERATOR.exec(value);
    if (whole) {
      // A value that is one operator keeps its type (numbers stay numbers); missing is null.
      const result = operator(whole[1]!, whole[2], whole[3], v);
      return result === undefined ? null : result;
    }
    return replaceOperators(value, v);
  }
  if (Array.isArray(value)) return value.map((x) => formatJsonValue(x, v));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, x]) => [k, formatJsonValue(x, v)]));
  return value;
}

function formatView(format: AccessLogFormat, v: LogView): string {
  switch (format.kind) {
    case 'json':
      return JSON.stringify(formatJsonValue(format.fields, v));
    case 'text':
      return replaceOperators(format.template, v).replace(/\n$/, '');
    case 'default':
      return replaceOperators(ISTIO_TEXT_FORMAT, v).replace(/\n$/, '');
  }
}

/** A format string with every operator replaced; missing values print as `-`. */
export function formatText(template: string, ctx: LogContext): string {
  return replaceOperators(template, viewOf(ctx));
}

/** The line an access-log format produces for a request or connection (no trailing newline for JSON). */
export function formatAccessLog(format: AccessLogFormat, ctx: LogContext): string {
  return formatView(format, viewOf(ctx));
}

export interface AccessLoggerOptions {
  node: { id: string; cluster?: string };
  logger?: Logger;
  /** Resource attributes of exported log records (`service.name`…). */
  resource: Record<string, string>;
  /** Overrides where OpenTelemetry access logs go: an OTLP/HTTP base URL (`http://host:4318`). */
  otlpEndpoint?: string;
  /** Where `/dev/stdout` lines go (the process's stdout unless given). */
  stdout?: NodeJS.WritableStream;
  exportIntervalMs?: number;
}

/**
 * Resolves the OTLP/HTTP logs URL of an OpenTelemetry access logger: the
 * `--otlp-endpoint` override, else the host and port of its collector cluster
 * (`outbound|4318||otel-collector.observability.svc.cluster.local`), spoken
 * to over OTLP/HTTP.
 */
export function otlpLogsUrl(cluster: string | undefined, override: string | undefined): string | undefined {
  if (override) return `${override.replace(/\/+$/, '').replace(/\/v1\/(logs|traces)$/, '')}/v1/logs`;
  const parts = (cluster ?? '').split('|');
  if (parts.length === 4 && parts[0] === 'outbound' && parts[3] && /^\d+$/.test(parts[1]!)) {
    const host = parts[3].includes(':') ? `[${parts[3]}]` : parts[3];
    return `http://${host}:${parts[1]}/v1/logs`;
  }
  return undefined;
}

/** The access-log half of a proxy's telemetry, as a {@link ProxyObserver}. */
export class AccessLogger implements ProxyObserver {
  private readonly files = new Map<string, NodeJS.WritableStream>();
  private readonly exporters = new Map<string, OtlpLogExporter>();
  private readonly warned = new Set<string>();

  constructor(private readonly options: AccessLoggerOptions) {}

  startHttp(start: HttpRequestStart): HttpObservation | undefined {
    const logs = start.telemetry?.accessLogs;
    if (!logs?.length) return undefined;
    return { end: (record) => this.log(record, logs) };
  }

  /**
   * A TCP connection's lines, as tcp_proxy's access logs write them: one when
   * it ends (or could not be proxied), one once the upstream is up when
   * `flush_access_log_on_connected` asks, one every
   * `access_log_flush_interval` while it lives.
   */
  startTcp(start: TcpConnectionStart): TcpObservation | undefined {
    const logs = start.telemetry?.accessLogs;
    if (!logs?.length) return undefined;
    const onConnected = start.telemetry?.flushAccessLogOnConnected === true;
    let connected = false;
    return {
      // The first progress report is the connection coming up (with its peer known).
      progress: (c) => {
        if (connected) return;
        connected = true;
        if (onConnected) this.logConnection(c, 'TcpUpstreamConnected', logs);
      },
      flush: (c) => this.logConnection(c, 'TcpPeriodic', logs),
      end: (c) => this.logConnection(c, 'TcpConnectionEnd', logs),
      denied: (c) => this.logConnection(c, 'TcpConnectionEnd', logs),
    };
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.logger?.warn(fields, message);
  }

  /** Writes one request to every access log whose filter accepts it. */
  log(record: HttpRequestRecord, logs: readonly AccessLogSettings[]): void {
    this.write(httpView(record, this.options.node), logs);
  }

  /** Writes one TCP connection, at one of its log points, to every access log whose filter accepts it. */
  logConnection(
    connection: TcpConnectionRecord,
    type: TcpAccessLogType,
    logs: readonly AccessLogSettings[],
  ): void {
    this.write(tcpView(connection, type, this.options.node), logs);
  }

  private write(view: LogView, logs: readonly AccessLogSettings[]): void {
    for (const entry of logs) {
      if (entry.filter !== undefined) {
        const expr = compileExpression(entry.filter);
        if (expr.error) {
          this.warnOnce(
            `filter:${entry.filter}`,
            { filter: entry.filter, err: expr.error },
            'access-log filter does not parse; nothing logged by it',
          );
          continue;
        }
        if (!evaluateFilter(expr, view.attributes())) continue;
      }
      try {
        if (entry.sink.kind === 'file') this.writeFile(entry.sink.path, formatView(entry.sink.format, view));
        else this.export(entry, view);
      } catch (err) {
        this.warnOnce(
          `sink:${entry.name}`,
          { log: entry.name, err: (err as Error).message },
          'access log failed',
        );
      }
    }
  }

  private writeFile(path: string, line: string): void {
    let stream = this.files.get(path);
    if (!stream) {
      if (path === '/dev/stdout') stream = this.options.stdout ?? process.stdout;
      else if (path === '/dev/stderr') stream = process.stderr;
      else {
        const file = fs.createWriteStream(path, { flags: 'a' });
        file.on('error', (err) =>
          this.warnOnce(`file:${path}`, { path, err: err.message }, 'cannot write access log file'),
        );
        stream = file;
      }
      this.files.set(path, stream);
    }
    stream.write(`${line}\n`);
  }

  private export(entry: AccessLogSettings, view: LogView): void {
    if (entry.sink.kind !== 'otel') return;
    const url = otlpLogsUrl(entry.sink.cluster, this.options.otlpEndpoint);
    if (!url) {
      this.warnOnce(
        `url:${entry.name}`,
        { log: entry.name, cluster: entry.sink.cluster },
        'no OTLP endpoint for access log; set --otlp-endpoint',
      );
      return;
    }
    let exporter = this.exporters.get(url);
    if (!exporter) {
      exporter = new OtlpLogExporter({
        url,
        resource: this.options.resource,
        scope: 'mizzen.access_log',
        logger: this.options.logger,
        flushIntervalMs: this.options.exportIntervalMs,
      });
      this.exporters.set(url, exporter);
    }
    const attributes: Record<string, string> = { 'log.name': entry.sink.logName };
    for (const [k, template] of Object.entries(entry.sink.attributes))
      attributes[k] = replaceOperators(template, view);
    const nanos = `${BigInt(view.startTime.getTime()) * 1_000_000n}`;
    exporter.add({
      timeUnixNano: nanos,
      observedTimeUnixNano: `${BigInt(Date.now()) * 1_000_000n}`,
      severityNumber: 9,
      severityText: 'INFO',
      body: {
        stringValue: formatView(
          entry.sink.body.kind === 'default' ? { kind: 'json', fields: ISTIO_JSON_FORMAT } : entry.sink.body,
          view,
        ),
      },
      attributes: stringAttributes(attributes),
      ...(view.trace ? { traceId: view.trace.traceId, spanId: view.trace.spanId } : {}),
    });
  }

  /** Waits until every queued OTLP record was sent. */
  async flush(): Promise<void> {
    await Promise.all([...this.exporters.values()].map((e) => e.flush()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.exporters.values()].map((e) => e.close()));
    for (const [path, s] of this.files) if (path !== '/dev/stdout' && path !== '/dev/stderr') s.end();
  }
}
