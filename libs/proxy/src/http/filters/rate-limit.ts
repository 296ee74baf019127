import {
  type CounterRequest,
  type CounterResult,
  CounterStoreError,
  counterKey,
  isRateLimitUnit,
  memoryRateLimitServices,
  type RateLimit,
  type RateLimitDecision,
} from '@mizzen/ratelimit';
import { fail } from '../../config/errors.js';
import { compileHeaderMatcher, compileStringMatcher, type Matcher } from '../../config/string-matcher.js';
import type { HeaderMatcherJson, StringMatcherJson } from '../../envoy/types.js';
import { headerValue } from '../headers.js';
import type { FilterStatus, HttpFilterContext } from './filter.js';
import { mostRestrictive, rateLimitHeaders } from './rate-limit-headers.js';
import type { FilterServices, ServiceAwareFilter } from './services.js';

/**
 * Mizzen's global rate limit filter: RateLimitPolicy's GLOBAL rules, shared
 * by every replica through the proxy's counter store (Redis from REDIS_URL,
 * else memory).
 *
 * Envoy's own `envoy.extensions.filters.http.ratelimit.v3.RateLimit` only
 * says how to call an external rate limit service; the limits live in that
 * service's config, and its route actions cannot name the caller's mTLS
 * principal. This proxy is its own rate limit service, so pilot sends the
 * whole policy in a `udpa.type.v1.TypedStruct` with this type URL, as Istio
 * sends its own `istio.stats` filter config.
 */
export const MIZZEN_RATE_LIMIT_TYPE = 'type.googleapis.com/mizzen.ratelimit.v1alpha1.RateLimit';

/** One part of a counter key (exactly one field set), as pilot writes it. */
interface DescriptorJson {
  request_header?: { header_name: string; skip_if_absent?: boolean };
  path?: Record<string, never>;
  method?: Record<string, never>;
  source_principal?: Record<string, never>;
  remote_address?: Record<string, never>;
  route?: Record<string, never>;
}

interface RuleJson {
  /** `namespace/name` of the RateLimitPolicy. */
  policy?: string;
  name?: string;
  match?: { path?: StringMatcherJson; method?: StringMatcherJson; headers?: HeaderMatcherJson[] };
  descriptors?: DescriptorJson[];
  limit?: { requests_per_unit?: number; unit?: string };
  shadow?: boolean;
  failure_mode_deny?: boolean;
}

export interface RateLimitJson {
  rules?: RuleJson[];
}

/** A descriptor value for this request: a string, `null` to leave it out, undefined when the rule does not apply. */
type DescriptorValue = (ctx: HttpFilterContext) => string | null | undefined;

interface CompiledRule {
  readonly policy: string;
  readonly name: string;
  readonly id: string;
  readonly matches: (ctx: HttpFilterContext) => boolean;
  readonly values: readonly DescriptorValue[];
  readonly limit: RateLimit;
  readonly shadow: boolean;
  readonly failureModeDeny: boolean;
}

export interface CompiledRateLimit {
  readonly rules: readonly CompiledRule[];
}

function pathOf(ctx: HttpFilterContext): string {
  const q = ctx.request.path.indexOf('?');
  return q < 0 ? ctx.request.path : ctx.request.path.slice(0, q);
}

function compileDescriptor(d: DescriptorJson, where: string): DescriptorValue {
  const set = Object.keys(d);
  if (set.length !== 1) fail(where, `a descriptor sets exactly one kind, found ${set.join(', ') || 'none'}`);
  if (d.request_header) {
    const name = d.request_header.header_name?.toLowerCase();
    if (!name) fail(`${where}.request_header`, 'header_name is required');
    const skip = d.request_header.skip_if_absent === true;
    return (ctx) => {
      const v = headerValue(ctx.request.headers, name);
      return v === undefined || v === '' ? (skip ? null : undefined) : v;
    };
  }
  if (d.path) return pathOf;
  if (d.method) return (ctx) => ctx.request.method;
  if (d.source_principal) return (ctx) => ctx.downstream.peerPrincipal || undefined;
  if (d.remote_address) return (ctx) => ctx.clientAddress || undefined;
  if (d.route) return (ctx) => ctx.route?.name || undefined;
  fail(where, `unknown descriptor ${set[0]}`);
}

function compileMatch(m: RuleJson['match'], where: string): (ctx: HttpFilterContext) => boolean {
  if (!m) return () => true;
  const path: Matcher | undefined = m.path ? compileStringMatcher(m.path, `${where}.path`) : undefined;
  const method: Matcher | undefined = m.method
    ? compileStringMatcher(m.method, `${where}.method`)
    : undefined;
  const headers = (m.headers ?? []).map((h, i) => compileHeaderMatcher(h, `${where}.headers[${i}]`));
  return (ctx) => {
    if (path && !path(pathOf(ctx))) return false;
    if (method && !method(ctx.request.method)) return false;
    const lookup = (name: string) => headerValue(ctx.request.headers, name);
    return headers.every((h) => h(lookup));
  };
}

/** The filter's config, checked: a rule this proxy cannot count is a NACK, never a silently open door. */
export function compileRateLimit(json: RateLimitJson, where: string): CompiledRateLimit {
  const rules = (json.rules ?? []).map((r, i): CompiledRule => {
    const at = `${where}.rules[${i}]`;
    const requests = r.limit?.requests_per_unit;
    const unit = r.limit?.unit;
    if (!(typeof requests === 'number' && Number.isInteger(requests) && requests > 0))
      fail(`${at}.limit.requests_per_unit`, `must be a whole number above 0, got ${requests}`);
    if (!isRateLimitUnit(unit)) fail(`${at}.limit.unit`, `must be SECOND, MINUTE, HOUR or DAY, got ${unit}`);
    const policy = r.policy || 'unnamed';
    const name = r.name || `rule-${i}`;
    return {
      policy,
      name,
      id: `${policy}/${name}`,
      matches: compileMatch(r.match, `${at}.match`),
      values: (r.descriptors ?? []).map((d, j) => compileDescriptor(d, `${at}.descriptors[${j}]`)),
      limit: { requests, unit },
      shadow: r.shadow === true,
      failureModeDeny: r.failure_mode_deny === true,
    };
  });
  return { rules };
}

/** The counters one request is checked against, with the rules they belong to. */
function countersFor(rules: readonly CompiledRule[], ctx: HttpFilterContext) {
  const applicable: { rule: CompiledRule; counter: CounterRequest }[] = [];
  for (const rule of rules) {
    if (!rule.matches(ctx)) continue;
    const values: string[] = [];
    let applies = true;
    for (const value of rule.values) {
      const v = value(ctx);
      if (v === undefined) {
        applies = false;
        break;
      }
      if (v !== null) values.push(v);
    }
    if (!applies) continue;
    applicable.push({
      rule,
      counter: {
        key: counterKey(rule.id, rule.limit, values),
        limit: rule.limit,
        enforce: !rule.shadow,
      },
    });
  }
  return applicable;
}

/** Shadow rules say "over the limit" at most this often per rule in the log. */
const SHADOW_LOG_INTERVAL_MS = 1000;

export class RateLimitFilter implements ServiceAwareFilter {
  private services: FilterServices = { rateLimits: memoryRateLimitServices() };
  private readonly lastShadowLog = new Map<string, number>();

  constructor(
    readonly name: string,
    private readonly config: CompiledRateLimit,
  ) {}

  bindServices(services: FilterServices): void {
    this.services = services;
  }

  async decode(ctx: HttpFilterContext): Promise<FilterStatus> {
    const applicable = countersFor(this.config.rules, ctx);
    if (applicable.length === 0) return 'continue';
    const { store, metrics } = this.services.rateLimits;
    let results: CounterResult[];
    try {
      results = await store.hit(applicable.map((a) => a.counter));
    } catch (err) {
      if (ctx.res.destroyed) return 'stop';
      const reason = err instanceof CounterStoreError ? err.reason : 'error';
      metrics.storeError(reason);
      // A shadow rule never rejects, not even when its counters are gone.
      const deny = applicable.some((a) => a.rule.failureModeDeny && !a.rule.shadow);
      for (const { rule } of applicable) {
        const decision: RateLimitDecision =
          rule.failureModeDeny && !rule.shadow ? 'failure_mode_denied' : 'failure_mode_allowed';
        metrics.decision({ mode: 'global', policy: rule.policy, rule: rule.name }, decision);
      }
      if (!deny) return 'continue';
      ctx.info.flag('RLSE');
      ctx.reply(429, 'rate limit counters unavailable', { 'retry-after': '1' });
      return 'stop';
    }
    if (ctx.res.destroyed) return 'stop';
    const enforced: CounterResult[] = [];
    let rejected = false;
    applicable.forEach(({ rule }, i) => {
      const r = results[i]!;
      let decision: RateLimitDecision = 'allowed';
      if (!r.allowed) {
        decision = rule.shadow ? 'shadow_over_limit' : 'over_limit';
        if (rule.shadow) this.logShadow(rule, ctx);
        else rejected = true;
      }
      if (!rule.shadow) enforced.push(r);
      metrics.decision({ mode: 'global', policy: rule.policy, rule: rule.name }, decision);
    });
    // Shadow rules stay invisible to clients: only enforced counters make headers.
    const shown = mostRestrictive(enforced.filter((r) => !rejected || !r.allowed));
    if (rejected && shown) {
      ctx.info.flag('RL');
      ctx.reply(429, '', { ...rateLimitHeaders(shown, true), 'x-envoy-ratelimited': 'true' });
      return 'stop';
    }
    if (shown) {
      const headers = rateLimitHeaders(shown, false);
      ctx.decorateResponse((_status, h) => Object.assign(h, headers));
    }
    return 'continue';
  }

  private logShadow(rule: CompiledRule, ctx: HttpFilterContext): void {
    const now = Date.now();
    if (now - (this.lastShadowLog.get(rule.id) ?? 0) < SHADOW_LOG_INTERVAL_MS) return;
    this.lastShadowLog.set(rule.id, now);
    this.services.logger?.info(
      { policy: rule.policy, rule: rule.name, path: pathOf(ctx), client: ctx.clientAddress },
      'rate limit exceeded in shadow mode (request let through)',
    );
  }
}
