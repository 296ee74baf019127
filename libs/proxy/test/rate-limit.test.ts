import {
  MemoryCounterStore,
  type RateLimitDecision,
  type RateLimitDecisionLabels,
  type RateLimitRecorder,
} from '@mizzen/ratelimit';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileListener } from '../src/config/listener.js';
import { RouteTable } from '../src/config/route-table.js';
import type { ListenerJson, RouteConfigurationJson } from '../src/envoy/types.js';
import {
  type Backend,
  backend,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  staticCluster,
  svcRoutes,
} from './harness.js';

const TYPED_STRUCT = 'type.googleapis.com/udpa.type.v1.TypedStruct';
const MIZZEN_RATE_LIMIT = 'type.googleapis.com/mizzen.ratelimit.v1alpha1.RateLimit';
const LOCAL_RATE_LIMIT =
  'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
const ALL = { default_value: { numerator: 100, denominator: 'HUNDRED' } };
const NONE = { default_value: { numerator: 0, denominator: 'HUNDRED' } };

/** Counts decisions as the proxy reports them. */
class Decisions implements RateLimitRecorder {
  readonly seen: string[] = [];
  decision(l: RateLimitDecisionLabels, d: RateLimitDecision): void {
    this.seen.push(`${l.mode} ${l.policy} ${l.rule} ${d}`);
  }
  storeAvailability(): void {}
  storeError(): void {}
  count(line: string): number {
    return this.seen.filter((s) => s === line).length;
  }
}

/** pilot's GLOBAL rules, as the TypedStruct it sends. */
const globalFilter = {
  name: 'mizzen.filters.http.ratelimit',
  typed_config: {
    '@type': TYPED_STRUCT,
    type_url: MIZZEN_RATE_LIMIT,
    value: {
      rules: [
        {
          policy: 'default/api',
          name: 'per-user',
          match: { path: { prefix: '/api' } },
          descriptors: [{ request_header: { header_name: 'x-user' } }],
          limit: { requests_per_unit: 3, unit: 'HOUR' },
        },
        {
          policy: 'default/watch',
          name: 'per-path',
          match: { method: { exact: 'GET' }, path: { prefix: '/shadow' } },
          descriptors: [{ path: {} }, { remote_address: {} }, { route: {} }],
          limit: { requests_per_unit: 1, unit: 'HOUR' },
          shadow: true,
        },
      ],
    },
  },
};

/** Envoy's local rate limit as an Istio EnvoyFilter would write it: descriptors picked by route actions. */
const localFilter = {
  name: 'envoy.filters.http.local_ratelimit',
  typed_config: {
    '@type': LOCAL_RATE_LIMIT,
    stat_prefix: 'http_local_rate_limiter',
    filter_enabled: ALL,
    filter_enforced: ALL,
    enable_x_ratelimit_headers: 'DRAFT_VERSION_03',
    response_headers_to_add: [{ header: { key: 'x-local-rate-limit', value: 'true' } }],
    descriptors: [
      {
        entries: [{ key: 'tier', value: 'free' }],
        token_bucket: { max_tokens: 2, tokens_per_fill: 2, fill_interval: '3600s' },
      },
    ],
  },
};

describe('rate limit filters in a real proxy', () => {
  const h = new ProxyHarness();
  const decisions = new Decisions();
  let app: Backend;

  const routes = () =>
    svcRoutes(
      [
        {
          name: 'per-route-bucket',
          match: { prefix: '/bucket' },
          route: { cluster: 'app', timeout: '0s' },
          // The shape of Istio's local rate limit task: a TypedStruct on the route.
          typed_per_filter_config: {
            'envoy.filters.http.local_ratelimit': {
              '@type': TYPED_STRUCT,
              type_url: LOCAL_RATE_LIMIT,
              value: {
                stat_prefix: 'bucket',
                token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: '3600s' },
                filter_enabled: ALL,
                filter_enforced: NONE,
                request_headers_to_add_when_not_enforced: [
                  { header: { key: 'x-over-local-limit', value: 'yes' } },
                ],
              },
            },
          },
        },
        { name: 'shadow', match: { prefix: '/shadow' }, route: { cluster: 'app', timeout: '0s' } },
        { name: 'plain', match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s' } },
      ],
      {
        rate_limits: [
          {
            actions: [
              {
                header_value_match: {
                  descriptor_key: 'tier',
                  descriptor_value: 'free',
                  headers: [{ name: 'x-plan', string_match: { exact: 'free' } }],
                },
              },
            ],
          },
        ],
      },
    );

  beforeAll(async () => {
    app = await backend('app');
    await h.start(
      () => ({
        [TypeUrl.Cluster]: [staticCluster('app', [app.port]), PASSTHROUGH],
        [TypeUrl.Listener]: outboundListeners(h.outbound, [localFilter, globalFilter]),
        [TypeUrl.RouteConfiguration]: [routes()],
      }),
      undefined,
      { rateLimits: { store: new MemoryCounterStore(), metrics: decisions } },
    );
  });

  afterAll(async () => {
    await h.stop();
    await app.close();
  });

  it('global: 3 per hour per x-user — RateLimit headers on every answer, then 429 with Retry-After', async () => {
    const before = app.hits;
    const answers = [];
    for (let i = 0; i < 4; i++)
      answers.push(await h.request('http://svc:9080/api/items', { 'x-user': 'alice' }));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    expect(answers.map((r) => r.headers['ratelimit-remaining'])).toEqual(['2', '1', '0', '0']);
    expect(answers.every((r) => r.headers['ratelimit-limit'] === '3')).toBe(true);
    expect(answers[0]!.headers['ratelimit-reset']).toBe('1200');
    const rejected = answers[3]!;
    expect(rejected.headers['retry-after']).toBe('1200');
    expect(rejected.headers['ratelimit-reset']).toBe('3600');
    expect(rejected.headers['x-envoy-ratelimited']).toBe('true');
    expect(rejected.headers['retry-after']).toBeDefined();
    expect(app.hits - before).toBe(3);
    // Another user has a counter of their own; a request without the header is not counted by the rule.
    expect((await h.request('http://svc:9080/api/items', { 'x-user': 'bob' })).status).toBe(200);
    const anonymous = await h.request('http://svc:9080/api/items');
    expect(anonymous.status).toBe(200);
    expect(anonymous.headers['ratelimit-limit']).toBeUndefined();
    // Outside the rule's match nothing is counted.
    expect((await h.request('http://svc:9080/other', { 'x-user': 'alice' })).status).toBe(200);
    expect(decisions.count('global default/api per-user allowed')).toBe(4);
    expect(decisions.count('global default/api per-user over_limit')).toBe(1);
  });

  it('global shadow: counts and reports over the limit, never rejects, never shows headers', async () => {
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await h.request('http://svc:9080/shadow/a'));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(answers.every((r) => r.headers['ratelimit-limit'] === undefined)).toBe(true);
    expect(decisions.count('global default/watch per-path allowed')).toBe(1);
    expect(decisions.count('global default/watch per-path shadow_over_limit')).toBe(2);
    // POST is outside the match.
    expect((await h.request('http://svc:9080/shadow/a', {}, 'POST', 'x')).status).toBe(200);
    expect(decisions.seen.filter((s) => s.includes('per-path'))).toHaveLength(3);
  });

  it('local: a descriptor bucket picked by a virtual host action, with x-ratelimit headers and local_rate_limited', async () => {
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await h.request('http://svc:9080/free', { 'x-plan': 'free' }));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 429]);
    expect(answers.map((r) => r.headers['x-ratelimit-remaining'])).toEqual(['1', '0', '0']);
    expect(answers[0]!.headers['x-ratelimit-limit']).toBe('2');
    // Seconds until the hourly fill: 3600 less the time since the bucket started (a loaded machine takes a second or two).
    expect(Number(answers[0]!.headers['x-ratelimit-reset'])).toBeGreaterThan(3590);
    expect(Number(answers[0]!.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(3600);
    expect(answers[2]!.body).toBe('local_rate_limited');
    expect(answers[2]!.headers['x-local-rate-limit']).toBe('true');
    // Other plans match no descriptor and there is no default bucket: not limited, no headers.
    const paid = await h.request('http://svc:9080/free', { 'x-plan': 'paid' });
    expect(paid.status).toBe(200);
    expect(paid.headers['x-ratelimit-limit']).toBeUndefined();
    expect(decisions.count('local http_local_rate_limiter free over_limit')).toBe(1);
  });

  it('local per-route config (TypedStruct): over the limit but not enforced adds the request header and lets it through', async () => {
    const first = await h.request('http://svc:9080/bucket');
    expect(first.status).toBe(200);
    expect(app.lastHeaders?.['x-over-local-limit']).toBeUndefined();
    const second = await h.request('http://svc:9080/bucket');
    expect(second.status).toBe(200);
    expect(app.lastHeaders?.['x-over-local-limit']).toBe('yes');
    expect(decisions.count('local bucket default shadow_over_limit')).toBe(1);
  });
});

const routeTable = (json: Record<string, unknown>) =>
  RouteTable.compile(json as unknown as RouteConfigurationJson);

describe('rate limit configs this proxy refuses (NACK), naming the field', () => {
  const listenerWith = (filter: Record<string, unknown>) =>
    outboundListeners(15001, [filter])[1] as unknown as ListenerJson;

  it('global rules with a bad limit or descriptor', () => {
    const rule = (extra: Record<string, unknown>) => ({
      name: 'rl',
      typed_config: {
        '@type': TYPED_STRUCT,
        type_url: MIZZEN_RATE_LIMIT,
        value: { rules: [{ policy: 'd/p', limit: { requests_per_unit: 5, unit: 'MINUTE' }, ...extra }] },
      },
    });
    expect(() =>
      compileListener(listenerWith(rule({ limit: { requests_per_unit: 5, unit: 'WEEK' } }))),
    ).toThrow(
      /http_filters\[0\] \(rl\)\.rules\[0\]\.limit\.unit: must be SECOND, MINUTE, HOUR or DAY, got WEEK/,
    );
    expect(() => compileListener(listenerWith(rule({ descriptors: [{ path: {}, method: {} }] })))).toThrow(
      /rules\[0\]\.descriptors\[0\]: a descriptor sets exactly one kind, found path, method/,
    );
  });

  it('local buckets Envoy would refuse, and route actions it cannot evaluate', () => {
    const local = (extra: Record<string, unknown>) => ({
      name: 'local',
      typed_config: { '@type': LOCAL_RATE_LIMIT, stat_prefix: 'l', ...extra },
    });
    expect(() =>
      compileListener(
        listenerWith(local({ token_bucket: { max_tokens: 1, tokens_per_fill: 1, fill_interval: '0.01s' } })),
      ),
    ).toThrow(/token_bucket\.fill_interval: must be at least 50ms/);
    expect(() => compileListener(listenerWith(local({ stat_prefix: '' })))).toThrow(
      /stat_prefix: is required/,
    );
    expect(() =>
      routeTable(
        svcRoutes([
          {
            match: { prefix: '/' },
            route: { cluster: 'a', rate_limits: [{ actions: [{ extension: {} }] }] },
          },
        ]),
      ),
    ).toThrow(/rate_limits\[0\]\.actions\[0\]: rate limit action extension is not supported by this proxy/);
    expect(() =>
      routeTable(
        svcRoutes([
          {
            match: { prefix: '/' },
            route: { cluster: 'a' },
            typed_per_filter_config: {
              local: { '@type': LOCAL_RATE_LIMIT, stat_prefix: 'r', filter_enabled: ALL },
            },
          },
        ]),
      ),
    ).toThrow(/token_bucket: local rate limit token bucket must be set for per filter configs/);
  });
});
