import { TypeUrl, type XdsNode } from '@mizzen/xds';
import type { AppliedConfig } from '../agent/applied-config.js';
import type { SecretStore } from '../security/secret-store.js';
import { secretsConfigDump } from './secrets-dump.js';

const ADMIN = 'type.googleapis.com/envoy.admin.v3';

function typed(typeUrl: string, json: Record<string, unknown>): Record<string, unknown> {
  return { '@type': typeUrl, ...json };
}

/**
 * `/config_dump` in Envoy's shape (envoy.admin.v3.ConfigDump, proto field
 * names as Envoy prints them), so `istioctl proxy-config`-style tooling and
 * muscle memory work.
 */
export function configDump(
  node: XdsNode,
  applied: AppliedConfig,
  includeEds: boolean,
  secrets: { store: SecretStore; names: readonly string[] },
): Record<string, unknown> {
  const configs: Record<string, unknown>[] = [
    { '@type': `${ADMIN}.BootstrapConfigDump`, bootstrap: { node } },
    {
      '@type': `${ADMIN}.ClustersConfigDump`,
      version_info: applied.version(TypeUrl.Cluster),
      dynamic_active_clusters: applied.resources(TypeUrl.Cluster).map((r) => ({
        version_info: r.version,
        cluster: typed(TypeUrl.Cluster, r.json),
        last_updated: r.lastUpdated,
      })),
    },
    {
      '@type': `${ADMIN}.ListenersConfigDump`,
      version_info: applied.version(TypeUrl.Listener),
      dynamic_listeners: applied.resources(TypeUrl.Listener).map((r) => ({
        name: r.name,
        active_state: {
          version_info: r.version,
          listener: typed(TypeUrl.Listener, r.json),
          last_updated: r.lastUpdated,
        },
      })),
    },
    {
      '@type': `${ADMIN}.RoutesConfigDump`,
      dynamic_route_configs: applied.resources(TypeUrl.RouteConfiguration).map((r) => ({
        version_info: r.version,
        route_config: typed(TypeUrl.RouteConfiguration, r.json),
        last_updated: r.lastUpdated,
      })),
    },
    secretsConfigDump(secrets.store, applied, secrets.names),
  ];
  if (includeEds) {
    configs.push({
      '@type': `${ADMIN}.EndpointsConfigDump`,
      dynamic_endpoint_configs: applied.resources(TypeUrl.ClusterLoadAssignment).map((r) => ({
        version_info: r.version,
        endpoint_config: typed(TypeUrl.ClusterLoadAssignment, r.json),
        last_updated: r.lastUpdated,
      })),
    });
  }
  return { configs };
}
