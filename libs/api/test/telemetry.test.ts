import { describe, expect, it } from 'vitest';
import { parseConfig, resolveKind } from '../src/index.js';
import { errorsOf, issuesOf } from './helpers.js';

/** telemetry.istio.io Telemetry, validated as Istio's ValidateTelemetry does. */
describe('Telemetry', () => {
  it('accepts Istio task examples: tracing, metrics overrides, access logging with a filter', () => {
    expect(
      issuesOf('Telemetry', {
        tracing: [
          {
            providers: [{ name: 'otel-tracing' }],
            randomSamplingPercentage: 10.5,
            customTags: {
              cluster: { literal: { value: 'east' } },
              user: { header: { name: 'x-user', defaultValue: 'anonymous' } },
              pod: { environment: { name: 'POD_NAME' } },
            },
          },
        ],
        metrics: [
          {
            providers: [{ name: 'prometheus' }],
            overrides: [
              { match: { metric: 'REQUEST_COUNT', mode: 'CLIENT' }, disabled: true },
              {
                match: { metric: 'ALL_METRICS' },
                tagOverrides: {
                  request_host: { value: 'request.host' },
                  response_code: { operation: 'REMOVE' },
                },
              },
            ],
          },
        ],
        accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: 'response.code >= 400' } }],
      }),
    ).toEqual([]);
  });

  it('is served at v1 and v1alpha1 and known by its kubectl names', () => {
    for (const v of ['v1', 'v1alpha1']) {
      const { issues, resources } = parseConfig(
        `apiVersion: telemetry.istio.io/${v}\nkind: Telemetry\nmetadata: { name: mesh-default, namespace: istio-system }\nspec: { accessLogging: [{ providers: [{ name: envoy }] }] }\n`,
        't.yaml',
      );
      expect(issues).toEqual([]);
      expect(resources[0]!.kind).toBe('Telemetry');
    }
    expect(resolveKind('telemetries')).toBe('Telemetry');
    expect(resolveKind('telemetry')).toBe('Telemetry');
    expect(resolveKind('telemetry.telemetry.istio.io')).toBe('Telemetry');
  });

  it('rejects bad CEL, bad percentages, ambiguous tags and REMOVE with a value', () => {
    expect(
      errorsOf('Telemetry', {
        tracing: [
          {
            randomSamplingPercentage: 120,
            customTags: { both: { literal: { value: 'a' }, header: { name: 'b' } } },
          },
        ],
        metrics: [
          {
            overrides: [
              {
                tagOverrides: {
                  'bad-name': { value: 'request.host' },
                  gone: { operation: 'REMOVE', value: 'x' },
                },
              },
            ],
          },
        ],
        accessLogging: [{ filter: { expression: 'response.code >= ' } }],
      }).map((e) => e.path),
    ).toEqual(['spec.tracing[0].randomSamplingPercentage', 'spec.accessLogging[0].filter.expression']);
    expect(
      errorsOf('Telemetry', {
        tracing: [{ customTags: { both: { literal: { value: 'a' }, header: { name: 'b' } } } }, {}],
        metrics: [
          {
            overrides: [
              {
                match: { metric: 'REQUEST_COUNT', customMetric: 'x' },
                tagOverrides: {
                  'bad-name': { value: 'request.host' },
                  gone: { operation: 'REMOVE', value: 'x' },
                  up: {},
                },
              },
            ],
          },
        ],
      }).map((e) => `${e.path}: ${e.message}`),
    ).toEqual([
      'spec.tracing: multiple tracing is not currently supported',
      'spec.tracing[0].customTags.both: must set exactly one of literal, environment or header',
      'spec.metrics[0].overrides[0].match: only one of metric or customMetric may be set',
      'spec.metrics[0].overrides[0].tagOverrides["bad-name"]: "bad-name" is not a valid tag name (letters, digits and _)',
      'spec.metrics[0].overrides[0].tagOverrides.gone.value: must not be set when the operation is REMOVE',
      'spec.metrics[0].overrides[0].tagOverrides.up.value: must be set when the operation is UPSERT',
    ]);
  });

  it('takes a selector or targetRefs, not both', () => {
    expect(
      errorsOf('Telemetry', {
        selector: { matchLabels: { app: 'reviews' } },
        targetRefs: [{ kind: 'Service', name: 'reviews' }],
      })[0]?.message,
    ).toMatch(/only one of selector, targetRef or targetRefs/);
  });
});
