import type { Json } from '../config-dump.js';
import { list, strings } from '../json-lists.js';
import { type AddressFilter, envoyAddress } from './address.js';
import { describeCluster, describeMatch, routeCluster } from './route-match.js';

export interface ListenerFilter extends AddressFilter {
  /** HTTP, TCP, HTTP+TCP or UNKNOWN, as istioctl's `--type`. */
  type?: string;
}

export const LISTENER_HEADERS = ['ADDRESSES', 'PORT', 'MATCH', 'DESTINATION'];

const HCM = 'envoy.filters.network.http_connection_manager';
const TCP_PROXY = 'envoy.filters.network.tcp_proxy';
const BLACKHOLE = 'BlackHoleCluster';

/** Every address a listener binds: its own and `additional_addresses`; Unix sockets by path. */
function listenerAddresses(l: Json): string[] {
  const extra = list(l.additional_addresses).map((a) => a.address);
  return [l.address, ...extra].map((a) => envoyAddress(a).address);
}

function filterChains(l: Json): Json[] {
  const chains = list(l.filter_chains);
  return l.default_filter_chain ? [...chains, l.default_filter_chain as Json] : chains;
}

/** `SNI: …; Trans: tls; App: h2; Addr: 10.0.0.0/24:9080`, or `ALL` for a chain that matches everything. */
function describeChainMatch(chain: Json): string {
  const m = (chain.filter_chain_match ?? {}) as Json;
  const descrs: string[] = [];
  const sni = strings(m.server_names);
  const alpn = strings(m.application_protocols);
  if (sni.length) descrs.push(`SNI: ${sni.join(',')}`);
  if (typeof m.transport_protocol === 'string' && m.transport_protocol)
    descrs.push(`Trans: ${m.transport_protocol}`);
  if (alpn.length) descrs.push(`App: ${alpn.join(',')}`);
  const port = m.destination_port !== undefined ? `:${m.destination_port}` : '';
  const ranges = list(m.prefix_ranges);
  if (ranges.length)
    descrs.push(`Addr: ${ranges.map((r) => `${r.address_prefix}/${r.prefix_len ?? 0}`).join(',')}${port}`);
  else if (port) descrs.push(`Addr: *${port}`);
  return descrs.length ? descrs.join('; ') : 'ALL';
}

/** A virtual host for every domain (`*`), whose domains istioctl leaves out. */
function anyDomain(vh: Json): boolean {
  const domains = strings(vh.domains);
  return domains.length === 1 && domains[0] === '*';
}

/** An inline route table as istioctl sums it up: the one cluster it sends everything to, or its domains and matches. */
function describeInlineRoutes(config: Json): string {
  const vhosts = list(config.virtual_hosts);
  if (vhosts.length === 1) {
    const [vh] = vhosts as [Json];
    const routes = list(vh.routes);
    const [only] = routes;
    const cluster = only && routes.length === 1 ? routeCluster(only) : undefined;
    if (anyDomain(vh) && cluster && (only!.match as Json | undefined)?.prefix === '/')
      return describeCluster(cluster);
  }
  const described = vhosts.map((vh) => {
    const routes = list(vh.routes)
      .map((r) => describeMatch(r.match))
      .join(', ');
    return anyDomain(vh) ? routes : `${strings(vh.domains).join('/')} ${routes}`;
  });
  return `Inline Route: ${described.join('; ')}`;
}

/** Where a filter chain sends traffic: `Route: 9080`, `Cluster: outbound|…`, an inline route, or Non-HTTP/Non-TCP. */
function describeDestination(chain: Json): string {
  for (const f of list(chain.filters)) {
    const config = (f.typed_config ?? {}) as Json;
    if (f.name === HCM) {
      const rds = config.rds as Json | undefined;
      if (rds) return typeof rds.route_config_name === 'string' ? `Route: ${rds.route_config_name}` : 'HTTP';
      if (config.route_config) return describeInlineRoutes(config.route_config as Json);
      return 'HTTP';
    }
    if (f.name === TCP_PROXY) {
      if (typeof config.cluster === 'string') return describeCluster(config.cluster);
      if (config.weighted_clusters) return 'WeightedClusters';
      return 'TCP';
    }
  }
  return 'Non-HTTP/Non-TCP';
}

/** HTTP, TCP, HTTP+TCP or UNKNOWN: what the listener's chains proxy (a black hole counts as nothing). */
export function listenerType(l: Json): string {
  let http = 0;
  let tcp = 0;
  for (const chain of filterChains(l))
    for (const f of list(chain.filters)) {
      if (f.name === HCM) http++;
      else if (f.name === TCP_PROXY && (f.typed_config as Json | undefined)?.cluster !== BLACKHOLE) tcp++;
    }
  if (http) return tcp ? 'HTTP+TCP' : 'HTTP';
  return tcp ? 'TCP' : 'UNKNOWN';
}

function admitted(l: Json, f: ListenerFilter): boolean {
  if (f.address && !listenerAddresses(l).includes(f.address)) return false;
  if (f.port !== undefined && envoyAddress(l.address).port !== f.port) return false;
  if (f.type && listenerType(l).toUpperCase() !== f.type.toUpperCase()) return false;
  return true;
}

/** The listeners a filter admits, in the dump's order. */
export function filterListeners(listeners: readonly Json[], f: ListenerFilter): Json[] {
  return listeners.filter((l) => admitted(l, f));
}

/** istioctl's `proxy-config listener` rows: one per filter chain, listeners by port then address. */
export function listenerRows(listeners: readonly Json[], f: ListenerFilter = {}): string[][] {
  return filterListeners(listeners, f)
    .map((l) => ({ l, ...envoyAddress(l.address) }))
    .sort((a, b) => (a.port ?? 0) - (b.port ?? 0) || a.address.localeCompare(b.address))
    .flatMap(({ l, port }) =>
      filterChains(l).map((chain) => [
        listenerAddresses(l).join(','),
        port === undefined ? '-' : String(port),
        describeChainMatch(chain),
        describeDestination(chain),
      ]),
    );
}
