import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpRequestStart, StatsSettings } from '@mizzen/proxy';
import { Counter, Histogram, Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { appMetricsFromAnnotations, parseTelemetryFlags } from '../src/app.js';
import { ISTIO_LINT_EXCEPTIONS, parseExposition } from '../src/exposition.js';
import { IstioMetrics } from '../src/metrics.js';
import { explainProblems, promtoolCheckMetrics } from '../src/promtool.js';
import { StatsServer } from '../src/stats-server.js';
import { PRODUCTPAGE, record } from './records.js';

/** Istio's metrics with Telemetry overrides, served with metrics merging, checked by the real promtool. */

/** `promtool check metrics` on an exposition: its complaints, split by whether Istio's documented names explain them. */
const promtool = async (text: string) =>
  explainProblems(await promtoolCheckMetrics(text), ISTIO_LINT_EXCEPTIONS);
const DURATION_UNIT = 'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"';

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
    expect(await promtool(text)).toEqual({ unexplained: [], explained: [DURATION_UNIT] });
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
    expect((await promtool(await registry.metrics())).unexplained).toEqual([]);
  });

  it('counts TCP connections and bytes as they flow, on chains with the stats filter, with its overrides', async () => {
    const registry = new Registry();
    const m = new IstioMetrics({ local: PRODUCTPAGE, node: NODE, registry });
    const s = {
      direction: 'outbound',
      listener: 'l',
      upstreamCluster: 'outbound|27017||mongo.default.svc.cluster.local',
      downstreamRemoteAddress: 'x',
      downstreamLocalAddress: 'y',
      startTime: new Date(),
      telemetry: { stats: PLAIN },
    } as const;
    const rec = (sent: number, received: number, responseFlags = '-') => ({
      ...s,
      durationMs: 1,
      sentBytes: sent,
      receivedBytes: received,
      responseFlags,
      connectionSecurityPolicy: 'none' as const,
    });
    const obs = m.startTcp(s)!;
    // Opened once the upstream is up (the first report), not before.
    expect(m.families.tcp_connections_opened_total.snapshot()).toEqual([]);
    obs.progress!(rec(0, 0));
    expect(m.families.tcp_connections_opened_total.snapshot()[0]!.value).toBe(1);
    obs.progress!(rec(10, 4));
    obs.end(rec(25, 4));
    expect(m.families.tcp_sent_bytes_total.snapshot()[0]!.value).toBe(25);
    expect(m.families.tcp_received_bytes_total.snapshot()[0]!.value).toBe(4);
    expect(m.families.tcp_connections_closed_total.snapshot()[0]!.value).toBe(1);
    expect(m.families.tcp_connections_opened_total.snapshot()[0]!.value).toBe(1);
    // A connection that never reached an upstream is opened and closed with its flag.
    m.startTcp(s)!.end(rec(0, 0, 'UF'));
    const flags = m.families.tcp_connections_closed_total
      .snapshot()
      .map((x) => [x.labels.response_flags, x.value]);
    expect(flags).toEqual([
      ['-', 1],
      ['UF', 1],
    ]);
    expect(await promtool(await registry.metrics())).toEqual({ unexplained: [], explained: [] });

    // No istio.stats filter before tcp_proxy: no TCP metrics, as for HTTP.
    expect(m.startTcp({ ...s, telemetry: {} })).toBeUndefined();

    // Telemetry overrides: TCP_OPENED_CONNECTIONS dropped, a tag from a connection attribute, one removed.
    const overridden: StatsSettings = {
      disableHostHeaderFallback: false,
      metrics: [
        { name: 'tcp_connections_opened_total', dimensions: {}, tagsToRemove: [], drop: true },
        {
          name: '',
          dimensions: { upstream_address: 'upstream.address', missing: 'request.host' },
          tagsToRemove: ['source_cluster'],
          drop: false,
        },
      ],
    };
    const m2 = new IstioMetrics({ local: PRODUCTPAGE, node: NODE, registry: new Registry() });
    const o = m2.startTcp({ ...s, telemetry: { stats: overridden } })!;
    o.progress!({ ...rec(3, 2), upstreamHost: '127.0.0.1:27017' });
    o.end({ ...rec(3, 2), upstreamHost: '127.0.0.1:27017' });
    expect(m2.families.tcp_connections_opened_total.snapshot()).toEqual([]);
    const [closed] = m2.families.tcp_connections_closed_total.snapshot();
    expect(closed!.labels).toMatchObject({ upstream_address: '127.0.0.1:27017', missing: 'unknown' });
    expect(closed!.labels).not.toHaveProperty('source_cluster');
    expect(m2.families.tcp_sent_bytes_total.snapshot()[0]!.value).toBe(3);

    // Connection attributes are the downstream's: the caller's certificate on the server side.
    const peerTags: StatsSettings = {
      disableHostHeaderFallback: true,
      metrics: [
        {
          name: 'tcp_connections_closed_total',
          dimensions: { mtls: 'connection.mtls', peer: 'connection.uri_san_peer_certificate' },
          tagsToRemove: [],
          drop: false,
        },
      ],
    };
    const m3 = new IstioMetrics({ local: PRODUCTPAGE, node: NODE, registry: new Registry() });
    const inbound = {
      ...s,
      direction: 'inbound',
      upstreamCluster: 'inbound|9080||',
      telemetry: { stats: peerTags },
    } as const;
    m3.startTcp(inbound)!.end({
      ...rec(1, 1),
      ...inbound,
      connectionSecurityPolicy: 'mutual_tls',
      sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
    });
    m3.startTcp({ ...s, telemetry: { stats: peerTags } })!.end({
      ...rec(1, 1),
      connectionSecurityPolicy: 'mutual_tls',
    });
    expect(
      m3.families.tcp_connections_closed_total
        .snapshot()
        .map((x) => [x.labels.reporter, x.labels.mtls, x.labels.peer]),
    ).toEqual([
      ['destination', 'true', 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews'],
      // The client's downstream is its app, in plaintext, whatever it spoke upstream.
      ['source', 'false', 'unknown'],
    ]);
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
    expect(await promtool(text)).toEqual({ unexplained: [], explained: [DURATION_UNIT] });
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
    expect(await promtoolCheckMetrics(text2)).toEqual({ exitCode: 0, problems: [] });
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

describe('the real promtool check metrics', () => {
  it('passes a clean exposition', async () => {
    expect(
      await promtoolCheckMetrics('# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n'),
    ).toEqual({ exitCode: 0, problems: [] });
  });

  it("reports its linter's complaints by metric, and only documented ones are explained", async () => {
    const report = await promtoolCheckMetrics(
      [
        '# HELP istio_request_duration_milliseconds D.',
        '# TYPE istio_request_duration_milliseconds histogram',
        'istio_request_duration_milliseconds_bucket{le="+Inf"} 1',
        'istio_request_duration_milliseconds_sum 1',
        'istio_request_duration_milliseconds_count 1',
        '# HELP app_latency_milliseconds L.',
        '# TYPE app_latency_milliseconds gauge',
        'app_latency_milliseconds 1',
        '',
      ].join('\n'),
    );
    expect(report.exitCode).toBe(3);
    expect(explainProblems(report, ISTIO_LINT_EXCEPTIONS)).toEqual({
      unexplained: ['app_latency_milliseconds use base unit "seconds" instead of "milliseconds"'],
      explained: [DURATION_UNIT],
    });
  });

  it('reports an exposition that does not parse, with the line', async () => {
    const report = await promtoolCheckMetrics('# HELP a A.\n# HELP a again\na 1\n');
    expect(report.exitCode).toBe(1);
    expect(report.error).toMatch(/line 2: second HELP line for metric name "a"/);
    expect(explainProblems(report, ISTIO_LINT_EXCEPTIONS).unexplained).toEqual([
      `parse error: ${report.error}`,
    ]);
  });
});
