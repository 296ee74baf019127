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
} from '@mizzen/proxy';
import type { Logger } from '@mizzen/runtime';
import {
  compileExpression,
  evaluateFilter,
  evaluateTag,
  requestAttributes,
  responseCodeDetails,
} from './attributes.js';
import { OtlpLogExporter, stringAttributes } from './otlp-logs.js';
import { traceContextOf } from './trace-context.js';

/**
 * Envoy's access logs: each HCM `access_log` entry formats the finished
 * request with Envoy's command operators (`%REQ(:METHOD)%`, `%RESPONSE_FLAGS%`…)
 * as a JSON line (`json_format`) or a text line, filtered by its CEL
 * expression, and writes it to a file (`/dev/stdout`) or sends it as an OTLP
 * log record whose body is the line.
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

/** Everything a command operator may read about a request. */
export interface LogContext {
  record: HttpRequestRecord;
  node: { id: string; cluster?: string };
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
function dynamicMetadata(
  r: HttpRequestRecord,
  arg: string | undefined,
  max: string | undefined,
): Value | undefined {
  const [namespace, ...keys] = (arg ?? '').split(':');
  let v: unknown = r.dynamicMetadata?.[namespace ?? ''];
  for (const key of keys) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return truncate(v, max);
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return String(v);
  return v as Record<string, unknown>;
}

/** One command operator's value: undefined when Envoy would print `-` (or JSON null). */
function operator(
  name: string,
  arg: string | undefined,
  max: string | undefined,
  ctx: LogContext,
): Value | undefined {
  const r = ctx.record;
  const reqHeaders = r.headers as Record<string, unknown>;
  const pseudo = (n: string): string | undefined => {
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
  };
  switch (name) {
    case 'START_TIME':
      return r.startTime.toISOString();
    case 'REQ': {
      const [main, alt] = (arg ?? '').split('?');
      return truncate(pseudo(main ?? '') ?? (alt ? pseudo(alt) : undefined), max);
    }
    case 'RESP': {
      const [main, alt] = (arg ?? '').split('?');
      const rh = r.responseHeaders as Record<string, unknown>;
      let v = header(rh, main ?? '') ?? (alt ? header(rh, alt) : undefined);
      if (
        v === undefined &&
        main?.toLowerCase() === 'x-envoy-upstream-service-time' &&
        r.upstreamServiceTimeMs !== undefined
      )
        v = String(Math.round(r.upstreamServiceTimeMs));
      return truncate(v, max);
    }
    case 'TRAILER':
      return undefined;
    case 'PROTOCOL':
      return r.protocol;
    case 'RESPONSE_CODE':
      return r.responseCode;
    case 'RESPONSE_CODE_DETAILS':
      return responseCodeDetails(r);
    case 'RESPONSE_FLAGS':
      return r.responseFlags;
    case 'GRPC_STATUS':
    case 'GRPC_STATUS_NUMBER':
      return r.grpcStatus;
    case 'BYTES_RECEIVED':
      return r.requestBytes;
    case 'BYTES_SENT':
      return r.responseBytes;
    case 'DURATION':
      return Math.round(r.durationMs);
    case 'UPSTREAM_REQUEST_ATTEMPT_COUNT':
      return r.attempts;
    case 'UPSTREAM_HOST':
      return r.upstreamHost;
    case 'UPSTREAM_CLUSTER':
    case 'UPSTREAM_CLUSTER_RAW':
      return r.upstreamCluster;
    case 'ROUTE_NAME':
      return r.routeName;
    case 'DOWNSTREAM_REMOTE_ADDRESS':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS':
      return r.downstreamRemoteAddress || undefined;
    case 'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT':
    case 'DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT':
      return r.downstreamRemoteAddress ? withoutPort(r.downstreamRemoteAddress) : undefined;
    case 'DOWNSTREAM_LOCAL_ADDRESS':
      return r.downstreamLocalAddress || undefined;
    case 'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT':
      return r.downstreamLocalAddress ? withoutPort(r.downstreamLocalAddress) : undefined;
    case 'DOWNSTREAM_PEER_URI_SAN':
      return r.direction === 'inbound' ? r.sourcePrincipal : undefined;
    case 'UPSTREAM_PEER_URI_SAN':
      return r.direction === 'outbound' ? r.destinationPrincipal : undefined;
    case 'FILTER_STATE': {
      const key = (arg ?? '').split(':')[0];
      if (key === 'upstream_peer') return r.direction === 'outbound' ? peerJson(r.peer) : null;
      if (key === 'downstream_peer') return r.direction === 'inbound' ? peerJson(r.peer) : null;
      return undefined;
    }
    case 'DYNAMIC_METADATA':
      return dynamicMetadata(r, arg, max);
    case 'TRACE_ID':
      return traceContextOf(reqHeaders)?.traceId;
    case 'HOSTNAME':
      return os.hostname();
    case 'ENVIRONMENT': {
      const [n, max2] = (arg ?? '').split(':');
      return truncate(process.env[n ?? ''], max2 ?? max);
    }
    case 'CEL': {
      const expr = compileExpression(arg ?? '');
      return evaluateTag(expr, requestAttributes(r, ctx.node));
    }
    default:
      return undefined;
  }
}

const OPERATOR = /%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%/g;
const WHOLE_OPERATOR = /^%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%$/;

/** A format string with every operator replaced; missing values print as `-`. */
export function formatText(template: string, ctx: LogContext): string {
  return template.replace(OPERATOR, (_m, name: string, arg: string | undefined, max: string | undefined) => {
    const v = operator(name, arg, max, ctx);
    if (v === undefined || v === null) return '-';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}

function formatJsonValue(v: unknown, ctx: LogContext): unknown {
  if (typeof v === 'string') {
    const whole = WHOLE_OPERATOR.exec(v);
    if (whole) {
      // A value that is one operator keeps its type (numbers stay numbers); missing is null.
      const value = operator(whole[1]!, whole[2], whole[3], ctx);
      return value === undefined ? null : value;
    }
    return formatText(v, ctx);
  }
  if (Array.isArray(v)) return v.map((x) => formatJsonValue(x, ctx));
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, formatJsonValue(x, ctx)]));
  return v;
}

/** The line an access-log format produces for a request (no trailing newline for JSON). */
export function formatAccessLog(format: AccessLogFormat, ctx: LogContext): string {
  switch (format.kind) {
    case 'json':
      return JSON.stringify(formatJsonValue(format.fields, ctx));
    case 'text':
      return formatText(format.template, ctx).replace(/\n$/, '');
    case 'default':
      return formatText(ISTIO_TEXT_FORMAT, ctx).replace(/\n$/, '');
  }
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

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.logger?.warn(fields, message);
  }

  /** Writes one request to every access log whose filter accepts it. */
  log(record: HttpRequestRecord, logs: readonly AccessLogSettings[]): void {
    const ctx: LogContext = { record, node: this.options.node };
    let attributes: ReturnType<typeof requestAttributes> | undefined;
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
        attributes ??= requestAttributes(record, this.options.node);
        if (!evaluateFilter(expr, attributes)) continue;
      }
      try {
        if (entry.sink.kind === 'file')
          this.writeFile(entry.sink.path, formatAccessLog(entry.sink.format, ctx));
        else this.export(entry, ctx);
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

  private export(entry: AccessLogSettings, ctx: LogContext): void {
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
    const r = ctx.record;
    const attributes: Record<string, string> = { 'log.name': entry.sink.logName };
    for (const [k, template] of Object.entries(entry.sink.attributes))
      attributes[k] = formatText(template, ctx);
    const trace = traceContextOf(r.headers as Record<string, unknown>);
    const nanos = `${BigInt(r.startTime.getTime()) * 1_000_000n}`;
    exporter.add({
      timeUnixNano: nanos,
      observedTimeUnixNano: `${BigInt(Date.now()) * 1_000_000n}`,
      severityNumber: 9,
      severityText: 'INFO',
      body: {
        stringValue: formatAccessLog(
          entry.sink.body.kind === 'default' ? { kind: 'json', fields: ISTIO_JSON_FORMAT } : entry.sink.body,
          ctx,
        ),
      },
      attributes: stringAttributes(attributes),
      ...(trace ? { traceId: trace.traceId, spanId: trace.spanId } : {}),
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
