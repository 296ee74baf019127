import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLogLines, appliedAccessLogs } from '../src/access-log.js';
import { type Backend, getJson, ProxyClient, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type CollectorHandle, type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Istio's Telemetry API driving live sidecars through pilot: access logging
 * turned on for a namespace, filtered by CEL for one workload and disabled
 * for another, the log lines appearing and disappearing on the proxies'
 * stdout; tracing from a namespace-scoped Telemetry — sampling percentage
 * and custom tags (literal, request header, environment) — checked on the
 * spans the collector received. The mesh config logs and samples nothing.
 */
const NS = 'shop';
const URL_BASE = `http://server.${NS}:8000`;

const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: server, namespace: ${NS} }
spec:
  hosts: [server.${NS}.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: server } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: server, namespace: ${NS} }
spec:
  hosts: [server]
  http: [{ route: [{ destination: { host: server } }], retries: { attempts: 0 } }]
`;

/** The namespace's one Telemetry: access logs through Envoy's provider, and (when given) tracing. */
const namespaceTelemetry = (tracing = '') => `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: shop-defaults, namespace: ${NS} }
spec:
  accessLogging: [{ providers: [{ name: envoy }] }]
${tracing}`;

const SERVER_ERRORS_ONLY = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: server-errors, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: server } }
  accessLogging:
    - providers: [{ name: envoy }]
      filter: { expression: "response.code >= 400" }
`;

const CLIENT_LOGS_OFF = `
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: client-quiet, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: client } }
  accessLogging: [{ providers: [{ name: envoy }], disabled: true }]
`;

const TRACING_100 = `  tracing:
    - randomSamplingPercentage: 100
      customTags:
        team: { literal: { value: payments } }
        user: { header: { name: x-user, defaultValue: anonymous } }
        pod: { environment: { name: E2E_POD_NAME, defaultValue: no-pod } }
`;
const TRACING_0 = `  tracing: [{ randomSamplingPercentage: 0 }]
`;

describe('the Telemetry API on live sidecars', () => {
  const mesh = new TestMesh();
  let backend: Backend;
  let client: SidecarHandle;
  let server: SidecarHandle;
  let collector: CollectorHandle;
  let http: ProxyClient;

  /** The access-log lines a proxy wrote for one request id. */
  const linesFor = (proxy: SidecarHandle, id: string) =>
    accessLogLines(proxy.proc).filter((l) => l.request_id === id);
  const send = (path: string, id: string, headers: Record<string, string> = {}) =>
    http.request(`${URL_BASE}${path}`, { 'x-request-id': id, ...headers });

  beforeAll(async () => {
    const [apiPort, otlpHttp, otlpGrpc] = await mesh.ports.takeMany(3);
    const meshConfig = path.join(mesh.dir, 'mesh-config.yaml');
    // No access log and no sampling unless a Telemetry says so.
    fs.writeFileSync(
      meshConfig,
      `accessLogEncoding: JSON
defaultConfig: { tracing: { sampling: 0 } }
extensionProviders:
  - name: collector-traces
    opentelemetry: { service: 127.0.0.1, port: ${otlpHttp}, http: { path: /v1/traces } }
defaultProviders:
  tracing: [collector-traces]
`,
    );
    backend = await startBackend('server', 'v1', (req, res) => {
      if (req.url !== '/fail') return false;
      res.writeHead(503).end('failing on purpose');
      return true;
    });
    mesh.writeConfig('services.yaml', SERVICES);
    await mesh.startCitadel();
    await mesh.startPilot(['--mesh-config', meshConfig, '--registration-grace-ms', '30000']);
    collector = await mesh.startCollector({ ports: [apiPort!, otlpHttp!, otlpGrpc!] });
    // What a pod's env gives its proxy: the environment custom tag reads it.
    server = await mesh.startSidecar({
      workload: 'server-v1',
      service: 'server',
      namespace: NS,
      labels: { app: 'server', version: 'v1' },
      appPort: backend.port,
      servicePort: 8000,
      env: { E2E_POD_NAME: 'server-pod-1' },
    });
    client = await mesh.startSidecar({
      workload: 'client-v1',
      service: 'client',
      namespace: NS,
      labels: { app: 'client', version: 'v1' },
      appPort: await mesh.ports.take(),
      env: { E2E_POD_NAME: 'client-pod-1' },
    });
    await mesh.waitForSync([server.id, client.id]);
    http = new ProxyClient(client.outboundPort);
    await eventually(
      'server reachable through both sidecars',
      async () => (await send('/', 'warmup')).status === 200,
    );
  });

  afterAll(async () => {
    http?.close();
    await mesh.stop();
    await backend?.close();
  });

  it('access logs: none by default, on for the namespace, only errors for one workload, off for another', async () => {
    // Nothing turns logging on yet.
    expect((await send('/before', 'before-any-telemetry')).status).toBe(200);

    // Namespace scope: Envoy's provider for every workload in it.
    expect((await mesh.apply(namespaceTelemetry())).status).toBe(200);
    // Requests are sent until one is logged by both (a line lands just after its response: ids sent earlier count too).
    const sent: string[] = [];
    await eventually('the namespace Telemetry in force at both proxies', async () => {
      const id = `ns-${sent.length}`;
      sent.push(id);
      await send('/on', id);
      return sent.some((i) => linesFor(client, i).length === 1 && linesFor(server, i).length === 1);
    });
    expect(linesFor(client, 'before-any-telemetry')).toEqual([]);
    expect(linesFor(server, 'before-any-telemetry')).toEqual([]);
    expect(linesFor(client, sent.find((i) => linesFor(client, i).length === 1)!)[0]).toMatchObject({
      method: 'GET',
      path: '/on',
      response_code: 200,
      upstream_cluster: `outbound|8000||server.${NS}.svc.cluster.local`,
    });

    // Workload scope for the server: the same provider, with a CEL filter.
    expect((await mesh.apply(SERVER_ERRORS_ONLY)).status).toBe(200);
    const rounds: string[] = [];
    await eventually('the filter in force at the server', async () => {
      const id = `filter-${rounds.length}`;
      rounds.push(id);
      await send('/ok', `${id}-ok`);
      await send('/fail', `${id}-fail`);
      // The server writes a round's 503 line after its 200 line: once the 503's is there, the 200's absence is the filter.
      return rounds.some(
        (r) => linesFor(server, `${r}-fail`).length === 1 && linesFor(server, `${r}-ok`).length === 0,
      );
    });
    for (const [p, id] of [
      ['/ok', 'f-ok-1'],
      ['/fail', 'f-fail-1'],
      ['/ok', 'f-ok-2'],
      ['/fail', 'f-fail-2'],
    ] as const)
      await send(p, id);
    await eventually('the client logged all four', async () =>
      ['f-ok-1', 'f-fail-1', 'f-ok-2', 'f-fail-2'].every((id) => linesFor(client, id).length === 1),
    );
    await eventually('the server logged both failures', async () =>
      ['f-fail-1', 'f-fail-2'].every((id) => linesFor(server, id).length === 1),
    );
    expect(linesFor(server, 'f-fail-2')[0]).toMatchObject({ response_code: 503, path: '/fail' });
    expect(linesFor(server, 'f-ok-1')).toEqual([]);
    expect(linesFor(server, 'f-ok-2')).toEqual([]);

    // Workload scope for the client: the namespace's provider disabled there.
    expect((await mesh.apply(CLIENT_LOGS_OFF)).status).toBe(200);
    await eventually('no access log left in the client’s outbound config', async () => {
      const logs = await appliedAccessLogs(client.adminPort, 'OUTBOUND');
      return (logs.length > 0 && logs.every((l) => l.length === 0)) || JSON.stringify(logs);
    });
    // The server still logs its errors: each request's line there is written after the client answered the app.
    await send('/fail', 'quiet-1');
    await send('/fail', 'quiet-2');
    await eventually('the server logged both', async () =>
      ['quiet-1', 'quiet-2'].every((id) => linesFor(server, id).length === 1),
    );
    expect(linesFor(client, 'quiet-1')).toEqual([]);
    expect(linesFor(client, 'quiet-2')).toEqual([]);

    // Removing the workload Telemetry gives the client the namespace's logging back.
    expect((await mesh.remove(CLIENT_LOGS_OFF)).status).toBe(200);
    const again: string[] = [];
    await eventually('the client logging again', async () => {
      const id = `back-${again.length}`;
      again.push(id);
      await send('/ok', id);
      return again.some((i) => linesFor(client, i).length === 1);
    });
  });

  it('tracing from a namespace Telemetry: sampled at its percentage, with literal, header and environment tags', async () => {
    type Span = { kind: string; service: string; attributes: Record<string, unknown> };
    const sampledFlag = () => String(backend.lastHeaders?.traceparent).split('-')[3];
    // The mesh samples nothing: a new trace is not sampled.
    await send('/unsampled', 'trace-0');
    expect(sampledFlag()).toBe('00');

    expect((await mesh.apply(namespaceTelemetry(TRACING_100))).status).toBe(200);
    await eventually('100% sampling in force', async () => {
      await send('/sampled', `trace-${Date.now()}`);
      return sampledFlag() === '01';
    });
    const spansOf = async (headers: Record<string, string>) => {
      expect((await send('/traced', `tagged-${Date.now()}`, headers)).status).toBe(200);
      const traceId = String(backend.lastHeaders?.traceparent).split('-')[1]!;
      let spans: Span[] = [];
      await eventually(
        'both spans at the collector',
        async () => {
          const res = await fetch(`${collector.api}/api/traces/${traceId}`);
          if (!res.ok) return `collector answered ${res.status}`;
          spans = ((await res.json()) as { spans: Span[] }).spans;
          return spans.length >= 2 || `${spans.length} span(s)`;
        },
        20_000,
      );
      return {
        client: spans.find((s) => s.kind === 'client')!,
        server: spans.find((s) => s.kind === 'server')!,
      };
    };
    // The client samples once its config is in; the server proxy's own tags follow with its config.
    let withUser = await spansOf({ 'x-user': 'jason' });
    await eventually('the server proxy tagging its spans too', async () => {
      if (withUser.server.attributes.team === 'payments') return true;
      withUser = await spansOf({ 'x-user': 'jason' });
      return withUser.server.attributes.team === 'payments' || 'server span not tagged yet';
    });
    expect(withUser.client.service).toBe(`client.${NS}`);
    expect(withUser.server.service).toBe(`server.${NS}`);
    // Each proxy tags its own span: the environment tag reads its own process's variable.
    expect(withUser.client.attributes).toMatchObject({
      team: 'payments',
      user: 'jason',
      pod: 'client-pod-1',
    });
    expect(withUser.server.attributes).toMatchObject({
      team: 'payments',
      user: 'jason',
      pod: 'server-pod-1',
    });
    const anonymous = await spansOf({});
    expect(anonymous.client.attributes).toMatchObject({ user: 'anonymous' });
    expect(anonymous.server.attributes).toMatchObject({ user: 'anonymous' });

    // The namespace at 0%: new traces unsampled again, and none of them reaches the collector.
    expect((await mesh.apply(namespaceTelemetry(TRACING_0))).status).toBe(200);
    await eventually('0% sampling in force', async () => {
      await send('/unsampled', `trace-${Date.now()}`);
      return sampledFlag() === '00';
    });
    const unsampled: string[] = [];
    for (let i = 0; i < 5; i++) {
      await send('/unsampled', `off-${i}`);
      expect(sampledFlag()).toBe('00');
      unsampled.push(String(backend.lastHeaders?.traceparent).split('-')[1]!);
    }
    // A caller's own sampled decision is still honoured, and its trace exported behind the unsampled ones.
    const forced = 'cccccccccccccccccccccccccccccccc';
    await send('/forced', 'forced', { traceparent: `00-${forced}-3333333333333333-01` });
    await eventually(
      'the caller-sampled trace exported',
      async () => (await fetch(`${collector.api}/api/traces/${forced}`)).ok,
      20_000,
    );
    for (const id of unsampled) expect((await fetch(`${collector.api}/api/traces/${id}`)).status).toBe(404);
    const services = await getJson<{ services: string[] }>(`${collector.api}/api/trace-services`);
    expect(services.services).toEqual(expect.arrayContaining([`client.${NS}`, `server.${NS}`]));
  });
});
