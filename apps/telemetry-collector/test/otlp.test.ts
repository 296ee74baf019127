import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { decodeRpcStatus, OTLP_GRPC_METHODS, type OtlpSignal } from '@mizzen/xds';
import { ProtobufMetricsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogRecord, MetricPoint, TraceSummary } from '../src/store/types.js';
import { getJson, type Running, startCollector } from './helpers/collector.js';
import {
  gaugePoints,
  hexId,
  Kind,
  log,
  logsJson,
  logsProtobuf,
  metrics,
  metricsJson,
  metricsProtobuf,
  span,
  tracesJson,
  tracesProtobuf,
} from './helpers/otlp.js';

const PROTOBUF = 'application/x-protobuf';
const JSON_TYPE = 'application/json';

async function post(
  url: string,
  body: Uint8Array | string,
  contentType: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; body: Buffer }> {
  const res = await fetch(url, {
    method: 'POST',
    body,
    headers: { 'content-type': contentType, ...headers },
  });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    body: Buffer.from(await res.arrayBuffer()),
  };
}

/** A four-service Bookinfo trace: ingress → productpage → details, reviews → ratings. */
function bookinfoTrace(traceId: string, startMs: number) {
  const id = (n: number) => hexId(8, n + Number.parseInt(traceId.slice(0, 6), 16));
  return [
    span({
      traceId,
      spanId: id(1),
      name: 'GET /productpage',
      service: 'productpage',
      kind: Kind.server,
      startMs,
      durationMs: 40,
      attributes: {
        'http.request.method': 'GET',
        'http.response.status_code': 200,
        'url.path': '/productpage',
        node_id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
        'istio.canonical_service': 'productpage',
        upstream_cluster: 'inbound|9080||',
        response_flags: '-',
        retried: false,
        tags: ['a', 'b'],
      },
    }),
    span({
      traceId,
      spanId: id(2),
      parentSpanId: id(1),
      name: 'GET /details/0',
      service: 'details',
      kind: Kind.server,
      startMs: startMs + 2,
      durationMs: 5,
    }),
    span({
      traceId,
      spanId: id(3),
      parentSpanId: id(1),
      name: 'GET /reviews/0',
      service: 'reviews',
      kind: Kind.server,
      startMs: startMs + 8,
      durationMs: 25,
      events: [{ name: 'cache miss', atMs: startMs + 9 }],
    }),
    span({
      traceId,
      spanId: id(4),
      parentSpanId: id(3),
      name: 'GET /ratings/0',
      service: 'ratings',
      kind: Kind.server,
      startMs: startMs + 12,
      durationMs: 9,
      error: 'upstream reset',
    }),
  ];
}

describe('OTLP receivers', () => {
  let c: Running;

  beforeAll(async () => {
    c = await startCollector();
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('accepts protobuf traces and serves the whole trace with parents, attributes, events and status', async () => {
    const traceId = hexId(16, 1);
    const res = await post(
      `${c.otlp}/v1/traces`,
      tracesProtobuf(bookinfoTrace(traceId, Date.now())),
      PROTOBUF,
    );
    expect(res.status).toBe(200);
    expect(res.type).toBe(PROTOBUF);
    expect(ProtobufTraceSerializer.deserializeResponse(res.body)).toEqual({});

    const t = await getJson<{
      services: string[];
      spans: {
        spanId: string;
        parentSpanId?: string;
        depth: number;
        service: string;
        attributes: Record<string, unknown>;
        kind: string;
        status: { code: string; message?: string };
        events: { name: string }[];
      }[];
    }>(`${c.api}/api/traces/${traceId}`);
    expect(t.services).toEqual(['details', 'productpage', 'ratings', 'reviews']);
    expect(t.spans.map((s) => [s.service, s.depth])).toEqual([
      ['productpage', 0],
      ['details', 1],
      ['reviews', 1],
      ['ratings', 2],
    ]);
    const root = t.spans[0]!;
    expect(root.kind).toBe('server');
    expect(root.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      node_id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
      'istio.canonical_service': 'productpage',
      retried: false,
      tags: ['a', 'b'],
    });
    expect(t.spans[3]!.status).toEqual({ code: 'error', message: 'upstream reset' });
    expect(t.spans[3]!.parentSpanId).toBe(t.spans[2]!.spanId);
    expect(t.spans[2]!.events.map((e) => e.name)).toEqual(['cache miss']);
  });

  it('accepts JSON and gzip, and finds traces by service and time', async () => {
    const now = Date.now();
    const a = hexId(16, 2);
    const b = hexId(16, 3);
    expect(
      (await post(`${c.otlp}/v1/traces`, tracesJson(bookinfoTrace(a, now - 1000)), JSON_TYPE)).status,
    ).toBe(200);
    const gz = gzipSync(tracesJson(bookinfoTrace(b, now - 500)));
    const res = await post(`${c.otlp}/v1/traces`, gz, JSON_TYPE, { 'content-encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({});
    const gzProto = gzipSync(tracesProtobuf(bookinfoTrace(hexId(16, 4), now - 60 * 60_000 * 3)));
    expect(
      (await post(`${c.otlp}/v1/traces`, gzProto, PROTOBUF, { 'content-encoding': 'gzip' })).status,
    ).toBe(200);

    const { traces } = await getJson<{ traces: TraceSummary[] }>(
      `${c.api}/api/traces?service=ratings&lookback=15m`,
    );
    const ids = traces.map((t) => t.traceId);
    // Newest first; the three-hour-old one is out of range.
    expect(ids).toEqual([hexId(16, 1), b, a]);
    expect(traces[1]).toMatchObject({
      rootService: 'productpage',
      rootName: 'GET /productpage',
      spanCount: 4,
      errorCount: 1,
    });
    expect(traces[1]!.durationUs).toBe(40_000);
    const old = await getJson<{ traces: TraceSummary[] }>(
      `${c.api}/api/traces?start=${now - 4 * 3_600_000}&end=${now - 2 * 3_600_000}`,
    );
    expect(old.traces.map((t) => t.traceId)).toEqual([hexId(16, 4)]);
    const slow = await getJson<{ traces: TraceSummary[] }>(
      `${c.api}/api/traces?minDuration=41ms&lookback=15m`,
    );
    expect(slow.traces).toEqual([]);
    const services = await getJson<{ services: string[] }>(`${c.api}/api/trace-services`);
    expect([...services.services].sort()).toEqual(['details', 'productpage', 'ratings', 'reviews']);
  });

  it('accepts access logs (Envoy JSON bodies) and metrics in both encodings', async () => {
    const now = Date.now();
    const traceId = hexId(16, 5);
    const envoy = {
      start_time: new Date(now).toISOString(),
      method: 'GET',
      path: '/ratings/0',
      protocol: 'HTTP/1.1',
      response_code: 503,
      response_flags: 'UO',
      bytes_received: 0,
      bytes_sent: 19,
      duration: 1,
      upstream_cluster: 'outbound|9080||ratings.default.svc.cluster.local',
      authority: 'ratings:9080',
    };
    const asString = log({ service: 'reviews', atMs: now, body: JSON.stringify(envoy), traceId });
    const asMap = log({
      service: 'ratings',
      atMs: now + 1,
      body: { ...envoy, response_code: 200, response_flags: '-' },
    });
    expect(
      (
        await post(`${c.otlp}/v1/logs`, gzipSync(logsProtobuf([asString])), PROTOBUF, {
          'content-encoding': 'gzip',
        })
      ).status,
    ).toBe(200);
    expect((await post(`${c.otlp}/v1/logs`, logsJson([asMap]), JSON_TYPE)).status).toBe(200);
    const reviews = await getJson<{ logs: LogRecord[] }>(`${c.api}/api/logs?service=reviews`);
    expect(reviews.logs).toHaveLength(1);
    expect(reviews.logs[0]).toMatchObject({ service: 'reviews', traceId, severityText: 'INFO', body: envoy });
    const byText = await getJson<{ logs: LogRecord[] }>(`${c.api}/api/logs?q=UO`);
    expect(byText.logs.map((l) => l.service)).toEqual(['reviews']);
    const byTrace = await getJson<{ logs: LogRecord[] }>(`${c.api}/api/logs?traceId=${traceId}`);
    expect(byTrace.logs).toHaveLength(1);
    const all = await getJson<{ logs: LogRecord[] }>(`${c.api}/api/logs`);
    expect(all.logs.map((l) => l.service)).toEqual(['ratings', 'reviews']);

    expect(
      (await post(`${c.otlp}/v1/metrics`, metricsProtobuf(metrics('reviews', now)), PROTOBUF)).status,
    ).toBe(200);
    expect((await post(`${c.otlp}/v1/metrics`, metricsJson(metrics('ratings', now)), JSON_TYPE)).status).toBe(
      200,
    );
    for (const service of ['reviews', 'ratings']) {
      const { points } = await getJson<{ points: MetricPoint[] }>(
        `${c.api}/api/otlp-metrics?service=${service}`,
      );
      const byName = Object.fromEntries(points.map((p) => [p.name, p]));
      expect(byName['http.server.requests']).toMatchObject({
        kind: 'sum',
        value: 42,
        monotonic: true,
        temporality: 'cumulative',
        attributes: { route: '/reviews' },
      });
      expect(byName['process.memory.usage']).toMatchObject({ kind: 'gauge', value: 1.5e6, unit: 'By' });
      expect(byName['http.server.duration']).toMatchObject({
        kind: 'histogram',
        count: 9,
        sum: 420,
        bounds: [10, 100],
        bucketCounts: [3, 5, 1],
      });
    }
  });

  it('reports partial success for spans with bad ids and keeps the good ones', async () => {
    const good = hexId(16, 6);
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'productpage' } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: good,
                  spanId: hexId(8, 1),
                  name: 'ok',
                  kind: 2,
                  startTimeUnixNano: String(Date.now() * 1e6),
                  endTimeUnixNano: String(Date.now() * 1e6 + 1e6),
                },
                { traceId: 'not-hex', spanId: hexId(8, 2), name: 'bad' },
              ],
            },
          ],
        },
      ],
    };
    const res = await post(`${c.otlp}/v1/traces`, JSON.stringify(body), JSON_TYPE);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({
      partialSuccess: {
        rejectedSpans: '1',
        errorMessage: expect.stringMatching(/spans\[1\]\.traceId must be 32 hex digits/),
      },
    });
    const t = await getJson<{ spans: unknown[] }>(`${c.api}/api/traces/${good}`);
    expect(t.spans).toHaveLength(1);
  });

  it('answers malformed and oversized requests with 400 and a reason, and keeps working', async () => {
    const tooManySpans = Array.from({ length: 1001 }, (_, i) =>
      span({
        traceId: hexId(16, 7),
        spanId: hexId(8, i + 10),
        name: 'x',
        service: 's',
        kind: Kind.internal,
        startMs: Date.now(),
        durationMs: 1,
      }),
    );
    const tooManyLogs = Array.from({ length: 1001 }, (_, i) =>
      log({ service: 's', atMs: Date.now() + i, body: `line ${i}` }),
    );
    const cases: [string, Uint8Array | string, string, Record<string, string>, RegExp][] = [
      [
        '/v1/traces',
        Buffer.from('definitely not protobuf'),
        PROTOBUF,
        {},
        /not a valid OTLP traces protobuf message/,
      ],
      ['/v1/logs', Buffer.from([0x0a, 0xff, 0xff]), PROTOBUF, {}, /not a valid OTLP logs protobuf message/],
      ['/v1/traces', '{"resourceSpans": [', JSON_TYPE, {}, /body is not valid JSON/],
      ['/v1/traces', '{"resourceSpans": 5}', JSON_TYPE, {}, /resourceSpans must be an array/],
      [
        '/v1/metrics',
        '{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [{"asDouble": "lots"}]}}]}]}]}',
        JSON_TYPE,
        {},
        /asDouble must be a number/,
      ],
      ['/v1/traces', '[1, 2]', JSON_TYPE, {}, /must be an ExportTraceServiceRequest object/],
      ['/v1/traces', Buffer.alloc(1024 * 1024 + 1, 0x20), JSON_TYPE, {}, /exceeds the 1048576-byte limit/],
      ['/v1/traces', tracesProtobuf(tooManySpans), PROTOBUF, {}, /more than 1000 spans/],
      // Every signal's batch is capped in items (--max-batch-items), whatever its size in bytes.
      ['/v1/logs', logsProtobuf(tooManyLogs), PROTOBUF, {}, /more than 1000 log records/],
      ['/v1/logs', logsJson(tooManyLogs), JSON_TYPE, {}, /more than 1000 log records/],
      ['/v1/metrics', metricsProtobuf(gaugePoints('s', 1001)), PROTOBUF, {}, /more than 1000 data points/],
      ['/v1/metrics', metricsJson(gaugePoints('s', 1001)), JSON_TYPE, {}, /more than 1000 data points/],
      [
        '/v1/traces',
        gzipSync(Buffer.alloc(8 * 1024 * 1024)),
        PROTOBUF,
        { 'content-encoding': 'gzip' },
        /decompressed body exceeds the 1048576-byte limit/,
      ],
      [
        '/v1/traces',
        Buffer.from('not gzip at all'),
        PROTOBUF,
        { 'content-encoding': 'gzip' },
        /could not be decompressed/,
      ],
      ['/v1/traces', '{}', JSON_TYPE, { 'content-encoding': 'br' }, /unsupported content-encoding "br"/],
    ];
    for (const [path, body, type, headers, reason] of cases) {
      const res = await post(`${c.otlp}${path}`, body, type, headers);
      expect(res.status, `${path} ${reason}`).toBe(400);
      const message =
        type === PROTOBUF
          ? decodeRpcStatus(res.body).message
          : (JSON.parse(res.body.toString()) as { message: string }).message;
      expect(message, `${path}`).toMatch(reason);
    }
    const unsupported = await post(`${c.otlp}/v1/traces`, 'hello', 'text/plain');
    expect(unsupported.status).toBe(415);
    expect(unsupported.body.toString()).toMatch(/use application\/x-protobuf or application\/json/);

    // Nothing of a refused batch was kept; a batch at the cap is taken whole.
    expect((await getJson<{ logs: unknown[] }>(`${c.api}/api/logs?service=s&limit=1000`)).logs).toEqual([]);
    expect((await getJson<{ points: unknown[] }>(`${c.api}/api/otlp-metrics?service=s`)).points).toEqual([]);
    expect(
      (await post(`${c.otlp}/v1/metrics`, metricsProtobuf(gaugePoints('capped', 1000)), PROTOBUF)).status,
    ).toBe(200);
    expect(
      (await getJson<{ points: unknown[] }>(`${c.api}/api/otlp-metrics?service=capped&limit=5000`)).points,
    ).toHaveLength(1000);

    // Still healthy and still ingesting.
    expect((await getJson<{ status: string }>(`${c.api}/healthz`)).status).toBe('ok');
    const traceId = hexId(16, 8);
    expect(
      (await post(`${c.otlp}/v1/traces`, tracesProtobuf(bookinfoTrace(traceId, Date.now())), PROTOBUF))
        .status,
    ).toBe(200);
    expect((await getJson<{ spans: unknown[] }>(`${c.api}/api/traces/${traceId}`)).spans).toHaveLength(4);
    const metricsText = await (await fetch(`${c.api}/metrics`)).text();
    expect(metricsText).toMatch(
      /mizzen_collector_otlp_requests_total\{signal="traces",transport="http",result="bad_request"\} [1-9]/,
    );
    expect(metricsText).toMatch(/mizzen_collector_received_items_total\{signal="traces"\} [1-9]/);
  });

  describe('over gRPC', () => {
    type Exporter = grpc.Client & {
      Export(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
    };
    const clients: grpc.Client[] = [];
    const client = (signal: OtlpSignal, options: grpc.ClientOptions = {}): Exporter => {
      const Ctor = grpc.makeGenericClientConstructor(
        {
          Export: {
            path: OTLP_GRPC_METHODS[signal],
            requestStream: false,
            responseStream: false,
            requestSerialize: (b: Buffer) => b,
            requestDeserialize: (b: Buffer) => b,
            responseSerialize: (b: Buffer) => b,
            responseDeserialize: (b: Buffer) => b,
          },
        },
        `otlp-${signal}`,
      );
      const cl = new Ctor(
        `127.0.0.1:${c.grpcPort}`,
        grpc.credentials.createInsecure(),
        options,
      ) as unknown as Exporter;
      clients.push(cl);
      return cl;
    };
    const exportCall = (cl: Exporter, body: Uint8Array) =>
      new Promise<{ err: grpc.ServiceError | null; res?: Buffer }>((resolve) =>
        cl.Export(Buffer.from(body), (err, res) => resolve({ err, res })),
      );
    afterAll(() => {
      for (const cl of clients) cl.close();
    });

    it('exports traces and logs with a real grpc-js client, compressed or not', async () => {
      const traceId = hexId(16, 9);
      const plain = await exportCall(client('traces'), tracesProtobuf(bookinfoTrace(traceId, Date.now())));
      expect(plain.err).toBeNull();
      expect(ProtobufTraceSerializer.deserializeResponse(plain.res!)).toEqual({});
      expect((await getJson<{ spans: unknown[] }>(`${c.api}/api/traces/${traceId}`)).spans).toHaveLength(4);

      const zipped = client('traces', { 'grpc.default_compression_algorithm': 2 });
      const other = hexId(16, 10);
      expect((await exportCall(zipped, tracesProtobuf(bookinfoTrace(other, Date.now())))).err).toBeNull();
      expect((await getJson<{ services: string[] }>(`${c.api}/api/traces/${other}`)).services).toHaveLength(
        4,
      );

      const logged = await exportCall(
        client('logs'),
        logsProtobuf([log({ service: 'details', atMs: Date.now(), body: 'GET /details 200' })]),
      );
      expect(logged.err).toBeNull();
      const { logs } = await getJson<{ logs: LogRecord[] }>(`${c.api}/api/logs?service=details`);
      expect(logs[0]!.body).toBe('GET /details 200');
    });

    it('exports metrics with a real grpc-js client: every point kept, queryable by service and name', async () => {
      const now = Date.now();
      const exported = await exportCall(client('metrics'), metricsProtobuf(metrics('details', now)));
      expect(exported.err).toBeNull();
      expect(ProtobufMetricsSerializer.deserializeResponse(exported.res!)).toEqual({});
      const { points } = await getJson<{ points: MetricPoint[] }>(
        `${c.api}/api/otlp-metrics?service=details`,
      );
      expect(points.map((p) => p.name).sort()).toEqual([
        'http.server.duration',
        'http.server.requests',
        'process.memory.usage',
      ]);
      const requests = await getJson<{ points: MetricPoint[] }>(
        `${c.api}/api/otlp-metrics?service=details&name=http.server.requests`,
      );
      expect(requests.points).toEqual([
        expect.objectContaining({
          kind: 'sum',
          value: 42,
          monotonic: true,
          attributes: { route: '/reviews' },
        }),
      ]);
      const metricsText = await (await fetch(`${c.api}/metrics`)).text();
      expect(metricsText).toMatch(
        /mizzen_collector_otlp_requests_total\{signal="metrics",transport="grpc",result="ok"\} [1-9]/,
      );
    });

    it('answers INVALID_ARGUMENT for malformed messages and RESOURCE_EXHAUSTED for oversized ones', async () => {
      const bad = await exportCall(client('traces'), Buffer.from('definitely not protobuf'));
      expect(bad.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(bad.err?.details).toMatch(/not a valid OTLP traces protobuf message/);
      const big = await exportCall(client('metrics'), Buffer.alloc(1024 * 1024 + 10));
      expect(big.err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // Too many items in one batch is the caller's mistake, named as such.
      const many = await exportCall(client('metrics'), metricsProtobuf(gaugePoints('grpc-many', 1001)));
      expect(many.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(many.err?.details).toMatch(/more than 1000 data points/);
      const ok = await exportCall(client('traces'), tracesProtobuf(bookinfoTrace(hexId(16, 11), Date.now())));
      expect(ok.err).toBeNull();
    });
  });
});
