import type { SyncEntry, SyncTypeStatus } from '../syncz.js';
import { proxyName } from './resolve.js';

/** The xDS types proxy-status shows, in istioctl's column order. */
export const STATUS_TYPES = ['CDS', 'LDS', 'EDS', 'RDS', 'ECDS'] as const;

export const STATUS_HEADERS = ['NAME', 'CLUSTER', ...STATUS_TYPES, 'ISTIOD', 'VERSION'];

const BY_STATE: Record<string, string> = {
  ACKED: 'SYNCED',
  NACKED: 'NACKED',
  SENT: 'STALE',
  NOT_SENT: 'NOT SENT',
};

/**
 * One type's column as istioctl words it: SYNCED (the proxy acknowledged what
 * was last sent), STALE (sent, not acknowledged yet), NOT SENT, and NACKED
 * when the proxy rejected the last version.
 */
export function xdsStatus(t: SyncTypeStatus | undefined, state?: string): string {
  if (!t) return BY_STATE[state ?? 'NOT_SENT'] ?? 'NOT SENT';
  if (t.state === 'NACKED') return 'NACKED';
  if (t.state === 'NOT_SENT' || !t.sentVersion) return 'NOT SENT';
  if (t.ackedVersion === t.sentVersion) return 'SYNCED';
  return t.ackedVersion ? 'STALE' : 'STALE (Never Acknowledged)';
}

/** istioctl's `proxy-status` row for one proxy. */
export function statusRow(e: SyncEntry): string[] {
  const byType = new Map((e.types ?? []).map((t) => [t.type, t]));
  return [
    proxyName(e.proxy),
    e.cluster_id ?? 'Kubernetes',
    ...STATUS_TYPES.map((t) => xdsStatus(byType.get(t), e.sync?.[t])),
    e.istiod ?? '',
    e.proxy_version ?? e.istio_version ?? '',
  ];
}

/** The reasons proxies gave for rejecting config: `NAME TYPE NACKED: reason`, one line each. */
export function nackReasons(entries: readonly SyncEntry[]): string[] {
  return entries.flatMap((e) =>
    Object.entries(e.errors ?? {}).map(([type, reason]) => `${proxyName(e.proxy)} ${type} NACKED: ${reason}`),
  );
}
