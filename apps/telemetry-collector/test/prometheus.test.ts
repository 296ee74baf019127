import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { histogramQuantile } from '../src/mesh/histogram.js';
import { ExpositionError, parseExposition } from '../src/prometheus/parse.js';

describe('Prometheus text parser', () => {
  it('reads samples, labels with escapes, special values, timestamps, types and help', () => {
    const text = [
      '# HELP istio_requests_total Total requests \\\\ with a backslash.',
      '# TYPE istio_requests_total counter',
      'istio_requests_total{reporter="destination",path="/a\\"b\\\\c\\nd",empty=""} 12 1700000000000',
      'istio_requests_total{ reporter = "source" , } 3.5e2',
      '# a comment',
      'up 1',
      'weird{a="x"} +Inf',
      'weird{a="y"} -Inf',
      'weird{a="z"} NaN',
      'bucket_bucket{le="0.5"} 7 # {trace_id="abc"} 0.2',
      '# EOF',
      '',
    ].join('\n');
    const e = parseExposition(text);
    expect(e.types.get('istio_requests_total')).toBe('counter');
    expect(e.help.get('istio_requests_total')).toBe('Total requests \\ with a backslash.');
    expect(e.samples[0]).toEqual({
      name: 'istio_requests_total',
      labels: { reporter: 'destination', path: '/a"b\\c\nd', empty: '' },
      value: 12,
      timestamp: 1700000000000,
    });
    expect(e.samples[1]).toEqual({
      name: 'istio_requests_total',
      labels: { reporter: 'source' },
      value: 350,
    });
    expect(e.samples[2]).toEqual({ name: 'up', labels: {}, value: 1 });
    expect(e.samples.slice(3, 6).map((s) => s.value)).toEqual([
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
    ]);
    expect(e.samples[6]).toEqual({ name: 'bucket_bucket', labels: { le: '0.5' }, value: 7 });
  });

  it('reads what prom-client prints', async () => {
    const registry = new Registry();
    const c = new Counter({
      name: 'istio_requests_total',
      help: 'r',
      labelNames: ['response_code'],
      registers: [registry],
    });
    const h = new Histogram({
      name: 'istio_request_duration_milliseconds',
      help: 'd',
      buckets: [1, 10],
      registers: [registry],
    });
    c.inc({ response_code: '200' }, 5);
    h.observe(3);
    const e = parseExposition(await registry.metrics());
    expect(e.types.get('istio_request_duration_milliseconds')).toBe('histogram');
    const byName = e.samples.map((s) => `${s.name}${JSON.stringify(s.labels)}=${s.value}`);
    expect(byName).toEqual(
      expect.arrayContaining([
        'istio_requests_total{"response_code":"200"}=5',
        'istio_request_duration_milliseconds_bucket{"le":"1"}=0',
        'istio_request_duration_milliseconds_bucket{"le":"10"}=1',
        'istio_request_duration_milliseconds_bucket{"le":"+Inf"}=1',
        'istio_request_duration_milliseconds_count{}=1',
      ]),
    );
  });

  it('names the first bad line', () => {
    const cases: [string, RegExp][] = [
      ['ok 1\nbad{a="1" 2', /^line 2: expected ',' or '}'/],
      ['x{a="1"}', /^line 1: sample x has no value/],
      ['x 12abc', /^line 1: sample x: "12abc" is not a number/],
      ['x{a="unterminated} 1', /^line 1: unterminated label value/],
      ['x{a="1",a="2"} 1', /^line 1: duplicate label a/],
      ['# TYPE x gauge-ish', /^line 1: unknown metric type/],
      ['x 1 2 3', /^line 1: unexpected text after sample x/],
      ['1x 1', /^line 1: expected a metric name/],
    ];
    for (const [text, message] of cases) {
      expect(() => parseExposition(text), text).toThrow(ExpositionError);
      expect(() => parseExposition(text), text).toThrow(message);
    }
  });
});

describe('histogram_quantile', () => {
  const b = (entries: [string, number][]) => new Map(entries);
  it('interpolates inside the bucket the rank falls in, as Prometheus does', () => {
    const buckets = b([
      ['10', 30],
      ['5', 20],
      ['1', 10],
      ['+Inf', 50],
      ['25', 40],
      ['50', 45],
      ['100', 50],
    ]);
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(7.5, 12);
    expect(histogramQuantile(0.1, buckets)).toBeCloseTo(0.5, 12); // first bucket starts at 0
    expect(histogramQuantile(1, buckets)).toBe(100);
  });

  it('returns the highest finite bound when the rank is in +Inf, and null without data or +Inf', () => {
    expect(
      histogramQuantile(
        0.99,
        b([
          ['1', 1],
          ['10', 2],
          ['+Inf', 10],
        ]),
      ),
    ).toBe(10);
    expect(
      histogramQuantile(
        0.5,
        b([
          ['1', 0],
          ['+Inf', 0],
        ]),
      ),
    ).toBeNull();
    expect(
      histogramQuantile(
        0.5,
        b([
          ['1', 3],
          ['10', 4],
        ]),
      ),
    ).toBeNull();
  });

  it('forces cumulative counts to be monotonic (summed rates wobble)', () => {
    expect(
      histogramQuantile(
        0.5,
        b([
          ['1', 6],
          ['2', 5.9],
          ['+Inf', 10],
        ]),
      ),
    ).toBeCloseTo(5 / 6, 12);
  });
});
