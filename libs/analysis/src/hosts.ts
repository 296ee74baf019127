/** Istio's host, namespace and label rules, shared by the analyzers and pilot's translation. */

/** `reviews` in namespace `default` → `reviews.default.svc.cluster.local` (Istio's short-name rule). */
export function resolveShortName(host: string, namespace: string, domainSuffix = 'cluster.local'): string {
  if (host.includes('.') || host === '*' || host.startsWith('*')) return host;
  return `${host}.${namespace}.svc.${domainSuffix}`;
}

/** Matches a host against a possibly wildcard host (`*.default.svc.cluster.local`, `*`). */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  if (pattern.startsWith('*')) return host.endsWith(pattern.slice(1));
  return pattern.toLowerCase() === host.toLowerCase();
}

/** Two hosts some request could match both of (`*.example.com` and `a.example.com` overlap). */
export function hostsOverlap(a: string, b: string): boolean {
  return hostMatches(a, b) || hostMatches(b, a);
}

/** True when a resource exported to `exportTo` from `fromNamespace` is visible in `namespace` (empty: everywhere). */
export function isVisible(exportTo: readonly string[], fromNamespace: string, namespace: string): boolean {
  if (exportTo.length === 0) return true;
  for (const e of exportTo) {
    if (e === '*') return true;
    if (e === '.' && fromNamespace === namespace) return true;
    if (e === namespace) return true;
  }
  return false;
}

/** Does a label selector (every key equal) pick these labels? No selector picks everything. */
export function labelsMatch(
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/** `ns/host`, `*\/host`, `./host` or `host` in a Gateway server → the namespace filter and host. */
export function splitServerHost(
  entry: string,
  gatewayNamespace: string,
): { namespace: string; host: string } {
  const slash = entry.indexOf('/');
  if (slash < 0) return { namespace: '*', host: entry };
  const ns = entry.slice(0, slash);
  return { namespace: ns === '.' ? gatewayNamespace : ns, host: entry.slice(slash + 1) };
}

/** Labels as Kubernetes prints a selector: `app=reviews,version=v1`, keys sorted. */
export function selectorText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
