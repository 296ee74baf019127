import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/errors.js';
import { compileListener } from '../src/config/listener.js';
import { compileAccessLogs, compileStatsConfig, compileTracing } from '../src/config/telemetry.js';
import { HCM, ROUTER, TCP } from './harness.js';

/** The HCM's tracing, access_log and istio.stats filter, compiled as the observers need them. */
describe('telemetry settings of an HTTP connection manager', () => {
  it('compiles Envoy tracing with the OpenTelemetry tracer and custom tags', () => {
    expect(
      compileTracing(
        {
          random_sampling: { value: 25 },
          custom_tags: [
            { tag: 'a', literal: { value: 'x' } },
            { tag: 'b', request_header: { name: 'X-User', default_value: 'anon' } },
            { tag: 'c', environment: { name: 'POD_NAME' } },
          ],
          max_path_tag_length: 64,
          provider: {
            name: 'envoy.tracers.opentelemetry',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig',
              http_service: {
                http_uri: {
                  uri: 'http://otel:4318/v1/traces',
                  cluster: 'outbound|4318||otel',
                  timeout: '5s',
                },
                request_headers_to_add: [{ header: { key: 'X-Tenant', value: 'm' } }],
              },
              service_name: 'productpage.default',
            },
          },
        },
        'hcm.tracing',
      ),
    ).toEqual({
      randomSamplingPercent: 25,
      clientSamplingPercent: 100,
      overallSamplingPercent: 100,
      maxPathTagLength: 64,
      customTags: [
        { tag: 'a', kind: 'literal', value: 'x' },
        { tag: 'b', kind: 'header', name: 'x-user', defaultValue: 'anon' },
        { tag: 'c', kind: 'environment', name: 'POD_NAME', defaultValue: undefined },
      ],
      provider: {
        kind: 'opentelemetry',
        serviceName: 'productpage.default',
        httpEndpoint: 'http://otel:4318/v1/traces',
        headers: { 'x-tenant': 'm' },
        timeoutMs: 5000,
        grpcCluster: undefined,
      },
    });
  });

  it('refuses tracers and access-log filters it cannot honour (the listener is NACKed)', () => {
    expect(() =>
      compileTracing(
        {
          provider: {
            name: 'zipkin',
            typed_config: { '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig' },
          },
        },
        'hcm.tracing',
      ),
    ).toThrow(ConfigError);
    expect(() =>
      compileAccessLogs(
        [
          {
            name: 'f',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
              path: '/dev/stdout',
            },
            filter: { status_code_filter: {} },
          },
        ],
        'hcm',
      ),
    ).toThrow(/CEL expression filters/);
  });

  it('compiles file and OpenTelemetry access logs with CEL filters', () => {
    expect(
      compileAccessLogs(
        [
          {
            name: 'envoy.access_loggers.file',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
              path: '/dev/stdout',
              log_format: { json_format: { code: '%RESPONSE_CODE%' } },
            },
            filter: {
              extension_filter: {
                name: 'envoy.access_loggers.extension_filters.cel',
                typed_config: {
                  '@type':
                    'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter',
                  expression: 'response.code >= 400',
                },
              },
            },
          },
          {
            name: 'otel',
            typed_config: {
              '@type':
                'type.googleapis.com/envoy.extensions.access_loggers.open_telemetry.v3.OpenTelemetryAccessLogConfig',
              common_config: {
                log_name: 'mesh',
                grpc_service: { envoy_grpc: { cluster_name: 'outbound|4318||otel' } },
              },
              body: { string_value: '%REQ(:METHOD)%' },
              attributes: { values: [{ key: 'flags', value: { string_value: '%RESPONSE_FLAGS%' } }] },
            },
          },
        ],
        'hcm',
      ),
    ).toEqual([
      {
        name: 'envoy.access_loggers.file',
        filter: 'response.code >= 400',
        sink: {
          kind: 'file',
          path: '/dev/stdout',
          format: { kind: 'json', fields: { code: '%RESPONSE_CODE%' } },
        },
      },
      {
        name: 'otel',
        filter: undefined,
        sink: {
          kind: 'otel',
          logName: 'mesh',
          cluster: 'outbound|4318||otel',
          body: { kind: 'text', template: '%REQ(:METHOD)%' },
          attributes: { flags: '%RESPONSE_FLAGS%' },
        },
      },
    ]);
  });

  it('takes the istio.stats filter out of the chain as the metrics config', () => {
    const stats = {
      name: 'istio.stats',
      typed_config: {
        '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
        type_url: 'type.googleapis.com/stats.PluginConfig',
        value: {
          metrics: [
            {
              name: 'requests_total',
              dimensions: { request_host: 'request.host' },
              tags_to_remove: ['response_flags'],
            },
          ],
          disable_host_header_fallback: true,
        },
      },
    };
    expect(compileStatsConfig(stats.typed_config, 'x')).toEqual({
      metrics: [
        {
          name: 'requests_total',
          dimensions: { request_host: 'request.host' },
          tagsToRemove: ['response_flags'],
          drop: false,
        },
      ],
      disableHostHeaderFallback: true,
    });
    const listener = compileListener({
      name: 'l',
      address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
      filter_chains: [
        {
          filters: [
            {
              name: 'hcm',
              typed_config: {
                '@type': HCM,
                stat_prefix: 's',
                route_config: { name: 'r', virtual_hosts: [] },
                http_filters: [stats, { name: 'router', typed_config: { '@type': ROUTER } }],
              },
            },
          ],
        },
      ],
    });
    const filter = listener.chains[0]!.filter;
    expect(filter.kind).toBe('http');
    if (filter.kind !== 'http') return;
    expect(filter.filters).toEqual([]);
    expect(filter.telemetry.stats?.disableHostHeaderFallback).toBe(true);
    expect(filter.telemetry.accessLogs).toEqual([]);
    expect(filter.telemetry.tracing).toBeUndefined();
  });

  it('takes the istio.stats network filter before tcp_proxy as its TCP metrics config, and refuses it before an HCM', () => {
    const stats = {
      name: 'istio.stats',
      typed_config: {
        '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
        type_url: 'type.googleapis.com/stats.PluginConfig',
        value: { metrics: [{ name: 'tcp_connections_opened_total', drop: true }] },
      },
    };
    const tcp = { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster: 'c' } };
    const listener = (filters: unknown[]) =>
      compileListener({
        name: 'l',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{ filters: filters as never }],
      });
    const withStats = listener([stats, tcp]).chains[0]!.filter;
    expect(withStats.kind).toBe('tcp');
    if (withStats.kind !== 'tcp') return;
    expect(withStats.telemetry.stats?.metrics).toEqual([
      { name: 'tcp_connections_opened_total', dimensions: {}, tagsToRemove: [], drop: true },
    ]);
    // Without it, a TCP chain reports no metrics, as an HTTP chain without it.
    const plain = listener([tcp]).chains[0]!.filter;
    expect(plain.kind === 'tcp' && plain.telemetry.stats).toBeUndefined();
    expect(() => listener([stats, stats, tcp])).toThrow(/filters\[1\].*a second istio.stats filter/);
    const hcm = {
      name: 'hcm',
      typed_config: {
        '@type': HCM,
        stat_prefix: 's',
        route_config: { name: 'r', virtual_hosts: [] },
        http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
      },
    };
    expect(() => listener([stats, hcm])).toThrow(ConfigError);
    expect(() => listener([stats, hcm])).toThrow(/istio.stats network filter belongs before tcp_proxy/);
  });

  it("takes Istio's istio.metadata_exchange filter before tcp_proxy, and refuses what it cannot honour", () => {
    const mx = (value: Record<string, unknown>) => ({
      name: 'istio.metadata_exchange',
      typed_config: {
        '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
        type_url: 'type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange',
        value,
      },
    });
    const tcp = { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster: 'c' } };
    const listener = (filters: unknown[]) =>
      compileListener({
        name: 'l',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{ filters: filters as never }],
      }).chains[0]!.filter;
    const chain = listener([mx({ protocol: 'istio-peer-exchange', enable_discovery: true }), tcp]);
    expect(chain.kind === 'tcp' && chain.peerExchange).toEqual({ protocol: 'istio-peer-exchange' });
    const without = listener([tcp]);
    expect(without.kind === 'tcp' && without.peerExchange).toBeUndefined();
    expect(() => listener([mx({}), tcp])).toThrow(
      /filters\[0\].typed_config.value.protocol: must name the ALPN/,
    );
    expect(() => listener([mx({ protocol: 'x', additional_labels: ['team'] }), tcp])).toThrow(
      /value.additional_labels: is not supported by this proxy/,
    );
    const mxOk = mx({ protocol: 'istio-peer-exchange' });
    expect(() => listener([mxOk, mxOk, tcp])).toThrow(/a second istio.metadata_exchange filter/);
    const hcm = {
      name: 'hcm',
      typed_config: {
        '@type': HCM,
        stat_prefix: 's',
        route_config: { name: 'r', virtual_hosts: [] },
        http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
      },
    };
    expect(() => listener([mxOk, hcm])).toThrow(/metadata_exchange network filter belongs before tcp_proxy/);
  });

  it("compiles tcp_proxy's access_log and access_log_options (flush interval, on connected), refusing both forms at once", () => {
    const log = {
      name: 'envoy.access_loggers.file',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
        path: '/dev/stdout',
        log_format: { json_format: { flags: '%RESPONSE_FLAGS%' } },
      },
      filter: {
        extension_filter: {
          name: 'envoy.access_loggers.extension_filters.cel',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter',
            expression: "response.flags != '-'",
          },
        },
      },
    };
    const listener = (extra: Record<string, unknown>) =>
      compileListener({
        name: 'l',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [
          {
            filters: [
              { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster: 'c', ...extra } },
            ],
          },
        ],
      }).chains[0]!.filter;
    const chain = listener({
      access_log: [log],
      access_log_options: { access_log_flush_interval: '1.5s', flush_access_log_on_connected: true },
    });
    expect(chain.kind === 'tcp' && chain.telemetry).toEqual({
      accessLogs: [
        {
          name: 'envoy.access_loggers.file',
          filter: "response.flags != '-'",
          sink: {
            kind: 'file',
            path: '/dev/stdout',
            format: { kind: 'json', fields: { flags: '%RESPONSE_FLAGS%' } },
          },
        },
      ],
      accessLogFlushIntervalMs: 1500,
      flushAccessLogOnConnected: true,
    });
    const deprecated = listener({ access_log: [log], access_log_flush_interval: '2s' });
    expect(deprecated.kind === 'tcp' && deprecated.telemetry.accessLogFlushIntervalMs).toBe(2000);
    expect(() =>
      listener({ access_log_flush_interval: '2s', access_log_options: { access_log_flush_interval: '1s' } }),
    ).toThrow(/only one of access_log_flush_interval or access_log_options/);
    expect(() => listener({ access_log_options: { access_log_flush_interval: '0s' } })).toThrow(
      /access_log_flush_interval: must be at least 1ms/,
    );
    expect(() => listener({ access_log_options: { flush_access_log_on_new_request: true } })).toThrow(
      /access_log_options.flush_access_log_on_new_request: is not supported/,
    );
  });
});
