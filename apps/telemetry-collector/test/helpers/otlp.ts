import {
  JsonLogsSerializer,
  JsonMetricsSerializer,
  JsonTraceSerializer,
  ProtobufLogsSerializer,
  ProtobufMetricsSerializer,
  ProtobufTraceSerializer,
} from '@opentelemetry/otlp-transformer';

/**
 * Real OTLP payloads, encoded by OpenTelemetry's own serializers
 * (@opentelemetry/otlp-transformer) from SDK-shaped records, so the
 * collector's decoding is checked against an independent encoder.
 */
export type ReadableSpan = Parameters<typeof ProtobufTraceSerializer.serializeRequest>[0][number];
export type ReadableLogRecord = Parameters<typeof ProtobufLogsSerializer.serializeRequest>[0][number];
export type ResourceMetrics = Parameters<typeof ProtobufMetricsSerializer.serializeRequest>[0];

const resources = new Map<string, { attributes: Record<string, string> }>();
const scope = { name: 'mizzen-test', version: '1.0.0' };

/** One resource object per service, as the SDK shares it (the serializers group by identity). */
export function resource(service: string, extra: Record<string, string> = {}) {
  const key = `${service}|${JSON.stringify(extra)}`;
  let r = resources.get(key);
  if (!r) {
    r = { attributes: { 'service.name': service, ...extra } };
    resources.set(key, r);
  }
  return r;
}

function hr(ms: number): [number, number] {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

/** SpanKind of @opentelemetry/api: INTERNAL 0, SERVER 1, CLIENT 2. */
export const Kind = { internal: 0, server: 1, client: 2 } as const;

export interface SpanSpec {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
  kind: number;
  startMs: number;
  durationMs: number;
  attributes?: Record<string, string | number | boolean | string[]>;
  error?: string;
  events?: { name: string; atMs: number; attributes?: Record<string, string> }[];
}

export function span(s: SpanSpec): ReadableSpan {
  return {
    name: s.name,
    kind: s.kind,
    spanContext: () => ({ traceId: s.traceId, spanId: s.spanId, traceFlags: 1 }),
    parentSpanContext: s.parentSpanId
      ? { traceId: s.traceId, spanId: s.parentSpanId, traceFlags: 1, isRemote: true }
      : undefined,
    startTime: hr(s.startMs),
    endTime: hr(s.startMs + s.durationMs),
    status: s.error ? { code: 2, message: s.error } : { code: 0 },
    attributes: s.attributes ?? {},
    links: [],
    events: (s.events ?? []).map((e) => ({ name: e.name, time: hr(e.atMs), attributes: e.attributes ?? {} })),
    duration: hr(s.durationMs),
    ended: true,
    resource: resource(s.service),
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  } as unknown as ReadableSpan;
}

export function tracesProtobuf(spans: ReadableSpan[]): Uint8Array {
  return ProtobufTraceSerializer.serializeRequest(spans)!;
}

export function tracesJson(spans: ReadableSpan[]): Uint8Array {
  return JsonTraceSerializer.serializeRequest(spans)!;
}

export interface LogSpec {
  service: string;
  atMs: number;
  body: unknown;
  severityNumber?: number;
  severityText?: string;
  attributes?: Record<string, string | number>;
  traceId?: string;
  spanId?: string;
}

export function log(l: LogSpec): ReadableLogRecord {
  return {
    hrTime: hr(l.atMs),
    hrTimeObserved: hr(l.atMs),
    spanContext: l.traceId
      ? { traceId: l.traceId, spanId: l.spanId ?? '0000000000000001', traceFlags: 1 }
      : undefined,
    severityNumber: l.severityNumber ?? 9,
    severityText: l.severityText,
    body: l.body,
    resource: resource(l.service),
    instrumentationScope: scope,
    attributes: l.attributes ?? {},
    droppedAttributesCount: 0,
  } as unknown as ReadableLogRecord;
}

export function logsProtobuf(logs: ReadableLogRecord[]): Uint8Array {
  return ProtobufLogsSerializer.serializeRequest(logs)!;
}

export function logsJson(logs: ReadableLogRecord[]): Uint8Array {
  return JsonLogsSerializer.serializeRequest(logs)!;
}

/** A counter (sum), a gauge and a histogram from one service, in the SDK's ResourceMetrics shape. */
export function metrics(service: string, atMs: number): ResourceMetrics {
  const time = hr(atMs);
  const start = hr(atMs - 10_000);
  return {
    resource: resource(service),
    scopeMetrics: [
      {
        scope,
        metrics: [
          {
            descriptor: {
              name: 'http.server.requests',
              description: 'requests',
              unit: '{request}',
              valueType: 0,
            },
            aggregationTemporality: 1,
            dataPointType: 3,
            isMonotonic: true,
            dataPoints: [{ startTime: start, endTime: time, attributes: { route: '/reviews' }, value: 42 }],
          },
          {
            descriptor: { name: 'process.memory.usage', description: 'rss', unit: 'By', valueType: 1 },
            aggregationTemporality: 1,
            dataPointType: 2,
            dataPoints: [{ startTime: start, endTime: time, attributes: {}, value: 1.5e6 }],
          },
          {
            descriptor: { name: 'http.server.duration', description: 'latency', unit: 'ms', valueType: 1 },
            aggregationTemporality: 1,
            dataPointType: 0,
            dataPoints: [
              {
                startTime: start,
                endTime: time,
                attributes: { route: '/reviews' },
                value: {
                  buckets: { boundaries: [10, 100], counts: [3, 5, 1] },
                  sum: 420,
                  count: 9,
                  min: 1,
                  max: 150,
                },
              },
            ],
          },
        ],
      },
    ],
  } as unknown as ResourceMetrics;
}

/** One gauge with `n` data points (distinct attributes), for batch-size limits. */
export function gaugePoints(service: string, n: number): ResourceMetrics {
  const time = hr(Date.now());
  return {
    resource: resource(service),
    scopeMetrics: [
      {
        scope,
        metrics: [
          {
            descriptor: { name: 'queue.depth', description: 'depth', unit: '1', valueType: 1 },
            aggregationTemporality: 1,
            dataPointType: 2,
            dataPoints: Array.from({ length: n }, (_, i) => ({
              startTime: time,
              endTime: time,
              attributes: { queue: `q${i}` },
              value: i,
            })),
          },
        ],
      },
    ],
  } as unknown as ResourceMetrics;
}

export function metricsProtobuf(m: ResourceMetrics): Uint8Array {
  return ProtobufMetricsSerializer.serializeRequest(m)!;
}

export function metricsJson(m: ResourceMetrics): Uint8Array {
  return JsonMetricsSerializer.serializeRequest(m)!;
}

export function hexId(bytes: number, seed: number): string {
  let out = '';
  for (let i = 0; i < bytes; i++) out += ((seed * 31 + i * 17 + 1) % 256).toString(16).padStart(2, '0');
  return out;
}
