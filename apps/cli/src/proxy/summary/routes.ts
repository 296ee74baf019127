import type { Json } from '../config-dump.js';
import { list, strings } from '../json-lists.js';
import { istioConfigName } from './istio-config.js';
import { describeMatch, routeCluster } from './route-match.js';

export interface RouteFilter {
  /** The route configuration's name (`9080`, `http.8080`). */
  name?: string;
}

export const ROUTE_HEADERS = ['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE'];

const SUFFIXES = ['.svc.cluster.local', '.svc'];

/** Drops a domain's longer spellings when a shorter one is there too (`reviews.default.svc` beside `reviews.default`). */
function unexpand(domains: readonly string[]): string[] {
  const all = new Set(domains);
  return domains.filter((d) => !SUFFIXES.some((s) => d.endsWith(s) && all.has(d.slice(0, -s.length))));
}

/** A virtual host's domains as istioctl sums them up: without ports, shortest spellings, two then `+ N more...`. */
export function describeDomains(domains: readonly string[]): string {
  if (domains.length <= 1) return domains[0] ?? '';
  const withoutPort = unexpand(domains.filter((d) => !/:\d+$/.test(d)));
  if (withoutPort.length > 2)
    return `${withoutPort.slice(0, 2).join(', ')} + ${withoutPort.length - 2} more...`;
  return withoutPort.join(', ');
}

/** The route configurations a filter admits. */
export function filterRouteConfigs(configs: readonly Json[], f: RouteFilter): Json[] {
  return configs.filter((c) => !f.name || c.name === f.name);
}

/**
 * istioctl's `proxy-config route` rows: one per route (passthrough routes
 * left out), and `/*  404` for a virtual host with none.
 */
export function routeRows(configs: readonly Json[], f: RouteFilter = {}): string[][] {
  const rows: string[][] = [];
  for (const config of filterRouteConfigs(configs, f)) {
    for (const vh of list(config.virtual_hosts)) {
      const domains = describeDomains(strings(vh.domains));
      const head = [String(config.name ?? ''), String(vh.name ?? ''), domains];
      const routes = list(vh.routes);
      for (const r of routes) {
        if (routeCluster(r) === 'PassthroughCluster') continue;
        rows.push([...head, describeMatch(r.match), istioConfigName(r.metadata)]);
      }
      if (routes.length === 0) rows.push([...head, '/*', '404']);
    }
  }
  return rows;
}
