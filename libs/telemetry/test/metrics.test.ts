import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpRequestStart, StatsSettings } from '@mizzen/proxy';
import { Counter, Histogram, Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { appMetricsFromAnnotations, parseTelemetryFlags } from '../src/app.js';
import { checkExposition, ISTIO_LINT_EXCEPTIONS, parseExposition } from '../src/exposition.js';
import { IstioMetrics } from '../src/metrics.js';
import { StatsServer } from '../src/stats-server.js';
import { PRODUCTPAGE, record } from './records.js';

/** Istio's metrics with Telemetry overrides, served with metrics merging, checked as promtool checks them. */

const NODE = { id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local' };
const start = (stats: StatsSettings) =>
  ({ telemetry: { accessLogs: [], stats } }) as unknown as HttpRequestStart;
const PLAIN: StatsSettings = { metrics: [], disableHostHeaderFallback: false };

describe('Istio metrics', () => {
  it('counts requests by label set and fills histograms with Istio buckets', async () => {
    const registry = new Registry();
    const m = new IstioMetrics({ local: PRODUCTPAGE, node: NODE, registry });
    for (let i = 0; i < 3; i++) m.startHttp(start(PLAIN))!.end(record({ durationMs: 7 }));
    m.startHttp(start(PLAIN))!.end(
      record({ responseCode: 503, responseFlags: 'UO', durationMs: 0.2, peer: undefined }),
    );
    expect(m.startHttp({ telemetry: { accessLogs: [] } } as unknown as HttpRequestStart)).toBeUndefined();
    const counts = m.families.requests_total
      .snapshot()
      .map((s) => [s.labels.response_code, s.labels.response_flags, s.labels.destination_workload, s.value]);
    expect(counts).toEqual([
      ['200', '-', 'reviews-v2', 3],
      ['503', 'UO', 'unknown', 1],
    ]);
    const text = await registry.metrics();
    // promtool flags Istio's millisecond histogram (a name dashboards depend on), and nothing else.
    expect(checkExposition(text)).toEqual([
      'istio_request_duration_milliseconds: use base unit "seconds" instead of "milliseconds"',
    ]);
    expect(checkExposition(text, { allow: ISTIO_LINT_EXCEPTIONS })).toEqual([]);
    expect(text).toContain('istio_request_duration_milliseconds_bucket{');
    const fam = parseExposition(text).families.find((f) => f.name === 'istio_request_duration_milliseconds')!;
    const bucket = (le: string, code: string) =>
      fam.samples.find(
        (s) => s.name.endsWith('_bucket') && s.labels.le === le && s.labels.response_code === code,
      )?.value;
    expect(bucket('5', '200')).toBe(0);
    expect(bucket('10', '200')).toBe(3);
    expect(bucket('0.5', '503')).toBe(1);
    expect(bucket('+Inf', '200')).toBe(3);
  });

  it('applies stats.PluginConfig overrides: dropped metrics, CEL tags added, tags removed', async () => {
    const registry = new Registry();
    const m = new IstioMetrics({ local: PRODUCTPAGE, node: NODE, registry });
    const stats: StatsSettings = {
      disableHostHeaderFallback: false,
      metrics: [
        { name: 'request_duration_milliseconds', dimensions: {}, tagsToRemove: [], drop: true },
        {
          name: 'requests_total',
          dimensions: {
            request_host: 'request.host',
            user: "request.headers['x-user']",
            missing: "request.headers['nope']",
          },
          tagsToRemove: ['response_flags', 'grpc_response_status'],
          drop: false,
        },
        { name: '', dimensions: { 'bad-name': 'request.host' }, tagsToRemove: [], drop: false },
      ],
    };
    m.startHttp(start(stats))!.end(record());
    expect(m.families.request_duration_milliseconds.snapshot()).toEqual([]);
    const [series] = m.families.requests_total.snapshot();
    expect(series!.labels).toMatchObject({ request_host: 'reviews:9080', user: 'jason', missing: 'unknown' });
    expect(series!.labels).not.toHaveProperty('response_flags');
    expect(series!.labels).not.toHaveProperty('grpc_response_status');
    expect(series!.labels).not.toHaveProperty('bad-name');
    // A series before and after an override change live side by side in one valid family.
    m.startHttp(start(PLAIN))!.end(record());
    expect(m.families.requests_total.snapshot()).toHaveLength(2);
    expect(checkExposition(await registry.metrics(), { allow: ISTIO_LINT_EXCEPTIONS })).toEqual([]);
  });

  it('counts TCP connections and bytes as they flow', async () => {
    const registry = new Registry();
    const m = new IstioMetrics({ local: PRODUCTPAGE, node: NODE, registry });
    const s = {
      direction: 'outbound',
      listener: 'l',
      upstreamCluster: 'outbound|27017||mongo.default.svc.cluster.local',
      downstreamRemoteAddress: 'x',
      startTime: new Date(),
    } as const;
    const obs = m.startTcp(s);
    expect(m.families.tcp_connections_opened_total.snapshot()[0]!.value).toBe(1);
    const rec = (sent: number, received: number) => ({
      ...s,
      durationMs: 1,
      sentBytes: sent,
      receivedBytes: received,
      responseFlags: '-',
      connectionSecurityPolicy: 'none' as const,
    });
    obs.progress!(rec(10, 4));
    obs.end(rec(25, 4));
    expect(m.families.tcp_sent_bytes_total.snapshot()[0]!.value).toBe(25);
    expect(m.families.tcp_received_bytes_total.snapshot()[0]!.value).toBe(4);
    expect(m.families.tcp_connections_closed_total.snapshot()[0]!.value).toBe(1);
    expect(checkExposition(await registry.metrics(), { allow: ISTIO_LINT_EXCEPTIONS })).toEqual([]);
  });
});

describe('/stats/prometheus with metrics merging', () => {
  const servers: { close(): unknown }[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it("appends the app's exposition, leaving out families the proxy serves, and stays valid (promtool's rules)", async () => {
    const appRegistry = new Registry();
    new Counter({ name: 'app_orders_total', help: 'Orders.', registers: [appRegistry] }).inc(5);
    new Histogram({
      name: 'app_latency_seconds',
      help: 'Latency.',
      buckets: [0.1, 1],
      registers: [appRegistry],
    }).observe(0.5);
    // The app's own process_start_time_seconds collides with the proxy's.
    appRegistry.registerMetric(
      new (await import('prom-client')).Gauge({
        name: 'process_start_time_seconds',
        help: 'x',
        registers: [],
      }),
    );
    const app = http.createServer(async (req, res) => {
      if (req.url !== '/metrics') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': appRegistry.contentType }).end(await appRegistry.metrics());
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    servers.push(app);
    const registry = new Registry();
    const m = new IstioMetrics({ local: PRODUCTPAGE, node: NODE, registry });
    m.startHttp(start(PLAIN))!.end(record());
    const stats = new StatsServer({
      registry,
      host: '127.0.0.1',
      port: 0,
      appMetricsUrl: `http://127.0.0.1:${(app.address() as AddressInfo).port}/metrics`,
    });
    const port = await stats.start();
    servers.push(stats);
    const res = await fetch(`http://127.0.0.1:${port}/stats/prometheus`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    expect(checkExposition(text, { allow: ISTIO_LINT_EXCEPTIONS })).toEqual([]);
    const names = parseExposition(text).families.map((f) => f.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'istio_requests_total',
        'app_orders_total',
        'app_latency_seconds',
        'process_start_time_seconds',
      ]),
    );
    expect(names.filter((n) => n === 'process_start_time_seconds')).toHaveLength(1);
    expect(text).toContain('app_orders_total 5');

    // An app that does not answer: the proxy's metrics still come, and the failure is counted.
    const down = new StatsServer({
      registry: new Registry(),
      host: '127.0.0.1',
      port: 0,
      appMetricsUrl: 'http://127.0.0.1:1/metrics',
      appTimeoutMs: 500,
    });
    const downPort = await down.start();
    servers.push(down);
    const text2 = await (await fetch(`http://127.0.0.1:${downPort}/stats/prometheus`)).text();
    expect(checkExposition(text2)).toEqual([]);
    expect(text2).toMatch(/^istio_agent_scrape_failures_total 1$/m);
  });
});

describe("the app's metrics endpoint from the injector (ISTIO_PROMETHEUS_ANNOTATIONS)", () => {
  it("reads it as Istio's agent does: /metrics and port 80 unless given, nothing when off or on the agent's port", () => {
    expect(appMetricsFromAnnotations('{"scrape":"true","path":"/app","port":"9102"}', 15020)).toBe(
      'http://127.0.0.1:9102/app',
    );
    expect(appMetricsFromAnnotations('{"scrape":"true","path":"","port":""}', 15020)).toBe(
      'http://127.0.0.1:80/metrics',
    );
    expect(appMetricsFromAnnotations('{"scrape":"false","port":"9102"}', 15020)).toBeUndefined();
    expect(appMetricsFromAnnotations('{"scrape":"true","port":"15020"}', 15020)).toBeUndefined();
    expect(() => appMetricsFromAnnotations('not json', 15020)).toThrow(
      /ISTIO_PROMETHEUS_ANNOTATIONS must be JSON/,
    );
    expect(() => appMetricsFromAnnotations('{"port":"http"}', 15020)).toThrow(
      /must be a port number, got "http"/,
    );
  });

  it('takes --app-metrics first, the injector’s env otherwise', () => {
    const env = { ISTIO_PROMETHEUS_ANNOTATIONS: '{"scrape":"true","path":"/m","port":"9102"}' };
    expect(parseTelemetryFlags({}, env).appMetricsUrl).toBe('http://127.0.0.1:9102/m');
    expect(parseTelemetryFlags({ 'app-metrics': 'http://127.0.0.1:1/x' }, env).appMetricsUrl).toBe(
      'http://127.0.0.1:1/x',
    );
    expect(parseTelemetryFlags({}, {}).appMetricsUrl).toBeUndefined();
  });
});

describe('exposition check (what promtool check metrics rejects)', () => {
  it.each([
    ['a good exposition', '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n', []],
    [
      'a bad label escape',
      '# HELP a_total A.\n# TYPE a_total counter\na_total{x="\\q"} 2\n',
      ['line 3: invalid escape sequence \\q in label x'],
    ],
    [
      'a second TYPE',
      '# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n',
      ['line 3: second TYPE line for metric name a'],
    ],
    [
      'a split family',
      '# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x="2"} 1\n',
      ['line 7: sample for metric family a after other families (a family must be contiguous)'],
    ],
    [
      'a duplicate series',
      '# HELP a A.\n# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',
      ['line 4: duplicate series a{"x":"1"}'],
    ],
    [
      'a histogram without +Inf',
      '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
      ['histogram h: no bucket with le="+Inf"'],
    ],
    [
      'a counter without _total',
      '# HELP a A.\n# TYPE a counter\na 1\n',
      ['a: counter metrics should have "_total" suffix'],
    ],
    ['no help', '# TYPE a gauge\na 1\n', ['a: no help text']],
    [
      'a non-base unit',
      '# HELP a_milliseconds A.\n# TYPE a_milliseconds gauge\na_milliseconds 1\n',
      ['a_milliseconds: use base unit "seconds" instead of "milliseconds"'],
    ],
    [
      'a gauge named like a counter, with its type and an abbreviated unit in the name',
      '# HELP a_gauge_ms_total A.\n# TYPE a_gauge_ms_total gauge\na_gauge_ms_total 1\n',
      [
        'a_gauge_ms_total: non-counter metrics should not have "_total" suffix',
        "a_gauge_ms_total: metric name should not include type 'gauge'",
        'a_gauge_ms_total: metric names should not contain abbreviated units',
      ],
    ],
    [
      'reserved suffixes and labels',
      '# HELP a_count A.\n# TYPE a_count gauge\na_count{quantile="0.5",fooBar="1"} 1\n',
      [
        'a_count: non-histogram and non-summary metrics should not have "_count" suffix',
        'a_count: non-summary metrics should not have "quantile" label',
        "a_count: label names should be written in 'snake_case' not 'camelCase'",
      ],
    ],
    ['untyped metrics skip the type rules', 'a_count 1\n', ['a_count: no help text']],
    ['a family without samples is not linted', '# TYPE a_ms counter\n', []],
    ['a bad value', '# HELP a A.\n# TYPE a gauge\na one\n', ['line 3: invalid value "one" for a']],
    ['no final newline', '# HELP a A.\n# TYPE a gauge\na 1', ['the exposition must end with a newline']],
  ] as const)('%s', (_name, text, want) => {
    expect(checkExposition(text)).toEqual(want);
  });
});
