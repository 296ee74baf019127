import type { Json } from '../config-dump.js';
import { describeCluster, describeMatch, routeCluster } from './route-match.js';

export interface ListenerFilter {
  address?: string;
  port?: number;
  /** HTTP, TCP, HTTP+TCP or UNKNOWN, as istioctl's `--type`. */
  type?: string;
}

export const LISTENER_HEADERS = ['ADDRESSES', 'PORT', 'MATCH', 'DESTINATION'];

const HCM = 'envoy.filters.network.http_connection_manager';
const TCP_PROXY = 'envoy.filters.network.tcp_proxy';
const BLACKHOLE = 'BlackHoleCluster';

function addressOf(a: unknown): { address: string; port?: number } {
  const socket = (a as Json | undefined)?.socket_address as Json | undefined;
  if (socket) return { address: String(socket.address ?? ''), port: Number(socket.port_value ?? 0) };
  const pipe = (a as Json | undefined)?.pipe as Json | undefined;
  return { address: String(pipe?.path ?? '') };
}

/** Every address a listener binds: its own and `additional_addresses`; Unix sockets by path. */
function listenerAddresses(l: Json): string[] {
  const extra = Array.isArray(l.additional_addresses) ? (l.additional_addresses as Json[]) : [];
  return [addressOf(l.address).address, ...extra.map((a) => addressOf(a.address).address)];
}

function filterChains(l: Json): Json[] {
  const chains = Array.isArray(l.filter_chains) ? (l.filter_chains as Json[]) : [];
  return l.default_filter_chain ? [...chains, l.default_filter_chain as Json] : chains;
}

function filters(chain: Json): Json[] {
  return Array.isArray(chain.filters) ? (chain.filters as Json[]) : [];
}

/** `SNI: …; Trans: tls; App: h2; Addr: 10.0.0.0/24:9080`, or `ALL` for a chain that matches everything. */
function describeChainMatch(chain: Json): string {
  const m = (chain.filter_chain_match ?? {}) as Json;
  const descrs: string[] = [];
  const names = (v: unknown) => (Array.isArray(v) ? (v as string[]) : []);
  if (names(m.server_names).length) descrs.push(`SNI: ${names(m.server_names).join(',')}`);
  if (typeof m.transport_protocol === 'string' && m.transport_protocol)
    descrs.push(`Trans: ${m.transport_protocol}`);
  if (names(m.application_protocols).length) descrs.push(`App: ${names(m.application_protocols).join(',')}`);
  const port = m.destination_port !== undefined ? `:${m.destination_port}` : '';
  const ranges = Array.isArray(m.prefix_ranges) ? (m.prefix_ranges as Json[]) : [];
  if (ranges.length)
    descrs.push(`Addr: ${ranges.map((r) => `${r.address_prefix}/${r.prefix_len ?? 0}`).join(',')}${port}`);
  else if (port) descrs.push(`Addr: *${port}`);
  return descrs.length ? descrs.join('; ') : 'ALL';
}

/** An inline route table as istioctl sums it up: the one cluster it sends everything to, or its domains and matches. */
function describeInlineRoutes(config: Json): string {
  const vhosts = Array.isArray(config.virtual_hosts) ? (config.virtual_hosts as Json[]) : [];
  const routesOf = (vh: Json) => (Array.isArray(vh.routes) ? (vh.routes as Json[]) : []);
  const domainsOf = (vh: Json) => (Array.isArray(vh.domains) ? (vh.domains as string[]) : []);
  if (vhosts.length === 1) {
    const [vh] = vhosts as [Json];
    const [only] = routesOf(vh);
    const all = domainsOf(vh).length === 1 && domainsOf(vh)[0] === '*';
    const cluster = only && routesOf(vh).length === 1 ? routeCluster(only) : undefined;
    if (all && cluster && (only!.match as Json | undefined)?.prefix === '/') return describeCluster(cluster);
  }
  const described = vhosts.map((vh) => {
    const routes = routesOf(vh)
      .map((r) => describeMatch(r.match))
      .join(', ');
    const domains = domainsOf(vh);
    return domains.length === 1 && domains[0] === '*' ? routes : `${domains.join('/')} ${routes}`;
  });
  return `Inline Route: ${described.join('; ')}`;
}

/** Where a filter chain sends traffic: `Route: 9080`, `Cluster: outbound|…`, an inline route, or Non-HTTP/Non-TCP. */
function describeDestination(chain: Json): string {
  for (const f of filters(chain)) {
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
    for (const f of filters(chain)) {
      if (f.name === HCM) http++;
      else if (f.name === TCP_PROXY && (f.typed_config as Json | undefined)?.cluster !== BLACKHOLE) tcp++;
    }
  if (http) return tcp ? 'HTTP+TCP' : 'HTTP';
  return tcp ? 'TCP' : 'UNKNOWN';
}

function admitted(l: Json, f: ListenerFilter): boolean {
  if (f.address && !listenerAddresses(l).includes(f.address)) return false;
  if (f.port !== undefined && addressOf(l.address).port !== f.port) return false;
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
    .map((l) => ({ l, ...addressOf(l.address) }))
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
