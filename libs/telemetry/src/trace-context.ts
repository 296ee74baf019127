/**
 * Reading a request's trace context without the SDK (access logs record the
 * trace id): W3C `traceparent` first, then B3 single (`b3`) and multi
 * (`x-b3-traceid` / `x-b3-spanid`) headers.
 */

export interface HeaderTraceContext {
  traceId: string;
  spanId: string;
  sampled?: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = /^0+$/;

function first(v: unknown): string | undefined {
  if (Array.isArray(v)) return typeof v[0] === 'string' ? v[0] : undefined;
  return typeof v === 'string' ? v : undefined;
}

/** A 64-bit B3 trace id is left-padded to 128 bits, as OpenTelemetry does. */
function padTraceId(id: string): string {
  return id.length === 16 ? `0000000000000000${id}` : id;
}

export function traceContextOf(headers: Record<string, unknown>): HeaderTraceContext | undefined {
  const tp = first(headers.traceparent)?.trim().toLowerCase();
  const m = tp ? TRACEPARENT.exec(tp) : null;
  if (m && m[1] !== 'ff' && !ZERO_TRACE.test(m[2]!) && !ZERO_TRACE.test(m[3]!)) {
    return { traceId: m[2]!, spanId: m[3]!, sampled: (Number.parseInt(m[4]!, 16) & 1) === 1 };
  }
  const single = first(headers.b3)?.trim().toLowerCase();
  if (single && single !== '0' && single !== '1' && single !== 'd') {
    const [traceId, spanId, flag] = single.split('-');
    if (traceId && spanId && /^[0-9a-f]{16}([0-9a-f]{16})?$/.test(traceId) && /^[0-9a-f]{16}$/.test(spanId)) {
      return {
        traceId: padTraceId(traceId),
        spanId,
        sampled: flag === undefined ? undefined : flag === '1' || flag === 'd',
      };
    }
  }
  const traceId = first(headers['x-b3-traceid'])?.trim().toLowerCase();
  const spanId = first(headers['x-b3-spanid'])?.trim().toLowerCase();
  if (traceId && spanId && /^[0-9a-f]{16}([0-9a-f]{16})?$/.test(traceId) && /^[0-9a-f]{16}$/.test(spanId)) {
    const sampled = first(headers['x-b3-sampled']);
    const flags = first(headers['x-b3-flags']);
    return {
      traceId: padTraceId(traceId),
      spanId,
      sampled:
        flags === '1' ? true : sampled === undefined ? undefined : sampled === '1' || sampled === 'true',
    };
  }
  return undefined;
}
