import fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  explainProblems,
  type Family,
  ISTIO_LINT_EXCEPTIONS,
  type LintException,
  PROM_CLIENT_LINT_EXCEPTIONS,
  parseExposition,
  promtoolCheckMetrics,
} from '@mizzen/telemetry';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLogLines } from '../src/access-log.js';
import { type Backend, getJson, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type CollectorHandle, type SidecarHandle, TestMesh } from '../src/mesh.js';
import { samples, sum } from '../src/metrics.js';

/**
 * Istio's observability through pilot, two real sidecars, a real backend and
 * the real telemetry collector: exact `istio_requests_total` counts from both
 * reporters, histograms, the exposition format, response flags for circuit
 * breaking (UO) and fault injection (FI), JSON access logs on stdout and over
 * OTLP, one trace with both proxies' spans (W3C and B3-only callers),
 * sampling at 100% and 0%, and Telemetry API overrides.
 */

function serviceEntry(name: string, unmeshedPort?: number): string {
  const where = unmeshedPort
    ? `endpoints: [{ address: 127.0.0.1, ports: { http: ${unmeshedPort} } }]`
    : `workloadSelector: { labels: { app: ${name} } }`;
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  ${where}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}]
  http:
    - match: [{ headers: { x-fault: { exact: abort } } }]
      fault: { abort: { httpStatus: 503, percentage: { value: 100 } } }
      route: [{ destination: { host: ${name} } }]
      retries: { attempts: 0 }
    - route: [{ destination: { host: ${name} } }]
      retries: { attempts: 0 }
`;
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The real `promtool check metrics` on a real exposition: its complaints,
 * split into those Istio's documented names explain and the rest (which must be none).
 */
const promtool = async (text: string, allow: readonly LintException[] = ISTIO_LINT_EXCEPTIONS) =>
  explainProblems(await promtoolCheckMetrics(text), allow);
/** promtool's one complaint about a proxy: Istio's request-duration histogram is in milliseconds. */
const DURATION_UNIT = 'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"';

/** What a PromQL expression reads: metric names with the labels it matches on, and the labels it groups by. */
function promqlRefs(expr: string): { metrics: Map<string, Set<string>>; grouping: Set<string> } {
  const metrics = new Map<string, Set<string>>();
  const grouping = new Set<string>();
  const use = (metric: string) => metrics.get(metric) ?? metrics.set(metric, new Set()).get(metric)!;
  let s = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '');
  s = s.replace(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g, (_m, metric: string, matchers: string) => {
    const labels = use(metric);
    for (const m of matchers.split(',')) {
      const label = /^\s*([a-zA-Z_]\w*)/.exec(m)?.[1];
      if (label) labels.add(label);
    }
    return ' ';
  });
  s = s.replace(/\b(by|without|on|ignoring)\s*\(([^)]*)\)/g, (_m, _k, labels: string) => {
    for (const l of labels
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean))
      grouping.add(l);
    return ' ';
  });
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'group_left', 'group_right']);
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(?!\s*\()(?![a-zA-Z0-9_:])/g))
    if (!keywords.has(m[0]) && !/^\d/.test(m[0])) use(m[0]);
  return { metrics, grouping };
}

describe('telemetry through pilot, real sidecars and the collector', () => {
  const mesh = new TestMesh();
  const backends: Record<string, Backend> = {};
  const held: (() => void)[] = [];
  let client: SidecarHandle;
  let server: SidecarHandle;
  let http: ProxyClient;
  let collector: CollectorHandle;
  let appMetrics: Server;
  let api: string;

  const scrape = async (proxy: SidecarHandle) => {
    const res = await fetch(`http://127.0.0.1:${proxy.statsPort}/stats/prometheus`, {
      signal: AbortSignal.timeout(5000),
    });
    expect(res.status).toBe(200);
    return res.text();
  };
  const metrics = async (proxy: SidecarHandle) => parseExposition(await scrape(proxy)).families;
  const accessLines = (proxy: SidecarHandle) => accessLogLines(proxy.proc);

  beforeAll(async () => {
    const [apiPort, otlpHttp, otlpGrpc] = await mesh.ports.takeMany(3);
    api = `http://127.0.0.1:${apiPort}`;
    const meshConfig = path.join(mesh.dir, 'mesh-config.yaml');
    fs.writeFileSync(
      meshConfig,
      `accessLogFile: /dev/stdout
accessLogEncoding: JSON
defaultConfig: { tracing: { sampling: 100 } }
extensionProviders:
  - name: collector-traces
    opentelemetry: { service: 127.0.0.1, port: ${otlpHttp}, http: { path: /v1/traces } }
  - name: collector-logs
    envoyOtelAls: { service: 127.0.0.1, port: ${otlpHttp}, logName: e2e-access }
defaultProviders:
  tracing: [collector-traces]
  accessLogging: [envoy, collector-logs]
`,
    );
    backends.backend = await startBackend('backend', 'v1', (req, res) => {
      if (req.url !== '/fail') return false;
      res.writeHead(503).end('failing on purpose');
      return true;
    });
    backends.slow = await startBackend('slow', 'v1', (_req, res) => {
      held.push(() => res.end('{}'));
      return true;
    });
    // slow runs without a sidecar (plain HTTP/1.1 from the client's sidecar), as in Istio's circuit-breaking task.
    mesh.writeConfig(
      'services.yaml',
      [serviceEntry('backend'), serviceEntry('slow', backends.slow.port)].join('---\n'),
    );
    // With citadel every sidecar has a workload certificate: the sidecars speak mutual TLS and know each other.
    await mesh.startCitadel();
    await mesh.startPilot(['--mesh-config', meshConfig, '--registration-grace-ms', '30000']);
    collector = await mesh.startCollector({ ports: [apiPort!, otlpHttp!, otlpGrpc!] });
    // The backend's own metrics, merged into its sidecar's /stats/prometheus (Istio's metrics merging).
    appMetrics = createServer((_req, res) =>
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
        .end('# HELP app_jobs_total Jobs done.\n# TYPE app_jobs_total counter\napp_jobs_total 7\n'),
    );
    await new Promise<void>((r) => appMetrics.listen(0, '127.0.0.1', r));
    server = await mesh.startSidecar({
      workload: 'backend-v1',
      service: 'backend',
      labels: { app: 'backend', version: 'v1' },
      appPort: backends.backend.port,
      servicePort: 8000,
      extraArgs: ['--app-metrics', `http://127.0.0.1:${(appMetrics.address() as AddressInfo).port}/metrics`],
    });
    client = await mesh.startSidecar({
      workload: 'client-v1',
      service: 'client',
      labels: { app: 'client', version: 'v1' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([server.id, client.id]);
    http = new ProxyClient(client.outboundPort);
    await eventually(
      'backend reachable through both sidecars',
      async () => (await http.request('http://backend:8000/')).status === 200,
    );
    // A proxy counts a request when its response has ended, which can be just after the caller read the
    // last byte: the warmup must be counted at both before a test takes its "before" snapshot.
    await eventually(
      'the warmup counted by both proxies',
      async () =>
        sum(samples(await metrics(client), 'istio_requests_total'), {
          reporter: 'source',
          response_code: '200',
        }) >= 1 &&
        sum(samples(await metrics(server), 'istio_requests_total'), {
          reporter: 'destination',
          response_code: '200',
        }) >= 1,
    );
  });

  afterAll(async () => {
    for (const release of held.splice(0)) release();
    http?.close();
    await mesh.stop();
    await Promise.all(Object.values(backends).map((b) => b.close()));
    appMetrics?.close();
  });

  it('counts requests exactly by label set from both reporters, with histograms and a valid exposition (promtool rules)', async () => {
    const before = { client: await metrics(client), server: await metrics(server) };
    for (let i = 0; i < 10; i++) expect((await http.request('http://backend:8000/ok')).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await http.request('http://backend:8000/fail')).status).toBe(503);
    const edge = {
      source_workload: 'client-v1',
      source_workload_namespace: 'default',
      source_app: 'client',
      source_canonical_service: 'client',
      source_principal: 'spiffe://cluster.local/ns/default/sa/client',
      destination_workload: 'backend-v1',
      destination_workload_namespace: 'default',
      destination_app: 'backend',
      destination_version: 'v1',
      destination_canonical_service: 'backend',
      destination_canonical_revision: 'v1',
      destination_service: 'backend.default.svc.cluster.local',
      destination_service_name: 'backend',
      destination_service_namespace: 'default',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/backend',
      request_protocol: 'http',
      response_flags: '-',
    };
    const grew = async (proxy: SidecarHandle, was: Family[], match: Record<string, string>) =>
      sum(samples(await metrics(proxy), 'istio_requests_total'), match) -
      sum(samples(was, 'istio_requests_total'), match);
    // Each proxy records once its response has ended: wait for both rather than race them.
    await eventually(
      'both proxies counted all 13',
      async () =>
        (await grew(server, before.server, { reporter: 'destination' })) === 13 &&
        (await grew(client, before.client, { reporter: 'source' })) === 13,
    );
    expect(
      await grew(client, before.client, {
        ...edge,
        reporter: 'source',
        response_code: '200',
        connection_security_policy: 'unknown',
      }),
    ).toBe(10);
    expect(
      await grew(client, before.client, {
        ...edge,
        reporter: 'source',
        response_code: '503',
        connection_security_policy: 'unknown',
      }),
    ).toBe(3);
    expect(
      await grew(server, before.server, {
        ...edge,
        reporter: 'destination',
        response_code: '200',
        connection_security_policy: 'mutual_tls',
      }),
    ).toBe(10);
    expect(
      await grew(server, before.server, {
        ...edge,
        reporter: 'destination',
        response_code: '503',
        connection_security_policy: 'mutual_tls',
      }),
    ).toBe(3);

    for (const proxy of [client, server]) {
      const text = await scrape(proxy);
      expect(await promtool(text)).toEqual({ unexplained: [], explained: [DURATION_UNIT] });
      const families = parseExposition(text).families;
      if (proxy === server) expect(samples(families, 'app_jobs_total')).toEqual([{ labels: {}, value: 7 }]);
      const buckets = samples(families, 'istio_request_duration_milliseconds_bucket').filter(
        (s) => s.labels.destination_workload === 'backend-v1' && s.labels.response_code === '200',
      );
      const inf = buckets.find((b) => b.labels.le === '+Inf')!.value;
      expect(inf).toBeGreaterThanOrEqual(10);
      expect(buckets.find((b) => b.labels.le === '0.5')!.value).toBeLessThan(inf);
      expect(buckets.find((b) => b.labels.le === '60000')!.value).toBe(inf);
      const responseBytes = samples(families, 'istio_response_bytes_sum').filter(
        (s) => s.labels.response_code === '200',
      );
      expect(responseBytes.reduce((a, s) => a + s.value, 0)).toBeGreaterThan(0);
    }
  });

  it('reports circuit-breaking overflow as 503 UO and a fault-injected abort as 503 FI, on the client only', async () => {
    expect(
      (
        await mesh.apply(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: slow, namespace: default }
spec:
  host: slow
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 1 }
      http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 }
`)
      ).status,
    ).toBe(200);
    await eventually('the limits at the client', async () => {
      const dump = await getJson<{
        configs: { dynamic_active_clusters?: { cluster: { name: string; circuit_breakers?: unknown } }[] }[];
      }>(`http://127.0.0.1:${client.adminPort}/config_dump`);
      return dump.configs
        .flatMap((c) => c.dynamic_active_clusters ?? [])
        .some(
          (c) =>
            c.cluster.name === 'outbound|8000||slow.default.svc.cluster.local' &&
            (c.cluster.circuit_breakers as { thresholds?: { max_connections?: number }[] } | undefined)
              ?.thresholds?.[0]?.max_connections === 1,
        );
    });
    let settled = 0;
    const burst = Array.from({ length: 4 }, () =>
      http.request('http://slow:8000/held').then((r) => {
        settled++;
        return r;
      }),
    );
    await eventually(
      'two overflowed while one is in flight',
      async () =>
        (settled === 2 && held.length === 1) ||
        `settled=${settled} held=${held.length} hits=${backends.slow!.hits}`,
      10_000,
    );
    held.shift()!();
    await eventually('the pending one admitted', async () => held.length === 1, 10_000);
    held.shift()!();
    expect((await Promise.all(burst)).map((r) => r.status).sort()).toEqual([200, 200, 503, 503]);

    const aborted = await http.request('http://backend:8000/ok', { 'x-fault': 'abort' });
    expect(aborted.status).toBe(503);

    await eventually('the client counted both', async () => {
      const families = await metrics(client);
      const rt = samples(families, 'istio_requests_total');
      return (
        sum(rt, {
          reporter: 'source',
          destination_service_name: 'slow',
          response_code: '503',
          response_flags: 'UO',
        }) === 2 &&
        sum(rt, {
          reporter: 'source',
          destination_service_name: 'backend',
          response_code: '503',
          response_flags: 'FI',
        }) === 1
      );
    });
    const rt = samples(await metrics(client), 'istio_requests_total');
    // Overflow never reached an upstream: the callee is unknown; its service comes from the route's cluster.
    expect(rt.find((s) => s.labels.response_flags === 'UO')?.labels).toMatchObject({
      destination_workload: 'unknown',
      destination_service: 'slow.default.svc.cluster.local',
    });
    // An abort never leaves the client either; its service is the route's cluster (Envoy resolves it with the route).
    expect(rt.find((s) => s.labels.response_flags === 'FI')?.labels).toMatchObject({
      destination_workload: 'unknown',
      destination_service: 'backend.default.svc.cluster.local',
      destination_service_namespace: 'default',
    });
    expect(sum(samples(await metrics(server), 'istio_requests_total'), { response_flags: 'FI' })).toBe(0);
  });

  it('writes JSON access-log lines on stdout for a 200 and a 503 UO, and sends them to the collector', async () => {
    await eventually('access lines on the client', async () =>
      accessLines(client).some((l) => l.response_flags === 'UO'),
    );
    const lines = accessLines(client);
    const ok = lines.find((l) => l.response_code === 200 && l.path === '/ok')!;
    expect(ok).toMatchObject({
      method: 'GET',
      protocol: 'HTTP/1.1',
      authority: 'backend:8000',
      response_flags: '-',
      upstream_cluster: 'outbound|8000||backend.default.svc.cluster.local',
      route_name: expect.any(String),
      upstream_peer: { workload: 'backend-v1', namespace: 'default' },
      downstream_peer: null,
    });
    expect(typeof ok.duration).toBe('number');
    expect(typeof ok.bytes_sent).toBe('number');
    expect(ok.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(ok.start_time).toMatch(/^\d{4}-\d\d-\d\dT/);
    const uo = lines.find((l) => l.response_flags === 'UO')!;
    expect(uo).toMatchObject({ response_code: 503, path: '/held', upstream_peer: null });
    const inbound = accessLines(server).find((l) => l.path === '/ok')!;
    expect(inbound).toMatchObject({
      downstream_peer: { workload: 'client-v1' },
      upstream_cluster: `inbound|${backends.backend!.port}||`,
      trace_id: ok.trace_id,
    });
    await eventually('the collector has the 503 UO line', async () => {
      const { logs } = await getJson<{ logs: { body: Record<string, unknown>; service: string }[] }>(
        `${api}/api/logs?q=UO&lookback=10m&limit=100`,
      );
      return logs.some((l) => l.body.response_flags === 'UO' && l.service === 'client.default');
    });
  });

  it('writes an RBAC 403 as Envoy does: the server proxy answered it (no flag, rbac_access_denied details), the client saw the upstream’s 403', async () => {
    const policy = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-forbidden, namespace: default }
spec:
  selector: { matchLabels: { app: backend } }
  action: DENY
  rules: [{ to: [{ operation: { paths: [/forbidden] } }] }]
`;
    expect((await mesh.apply(policy)).status).toBe(200);
    try {
      await eventually('the policy in force at the backend’s sidecar', async () => {
        const r = await http.request('http://backend:8000/forbidden');
        return r.status === 403 || `got ${r.status}`;
      });
      const hitsBefore = backends.backend!.hits;
      const denied = await http.request('http://backend:8000/forbidden', { 'x-request-id': 'rbac-403-line' });
      expect(denied.status).toBe(403);
      expect(denied.body).toBe('RBAC: access denied');
      expect(backends.backend!.hits).toBe(hitsBefore);
      expect((await http.request('http://backend:8000/allowed')).status).toBe(200);
      const line = (proxy: SidecarHandle) => accessLines(proxy).find((l) => l.request_id === 'rbac-403-line');
      await eventually('both proxies logged the 403', async () => !!line(server) && !!line(client));
      expect(line(server)).toMatchObject({
        method: 'GET',
        path: '/forbidden',
        response_code: 403,
        response_flags: '-',
        response_code_details:
          'rbac_access_denied_matched_policy[ns[default]-policy[deny-forbidden]-rule[0]]',
        upstream_host: null,
        downstream_peer: { workload: 'client-v1', namespace: 'default' },
      });
      expect(line(client)).toMatchObject({
        response_code: 403,
        response_flags: '-',
        response_code_details: 'via_upstream',
        upstream_cluster: 'outbound|8000||backend.default.svc.cluster.local',
        upstream_peer: { workload: 'backend-v1' },
      });
      // Envoy's RBAC counters and Istio's request count agree on the denial.
      const families = await metrics(server);
      expect(
        sum(samples(families, 'istio_requests_total'), {
          reporter: 'destination',
          response_code: '403',
          source_workload: 'client-v1',
        }),
      ).toBeGreaterThanOrEqual(2);
      expect(
        samples(families, 'envoy_http_rbac_denied').reduce((a, s) => a + s.value, 0),
      ).toBeGreaterThanOrEqual(2);
      expect(await promtool(await scrape(server))).toEqual({
        unexplained: [],
        explained: [
          'envoy_http_rbac_allowed counter metrics should have "_total" suffix',
          'envoy_http_rbac_denied counter metrics should have "_total" suffix',
          DURATION_UNIT,
        ],
      });
    } finally {
      expect((await mesh.remove(policy)).status).toBe(200);
    }
  });

  it('one request is one trace: the client span parent of the server span, same trace id, both received by the collector', async () => {
    const parent = '00f067aa0ba902b7';
    const r = await http.request('http://backend:8000/traced', { traceparent: `00-${TRACE}-${parent}-01` });
    expect(r.status).toBe(200);
    // The app sees the server span's context.
    expect(backends.backend!.lastHeaders?.traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    type Span = {
      spanId: string;
      parentSpanId?: string;
      kind: string;
      service: string;
      name: string;
      attributes: Record<string, unknown>;
    };
    let spans: Span[] = [];
    await eventually(
      'both spans at the collector',
      async () => {
        const res = await fetch(`${api}/api/traces/${TRACE}`);
        if (!res.ok) return `collector answered ${res.status}`;
        spans = ((await res.json()) as { spans: Span[] }).spans;
        return spans.length >= 2 || `${spans.length} span(s)`;
      },
      20_000,
    );
    const clientSpan = spans.find((s) => s.kind === 'client')!;
    const serverSpan = spans.find((s) => s.kind === 'server')!;
    expect(clientSpan.parentSpanId).toBe(parent);
    expect(serverSpan.parentSpanId).toBe(clientSpan.spanId);
    expect(clientSpan.service).toBe('client.default');
    expect(serverSpan.service).toBe('backend.default');
    expect(clientSpan.name).toBe('backend.default.svc.cluster.local:8000/*');
    expect(clientSpan.attributes).toMatchObject({
      node_id: client.id,
      upstream_cluster: 'outbound|8000||backend.default.svc.cluster.local',
      response_flags: '-',
      'istio.canonical_service': 'client',
      'http.request.method': 'GET',
      'http.response.status_code': 200,
    });
    expect(serverSpan.attributes).toMatchObject({ node_id: server.id, 'istio.canonical_service': 'backend' });
  });

  it.each([
    [
      'multi headers',
      'a3ce929d0e0e4736a3ce929d0e0e4736',
      {
        'x-b3-traceid': 'a3ce929d0e0e4736a3ce929d0e0e4736',
        'x-b3-spanid': '1111111111111111',
        'x-b3-sampled': '1',
      },
    ],
    [
      'the single b3 header',
      'b3b3b3b3b3b3b3b3c4c4c4c4c4c4c4c4',
      { b3: 'b3b3b3b3b3b3b3b3c4c4c4c4c4c4c4c4-1111111111111111-1' },
    ],
  ])(
    'joins a B3-only caller (%s) into its trace: client span its child, server span the client span’s',
    async (_how, trace, headers) => {
      const r = await http.request('http://backend:8000/b3', headers);
      expect(r.status).toBe(200);
      // The app sees the trace in every form the proxies propagate.
      expect(backends.backend!.lastHeaders?.['x-b3-traceid']).toBe(trace);
      expect(backends.backend!.lastHeaders?.traceparent).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
      type Span = { spanId: string; parentSpanId?: string; kind: string; service: string };
      let spans: Span[] = [];
      await eventually(
        'the B3 trace at the collector',
        async () => {
          const res = await fetch(`${api}/api/traces/${trace}`);
          if (!res.ok) return `collector answered ${res.status}`;
          spans = ((await res.json()) as { spans: Span[] }).spans;
          return spans.length >= 2 || `${spans.length} span(s)`;
        },
        20_000,
      );
      const clientSpan = spans.find((s) => s.kind === 'client');
      const serverSpan = spans.find((s) => s.kind === 'server');
      expect(clientSpan).toMatchObject({ service: 'client.default', parentSpanId: '1111111111111111' });
      expect(serverSpan).toMatchObject({ service: 'backend.default', parentSpanId: clientSpan!.spanId });
      // The app's context is the server span's.
      expect(backends.backend!.lastHeaders?.['x-b3-spanid']).toBe(serverSpan!.spanId);
    },
  );

  it('samples new traces at 100% by default and at 0% once a Telemetry says so', async () => {
    await http.request('http://backend:8000/sampled');
    expect(backends.backend!.lastHeaders?.traceparent).toMatch(/-01$/);
    expect(
      (
        await mesh.apply(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: istio-system }
spec:
  tracing: [{ randomSamplingPercentage: 0 }]
`)
      ).status,
    ).toBe(200);
    await eventually('sampling off', async () => {
      await http.request('http://backend:8000/unsampled');
      return /-00$/.test(String(backends.backend!.lastHeaders?.traceparent));
    });
    const unsampled = String(backends.backend!.lastHeaders?.traceparent).split('-')[1]!;
    for (let i = 0; i < 5; i++) {
      await http.request('http://backend:8000/unsampled');
      expect(backends.backend!.lastHeaders?.traceparent).toMatch(/-00$/);
    }
    // An upstream decision still wins: a sampled caller is traced.
    const forced = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    await http.request('http://backend:8000/upstream-decides', {
      traceparent: `00-${forced}-2222222222222222-01`,
    });
    await eventually(
      'the caller-sampled trace exported',
      async () => (await fetch(`${api}/api/traces/${forced}`)).ok,
      20_000,
    );
    expect((await fetch(`${api}/api/traces/${unsampled}`)).status).toBe(404);
  });

  it('Telemetry overrides disable a metric and change tags', async () => {
    const durationCount = async () =>
      sum(samples(await metrics(client), 'istio_request_duration_milliseconds_count'), {
        destination_service_name: 'backend',
      });
    expect(
      (
        await mesh.apply(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: client-metrics, namespace: default }
spec:
  selector: { matchLabels: { app: client } }
  metrics:
    - providers: [{ name: prometheus }]
      overrides:
        - match: { metric: REQUEST_DURATION, mode: CLIENT }
          disabled: true
        - match: { metric: REQUEST_COUNT }
          tagOverrides:
            request_host: { value: request.host }
            user: { value: "request.headers['x-user']" }
            response_flags: { operation: REMOVE }
`)
      ).status,
    ).toBe(200);
    await eventually('the override in force', async () => {
      await http.request('http://backend:8000/ok', { 'x-user': 'jason' });
      return samples(await metrics(client), 'istio_requests_total').some((s) => s.labels.user === 'jason');
    });
    const durations = await durationCount();
    const jason = async () =>
      samples(await metrics(client), 'istio_requests_total').filter((s) => s.labels.user === 'jason');
    const counted = sum(await jason(), {});
    for (let i = 0; i < 5; i++) await http.request('http://backend:8000/ok', { 'x-user': 'jason' });
    // The proxy counts each once its response has ended, which can be just after the caller read it.
    await eventually('the five requests counted', async () => sum(await jason(), {}) >= counted + 5);
    const tagged = await jason();
    expect(tagged, JSON.stringify(tagged)).toHaveLength(1);
    expect(tagged[0]!.labels).toMatchObject({ request_host: 'backend:8000', response_code: '200' });
    expect(tagged[0]!.labels).not.toHaveProperty('response_flags');
    expect(tagged[0]!.value).toBeGreaterThanOrEqual(6);
    expect(await durationCount()).toBe(durations);
    expect(await promtool(await scrape(client))).toEqual({ unexplained: [], explained: [DURATION_UNIT] });
    // The server side keeps its standard metrics.
    const serverSeries = samples(await metrics(server), 'istio_requests_total');
    expect(
      serverSeries.every((s) => s.labels.response_flags !== undefined && s.labels.user === undefined),
    ).toBe(true);
  });

  it('the collector scrapes both proxies through pilot (ports.stats) and draws the edge', async () => {
    const syncz = await mesh.syncz();
    const entry = syncz.find((e) => e.proxy === client.id) as { ports?: { stats?: number } } | undefined;
    expect(entry?.ports?.stats).toBe(client.statsPort);
    await eventually(
      'client → backend in the graph',
      async () => {
        for (let i = 0; i < 3; i++) await http.request('http://backend:8000/ok');
        const graph = await getJson<{
          edges: { source: string; target: string; requestsPerSecond: number }[];
        }>(`${api}/api/graph?window=5m`);
        return graph.edges.some((e) => e.source.includes('client-v1') && e.requestsPerSecond > 0);
      },
      30_000,
    );
    expect(collector.proc.child.exitCode).toBeNull();
  });

  it("the query API from real components: /api/workloads with each proxy's sync and scrape state, /api/config with pilot's resources and their validation", async () => {
    // Traffic in the window, so both workloads are in the graph the API derives them from.
    for (let i = 0; i < 3; i++) expect((await http.request('http://backend:8000/ok')).status).toBe(200);
    type Workload = {
      namespace: string;
      name: string;
      app?: string;
      meshed: boolean;
      proxy: { id: string; kind: string; sync: Record<string, string> } | null;
      scrape: { state: string } | null;
      requestsPerSecond: number;
    };
    let workloads: Workload[] = [];
    await eventually(
      'both workloads scraped and with traffic',
      async () => {
        for (let i = 0; i < 2; i++) await http.request('http://backend:8000/ok');
        workloads = (await getJson<{ workloads: Workload[] }>(`${api}/api/workloads?window=5m`)).workloads;
        const backend = workloads.find((w) => w.name === 'backend-v1');
        // The collector reads pilot's sync states at each scrape: one taken during the last push says SENT.
        const synced = workloads.every(
          (w) => !w.proxy || Object.values(w.proxy.sync).every((state) => state === 'ACKED'),
        );
        return (
          (backend?.scrape?.state === 'up' && backend.requestsPerSecond > 0 && synced) ||
          JSON.stringify(workloads)
        );
      },
      30_000,
    );
    const byName = new Map(workloads.map((w) => [w.name, w]));
    for (const [name, proxy, app] of [
      ['backend-v1', server, 'backend'],
      ['client-v1', client, 'client'],
    ] as const) {
      expect(byName.get(name), name).toMatchObject({
        namespace: 'default',
        app,
        meshed: true,
        proxy: {
          id: proxy.id,
          kind: 'sidecar',
          sync: { CDS: 'ACKED', EDS: 'ACKED', LDS: 'ACKED', RDS: 'ACKED' },
        },
        scrape: { state: 'up' },
      });
    }

    // Pilot's config in force, with what its validation said: a warning on a resource in force, and a file
    // with an error, which pilot leaves out whole (nothing half-applied).
    const warned = path.join(mesh.configDir, 'audit-selector.yaml');
    const broken = path.join(mesh.configDir, 'audit-broken.yaml');
    mesh.writeConfig(
      'audit-selector.yaml',
      `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: everyone-selected, namespace: audit }
spec:
  selector: { matchLabels: {} }
  action: ALLOW
`,
    );
    mesh.writeConfig(
      'audit-broken.yaml',
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: broken, namespace: audit }
spec:
  host: nowhere.audit.svc.cluster.local
  trafficPolicy: { loadBalancer: { simple: SOMETIMES } }
`,
    );
    try {
      type ConfigView = {
        pilot: { reachable: boolean } | null;
        resources: {
          kind: string;
          name: string;
          namespace: string;
          source?: string;
          status: string;
          issues: { message: string }[];
        }[];
        issues: {
          kind?: string;
          name?: string;
          severity: string;
          source: string;
          path?: string;
          message: string;
        }[];
      };
      let view: ConfigView | undefined;
      await eventually('pilot read audit.yaml, and the collector shows it', async () => {
        view = await getJson<ConfigView>(`${api}/api/config`);
        return (
          view.resources.some((r) => r.name === 'everyone-selected') || `${view.resources.length} resources`
        );
      });
      const configz = await getJson<{
        resources: { kind: string; metadata: { name: string; namespace: string } }[];
      }>(`${mesh.pilot!.base}/debug/configz`);
      // Exactly what pilot has in force, resource for resource.
      expect(view!.pilot).toMatchObject({ reachable: true });
      expect(view!.resources.map((r) => `${r.kind} ${r.namespace}/${r.name}`).sort()).toEqual(
        configz.resources.map((r) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`).sort(),
      );
      expect(view!.resources.find((r) => r.kind === 'ServiceEntry' && r.name === 'backend')).toMatchObject({
        status: 'valid',
        issues: [],
        // Which of pilot's config sources holds it: the watched directory.
        source: `dir:${mesh.configDir}`,
      });
      const selected = view!.resources.find((r) => r.name === 'everyone-selected')!;
      expect(selected.status).toBe('warning');
      expect(selected.issues[0]!.message).toMatch(/selector has no labels/);
      // The broken DestinationRule is not in force: its error stands alone, naming file, field and reason.
      expect(view!.resources.some((r) => r.name === 'broken')).toBe(false);
      expect(view!.issues).toContainEqual(
        expect.objectContaining({
          kind: 'DestinationRule',
          name: 'broken',
          severity: 'error',
          source: broken,
          path: expect.stringContaining('loadBalancer'),
        }),
      );
    } finally {
      fs.rmSync(warned, { force: true });
      fs.rmSync(broken, { force: true });
    }
  });

  it("the control plane's own metrics carry Istio's names and values, and every exposition passes promtool's rules", async () => {
    const scrapeText = async (url: string) => {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      expect(res.status, url).toBe(200);
      return res.text();
    };
    // Pilot: connected proxies, pushes by type, push and convergence time, rejects.
    const pilotText = await scrapeText(`${mesh.pilot!.base}/metrics`);
    // Nothing was rejected, so pilot_total_xds_rejects has no samples yet, and promtool lints only families with samples.
    expect(await promtool(pilotText)).toEqual({
      unexplained: [],
      explained: ['pilot_xds_pushes counter metrics should have "_total" suffix'],
    });
    const families = parseExposition(pilotText).families;
    const names = families.map((f) => f.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'pilot_xds',
        'pilot_xds_pushes',
        'pilot_xds_push_time',
        'pilot_proxy_convergence_time',
        'pilot_total_xds_rejects',
        'pilot_xds_cds_reject',
        'pilot_xds_eds_reject',
        'pilot_xds_lds_reject',
        'pilot_xds_rds_reject',
      ]),
    );
    expect(samples(families, 'pilot_xds')[0]!.value).toBe(2);
    // Every test above changed config: listeners and routes were pushed again to both proxies.
    for (const type of ['cds', 'lds', 'rds'])
      expect(sum(samples(families, 'pilot_xds_pushes'), { type }), type).toBeGreaterThan(0);
    expect(samples(families, 'pilot_xds_push_time_count')[0]!.value).toBeGreaterThan(0);
    expect(samples(families, 'pilot_proxy_convergence_time_count')[0]!.value).toBeGreaterThan(0);
    expect(samples(families, 'pilot_xds_lds_reject')[0]!.value).toBe(0);
    expect(samples(families, 'pilot_total_xds_rejects').reduce((a, s) => a + s.value, 0)).toBe(0);

    // Citadel: one CSR per sidecar so far, each issued, none failed.
    const citadelText = await scrapeText(`${mesh.citadel!.base}/metrics`);
    const citadelLint = await promtool(citadelText);
    expect(citadelLint.unexplained).toEqual([]);
    // Every CA counter Istio names *_count draws both of promtool's complaints, and nothing else is flagged.
    const caCounters = parseExposition(citadelText)
      .families.filter((f) => f.type === 'counter' && f.samples.length > 0)
      .map((f) => f.name);
    expect(caCounters.length).toBeGreaterThanOrEqual(3);
    expect(citadelLint.explained).toEqual(
      caCounters
        .flatMap((n) => [
          `${n} counter metrics should have "_total" suffix`,
          `${n} non-histogram and non-summary metrics should not have "_count" suffix`,
        ])
        .sort(),
    );
    const ca = parseExposition(citadelText).families;
    const csrs = samples(ca, 'citadel_server_csr_count')[0]!.value;
    expect(csrs).toBeGreaterThanOrEqual(2);
    expect(samples(ca, 'citadel_server_success_cert_issuance_count')[0]!.value).toBe(csrs);
    expect(samples(ca, 'citadel_server_csr_sign_err_count').reduce((a, s) => a + s.value, 0)).toBe(0);
    expect(samples(ca, 'citadel_server_root_cert_expiry_timestamp')[0]!.value).toBeGreaterThan(
      Date.now() / 1000,
    );

    // The collector's own metrics are valid too (its names are Mizzen's; prom-client's Node.js defaults aside).
    expect(
      (await promtool(await scrapeText(`${api}/metrics`), PROM_CLIENT_LINT_EXCEPTIONS)).unexplained,
    ).toEqual([]);
  });

  it('the Grafana dashboards in deploy/components/telemetry query only metrics and labels these processes export', async () => {
    // Every sample name (histograms as _bucket/_sum/_count) with the labels its samples carry, from real output.
    const exported = new Map<string, Set<string>>();
    const sources = [
      `http://127.0.0.1:${client.statsPort}/stats/prometheus`,
      `http://127.0.0.1:${server.statsPort}/stats/prometheus`,
      `${mesh.pilot!.base}/metrics`,
      `${mesh.citadel!.base}/metrics`,
    ];
    for (const url of sources) {
      for (const f of parseExposition(await (await fetch(url)).text()).families) {
        const names =
          f.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((x) => f.name + x) : [f.name];
        for (const n of names) if (!exported.has(n)) exported.set(n, new Set());
        for (const sample of f.samples)
          for (const l of Object.keys(sample.labels)) exported.get(sample.name)?.add(l);
      }
    }
    const dir = path.join(REPO, 'deploy/components/telemetry/dashboards');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual([
      'mizzen-control-plane-dashboard.json',
      'mizzen-mesh-dashboard.json',
      'mizzen-service-dashboard.json',
      'mizzen-workload-dashboard.json',
    ]);
    const problems: string[] = [];
    let checked = 0;
    for (const file of files) {
      const dashboard = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as {
        panels: { title: string; targets?: { expr: string }[] }[];
        templating: { list: { name: string; query?: string }[] };
      };
      const queries = [
        ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr }))),
        ...dashboard.templating.list
          .filter((v) => v.query?.startsWith('label_values('))
          .map((v) => {
            const [, expr, label] = /^label_values\((.*),\s*([a-zA-Z_]\w*)\)$/.exec(v.query!)!;
            return { where: `variable ${v.name}`, expr: `sum(${expr}) by (${label})` };
          }),
      ];
      for (const { where, expr } of queries) {
        checked++;
        const { metrics, grouping } = promqlRefs(expr);
        if (metrics.size === 0) problems.push(`${file} ${where}: no metric in ${expr}`);
        const known = new Set<string>();
        for (const [metric, labels] of metrics) {
          const has = exported.get(metric);
          if (!has) {
            problems.push(`${file} ${where}: ${metric} is not exported`);
            continue;
          }
          // Labels are known only for families with samples (a counter never incremented has none yet).
          if (has.size === 0) continue;
          for (const l of has) known.add(l);
          for (const l of labels)
            if (!has.has(l)) problems.push(`${file} ${where}: ${metric} has no label ${l}`);
        }
        if (known.size)
          for (const l of grouping)
            if (!known.has(l)) problems.push(`${file} ${where}: nothing to group by ${l}`);
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(40);
  });
});
