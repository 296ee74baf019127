import { createTwoFilesPatch, FILE_HEADERS_ONLY } from 'diff';
import {
  type ConfigDump,
  dumpClusters,
  dumpListeners,
  dumpRouteConfigs,
  type Json,
  routesLastLoaded,
} from './config-dump.js';

/**
 * Pilot's `/debug/config_dump?proxyID=…&names=proto`: what it last sent a
 * proxy, per xDS type, with the field names the proxy's admin API uses.
 */
export type PilotDump = Record<string, { version?: string; resources?: Json[] }>;

export interface Comparison {
  /** `Clusters`, `Listeners` or `Routes`. */
  kind: string;
  /** A unified diff, pilot's config against the proxy's; empty when they match. */
  diff: string;
}

/** JSON with keys sorted at every level, so equal config prints equal whatever the field order. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object')
    return Object.fromEntries(
      Object.entries(value as Json)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  return value;
}

/** Resources by name, without the `@type` the admin API adds, as indented canonical JSON. */
function render(resources: readonly Json[]): string {
  const plain = resources
    .map(({ '@type': _type, ...rest }) => rest)
    .sort((a, b) => String(a.name).localeCompare(String(b.name)));
  return `${JSON.stringify(canonical(plain), null, 2)}\n`;
}

function compare(kind: string, sent: readonly Json[], running: readonly Json[]): Comparison {
  const a = render(sent);
  const b = render(running);
  return {
    kind,
    diff:
      a === b
        ? ''
        : createTwoFilesPatch(`Pilot ${kind}`, `Proxy ${kind}`, a, b, undefined, undefined, {
            context: 3,
            headerOptions: FILE_HEADERS_ONLY,
          }),
  };
}

/**
 * What pilot sent a proxy against what the proxy runs, as `istioctl
 * proxy-status POD` compares them: clusters, listeners and routes.
 */
export function compareConfig(pilot: PilotDump, proxy: ConfigDump): Comparison[] {
  const sent = (type: string) => pilot[type]?.resources ?? [];
  return [
    compare('Clusters', sent('CDS'), dumpClusters(proxy)),
    compare('Listeners', sent('LDS'), dumpListeners(proxy)),
    compare('Routes', sent('RDS'), dumpRouteConfigs(proxy)),
  ];
}

/** `Clusters Match`, or the diff; routes say when the proxy last loaded them, as istioctl does. */
export function formatComparison(comparisons: readonly Comparison[], proxy: ConfigDump): string {
  const loaded = routesLastLoaded(proxy);
  return comparisons
    .map((c) => {
      if (c.diff) return c.diff.endsWith('\n') ? c.diff : `${c.diff}\n`;
      const when =
        c.kind === 'Routes' && loaded ? ` (RDS last loaded at ${new Date(loaded).toUTCString()})` : '';
      return `${c.kind} Match${when}\n`;
    })
    .join('');
}
