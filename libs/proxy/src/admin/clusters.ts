import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { ConnectionPools } from '../upstream/connection-pools.js';

/** `/clusters` in Envoy's text form: `cluster::host::stat::value`, one per line. */
export function clustersText(clusters: ClusterManager, pools: ConnectionPools): string {
  const lines: string[] = [];
  for (const c of clusters.list()) {
    lines.push(`${c.name}::observability_name::${c.name}`);
    lines.push(`${c.name}::added_via_api::true`);
    for (const h of c.hosts()) {
      const prefix = `${c.name}::${h.key}`;
      lines.push(`${prefix}::rq_active::${pools.active(h.key)}`);
      const flags = [
        ...(h.healthy ? [] : ['/eds_unhealthy']),
        ...(c.isEjected(h.key) ? ['/failed_outlier_check'] : []),
      ];
      lines.push(`${prefix}::health_flags::${flags.length ? flags.join('') : 'healthy'}`);
      lines.push(`${prefix}::weight::${h.weight}`);
      lines.push(`${prefix}::priority::${h.priority}`);
      const [region = '', zone = '', subZone = ''] = h.locality.split('/');
      lines.push(
        `${prefix}::region::${region}`,
        `${prefix}::zone::${zone}`,
        `${prefix}::sub_zone::${subZone}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** `/clusters?format=json` (envoy.admin.v3.Clusters). */
export function clustersJson(clusters: ClusterManager): Record<string, unknown> {
  return {
    cluster_statuses: clusters.list().map((c) => ({
      name: c.name,
      added_via_api: true,
      host_statuses: c.hosts().map((h) => {
        const [region = '', zone = '', subZone = ''] = h.locality.split('/');
        return {
          address: h.pipe
            ? { pipe: { path: h.address } }
            : { socket_address: { address: h.address, port_value: h.port } },
          health_status: {
            eds_health_status: h.healthy ? 'HEALTHY' : 'UNHEALTHY',
            ...(c.isEjected(h.key) ? { failed_outlier_check: true } : {}),
          },
          weight: h.weight,
          priority: h.priority,
          locality: { region, zone, sub_zone: subZone },
        };
      }),
    })),
  };
}
