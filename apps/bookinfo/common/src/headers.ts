import type { IncomingHttpHeaders } from 'node:http';

/**
 * The request headers every Bookinfo service copies from the request it is
 * serving onto each call it makes. This is the only mesh-awareness the apps
 * have: the request id and the trace context let the proxies stitch one trace
 * and one access-log story across hops, and `end-user` lets routing rules
 * match on who is signed in.
 */
export const FORWARDED_HEADERS: readonly string[] = [
  'x-request-id',
  // W3C Trace Context
  'traceparent',
  'tracestate',
  // Zipkin B3, single and multi header
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  // Other tracers Istio's samples propagate
  'x-ot-span-context',
  'x-cloud-trace-context',
  'grpc-trace-bin',
  'sw8',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  // Who is signed in, for routing by user
  'end-user',
];

/** The forwarded subset of `incoming`, keyed by lower-case name; repeated headers are joined with ", ". */
export function forwardedHeaders(incoming: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = incoming[name];
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}
