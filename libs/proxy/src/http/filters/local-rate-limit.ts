import {
  NO_RATE_LIMIT_METRICS,
  type RateLimitRecorder,
  TokenBucket,
  type TokenBucketSpec,
} from '@mizzen/ratelimit';
import { durationToMs, envoyRoot } from '@mizzen/xds';
import { fail } from '../../config/errors.js';
import { applyHeaderMutations, compileHeaderMutation, type HeaderMutation } from '../../config/headers.js';
import {
  applicableRateLimits,
  type Descriptor,
  type DescriptorInput,
} from '../../config/rate-limit-actions.js';
import type { HeaderValueOptionJson } from '../../envoy/types.js';
import { headerValue } from '../headers.js';
import { type FilterStatus, type HttpFilterContext, perRouteConfig } from './filter.js';
import { type FractionalPercentJson, fraction, sample } from './percent.js';
import type { FilterServices, ServiceAwareFilter } from './services.js';

/**
 * Envoy's local rate limit filter
 * (`envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit`): token
 * buckets in this proxy, nothing shared. A request takes a token from the
 * bucket of every configured descriptor the route's `rate_limits` produce
 * for it (most restrictive first), and from the default `token_bucket`
 * unless a descriptor matched and `always_consume_default_token_bucket` is
 * false; without a default bucket, requests no descriptor matches pass.
 * `filter_enabled` decides which share of requests is counted,
 * `filter_enforced` which share of the limited ones is rejected (the rest
 * only get `request_headers_to_add_when_not_enforced`). A config on the
 * route or virtual host (typed_per_filter_config) replaces the filter's.
 */
export const LOCAL_RATE_LIMIT_TYPE =
  'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';

interface TokenBucketJson {
  max_tokens?: number;
  tokens_per_fill?: number;
  fill_interval?: string;
}

interface RuntimeFractionJson {
  default_value?: FractionalPercentJson;
  runtime_key?: string;
}

export interface LocalRateLimitJson {
  stat_prefix?: string;
  status?: { code?: number | string };
  token_bucket?: TokenBucketJson;
  filter_enabled?: RuntimeFractionJson;
  filter_enforced?: RuntimeFractionJson;
  request_headers_to_add_when_not_enforced?: HeaderValueOptionJson[];
  response_headers_to_add?: HeaderValueOptionJson[];
  descriptors?: { entries?: { key?: string; value?: string }[]; token_bucket?: TokenBucketJson }[];
  stage?: number;
  local_rate_limit_per_downstream_connection?: boolean;
  local_cluster_rate_limit?: unknown;
  enable_x_ratelimit_headers?: string | number;
  vh_rate_limits?: string | number;
  always_consume_default_token_bucket?: boolean;
  rate_limited_as_resource_exhausted?: boolean;
}

/** One bucket per configured descriptor plus the default one: a proxy's (or a connection's) state. */
interface Buckets {
  readonly fallback?: TokenBucket;
  /** By the descriptor's entries as a string, most restrictive (lowest fill rate) first. */
  readonly descriptors: Map<string, { bucket: TokenBucket; label: string }>;
}

const FIFTY_MS = 50;

function compileBucket(json: TokenBucketJson | undefined, where: string): TokenBucketSpec {
  const maxTokens = json?.max_tokens ?? 0;
  if (!(Number.isInteger(maxTokens) && maxTokens > 0)) fail(`${where}.max_tokens`, 'must be above 0');
  const tokensPerFill = json?.tokens_per_fill ?? 1;
  if (!(Number.isInteger(tokensPerFill) && tokensPerFill > 0))
    fail(`${where}.tokens_per_fill`, 'must be above 0');
  const fillIntervalMs = durationToMs(json?.fill_interval);
  if (fillIntervalMs === undefined) fail(`${where}.fill_interval`, 'is required');
  // Envoy refuses fill intervals under 50ms: its fill timer would run too often.
  if (fillIntervalMs < FIFTY_MS) fail(`${where}.fill_interval`, 'must be at least 50ms');
  return { maxTokens, tokensPerFill, fillIntervalMs };
}

export function descriptorKey(d: Descriptor): string {
  return d.map((e) => `${e.key}=${e.value}`).join('\u0000');
}

function enumName(value: string | number | undefined, names: readonly string[], where: string): string {
  if (value === undefined) return names[0]!;
  const name = typeof value === 'number' ? names[value] : value;
  if (!name || !names.includes(name)) fail(where, `unknown value ${value}; use one of ${names.join(', ')}`);
  return name;
}

/** envoy.type.v3.HttpStatus: a code number or its enum name (`TooManyRequests`). */
function httpStatus(code: number | string | undefined, where: string): number {
  if (code === undefined) return 429;
  const n = typeof code === 'number' ? code : envoyRoot().lookupEnum('envoy.type.v3.StatusCode').values[code];
  if (!(typeof n === 'number' && n >= 400 && n < 600)) fail(where, `invalid status ${code}`);
  return n;
}

export class CompiledLocalRateLimit {
  readonly statPrefix: string;
  readonly status: number;
  readonly enabled: number;
  readonly enforced: number;
  readonly stage: number;
  readonly xRateLimitHeaders: boolean;
  readonly vhRateLimits: 'OVERRIDE' | 'INCLUDE' | 'IGNORE';
  readonly alwaysConsumeDefault: boolean;
  readonly responseHeaders: HeaderMutation;
  readonly requestHeadersWhenNotEnforced: HeaderMutation;
  private readonly fallbackSpec?: TokenBucketSpec;
  private readonly descriptorSpecs: { key: string; label: string; spec: TokenBucketSpec }[];
  private readonly shared?: Buckets;
  private readonly perConnection?: WeakMap<object, Buckets>;

  constructor(json: LocalRateLimitJson, where: string, perRoute: boolean) {
    if (!json.stat_prefix) fail(`${where}.stat_prefix`, 'is required');
    if (json.local_cluster_rate_limit !== undefined)
      fail(`${where}.local_cluster_rate_limit`, 'sharing a limit across a local cluster is not supported');
    // Envoy: a route or virtual host config without a bucket makes no sense and is refused.
    if (perRoute && !json.token_bucket)
      fail(`${where}.token_bucket`, 'local rate limit token bucket must be set for per filter configs');
    this.statPrefix = json.stat_prefix;
    this.status = httpStatus(json.status?.code, `${where}.status`);
    // Both default to 0%: Envoy's "for safety".
    this.enabled = fraction(json.filter_enabled?.default_value, `${where}.filter_enabled`);
    this.enforced = fraction(json.filter_enforced?.default_value, `${where}.filter_enforced`);
    this.stage = json.stage ?? 0;
    this.xRateLimitHeaders =
      enumName(
        json.enable_x_ratelimit_headers,
        ['OFF', 'DRAFT_VERSION_03'],
        `${where}.enable_x_ratelimit_headers`,
      ) === 'DRAFT_VERSION_03';
    this.vhRateLimits = enumName(
      json.vh_rate_limits,
      ['OVERRIDE', 'INCLUDE', 'IGNORE'],
      `${where}.vh_rate_limits`,
    ) as CompiledLocalRateLimit['vhRateLimits'];
    this.alwaysConsumeDefault = json.always_consume_default_token_bucket !== false;
    this.responseHeaders = compileHeaderMutation(
      json.response_headers_to_add,
      undefined,
      `${where}.response`,
    );
    this.requestHeadersWhenNotEnforced = compileHeaderMutation(
      json.request_headers_to_add_when_not_enforced,
      undefined,
      `${where}.request_when_not_enforced`,
    );
    this.fallbackSpec = json.token_bucket
      ? compileBucket(json.token_bucket, `${where}.token_bucket`)
      : undefined;
    const seen = new Set<string>();
    this.descriptorSpecs = (json.descriptors ?? []).map((d, i) => {
      const at = `${where}.descriptors[${i}]`;
      if (!d.entries?.length) fail(`${at}.entries`, 'a descriptor needs at least one entry');
      const entries = d.entries.map((e, j) => {
        if (!e.key || !e.value) fail(`${at}.entries[${j}]`, 'needs a key and a value');
        return { key: e.key, value: e.value };
      });
      const key = descriptorKey(entries);
      if (seen.has(key)) fail(at, 'the same descriptor is configured twice');
      seen.add(key);
      // Metrics name a descriptor's bucket by its values (pilot makes them the rule names).
      const label = entries.map((e) => e.value).join(',');
      return { key, label, spec: compileBucket(d.token_bucket, `${at}.token_bucket`) };
    });
    // Most restrictive first, as Envoy orders them: a request rejected by a tight bucket takes no token from a loose one.
    this.descriptorSpecs.sort(
      (a, b) => a.spec.tokensPerFill / a.spec.fillIntervalMs - b.spec.tokensPerFill / b.spec.fillIntervalMs,
    );
    if (json.local_rate_limit_per_downstream_connection) this.perConnection = new WeakMap();
    else this.shared = this.newBuckets();
  }

  get hasDescriptors(): boolean {
    return this.descriptorSpecs.length > 0;
  }

  private newBuckets(): Buckets {
    return {
      fallback: this.fallbackSpec ? new TokenBucket(this.fallbackSpec) : undefined,
      descriptors: new Map(
        this.descriptorSpecs.map((d) => [d.key, { bucket: new TokenBucket(d.spec), label: d.label }]),
      ),
    };
  }

  /** The buckets a request counts against: the proxy's, or its connection's. */
  buckets(connection: object): Buckets {
    if (this.shared) return this.shared;
    let b = this.perConnection!.get(connection);
    if (!b) {
      b = this.newBuckets();
      this.perConnection!.set(connection, b);
    }
    return b;
  }
}

/** What a request's check found: allowed or not, and the bucket to report in x-ratelimit headers. */
interface Check {
  allowed: boolean;
  bucket?: TokenBucket;
  /** The descriptor whose bucket decided, for metrics (`default` for the filter's own bucket). */
  rule: string;
}

/** Envoy's requestAllowed: matched descriptor buckets (most restrictive first), then the default bucket. */
function check(config: CompiledLocalRateLimit, buckets: Buckets, descriptors: readonly Descriptor[]): Check {
  const keys = new Set(descriptors.map(descriptorKey));
  let matched = false;
  let reported: Check | undefined;
  for (const [key, { bucket, label: rule }] of buckets.descriptors) {
    if (!keys.has(key)) continue;
    matched = true;
    if (!bucket.consume()) return { allowed: false, bucket, rule };
    reported ??= { allowed: true, bucket, rule };
  }
  if (buckets.fallback && (!matched || config.alwaysConsumeDefault)) {
    if (!buckets.fallback.consume()) return { allowed: false, bucket: buckets.fallback, rule: 'default' };
    reported ??= { allowed: true, bucket: buckets.fallback, rule: 'default' };
  }
  return reported ?? { allowed: true, rule: 'default' };
}

function xRateLimitHeaders(bucket: TokenBucket): Record<string, string> {
  return {
    'x-ratelimit-limit': String(bucket.spec.maxTokens),
    'x-ratelimit-remaining': String(bucket.remaining()),
    'x-ratelimit-reset': String(Math.ceil(bucket.msUntilFill() / 1000)),
  };
}

export class LocalRateLimitFilter implements ServiceAwareFilter {
  private metrics: RateLimitRecorder = NO_RATE_LIMIT_METRICS;

  constructor(
    readonly name: string,
    private readonly base: CompiledLocalRateLimit,
  ) {}

  bindServices(services: FilterServices): void {
    this.metrics = services.rateLimits.metrics;
  }

  decode(ctx: HttpFilterContext): FilterStatus {
    const config = perRouteConfig<CompiledLocalRateLimit>(ctx, this.name) ?? this.base;
    if (!sample(config.enabled)) return 'continue';
    const descriptors = config.hasDescriptors ? this.descriptors(ctx, config) : [];
    const result = check(config, config.buckets(ctx.req.socket), descriptors);
    const labels = { mode: 'local' as const, policy: config.statPrefix, rule: result.rule };
    if (config.xRateLimitHeaders && result.bucket) {
      const bucket = result.bucket;
      ctx.decorateResponse((_status, h) => Object.assign(h, xRateLimitHeaders(bucket)));
    }
    if (result.allowed) {
      this.metrics.decision(labels, 'allowed');
      return 'continue';
    }
    if (!sample(config.enforced)) {
      this.metrics.decision(labels, 'shadow_over_limit');
      applyHeaderMutations(ctx.request.headers, [config.requestHeadersWhenNotEnforced]);
      return 'continue';
    }
    this.metrics.decision(labels, 'over_limit');
    ctx.info.flag('RL');
    const headers = {};
    applyHeaderMutations(headers, [config.responseHeaders]);
    ctx.reply(config.status, 'local_rate_limited', headers as Record<string, string | string[]>);
    return 'stop';
  }

  /** The descriptors of the matched route and virtual host at this filter's stage. */
  private descriptors(ctx: HttpFilterContext, config: CompiledLocalRateLimit): Descriptor[] {
    const limits = applicableRateLimits(
      ctx.route?.rateLimits ?? [],
      ctx.vhost?.rateLimits ?? [],
      config.vhRateLimits,
    );
    if (limits.length === 0) return [];
    let query: URLSearchParams | undefined;
    const path = ctx.request.path;
    const input: DescriptorInput = {
      header: (name) => {
        switch (name) {
          case ':path':
            return path;
          case ':method':
            return ctx.request.method;
          case ':authority':
            return ctx.request.authority;
          case ':scheme':
            return ctx.request.scheme;
          default:
            return headerValue(ctx.request.headers, name);
        }
      },
      query: () => {
        query ??= new URLSearchParams(path.includes('?') ? path.slice(path.indexOf('?') + 1) : '');
        return query;
      },
      remoteAddress: ctx.clientAddress,
      destinationCluster:
        ctx.route?.action.kind === 'forward' ? ctx.route.action.clusters[0]?.name : undefined,
    };
    const out: Descriptor[] = [];
    for (const limit of limits) {
      if (limit.stage !== config.stage) continue;
      const d = limit.descriptor(input);
      if (d) out.push(d);
    }
    return out;
  }
}
