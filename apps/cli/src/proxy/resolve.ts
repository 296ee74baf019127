import { CliError } from '../errors.js';
import type { SyncEntry } from '../syncz.js';

/**
 * A proxy's short name as istioctl shows it: the `POD.NAMESPACE` part of its
 * node id (`sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local`).
 */
export function proxyName(id: string): string {
  return id.split('~')[2] ?? id;
}

function namespaceOf(e: SyncEntry): string {
  if (e.namespace) return e.namespace;
  const name = proxyName(e.proxy);
  return name.slice(name.lastIndexOf('.') + 1);
}

function podOf(e: SyncEntry): string {
  const name = proxyName(e.proxy);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

/** The entries a query names: a node id exactly, or a pod or workload name (with `.NAMESPACE` or `-n`). */
function matches(query: string, entries: readonly SyncEntry[], namespace: string | undefined): SyncEntry[] {
  if (query.includes('~')) return entries.filter((e) => e.proxy === query);
  const named = (name: string, ns: string | undefined) =>
    entries.filter(
      (e) => (podOf(e) === name || e.workload === name) && (ns === undefined || namespaceOf(e) === ns),
    );
  const exact = named(query, namespace);
  if (exact.length || namespace !== undefined) return exact;
  // `name.namespace`: the last dot splits, as in the node id (a name alone may hold dots too, tried first).
  const dot = query.lastIndexOf('.');
  return dot > 0 ? named(query.slice(0, dot), query.slice(dot + 1)) : [];
}

/** Names to offer when a query finds nothing: the proxies whose name contains it, else every proxy. */
function suggestions(query: string, entries: readonly SyncEntry[]): string[] {
  const all = entries.map((e) => proxyName(e.proxy)).sort();
  const close = all.filter((n) => n.includes(query.split('.')[0] ?? query));
  return close.length ? close : all;
}

/**
 * The one proxy a user means by what they typed — a workload or pod name
 * (`productpage-v1`), `name.namespace`, or the full xDS node id — among those
 * connected to pilot. None or several is a CliError naming the candidates.
 */
export function resolveProxy(
  query: string,
  entries: readonly SyncEntry[],
  opts: { namespace?: string; pilot?: string } = {},
): SyncEntry {
  const found = matches(query, entries, opts.namespace);
  if (found.length === 1) return found[0]!;
  const where = opts.pilot ? ` to pilot at ${opts.pilot}` : '';
  const label = opts.namespace ? `${query}" in namespace "${opts.namespace}` : query;
  if (found.length > 1) {
    const names = found.map((e) => e.proxy).sort();
    throw new CliError(`"${label}" names ${found.length} proxies; say which: ${names.join(', ')}`);
  }
  if (entries.length === 0) throw new CliError(`proxy "${label}" not found: no proxy is connected${where}`);
  throw new CliError(
    `proxy "${label}" not found among the proxies connected${where}; candidates: ${suggestions(query, entries).join(', ')}`,
  );
}
