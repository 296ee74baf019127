import type { Json } from '../config-dump.js';
import { type AddressFilter, envoyAddress, formatAddress } from './address.js';

/** envoy.admin.v3.Clusters, as `/clusters?format=json` prints it. */
export interface ClusterStatuses {
  cluster_statuses?: { name: string; host_statuses?: Json[] }[];
}

export interface EndpointFilter extends AddressFilter {
  cluster?: string;
  /** An EDS health status: HEALTHY, UNHEALTHY, DRAINING… */
  status?: string;
}

export const ENDPOINT_HEADERS = ['ENDPOINT', 'STATUS', 'OUTLIER CHECK', 'CLUSTER'];

function hostAddress(h: Json): { address: string; port?: number; text: string } {
  const a = envoyAddress(h.address);
  return { ...a, text: formatAddress(a) };
}

function health(h: Json): { status: string; outlierFailed: boolean } {
  const s = (h.health_status ?? {}) as Json;
  return { status: String(s.eds_health_status ?? 'UNKNOWN'), outlierFailed: s.failed_outlier_check === true };
}

function admitted(h: Json, cluster: string, f: EndpointFilter): boolean {
  const a = hostAddress(h);
  if (f.address && a.address !== f.address && a.text !== f.address) return false;
  if (f.port !== undefined && a.port !== f.port) return false;
  if (f.cluster && cluster !== f.cluster) return false;
  if (f.status && health(h).status.toUpperCase() !== f.status.toUpperCase()) return false;
  return true;
}

/** The clusters with the hosts a filter admits (clusters left with none dropped), as `-o json` prints them. */
export function filterClusterStatuses(
  statuses: ClusterStatuses,
  f: EndpointFilter,
): NonNullable<ClusterStatuses['cluster_statuses']> {
  return (statuses.cluster_statuses ?? []).flatMap((c) => {
    const hosts = (c.host_statuses ?? []).filter((h) => admitted(h, c.name, f));
    return hosts.length ? [{ ...c, host_statuses: hosts }] : [];
  });
}

/** istioctl's `proxy-config endpoint` rows: each host with its EDS health and outlier state (OK or FAILED). */
export function endpointRows(statuses: ClusterStatuses, f: EndpointFilter = {}): string[][] {
  return filterClusterStatuses(statuses, f)
    .flatMap((c) =>
      (c.host_statuses ?? []).map((h) => {
        const { status, outlierFailed } = health(h);
        return [hostAddress(h).text, status, outlierFailed ? 'FAILED' : 'OK', c.name];
      }),
    )
    .sort((a, b) => a[0]!.localeCompare(b[0]!) || a[3]!.localeCompare(b[3]!));
}
