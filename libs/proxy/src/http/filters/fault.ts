import { durationToMs } from '@mizzen/xds';
import { fail } from '../../config/errors.js';
import { compileHeaderMatcher, type HeaderPredicate } from '../../config/string-matcher.js';
import type { HeaderMatcherJson } from '../../envoy/types.js';
import { headerValue } from '../headers.js';
import { type FilterStatus, type HttpFilter, type HttpFilterContext, perRouteConfig } from './filter.js';
import { type FractionalPercentJson, fraction, sample } from './percent.js';

export const FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

interface HttpFaultJson {
  delay?: { fixed_delay?: string; percentage?: FractionalPercentJson; header_delay?: unknown };
  abort?: {
    http_status?: number;
    grpc_status?: number;
    percentage?: FractionalPercentJson;
    header_abort?: unknown;
  };
  headers?: HeaderMatcherJson[];
  max_active_faults?: number;
}

export interface CompiledFault {
  readonly delay?: { ms: number; probability: number };
  readonly abort?: { httpStatus?: number; grpcStatus?: number; probability: number };
  readonly headers: readonly HeaderPredicate[];
}

/** Envoy's HTTPFault (filter level or per route), checked: a fault we cannot inject is a NACK, never a silent no-op. */
export function compileFault(json: HttpFaultJson, where: string): CompiledFault {
  let delay: CompiledFault['delay'];
  let abort: CompiledFault['abort'];
  if (json.delay) {
    if (json.delay.header_delay !== undefined)
      fail(`${where}.delay`, 'header-controlled delays are not supported');
    const ms = durationToMs(json.delay.fixed_delay);
    if (ms === undefined) fail(`${where}.delay`, 'fixed_delay is required');
    delay = { ms, probability: fraction(json.delay.percentage, `${where}.delay.percentage`) };
  }
  if (json.abort) {
    const a = json.abort;
    if (a.header_abort !== undefined) fail(`${where}.abort`, 'header-controlled aborts are not supported');
    if (a.http_status === undefined && a.grpc_status === undefined)
      fail(`${where}.abort`, 'needs http_status or grpc_status');
    if (a.http_status !== undefined && !(a.http_status >= 200 && a.http_status < 600)) {
      fail(`${where}.abort.http_status`, `invalid HTTP status ${a.http_status}`);
    }
    abort = {
      httpStatus: a.http_status,
      grpcStatus: a.grpc_status,
      probability: fraction(a.percentage, `${where}.abort.percentage`),
    };
  }
  return {
    delay,
    abort,
    headers: (json.headers ?? []).map((h, i) => compileHeaderMatcher(h, `${where}.headers[${i}]`)),
  };
}

function wait(ms: number, ctx: HttpFilterContext): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      ctx.res.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    ctx.res.once('close', done);
  });
}

/**
 * Envoy's fault filter: per route (Istio puts each VirtualService route's
 * `fault` there) it delays a share of requests, then aborts a share with an
 * HTTP or gRPC status. Flags: DI for an injected delay, FI for an abort.
 */
export class FaultFilter implements HttpFilter {
  constructor(
    readonly name: string,
    private readonly base: CompiledFault,
  ) {}

  async decode(ctx: HttpFilterContext): Promise<FilterStatus> {
    const fault = perRouteConfig<CompiledFault>(ctx, this.name) ?? this.base;
    if (!fault.delay && !fault.abort) return 'continue';
    const headers = (name: string) => headerValue(ctx.request.headers, name);
    if (!fault.headers.every((h) => h(headers))) return 'continue';
    if (fault.delay && sample(fault.delay.probability)) {
      ctx.info.flag('DI');
      await wait(fault.delay.ms, ctx);
      if (ctx.res.destroyed) return 'stop';
    }
    if (fault.abort && sample(fault.abort.probability)) {
      ctx.info.flag('FI');
      if (fault.abort.grpcStatus !== undefined) {
        // A gRPC "trailers-only" answer: HTTP 200 with the status in the headers.
        ctx.reply(200, '', {
          'content-type': 'application/grpc',
          'grpc-status': String(fault.abort.grpcStatus),
          'grpc-message': 'fault filter abort',
        });
      } else {
        ctx.reply(fault.abort.httpStatus!, 'fault filter abort');
      }
      return 'stop';
    }
    return 'continue';
  }
}
