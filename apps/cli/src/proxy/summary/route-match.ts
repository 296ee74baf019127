import type { Json } from '../config-dump.js';

/** A route's path match as istioctl prints it: `/reviews*`, `/exact`, `PathPrefix:/api`, `regex ^/v[0-9]`. */
export function describeMatch(match: unknown): string {
  const m = (match ?? {}) as Json;
  const conds: string[] = [];
  if (typeof m.prefix === 'string' && m.prefix !== '') conds.push(`${m.prefix}*`);
  if (typeof m.path_separated_prefix === 'string' && m.path_separated_prefix !== '')
    conds.push(`PathPrefix:${m.path_separated_prefix}`);
  if (typeof m.path === 'string' && m.path !== '') conds.push(m.path);
  const regex = (m.safe_regex as Json | undefined)?.regex;
  if (typeof regex === 'string') conds.push(`regex ${regex}`);
  // Headers and query parameters are left out, as istioctl does.
  return conds.join(' ');
}

/** The single cluster a route sends to, if it names one (not weighted, not a header). */
export function routeCluster(route: Json): string | undefined {
  const cluster = (route.route as Json | undefined)?.cluster;
  return typeof cluster === 'string' ? cluster : undefined;
}

/** A destination cluster as istioctl names it: Istio's own (`PassthroughCluster`) bare, others `Cluster: NAME`. */
export function describeCluster(name: string): string {
  return name.includes('Cluster') ? name : `Cluster: ${name}`;
}
