import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/**
 * OTLP (OpenTelemetry protocol) over protobuf: the collector services'
 * request and response messages, loaded by reflection from the .proto files
 * under `libs/xds/protos/opentelemetry`. Requests decode into OTLP/JSON's
 * shape (lowerCamelCase fields, hex trace and span ids, 64-bit integers as
 * decimal strings) so a receiver handles both encodings with one code path.
 */
export type OtlpSignal = 'traces' | 'metrics' | 'logs';

/** The gRPC method paths of the three OTLP collector services. */
export const OTLP_GRPC_METHODS: Readonly<Record<OtlpSignal, string>> = {
  traces: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
  metrics: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
  logs: '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
};

const PACKAGES: Record<OtlpSignal, { pkg: string; name: string; rejected: string }> = {
  traces: { pkg: 'opentelemetry.proto.collector.trace.v1', name: 'Trace', rejected: 'rejectedSpans' },
  metrics: {
    pkg: 'opentelemetry.proto.collector.metrics.v1',
    name: 'Metrics',
    rejected: 'rejectedDataPoints',
  },
  logs: { pkg: 'opentelemetry.proto.collector.logs.v1', name: 'Logs', rejected: 'rejectedLogRecords' },
};

/** Thrown when bytes are not a valid OTLP export request. */
export class OtlpDecodeError extends Error {
  override readonly name = 'OtlpDecodeError';
}

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
let cachedRoot: protobuf.Root | undefined;

function otlpRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  const dirs = [
    path.resolve(here, '..', 'protos'),
    path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps', 'googleapis'),
  ];
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target;
  };
  for (const file of [
    'opentelemetry/proto/collector/trace/v1/trace_service.proto',
    'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
    'opentelemetry/proto/collector/logs/v1/logs_service.proto',
    'google/rpc/status.proto',
  ]) {
    root.loadSync(file);
  }
  root.resolveAll();
  cachedRoot = root;
  return root;
}

function lookup(name: string): protobuf.Type {
  return otlpRoot().lookupType(name);
}

function requestType(signal: OtlpSignal): protobuf.Type {
  const p = PACKAGES[signal];
  return lookup(`${p.pkg}.Export${p.name}ServiceRequest`);
}

function responseType(signal: OtlpSignal): protobuf.Type {
  const p = PACKAGES[signal];
  return lookup(`${p.pkg}.Export${p.name}ServiceResponse`);
}

const ID_FIELDS = new Set(['traceId', 'spanId', 'parentSpanId']);

/** Trace and span ids are bytes in protobuf and lowercase hex in OTLP/JSON. */
function idsToHex(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = idsToHex(value[i]);
    return value;
  }
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      const v = obj[key];
      if (ID_FIELDS.has(key) && typeof v === 'string') obj[key] = Buffer.from(v, 'base64').toString('hex');
      else if (v && typeof v === 'object') idsToHex(v);
    }
  }
  return value;
}

/**
 * Decodes an `Export{Trace,Metrics,Logs}ServiceRequest` into the OTLP/JSON
 * object shape. Throws {@link OtlpDecodeError} on bytes that are not one.
 */
export function decodeOtlpRequest(signal: OtlpSignal, bytes: Uint8Array): Record<string, unknown> {
  const type = requestType(signal);
  let message: protobuf.Message;
  try {
    message = type.decode(bytes);
  } catch (err) {
    throw new OtlpDecodeError(`not a valid OTLP ${signal} protobuf message: ${(err as Error).message}`);
  }
  const object = type.toObject(message, { longs: String, enums: Number, bytes: String, defaults: false });
  return idsToHex(object) as Record<string, unknown>;
}

/**
 * Encodes an export request from the OTLP/JSON object shape (hex ids): the
 * inverse of {@link decodeOtlpRequest}, for forwarding and for clients.
 */
export function encodeOtlpRequest(signal: OtlpSignal, request: Record<string, unknown>): Uint8Array {
  const type = requestType(signal);
  const copy = JSON.parse(JSON.stringify(request), (key, value) =>
    ID_FIELDS.has(key) && typeof value === 'string' ? Buffer.from(value, 'hex').toString('base64') : value,
  );
  return type.encode(type.fromObject(copy)).finish();
}

/** An export response, with a partial-success section when some items were rejected. */
export function encodeOtlpResponse(
  signal: OtlpSignal,
  partial?: { rejected: number; errorMessage: string },
): Uint8Array {
  const type = responseType(signal);
  const body = partial
    ? {
        partialSuccess: {
          [PACKAGES[signal].rejected]: partial.rejected,
          errorMessage: partial.errorMessage,
        },
      }
    : {};
  return type.encode(type.fromObject(body)).finish();
}

/** Decodes an export response into `{ rejected, errorMessage }` (both absent on full success). */
export function decodeOtlpResponse(
  signal: OtlpSignal,
  bytes: Uint8Array,
): { rejected?: number; errorMessage?: string } {
  const type = responseType(signal);
  const object = type.toObject(type.decode(bytes), { longs: Number }) as {
    partialSuccess?: Record<string, unknown>;
  };
  const partial = object.partialSuccess;
  if (!partial) return {};
  const rejected = partial[PACKAGES[signal].rejected];
  return {
    rejected: rejected === undefined ? undefined : Number(rejected),
    errorMessage: partial.errorMessage as string | undefined,
  };
}

/** `google.rpc.Status`: what an OTLP/HTTP server returns with a 4xx or 5xx in protobuf. */
export function encodeRpcStatus(code: number, message: string): Uint8Array {
  const type = lookup('google.rpc.Status');
  return type.encode(type.fromObject({ code, message })).finish();
}

export function decodeRpcStatus(bytes: Uint8Array): { code: number; message: string } {
  const type = lookup('google.rpc.Status');
  const object = type.toObject(type.decode(bytes), { defaults: true }) as { code: number; message: string };
  return { code: object.code, message: object.message };
}
