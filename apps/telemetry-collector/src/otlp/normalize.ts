import type {
  Attributes,
  AttrValue,
  LogRecord,
  MetricPoint,
  MetricPointKind,
  SpanKindName,
  SpanRecord,
} from '../store/types.js';

/**
 * OTLP export requests in OTLP/JSON's shape (what OTLP/JSON bodies are, and
 * what @mizzen/xds decodes protobuf bodies into) → the collector's records.
 * Structural problems (a field of the wrong type) reject the whole request
 * with a reason naming the field; items with bad ids are rejected one by one
 * and reported as a partial success, as the OTLP spec asks.
 */
export class OtlpShapeError extends Error {
  override readonly name = 'OtlpShapeError';
}

export interface Normalised<T> {
  items: T[];
  rejected: number;
  /** The first rejection's reason. */
  rejectReason?: string;
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function list(parent: Obj, field: string, path: string, ...aliases: string[]): Obj[] {
  let value = parent[field];
  for (const alias of aliases) if (value === undefined) value = parent[alias];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new OtlpShapeError(`${path}.${field} must be an array`);
  value.forEach((v, i) => {
    if (!isObj(v)) throw new OtlpShapeError(`${path}.${field}[${i}] must be an object`);
  });
  return value as Obj[];
}

function obj(parent: Obj, field: string, path: string): Obj | undefined {
  const value = parent[field];
  if (value === undefined || value === null) return undefined;
  if (!isObj(value)) throw new OtlpShapeError(`${path}.${field} must be an object`);
  return value;
}

function str(parent: Obj, field: string, path: string): string {
  const value = parent[field];
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new OtlpShapeError(`${path}.${field} must be a string`);
  return value;
}

/** fixed64 nanoseconds (string or number) → microseconds. */
function nanosToMicros(value: unknown, path: string): number {
  if (value === undefined || value === null || value === '') return 0;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0)
      throw new OtlpShapeError(`${path} must be a non-negative integer`);
    return Math.floor(value / 1000);
  }
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(BigInt(value) / 1000n);
  throw new OtlpShapeError(`${path} must be an unsigned integer (nanoseconds), got ${JSON.stringify(value)}`);
}

function num(value: unknown, path: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && value.trim() !== '') {
    if (value === 'NaN') return Number.NaN;
    if (value === 'Infinity') return Number.POSITIVE_INFINITY;
    if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
    const n = Number(value);
    if (!Number.isNaN(n)) return n;
  }
  throw new OtlpShapeError(`${path} must be a number, got ${JSON.stringify(value)}`);
}

/** Enums arrive as numbers (the spec) or as their proto names (protojson accepts both). */
function enumValue(value: unknown, names: readonly string[], path: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string') {
    const i = names.indexOf(value);
    if (i >= 0) return i;
  }
  throw new OtlpShapeError(`${path} has unknown value ${JSON.stringify(value)}`);
}

export function anyValue(value: unknown, path: string, depth = 0): AttrValue {
  if (depth > 32) throw new OtlpShapeError(`${path} nests too deeply`);
  if (value === undefined || value === null) return null;
  if (!isObj(value)) throw new OtlpShapeError(`${path} must be an AnyValue object`);
  if ('stringValue' in value) return String(value.stringValue ?? '');
  if ('boolValue' in value) return Boolean(value.boolValue);
  if ('intValue' in value) {
    const v = value.intValue;
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isFinite(n)) throw new OtlpShapeError(`${path}.intValue must be an integer`);
    return Number.isSafeInteger(n) ? n : String(v);
  }
  if ('doubleValue' in value) return num(value.doubleValue, `${path}.doubleValue`) ?? 0;
  if ('bytesValue' in value) return String(value.bytesValue ?? '');
  if ('arrayValue' in value) {
    const arr = isObj(value.arrayValue) ? value.arrayValue : {};
    return list(arr, 'values', `${path}.arrayValue`).map((v, i) =>
      anyValue(v, `${path}.arrayValue.values[${i}]`, depth + 1),
    );
  }
  if ('kvlistValue' in value) {
    const kv = isObj(value.kvlistValue) ? value.kvlistValue : {};
    return attributes(list(kv, 'values', `${path}.kvlistValue`), `${path}.kvlistValue.values`, depth + 1);
  }
  return null;
}

export function attributes(kvs: Obj[], path: string, depth = 0): Attributes {
  const out: Attributes = {};
  kvs.forEach((kv, i) => {
    const key = str(kv, 'key', `${path}[${i}]`);
    out[key] = anyValue(kv.value, `${path}[${i}].value`, depth);
  });
  return out;
}

function resourceOf(parent: Obj, path: string): { attrs: Attributes; service: string } {
  const resource = obj(parent, 'resource', path);
  const attrs = resource
    ? attributes(list(resource, 'attributes', `${path}.resource`), `${path}.resource.attributes`)
    : {};
  const name = attrs['service.name'];
  return { attrs, service: typeof name === 'string' && name !== '' ? name : 'unknown_service' };
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '0'.repeat(32);
const ZERO16 = '0'.repeat(16);

function id(value: unknown): string {
  return typeof value === 'string' ? value.toLowerCase() : '';
}

const SPAN_KINDS: readonly SpanKindName[] = [
  'unspecified',
  'internal',
  'server',
  'client',
  'producer',
  'consumer',
];
const SPAN_KIND_NAMES = [
  'SPAN_KIND_UNSPECIFIED',
  'SPAN_KIND_INTERNAL',
  'SPAN_KIND_SERVER',
  'SPAN_KIND_CLIENT',
  'SPAN_KIND_PRODUCER',
  'SPAN_KIND_CONSUMER',
];
const STATUS_NAMES = ['STATUS_CODE_UNSET', 'STATUS_CODE_OK', 'STATUS_CODE_ERROR'];
const STATUS = ['unset', 'ok', 'error'] as const;

/** ExportTraceServiceRequest → spans. */
export function normaliseTraces(request: unknown, maxItems: number): Normalised<SpanRecord> {
  if (!isObj(request)) throw new OtlpShapeError('the body must be an ExportTraceServiceRequest object');
  const out: Normalised<SpanRecord> = { items: [], rejected: 0 };
  const reject = (reason: string) => {
    out.rejected++;
    out.rejectReason ??= reason;
  };
  let seen = 0;
  list(request, 'resourceSpans', 'request').forEach((rs, i) => {
    const path = `resourceSpans[${i}]`;
    const { attrs: resource, service } = resourceOf(rs, path);
    list(rs, 'scopeSpans', path, 'instrumentationLibrarySpans').forEach((ss, j) => {
      const spath = `${path}.scopeSpans[${j}]`;
      const scope = obj(ss, 'scope', spath) ?? obj(ss, 'instrumentationLibrary', spath);
      const spans = list(ss, 'spans', spath);
      seen += spans.length;
      if (seen > maxItems) throw new OtlpShapeError(`batch has more than ${maxItems} spans (the limit)`);
      spans.forEach((s, k) => {
        const p = `${spath}.spans[${k}]`;
        const traceId = id(s.traceId);
        const spanId = id(s.spanId);
        const parent = id(s.parentSpanId);
        if (!HEX32.test(traceId) || traceId === ZERO32) {
          reject(`${p}.traceId must be 32 hex digits, not all zero (got ${JSON.stringify(s.traceId)})`);
          return;
        }
        if (!HEX16.test(spanId) || spanId === ZERO16) {
          reject(`${p}.spanId must be 16 hex digits, not all zero (got ${JSON.stringify(s.spanId)})`);
          return;
        }
        if (parent !== '' && !HEX16.test(parent)) {
          reject(`${p}.parentSpanId must be 16 hex digits (got ${JSON.stringify(s.parentSpanId)})`);
          return;
        }
        const startUs = nanosToMicros(s.startTimeUnixNano, `${p}.startTimeUnixNano`);
        const endUs = nanosToMicros(s.endTimeUnixNano, `${p}.endTimeUnixNano`);
        const status = obj(s, 'status', p) ?? {};
        const statusCode = enumValue(status.code, STATUS_NAMES, `${p}.status.code`);
        const kind = enumValue(s.kind, SPAN_KIND_NAMES, `${p}.kind`);
        const span: SpanRecord = {
          traceId,
          spanId,
          name: str(s, 'name', p),
          kind: SPAN_KINDS[kind] ?? 'unspecified',
          service,
          startUs,
          durationUs: Math.max(0, endUs - startUs),
          status: { code: STATUS[statusCode] ?? 'unset' },
          attributes: attributes(list(s, 'attributes', p), `${p}.attributes`),
          resource,
          events: list(s, 'events', p).map((e, n) => ({
            timeUs: nanosToMicros(e.timeUnixNano, `${p}.events[${n}].timeUnixNano`),
            name: str(e, 'name', `${p}.events[${n}]`),
            attributes: attributes(
              list(e, 'attributes', `${p}.events[${n}]`),
              `${p}.events[${n}].attributes`,
            ),
          })),
          links: list(s, 'links', p).map((l, n) => ({
            traceId: id(l.traceId),
            spanId: id(l.spanId),
            attributes: attributes(list(l, 'attributes', `${p}.links[${n}]`), `${p}.links[${n}].attributes`),
          })),
        };
        if (parent !== '' && parent !== ZERO16) span.parentSpanId = parent;
        const message = str(status, 'message', `${p}.status`);
        if (message) span.status.message = message;
        if (scope && typeof scope.name === 'string' && scope.name) span.scope = scope.name;
        out.items.push(span);
      });
    });
  });
  return out;
}

const SEVERITY = ['', 'TRACE', 'TRACE2', 'TRACE3', 'TRACE4', 'DEBUG', 'DEBUG2', 'DEBUG3', 'DEBUG4'];
function severityText(n: number): string {
  if (n <= 0) return '';
  if (n <= 8) return SEVERITY[n]!;
  const names = ['INFO', 'WARN', 'ERROR', 'FATAL'];
  const group = Math.min(3, Math.floor((n - 9) / 4));
  const sub = ((n - 9) % 4) + 1;
  return sub === 1 ? names[group]! : `${names[group]}${sub}`;
}

const SEVERITY_NAMES = [
  'SEVERITY_NUMBER_UNSPECIFIED',
  ...Array.from({ length: 24 }, (_, i) => `SEVERITY_NUMBER_${severityText(i + 1)}`),
];

/** ExportLogsServiceRequest → log records; a JSON string body (an Envoy access-log line) becomes an object. */
export function normaliseLogs(request: unknown, maxItems: number): Normalised<LogRecord> {
  if (!isObj(request)) throw new OtlpShapeError('the body must be an ExportLogsServiceRequest object');
  const out: Normalised<LogRecord> = { items: [], rejected: 0 };
  let seen = 0;
  list(request, 'resourceLogs', 'request').forEach((rl, i) => {
    const path = `resourceLogs[${i}]`;
    const { service } = resourceOf(rl, path);
    list(rl, 'scopeLogs', path, 'instrumentationLibraryLogs').forEach((sl, j) => {
      const spath = `${path}.scopeLogs[${j}]`;
      const records = list(sl, 'logRecords', spath);
      seen += records.length;
      if (seen > maxItems)
        throw new OtlpShapeError(`batch has more than ${maxItems} log records (the limit)`);
      records.forEach((r, k) => {
        const p = `${spath}.logRecords[${k}]`;
        let body = anyValue(r.body, `${p}.body`);
        if (typeof body === 'string' && body.startsWith('{')) {
          try {
            body = JSON.parse(body) as AttrValue;
          } catch {
            // not JSON: keep the text
          }
        }
        const severityNumber = enumValue(r.severityNumber, SEVERITY_NAMES, `${p}.severityNumber`);
        const time = nanosToMicros(r.timeUnixNano, `${p}.timeUnixNano`);
        const log: LogRecord = {
          timeUs: time || nanosToMicros(r.observedTimeUnixNano, `${p}.observedTimeUnixNano`),
          service,
          severityNumber,
          severityText: str(r, 'severityText', p) || severityText(severityNumber),
          body,
          attributes: attributes(list(r, 'attributes', p), `${p}.attributes`),
        };
        const traceId = id(r.traceId);
        const spanId = id(r.spanId);
        if (HEX32.test(traceId) && traceId !== ZERO32) log.traceId = traceId;
        if (HEX16.test(spanId) && spanId !== ZERO16) log.spanId = spanId;
        out.items.push(log);
      });
    });
  });
  return out;
}

const TEMPORALITY = [
  'AGGREGATION_TEMPORALITY_UNSPECIFIED',
  'AGGREGATION_TEMPORALITY_DELTA',
  'AGGREGATION_TEMPORALITY_CUMULATIVE',
];

/** ExportMetricsServiceRequest → one point per data point. */
export function normaliseMetrics(request: unknown, maxItems: number): Normalised<MetricPoint> {
  if (!isObj(request)) throw new OtlpShapeError('the body must be an ExportMetricsServiceRequest object');
  const out: Normalised<MetricPoint> = { items: [], rejected: 0 };
  list(request, 'resourceMetrics', 'request').forEach((rm, i) => {
    const path = `resourceMetrics[${i}]`;
    const { service } = resourceOf(rm, path);
    list(rm, 'scopeMetrics', path, 'instrumentationLibraryMetrics').forEach((sm, j) => {
      const spath = `${path}.scopeMetrics[${j}]`;
      list(sm, 'metrics', spath).forEach((m, k) => {
        const p = `${spath}.metrics[${k}]`;
        const name = str(m, 'name', p);
        if (!name) {
          out.rejected++;
          out.rejectReason ??= `${p}.name is empty`;
          return;
        }
        const unit = str(m, 'unit', p);
        const kinds: MetricPointKind[] = ['gauge', 'sum', 'histogram', 'exponential_histogram', 'summary'];
        const fields = ['gauge', 'sum', 'histogram', 'exponentialHistogram', 'summary'];
        const at = fields.findIndex((f) => m[f] !== undefined && m[f] !== null);
        if (at < 0) {
          out.rejected++;
          out.rejectReason ??= `${p} has no data (gauge, sum, histogram, exponentialHistogram or summary)`;
          return;
        }
        const kind = kinds[at]!;
        const data = obj(m, fields[at]!, p)!;
        const temporalityCode = enumValue(
          data.aggregationTemporality,
          TEMPORALITY,
          `${p}.aggregationTemporality`,
        );
        const temporality =
          temporalityCode === 1 ? 'delta' : temporalityCode === 2 ? 'cumulative' : undefined;
        const points = list(data, 'dataPoints', `${p}.${fields[at]}`);
        if (out.items.length + points.length > maxItems) {
          throw new OtlpShapeError(`batch has more than ${maxItems} data points (the limit)`);
        }
        points.forEach((dp, n) => {
          const dpath = `${p}.${fields[at]}.dataPoints[${n}]`;
          const point: MetricPoint = {
            name,
            service,
            kind,
            unit,
            attributes: attributes(list(dp, 'attributes', dpath), `${dpath}.attributes`),
            timeUs: nanosToMicros(dp.timeUnixNano, `${dpath}.timeUnixNano`),
          };
          if (temporality) point.temporality = temporality;
          if (kind === 'sum') point.monotonic = Boolean(data.isMonotonic);
          if (kind === 'gauge' || kind === 'sum') {
            point.value = num(dp.asDouble, `${dpath}.asDouble`) ?? num(dp.asInt, `${dpath}.asInt`) ?? 0;
          } else {
            point.count = num(dp.count, `${dpath}.count`) ?? 0;
            const sum = num(dp.sum, `${dpath}.sum`);
            if (sum !== undefined) point.sum = sum;
          }
          if (kind === 'histogram') {
            const bounds = dp.explicitBounds;
            const counts = dp.bucketCounts;
            if (bounds !== undefined && !Array.isArray(bounds)) {
              throw new OtlpShapeError(`${dpath}.explicitBounds must be an array`);
            }
            if (counts !== undefined && !Array.isArray(counts)) {
              throw new OtlpShapeError(`${dpath}.bucketCounts must be an array`);
            }
            point.bounds = (bounds ?? []).map((b, x) => num(b, `${dpath}.explicitBounds[${x}]`) ?? 0);
            point.bucketCounts = (counts ?? []).map((c, x) => num(c, `${dpath}.bucketCounts[${x}]`) ?? 0);
          }
          if (kind === 'summary') {
            point.quantiles = list(dp, 'quantileValues', dpath).map((q, x) => ({
              quantile: num(q.quantile, `${dpath}.quantileValues[${x}].quantile`) ?? 0,
              value: num(q.value, `${dpath}.quantileValues[${x}].value`) ?? 0,
            }));
          }
          out.items.push(point);
        });
      });
    });
  });
  return out;
}
