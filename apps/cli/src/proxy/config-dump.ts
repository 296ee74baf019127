import { list } from './json-lists.js';

/** Envoy JSON as the admin API prints it: proto field names, `@type` on Any values. */
export type Json = Record<string, unknown>;

/** envoy.admin.v3.ConfigDump: one entry per kind of config, each tagged with its `@type`. */
export interface ConfigDump {
  configs: Json[];
}

const ADMIN = 'type.googleapis.com/envoy.admin.v3.';

/** The dump's section of one kind (`ClustersConfigDump`…), empty when the proxy has none. */
export function section(dump: ConfigDump, kind: string): Json {
  return dump.configs.find((c) => c['@type'] === `${ADMIN}${kind}`) ?? { '@type': `${ADMIN}${kind}` };
}

/** The clusters the proxy runs (envoy.config.cluster.v3.Cluster, `@type` kept). */
export function dumpClusters(dump: ConfigDump): Json[] {
  const s = section(dump, 'ClustersConfigDump');
  return [...list(s.static_clusters), ...list(s.dynamic_active_clusters)].map((c) => c.cluster as Json);
}

/** The listeners the proxy runs, active state only. */
export function dumpListeners(dump: ConfigDump): Json[] {
  const s = section(dump, 'ListenersConfigDump');
  return [
    ...list(s.static_listeners).map((l) => l.listener as Json),
    ...list(s.dynamic_listeners).flatMap((l) => {
      const active = l.active_state as Json | undefined;
      return active?.listener ? [active.listener as Json] : [];
    }),
  ];
}

/** The route configurations the proxy runs. */
export function dumpRouteConfigs(dump: ConfigDump): Json[] {
  const s = section(dump, 'RoutesConfigDump');
  return [...list(s.static_route_configs), ...list(s.dynamic_route_configs)].map(
    (r) => r.route_config as Json,
  );
}

/** When the proxy last loaded a route configuration (the newest `last_updated`), if it has any. */
export function routesLastLoaded(dump: ConfigDump): string | undefined {
  const times = list(section(dump, 'RoutesConfigDump').dynamic_route_configs)
    .map((r) => r.last_updated)
    .filter((t): t is string => typeof t === 'string')
    .sort();
  return times.at(-1);
}
