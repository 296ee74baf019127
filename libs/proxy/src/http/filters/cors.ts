import { compileStringMatcher, type Matcher } from '../../config/string-matcher.js';
import type { StringMatcherJson } from '../../envoy/types.js';
import { headerValue } from '../headers.js';
import { type FilterStatus, type HttpFilter, type HttpFilterContext, perRouteConfig } from './filter.js';
import { type FractionalPercentJson, fraction, sample } from './percent.js';

export const CORS_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
export const CORS_POLICY_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';

interface CorsPolicyJson {
  allow_origin_string_match?: StringMatcherJson[];
  allow_methods?: string;
  allow_headers?: string;
  expose_headers?: string;
  max_age?: string;
  allow_credentials?: boolean;
  filter_enabled?: { default_value?: FractionalPercentJson };
  shadow_enabled?: unknown;
  allow_private_network_access?: boolean;
  forward_not_matching_preflights?: boolean;
}

export interface CompiledCorsPolicy {
  readonly origins: readonly Matcher[];
  readonly allowMethods?: string;
  readonly allowHeaders?: string;
  readonly exposeHeaders?: string;
  readonly maxAge?: string;
  readonly allowCredentials: boolean;
  readonly enabled: number;
  readonly forwardUnmatchedPreflights: boolean;
}

export function compileCorsPolicy(json: CorsPolicyJson, where: string): CompiledCorsPolicy {
  return {
    origins: (json.allow_origin_string_match ?? []).map((m, i) =>
      compileStringMatcher(m, `${where}.allow_origin_string_match[${i}]`),
    ),
    allowMethods: json.allow_methods || undefined,
    allowHeaders: json.allow_headers || undefined,
    exposeHeaders: json.expose_headers || undefined,
    maxAge: json.max_age || undefined,
    allowCredentials: json.allow_credentials === true,
    // Envoy's default: enabled for every request unless filter_enabled says otherwise.
    enabled: json.filter_enabled ? fraction(json.filter_enabled.default_value, `${where}.filter_enabled`) : 1,
    forwardUnmatchedPreflights: json.forward_not_matching_preflights !== false,
  };
}

/**
 * Envoy's CORS filter with Istio's per-route `corsPolicy`: answers preflights
 * for allowed origins itself, and adds the allow/expose headers to the
 * responses of actual requests from allowed origins.
 */
export class CorsFilter implements HttpFilter {
  constructor(readonly name: string) {}

  decode(ctx: HttpFilterContext): FilterStatus {
    const policy = perRouteConfig<CompiledCorsPolicy>(ctx, this.name);
    const origin = headerValue(ctx.request.headers, 'origin');
    if (!policy || !origin || !sample(policy.enabled)) return 'continue';
    const allowed = policy.origins.some((m) => m(origin));
    const preflight =
      ctx.request.method === 'OPTIONS' &&
      headerValue(ctx.request.headers, 'access-control-request-method') !== undefined;
    if (preflight) {
      if (!allowed) return policy.forwardUnmatchedPreflights ? 'continue' : this.emptyReply(ctx);
      const headers: Record<string, string> = { 'access-control-allow-origin': origin };
      if (policy.allowCredentials) headers['access-control-allow-credentials'] = 'true';
      // `*` echoes what the preflight asks for, as Envoy does.
      const askedMethod = headerValue(ctx.request.headers, 'access-control-request-method') ?? '';
      const askedHeaders = headerValue(ctx.request.headers, 'access-control-request-headers') ?? '';
      if (policy.allowMethods)
        headers['access-control-allow-methods'] =
          policy.allowMethods === '*' ? askedMethod : policy.allowMethods;
      if (policy.allowHeaders)
        headers['access-control-allow-headers'] =
          policy.allowHeaders === '*' ? askedHeaders : policy.allowHeaders;
      if (policy.maxAge) headers['access-control-max-age'] = policy.maxAge;
      ctx.reply(200, '', headers);
      return 'stop';
    }
    if (allowed) {
      ctx.decorateResponse((_status, headers) => {
        headers['access-control-allow-origin'] = origin;
        if (policy.allowCredentials) headers['access-control-allow-credentials'] = 'true';
        if (policy.exposeHeaders) headers['access-control-expose-headers'] = policy.exposeHeaders;
      });
    }
    return 'continue';
  }

  private emptyReply(ctx: HttpFilterContext): FilterStatus {
    ctx.reply(200, '');
    return 'stop';
  }
}
