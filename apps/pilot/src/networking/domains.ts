import type { Service } from '../registry/model.js';

/**
 * The names a caller may use for a service in a Host header, as Istio lists
 * them: FQDN, and for Kubernetes-style hosts `name.ns.svc`, `name.ns`, and the
 * bare `name` from the same namespace — each with and without `:port`.
 */
export function serviceDomains(
  service: Service,
  port: number,
  proxyNamespace: string,
  domainSuffix: string,
): string[] {
  const host = service.hostname;
  const names = [host];
  const k8sSuffix = `.svc.${domainSuffix}`;
  if (host.endsWith(k8sSuffix)) {
    const base = host.slice(0, -k8sSuffix.length); // name.ns
    const [name, ns] = base.split('.');
    names.push(`${base}.svc`, base);
    if (ns === proxyNamespace && name) names.push(name);
  }
  names.push(...service.addresses.filter((a) => !a.includes('/')));
  return names.flatMap((n) => [n, `${n}:${port}`]);
}
