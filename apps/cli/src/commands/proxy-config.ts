import { CliError } from '../errors.js';
import { structuredFormat, unknownOutput, writeStructured } from '../output/structured.js';
import { formatTable } from '../output/table.js';
import { type AdminTarget, fetchClusterStatuses, fetchConfigDump } from '../proxy/admin-client.js';
import {
  type ConfigDump,
  dumpClusters,
  dumpListeners,
  dumpRouteConfigs,
  section,
} from '../proxy/config-dump.js';
import { locateProxy, type ProxySelection } from '../proxy/locate.js';
import { CLUSTER_HEADERS, clusterRows, filterClusters } from '../proxy/summary/clusters.js';
import { ENDPOINT_HEADERS, endpointRows, filterClusterStatuses } from '../proxy/summary/endpoints.js';
import { filterListeners, LISTENER_HEADERS, listenerRows } from '../proxy/summary/listeners.js';
import { filterRouteConfigs, ROUTE_HEADERS, routeRows } from '../proxy/summary/routes.js';
import { SECRET_HEADERS, secretRows } from '../proxy/summary/secrets.js';

export type ConfigKind = 'cluster' | 'listener' | 'route' | 'endpoint' | 'secret' | 'all' | 'bootstrap';

/** What istioctl accepts for each kind: the name, its plural, its short alias. */
const KINDS: Record<string, ConfigKind> = {
  cluster: 'cluster',
  clusters: 'cluster',
  c: 'cluster',
  listener: 'listener',
  listeners: 'listener',
  l: 'listener',
  route: 'route',
  routes: 'route',
  r: 'route',
  endpoint: 'endpoint',
  endpoints: 'endpoint',
  ep: 'endpoint',
  secret: 'secret',
  secrets: 'secret',
  s: 'secret',
  all: 'all',
  a: 'all',
  bootstrap: 'bootstrap',
  b: 'bootstrap',
};

export interface ConfigFilters {
  fqdn?: string;
  port?: number;
  subset?: string;
  direction?: string;
  address?: string;
  type?: string;
  name?: string;
  cluster?: string;
  status?: string;
}

/** The filters each kind takes, as istioctl's subcommands do. */
const FILTERS: Record<ConfigKind, (keyof ConfigFilters)[]> = {
  cluster: ['fqdn', 'port', 'subset', 'direction'],
  listener: ['address', 'port', 'type'],
  route: ['name'],
  endpoint: ['address', 'port', 'cluster', 'status'],
  secret: [],
  all: [],
  bootstrap: [],
};

export const PROXY_CONFIG_USAGE =
  'usage: mizzen proxy-config <cluster|listener|route|endpoint|secret|all|bootstrap> <proxy> [-o short|json|yaml]';

export function parseConfigKind(arg: string | undefined): ConfigKind {
  const kind = arg === undefined ? undefined : KINDS[arg.toLowerCase()];
  if (kind) return kind;
  throw new CliError(
    arg === undefined
      ? PROXY_CONFIG_USAGE
      : `proxy-config: unknown config type "${arg}"; ${PROXY_CONFIG_USAGE}`,
    2,
  );
}

function checkFilters(kind: ConfigKind, filters: ConfigFilters): void {
  const allowed = FILTERS[kind];
  for (const [flag, value] of Object.entries(filters)) {
    if (value === undefined || allowed.includes(flag as keyof ConfigFilters)) continue;
    const hint = allowed.length
      ? `its filters are ${allowed.map((f) => `--${f}`).join(', ')}`
      : 'it takes no filter';
    throw new CliError(`proxy-config ${kind}: --${flag} does not apply (${hint})`, 2);
  }
}

type Out = NodeJS.WritableStream;

function table(out: Out, headers: string[], rows: string[][]): void {
  out.write(`${formatTable(headers, rows, { empty: '' })}\n`);
}

/** One proxy's admin API, its /config_dump fetched once however many views read it (`pc all`). */
interface AdminSource {
  readonly target: AdminTarget;
  dump(): Promise<ConfigDump>;
}

function adminSource(target: AdminTarget): AdminSource {
  let dump: Promise<ConfigDump> | undefined;
  return { target, dump: () => (dump ??= fetchConfigDump(target)) };
}

/** Each kind read from the proxy's admin API: its table, and what `-o json|yaml` prints (Envoy's own JSON). */
const VIEWS: Record<
  Exclude<ConfigKind, 'all' | 'bootstrap'>,
  (source: AdminSource, f: ConfigFilters) => Promise<{ headers: string[]; rows: string[][]; raw: unknown }>
> = {
  cluster: async (source, f) => {
    const clusters = dumpClusters(await source.dump());
    return { headers: CLUSTER_HEADERS, rows: clusterRows(clusters, f), raw: filterClusters(clusters, f) };
  },
  listener: async (source, f) => {
    const listeners = dumpListeners(await source.dump());
    return {
      headers: LISTENER_HEADERS,
      rows: listenerRows(listeners, f),
      raw: filterListeners(listeners, f),
    };
  },
  route: async (source, f) => {
    const configs = dumpRouteConfigs(await source.dump());
    return { headers: ROUTE_HEADERS, rows: routeRows(configs, f), raw: filterRouteConfigs(configs, f) };
  },
  endpoint: async (source, f) => {
    const statuses = await fetchClusterStatuses(source.target);
    return {
      headers: ENDPOINT_HEADERS,
      rows: endpointRows(statuses, f),
      raw: filterClusterStatuses(statuses, f),
    };
  },
  secret: async (source) => {
    const secrets = section(await source.dump(), 'SecretsConfigDump');
    return { headers: SECRET_HEADERS, rows: secretRows(secrets), raw: secrets };
  },
};

/**
 * `mizzen proxy-config KIND PROXY`: what one proxy really runs, read from its
 * admin API, as istioctl's tables or as Envoy's JSON.
 */
export async function proxyConfig(
  opts: ProxySelection & { kind?: string; output?: string; filters: ConfigFilters },
  out: Out,
): Promise<void> {
  const kind = parseConfigKind(opts.kind);
  checkFilters(kind, opts.filters);
  // A bootstrap has no table: istioctl prints it as JSON unless told YAML.
  const format = structuredFormat(opts.output ?? (kind === 'bootstrap' ? 'json' : undefined));
  if (!format && opts.output !== undefined && opts.output !== 'short')
    throw unknownOutput(opts.output, 'short, json or yaml');
  if (!format && kind === 'bootstrap')
    throw new CliError('proxy-config bootstrap: use -o json or -o yaml', 2);
  const { target } = await locateProxy(opts);
  if (kind === 'bootstrap' || (kind === 'all' && format)) {
    const dump = await fetchConfigDump(target, true);
    writeStructured(out, kind === 'all' ? dump : section(dump, 'BootstrapConfigDump'), format!);
    return;
  }
  if (kind === 'all') {
    const kinds = ['cluster', 'listener', 'route', 'endpoint', 'secret'] as const;
    const source = adminSource(target);
    const views = await Promise.all(kinds.map((k) => VIEWS[k](source, opts.filters)));
    views.forEach((v, i) => {
      if (i > 0) out.write('\n');
      table(out, v.headers, v.rows);
    });
    return;
  }
  const view = await VIEWS[kind](adminSource(target), opts.filters);
  if (format) writeStructured(out, view.raw, format);
  else table(out, view.headers, view.rows);
}
