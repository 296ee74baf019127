import type { Json } from '../config-dump.js';
import { istioConfigName } from './istio-config.js';

export interface ClusterFilter {
  /** Part of the service's FQDN (`reviews`, `reviews.default.svc.cluster.local`). */
  fqdn?: string;
  port?: number;
  subset?: string;
  direction?: string;
}

export interface ClusterRow {
  fqdn: string;
  port: string;
  subset: string;
  direction: string;
  type: string;
  destinationRule: string;
}

export const CLUSTER_HEADERS = ['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'DESTINATION RULE'];

/** `outbound|9080|v1|reviews.default.svc.cluster.local` → its parts; other names stand alone. */
function nameParts(name: string): Pick<ClusterRow, 'fqdn' | 'port' | 'subset' | 'direction'> {
  const parts = name.split('|');
  if (parts.length !== 4) return { fqdn: name, port: '-', subset: '-', direction: '-' };
  const [direction, port, subset, fqdn] = parts as [string, string, string, string];
  return { fqdn, port, subset: subset || '-', direction };
}

/** Envoy's discovery type: `EDS`, `STRICT_DNS`…, a custom cluster type's name, STATIC when unset (proto3's default). */
function clusterType(c: Json): string {
  const custom = (c.cluster_type as Json | undefined)?.name;
  if (typeof custom === 'string') return custom;
  return typeof c.type === 'string' ? c.type : 'STATIC';
}

function matches(row: ClusterRow, f: ClusterFilter): boolean {
  if (f.fqdn && !row.fqdn.includes(f.fqdn)) return false;
  if (f.port !== undefined && row.port !== String(f.port)) return false;
  if (f.subset && row.subset !== f.subset) return false;
  if (f.direction && row.direction !== f.direction.toLowerCase()) return false;
  return true;
}

/** The clusters a filter admits, in the dump's order. */
export function filterClusters(clusters: readonly Json[], f: ClusterFilter): Json[] {
  return clusters.filter((c) => matches(clusterRow(c), f));
}

export function clusterRow(c: Json): ClusterRow {
  return {
    ...nameParts(String(c.name ?? '')),
    type: clusterType(c),
    destinationRule: istioConfigName(c.metadata),
  };
}

/** istioctl's `proxy-config cluster` rows, sorted by service, port, subset, direction. */
export function clusterRows(clusters: readonly Json[], f: ClusterFilter = {}): string[][] {
  return clusters
    .map(clusterRow)
    .filter((r) => matches(r, f))
    .sort(
      (a, b) =>
        a.fqdn.localeCompare(b.fqdn) ||
        Number(a.port) - Number(b.port) ||
        a.subset.localeCompare(b.subset) ||
        a.direction.localeCompare(b.direction),
    )
    .map((r) => [r.fqdn, r.port, r.subset, r.direction, r.type, r.destinationRule]);
}
