import type { HttpRequestStart, TracingSettings } from '@mizzen/proxy';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import { traceContextOf } from '../src/trace-context.js';
import { ProxyTracer, samplingDecision } from '../src/tracing.js';
import { record } from './records.js';

/** Span creation, W3C/B3 extraction and injection, and Envoy's sampling rules. */

const SETTINGS: TracingSettings = {
  randomSamplingPercent: 100,
  clientSamplingPercent: 100,
  overallSamplingPercent: 100,
  maxPathTagLength: 256,
  customTags: [
    { tag: 'istio.canonical_service', kind: 'literal', value: 'productpage' },
    { tag: 'user', kind: 'header', name: 'x-user', defaultValue: 'anonymous' },
    { tag: 'from_env', kind: 'environment', name: 'MIZZEN_TEST_TAG', defaultValue: 'none' },
  ],
  provider: {
    kind: 'opentelemetry',
    httpEndpoint: 'http://collector:4318/v1/traces',
    serviceName: 'productpage.default',
  },
};

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

function start(
  headers: Record<string, string>,
  overrides: Partial<HttpRequestStart> = {},
  tracing = SETTINGS,
): HttpRequestStart {
  return {
    direction: 'outbound',
    listener: 'l',
    method: 'GET',
    authority: 'reviews:9080',
    path: '/reviews/0',
    scheme: 'http',
    protocol: 'HTTP/1.1',
    headers: { ...headers },
    downstreamRemoteAddress: '127.0.0.1:1',
    downstreamLocalAddress: '127.0.0.1:2',
    startTime: new Date(),
    telemetry: { tracing, accessLogs: [] },
    ...overrides,
  };
}

describe('proxy tracing', () => {
  let exporter = new InMemorySpanExporter();
  let tracer: ProxyTracer;
  const make = (random?: () => number) => {
    exporter = new InMemorySpanExporter();
    tracer = new ProxyTracer({
      node: { id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local' },
      canonicalService: 'productpage',
      namespace: 'default',
      inboundService: 'productpage.default.svc.cluster.local',
      exporterFor: () => exporter,
      random,
    });
    return tracer;
  };
  afterEach(async () => {
    await tracer?.close();
  });

  it('continues a W3C trace: a CLIENT span child of traceparent, injected in W3C, B3 multi and B3 single', async () => {
    const t = make();
    const s = start({ traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=1', 'x-user': 'jason' });
    process.env.MIZZEN_TEST_TAG = 'set';
    const obs = t.startHttp(s)!;
    const h = s.headers as Record<string, string>;
    const ctx = traceContextOf(h)!;
    expect(ctx.traceId).toBe(TRACE);
    expect(ctx.spanId).not.toBe(PARENT);
    expect(h.traceparent).toBe(`00-${TRACE}-${ctx.spanId}-01`);
    expect(h.tracestate).toBe('vendor=1');
    expect(h['x-b3-traceid']).toBe(TRACE);
    expect(h['x-b3-spanid']).toBe(ctx.spanId);
    expect(h['x-b3-sampled']).toBe('1');
    expect(h.b3).toBe(`${TRACE}-${ctx.spanId}-1`);
    obs.end(record({ headers: s.headers, responseCode: 503, responseFlags: 'UO' }));
    await t.flush();
    const [span] = exporter.getFinishedSpans();
    expect(span!.spanContext().traceId).toBe(TRACE);
    expect(span!.spanContext().spanId).toBe(ctx.spanId);
    expect(span!.parentSpanContext?.spanId).toBe(PARENT);
    expect(span!.kind).toBe(2 /* CLIENT */);
    expect(span!.name).toBe('reviews.default.svc.cluster.local:9080/*');
    expect(span!.attributes).toMatchObject({
      node_id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
      upstream_cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
      response_flags: 'UO',
      'istio.canonical_service': 'productpage',
      'http.request.method': 'GET',
      'http.response.status_code': 503,
      'url.full': 'http://reviews:9080/reviews/0?x=1',
      user: 'jason',
      from_env: 'set',
      error: true,
    });
    expect(span!.status.code).toBe(2 /* ERROR */);
    expect(span!.resource.attributes['service.name']).toBe('productpage.default');
  });

  it('joins B3-only callers (multi and single header, 64-bit ids padded)', async () => {
    const t = make();
    const multi = start({
      'x-b3-traceid': TRACE,
      'x-b3-spanid': PARENT,
      'x-b3-sampled': '1',
      'x-b3-parentspanid': 'aaaaaaaaaaaaaaaa',
    });
    t.startHttp(multi)!.end(record({ headers: multi.headers }));
    const single = start({ b3: `a3ce929d0e0e4736-${PARENT}-1` }, { direction: 'inbound' });
    t.startHttp(single)!.end(
      record({ direction: 'inbound', headers: single.headers, upstreamCluster: 'inbound|9080||' }),
    );
    await t.flush();
    const [a, b] = exporter.getFinishedSpans();
    expect(a!.spanContext().traceId).toBe(TRACE);
    expect(a!.parentSpanContext?.spanId).toBe(PARENT);
    expect((multi.headers as Record<string, string>)['x-b3-parentspanid']).toBeUndefined();
    expect(b!.spanContext().traceId).toBe('0000000000000000a3ce929d0e0e4736');
    expect(b!.kind).toBe(1 /* SERVER */);
    expect(b!.name).toBe('productpage.default.svc.cluster.local:9080/*');
  });

  it('honours an upstream "not sampled": no span exported, the decision propagated', async () => {
    const t = make(() => 0);
    const s = start({ traceparent: `00-${TRACE}-${PARENT}-00` });
    t.startHttp(s)!.end(record({ headers: s.headers }));
    const b3 = start({ 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-sampled': '0' });
    t.startHttp(b3)!.end(record({ headers: b3.headers }));
    await t.flush();
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    expect((s.headers as Record<string, string>).traceparent).toMatch(
      new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`),
    );
    expect((b3.headers as Record<string, string>)['x-b3-sampled']).toBe('0');
  });

  it('samples new traces at the random percentage: 0% never, 100% always', async () => {
    const t = make();
    for (let i = 0; i < 20; i++) {
      const s = start({}, {}, { ...SETTINGS, randomSamplingPercent: 0 });
      t.startHttp(s)!.end(record({ headers: s.headers }));
      expect((s.headers as Record<string, string>).traceparent).toMatch(/-00$/);
    }
    await t.flush();
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    for (let i = 0; i < 20; i++) {
      const s = start({});
      t.startHttp(s)!.end(record({ headers: s.headers }));
    }
    await t.flush();
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(20);
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(20);
  });

  it('leaves requests alone when the listener has no tracing', () => {
    const t = make();
    const s = start({ traceparent: `00-${TRACE}-${PARENT}-01` }, { telemetry: { accessLogs: [] } });
    expect(t.startHttp(s)).toBeUndefined();
    expect((s.headers as Record<string, string>).traceparent).toBe(`00-${TRACE}-${PARENT}-01`);
  });
});

describe('Envoy sampling decisions', () => {
  const pct = { randomSamplingPercent: 25, clientSamplingPercent: 100, overallSamplingPercent: 100 };
  it.each([
    [
      'parent sampled wins over 0%',
      { ...pct, randomSamplingPercent: 0 },
      { parentSampled: true },
      0.99,
      true,
    ],
    [
      'parent not sampled wins over 100%',
      { ...pct, randomSamplingPercent: 100 },
      { parentSampled: false },
      0,
      false,
    ],
    ['random below the percentage', pct, {}, 0.2, true],
    ['random above the percentage', pct, {}, 0.3, false],
    [
      'x-client-trace-id uses client sampling',
      { ...pct, randomSamplingPercent: 0 },
      { clientTraceId: true },
      0.5,
      true,
    ],
    ['forced', { ...pct, randomSamplingPercent: 0 }, { forced: true }, 0.5, true],
    ['overall caps', { ...pct, overallSamplingPercent: 10 }, { parentSampled: true }, 0.5, false],
  ] as const)('%s', (_name, settings, input, random, want) => {
    expect(samplingDecision(settings, input, () => random)).toBe(want);
  });
});
