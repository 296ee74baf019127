import type { Destination, HTTPMatchRequest, HTTPRoute, StringMatch, VirtualServiceSpec } from '@mizzen/api';
import { isVisible, resolveShortName } from '../registry/model.js';
import type { VirtualServiceResource } from './push-context.js';

/**
 * VirtualService delegation as Istio merges it (mergeVirtualServicesIfNeeded):
 * a VirtualService without hosts is a delegate and routes nothing on its own;
 * a root's http route with `delegate: {name, namespace}` is replaced by the
 * delegate's routes, each delegate match AND-ed with the root route's
 * matches (a delegate match that conflicts with every root match drops that
 * delegate route), and the root route's timeout, retries, fault, mirror,
 * CORS, rewrite and headers filling in what the delegate route leaves unset.
 * Short names in a delegate are resolved in the delegate's namespace.
 * One level only: a delegate's own `delegate` routes are ignored.
 */
export function mergeDelegates(
  virtualServices: readonly VirtualServiceResource[],
  opts: {
    domainSuffix: string;
    /** exportTo of VirtualServices that set none (mesh `defaultVirtualServiceExportTo`). */
    defaultExportTo: readonly string[];
    warn: (message: string) => void;
  },
): VirtualServiceResource[] {
  const delegates = new Map<string, VirtualServiceResource>();
  const withHosts = new Set<string>();
  for (const vs of virtualServices) {
    const key = `${vs.metadata.namespace}/${vs.metadata.name}`;
    if (((vs.spec as VirtualServiceSpec).hosts ?? []).length === 0) delegates.set(key, vs);
    else withHosts.add(key);
  }
  const out: VirtualServiceResource[] = [];
  for (const vs of virtualServices) {
    const spec = vs.spec as VirtualServiceSpec;
    if ((spec.hosts ?? []).length === 0) continue;
    if (!(spec.http ?? []).some((r) => r.delegate)) {
      out.push(vs);
      continue;
    }
    const root = `VirtualService ${vs.metadata.namespace}/${vs.metadata.name}`;
    const http: HTTPRoute[] = [];
    for (const [i, route] of (spec.http ?? []).entries()) {
      if (!route.delegate) {
        http.push(route);
        continue;
      }
      const ns = route.delegate.namespace || vs.metadata.namespace;
      const key = `${ns}/${route.delegate.name ?? ''}`;
      const where = `${root} http[${i}]`;
      const delegate = delegates.get(key);
      if (!delegate) {
        // A delegate that does not exist at all is the analyzers' IST0101 (reported with the rest of them).
        if (withHosts.has(key))
          opts.warn(
            `${where}: delegate VirtualService ${key} has hosts, so it cannot be a delegate; the route is ignored`,
          );
        continue;
      }
      const dspec = delegate.spec as VirtualServiceSpec;
      const exportTo = dspec.exportTo?.length ? dspec.exportTo : opts.defaultExportTo;
      if (!isVisible(exportTo, ns, vs.metadata.namespace)) {
        opts.warn(
          `${where}: delegate VirtualService ${key} is not exported to namespace ${vs.metadata.namespace}; the route is ignored`,
        );
        continue;
      }
      for (const [j, sub] of (dspec.http ?? []).entries()) {
        if (sub.delegate) {
          opts.warn(
            `VirtualService ${key} http[${j}]: a delegate cannot delegate again (only one level); the route is ignored`,
          );
          continue;
        }
        const merged = mergeHttpRoute(route, resolveDelegateRoute(sub, ns, opts.domainSuffix));
        if (merged) http.push(merged);
      }
    }
    out.push({ ...vs, spec: { ...spec, http } } as VirtualServiceResource);
  }
  return out;
}

/**
 * A delegate's route with its short names resolved in the delegate's own
 * namespace (Istio resolves them before merging, so `reviews` in a delegate
 * in `bookinfo` stays `reviews.bookinfo…` under a root elsewhere).
 */
function resolveDelegateRoute(route: HTTPRoute, namespace: string, domainSuffix: string): HTTPRoute {
  const dest = (d: Destination): Destination => ({
    ...d,
    host: resolveShortName(d.host, namespace, domainSuffix),
  });
  const out: HTTPRoute = { ...route };
  if (route.route) out.route = route.route.map((r) => ({ ...r, destination: dest(r.destination) }));
  if (route.mirror) out.mirror = dest(route.mirror);
  if (route.mirrors) out.mirrors = route.mirrors.map((m) => ({ ...m, destination: dest(m.destination) }));
  if (route.match) {
    out.match = route.match.map((m) =>
      m.gateways
        ? {
            ...m,
            gateways: m.gateways.map((g) => (g === 'mesh' || g.includes('/') ? g : `${namespace}/${g}`)),
          }
        : m,
    );
  }
  return out;
}

/** Istio's mergeHTTPRoute: undefined when the delegate route's matches conflict with the root's. */
export function mergeHttpRoute(root: HTTPRoute, delegate: HTTPRoute): HTTPRoute | undefined {
  const match = mergeMatches(root.match ?? [], delegate.match ?? []);
  if (match === undefined) return undefined;
  const out: HTTPRoute = { ...delegate };
  if (match.length) out.match = match;
  else delete out.match;
  const name = joinNames(root.name, delegate.name);
  if (name !== undefined) out.name = name;
  out.rewrite ??= root.rewrite;
  out.timeout ??= root.timeout;
  out.retries ??= root.retries;
  out.fault ??= root.fault;
  out.mirror ??= root.mirror;
  out.mirrorPercent ??= root.mirrorPercent;
  out.mirrorPercentage ??= root.mirrorPercentage;
  out.corsPolicy ??= root.corsPolicy;
  out.mirrors ??= root.mirrors;
  out.headers ??= root.headers;
  for (const k of Object.keys(out) as (keyof HTTPRoute)[]) if (out[k] === undefined) delete out[k];
  return out;
}

function joinNames(root: string | undefined, leaf: string | undefined): string | undefined {
  if (!leaf) return root;
  return root ? `${root}-${leaf}` : leaf;
}

/**
 * Istio's mergeHTTPMatchRequests: every delegate match must be compatible
 * with at least one root match; the result is each compatible pair merged
 * (undefined: a conflict, the delegate route is dropped).
 */
export function mergeMatches(
  root: readonly HTTPMatchRequest[],
  delegate: readonly HTTPMatchRequest[],
): HTTPMatchRequest[] | undefined {
  if (root.length === 0) return [...delegate];
  if (delegate.length === 0) return [...root];
  const out: HTTPMatchRequest[] = [];
  for (const leaf of delegate) {
    let found = false;
    for (const r of root) {
      if (matchConflict(r, leaf)) continue;
      out.push(mergeMatch(r, leaf));
      found = true;
    }
    if (!found) return undefined;
  }
  return out.length ? out : undefined;
}

function mergeMaps<T>(a: Record<string, T> | undefined, b: Record<string, T> | undefined) {
  return a || b ? { ...a, ...b } : undefined;
}

function mergeMatch(root: HTTPMatchRequest, leaf: HTTPMatchRequest): HTTPMatchRequest {
  const out: HTTPMatchRequest = { ...leaf };
  const name = joinNames(root.name, leaf.name);
  if (name !== undefined) out.name = name;
  out.uri ??= root.uri;
  out.scheme ??= root.scheme;
  out.method ??= root.method;
  out.authority ??= root.authority;
  out.headers = mergeMaps(root.headers, leaf.headers);
  out.withoutHeaders = mergeMaps(root.withoutHeaders, leaf.withoutHeaders);
  out.queryParams = mergeMaps(root.queryParams, leaf.queryParams);
  out.port ??= root.port;
  out.sourceLabels = mergeMaps(root.sourceLabels, leaf.sourceLabels);
  if (!out.sourceNamespace) out.sourceNamespace = root.sourceNamespace;
  if (!out.gateways?.length) out.gateways = root.gateways;
  if (!out.statPrefix) out.statPrefix = root.statPrefix;
  for (const k of Object.keys(out) as (keyof HTTPMatchRequest)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** Istio's hasConflict: can one request satisfy both the root match and the delegate match? */
function matchConflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest): boolean {
  for (const f of ['uri', 'scheme', 'method', 'authority'] as const)
    if (stringMatchConflict(root[f], leaf[f])) return true;
  for (const f of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    for (const [key, m] of Object.entries(leaf[f] ?? {}))
      if (stringMatchConflict(root[f]?.[key], m)) return true;
  }
  if ((root.ignoreUriCase ?? false) !== (leaf.ignoreUriCase ?? false)) return true;
  if (root.port && leaf.port && root.port !== leaf.port) return true;
  if (root.sourceNamespace && leaf.sourceNamespace !== root.sourceNamespace) return true;
  for (const [k, v] of Object.entries(leaf.sourceLabels ?? {})) {
    const rv = root.sourceLabels?.[k];
    if (rv !== undefined && rv !== v) return true;
  }
  if (root.gateways?.length && leaf.gateways?.length) {
    const rootGateways = new Set(root.gateways);
    if (leaf.gateways.some((g) => !rootGateways.has(g))) return true;
  }
  return false;
}

function stringMatchConflict(root: StringMatch | undefined, leaf: StringMatch | undefined): boolean {
  if (!root || !leaf) return false;
  if (root.regex && (leaf.regex || leaf.prefix || leaf.exact)) return true;
  if (leaf.regex && (root.regex || root.prefix || root.exact)) return true;
  if (root.exact) return leaf.prefix ? true : leaf.exact !== root.exact;
  if (root.prefix) {
    if (leaf.prefix) return !leaf.prefix.startsWith(root.prefix);
    if (leaf.exact) return !leaf.exact.startsWith(root.prefix);
  }
  // Anything else (a presence match on either side, regex against regex) cannot be proven compatible.
  return true;
}
