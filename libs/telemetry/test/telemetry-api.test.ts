import type { TelemetrySpec } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import {
  resolveTelemetry,
  statsPluginConfig,
  type TelemetryDefaults,
  type TelemetryResource,
} from '../src/telemetry-api.js';

/** Istio's Telemetry API precedence, table-tested: mesh < namespace < workload, field by field. */

const DEFAULTS: TelemetryDefaults = {
  rootNamespace: 'istio-system',
  defaultProviders: { tracing: [], metrics: ['prometheus'], accessLogging: [] },
  defaultSamplingPercentage: 1,
};

let created = 0;
function telemetry(namespace: string, name: string, spec: TelemetrySpec): TelemetryResource {
  created++;
  return {
    apiVersion: 'telemetry.istio.io/v1',
    kind: 'Telemetry',
    metadata: { namespace, name, creationTimestamp: `2025-01-01T00:00:${String(created).padStart(2, '0')}Z` },
    spec,
  };
}

const REVIEWS = { namespace: 'default', labels: { app: 'reviews', version: 'v1' } };
const RATINGS = { namespace: 'default', labels: { app: 'ratings' } };
const OTHER_NS = { namespace: 'shop', labels: { app: 'reviews' } };

const mesh = telemetry('istio-system', 'mesh-default', {
  tracing: [
    {
      providers: [{ name: 'otel' }],
      randomSamplingPercentage: 10,
      customTags: { env: { literal: { value: 'prod' } } },
    },
  ],
  accessLogging: [{ providers: [{ name: 'envoy' }] }],
  metrics: [
    {
      overrides: [
        { match: { metric: 'REQUEST_COUNT' }, tagOverrides: { request_host: { value: 'request.host' } } },
      ],
    },
  ],
});
const namespace = telemetry('default', 'ns', {
  tracing: [{ randomSamplingPercentage: 50, customTags: { team: { header: { name: 'x-team' } } } }],
  accessLogging: [{ providers: [{ name: 'envoy' }], filter: { expression: 'response.code >= 400' } }],
});
const workload = telemetry('default', 'reviews', {
  selector: { matchLabels: { app: 'reviews' } },
  tracing: [{ match: { mode: 'SERVER' }, randomSamplingPercentage: 100 }],
  accessLogging: [{ match: { mode: 'CLIENT' }, providers: [{ name: 'envoy' }], disabled: true }],
  metrics: [
    {
      overrides: [
        { match: { metric: 'REQUEST_DURATION', mode: 'CLIENT' }, disabled: true },
        {
          match: { metric: 'REQUEST_COUNT' },
          tagOverrides: { request_host: { operation: 'REMOVE' }, response_flags: { operation: 'REMOVE' } },
        },
      ],
    },
  ],
});
const all = [workload, namespace, mesh];

describe('Telemetry API resolution', () => {
  it.each([
    [
      'no Telemetry: default providers only',
      [],
      REVIEWS,
      { sources: [], clientSampling: undefined, serverLogs: [] },
    ],
    [
      'mesh-wide only',
      [mesh],
      RATINGS,
      { sources: ['istio-system/mesh-default'], clientSampling: 10, serverLogs: [{ provider: 'envoy' }] },
    ],
    [
      'namespace overrides mesh sampling and adds a filter',
      [mesh, namespace],
      RATINGS,
      {
        sources: ['istio-system/mesh-default', 'default/ns'],
        clientSampling: 50,
        serverLogs: [{ provider: 'envoy', filter: 'response.code >= 400' }],
      },
    ],
    [
      'workload overrides per mode',
      all,
      REVIEWS,
      {
        sources: ['istio-system/mesh-default', 'default/ns', 'default/reviews'],
        clientSampling: 50,
        serverSampling: 100,
        clientLogs: [],
        serverLogs: [{ provider: 'envoy', filter: 'response.code >= 400' }],
      },
    ],
    [
      'another namespace gets only the mesh',
      all,
      OTHER_NS,
      { sources: ['istio-system/mesh-default'], clientSampling: 10 },
    ],
  ] as const)('%s', (_name, resources, workloadLabels, want) => {
    const got = resolveTelemetry(resources as TelemetryResource[], workloadLabels, DEFAULTS);
    expect(got.sources).toEqual(want.sources);
    expect(got.tracing.client?.randomSamplingPercentage).toBe(want.clientSampling);
    if ('serverSampling' in want)
      expect(got.tracing.server?.randomSamplingPercentage).toBe(want.serverSampling);
    if ('serverLogs' in want) expect(got.accessLogs.server).toEqual(want.serverLogs);
    if ('clientLogs' in want) expect(got.accessLogs.client).toEqual(want.clientLogs);
  });

  it('merges custom tags across scopes and keeps the mesh provider', () => {
    const got = resolveTelemetry(all, REVIEWS, DEFAULTS);
    expect(got.tracing.server).toEqual({
      provider: 'otel',
      randomSamplingPercentage: 100,
      disableSpanReporting: false,
      customTags: { env: { literal: { value: 'prod' } }, team: { header: { name: 'x-team' } } },
      useRequestIdForTraceSampling: true,
    });
  });

  it('merges metric overrides per metric and side into stats.PluginConfig', () => {
    const got = resolveTelemetry(all, REVIEWS, DEFAULTS);
    expect(got.metrics.client.providers).toEqual(['prometheus']);
    expect(statsPluginConfig(got.metrics.client)).toEqual({
      metrics: [
        { name: 'request_duration_milliseconds', drop: true },
        { name: 'requests_total', tags_to_remove: ['request_host', 'response_flags'] },
      ],
    });
    expect(statsPluginConfig(got.metrics.server)).toEqual({
      metrics: [{ name: 'requests_total', tags_to_remove: ['request_host', 'response_flags'] }],
    });
    expect(statsPluginConfig(resolveTelemetry([mesh], RATINGS, DEFAULTS).metrics.server)).toEqual({
      metrics: [{ name: 'requests_total', dimensions: { request_host: 'request.host' } }],
    });
  });

  it('ALL_METRICS applies to every standard metric; disabled: false re-enables', () => {
    const off = telemetry('istio-system', 'off', { metrics: [{ overrides: [{ disabled: true }] }] });
    const on = telemetry('default', 'on', {
      metrics: [{ overrides: [{ match: { metric: 'REQUEST_COUNT' }, disabled: false }] }],
    });
    const got = resolveTelemetry([off, on], RATINGS, DEFAULTS);
    expect(got.metrics.server.overrides.filter((o) => o.drop).map((o) => o.name)).toEqual([
      'request_bytes',
      'request_duration_milliseconds',
      'response_bytes',
      'tcp_connections_closed_total',
      'tcp_connections_opened_total',
      'tcp_received_bytes_total',
      'tcp_sent_bytes_total',
    ]);
  });

  it('the oldest of two competing Telemetries wins; an empty selector never matches', () => {
    const older = telemetry('default', 'b-older', { tracing: [{ providers: [{ name: 'one' }] }] });
    const newer = telemetry('default', 'a-newer', { tracing: [{ providers: [{ name: 'two' }] }] });
    expect(resolveTelemetry([newer, older], RATINGS, DEFAULTS).tracing.client?.provider).toBe('one');
    const empty = telemetry('default', 'empty', {
      selector: { matchLabels: {} },
      tracing: [{ providers: [{ name: 'x' }] }],
    });
    expect(resolveTelemetry([empty], RATINGS, DEFAULTS).tracing.client).toBeUndefined();
  });

  it('default providers from mesh config; a Telemetry can disable them', () => {
    const defaults: TelemetryDefaults = {
      ...DEFAULTS,
      defaultProviders: { tracing: ['otel'], metrics: ['prometheus'], accessLogging: ['envoy'] },
    };
    expect(resolveTelemetry([], RATINGS, defaults).tracing.client?.randomSamplingPercentage).toBe(1);
    expect(resolveTelemetry([], RATINGS, defaults).accessLogs.client).toEqual([{ provider: 'envoy' }]);
    const quiet = telemetry('default', 'quiet', { accessLogging: [{ disabled: true }] });
    expect(resolveTelemetry([quiet], RATINGS, defaults).accessLogs.client).toEqual([]);
  });
});
