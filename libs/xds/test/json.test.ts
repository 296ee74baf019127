import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../src/json.js';
import { TypeUrl } from '../src/type-urls.js';

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

const listener = {
  name: '0.0.0.0_9080',
  address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
  bind_to_port: false,
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': HCM,
            stat_prefix: 'outbound_0.0.0.0_9080',
            rds: { route_config_name: '9080', config_source: { ads: {}, resource_api_version: 'V3' } },
            http_filters: [
              {
                name: 'envoy.filters.http.router',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                },
              },
            ],
            stream_idle_timeout: '1.5s',
          },
        },
      ],
    },
  ],
  metadata: { filter_metadata: { istio: { config: 'mizzen' } } },
};

describe('Envoy JSON <-> protobuf', () => {
  it('round-trips a listener with an embedded HttpConnectionManager, durations, enums and Struct', () => {
    const bytes = encodeMessage(TypeUrl.Listener, listener);
    expect(bytes.length).toBeGreaterThan(50);
    expect(decodeMessage(TypeUrl.Listener, bytes)).toEqual(listener);
  });

  it('prints lowerCamelCase proto3 JSON for config dumps, as Envoy does', () => {
    const json = decodeMessage(TypeUrl.Listener, encodeMessage(TypeUrl.Listener, listener), 'json') as Record<
      string,
      // biome-ignore lint/suspicious/noExplicitAny: test digs into nested JSON
      any
    >;
    expect(json.bindToPort).toBe(false);
    expect(json.address.socketAddress.portValue).toBe(9080);
    const hcm = json.filterChains[0].filters[0].typedConfig;
    expect(hcm['@type']).toBe(HCM);
    expect(hcm.rds.routeConfigName).toBe('9080');
    expect(hcm.streamIdleTimeout).toBe('1.5s');
    // Struct keys are data, not field names: never camel-cased.
    expect(json.metadata.filterMetadata.istio).toEqual({ config: 'mizzen' });
  });

  it('unwraps wrapper types and accepts them as plain values', () => {
    const cluster = {
      name: 'outbound|9080||reviews.default.svc.cluster.local',
      type: 'EDS',
      connect_timeout: '10s',
      per_connection_buffer_limit_bytes: 32768,
      eds_cluster_config: {
        eds_config: { ads: {} },
        service_name: 'outbound|9080||reviews.default.svc.cluster.local',
      },
    };
    const back = decodeMessage(TypeUrl.Cluster, encodeMessage(TypeUrl.Cluster, cluster));
    expect(back).toEqual(cluster);
  });

  it('rejects unknown fields, wrong types and unknown enum names with the field path', () => {
    expect(() => encodeMessage(TypeUrl.Cluster, { name: 'c', tpye: 'EDS' })).toThrow(
      'envoy.config.cluster.v3.Cluster.tpye: unknown field',
    );
    expect(() => encodeMessage(TypeUrl.Cluster, { name: 'c', type: 'EDDS' })).toThrow(
      /Cluster\.type: unknown envoy\.config\.cluster\.v3\.Cluster\.DiscoveryType value "EDDS"/,
    );
    expect(() => encodeMessage(TypeUrl.Cluster, { name: 'c', connect_timeout: '10' })).toThrow(
      'Cluster.connect_timeout: invalid duration "10"',
    );
    expect(() =>
      encodeMessage(TypeUrl.Listener, {
        name: 'l',
        filter_chains: [
          { filters: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/nope.Nope' } }] },
        ],
      }),
    ).toThrow('filter_chains[0].filters[0].typed_config.@type: unknown type type.googleapis.com/nope.Nope');
  });
});
