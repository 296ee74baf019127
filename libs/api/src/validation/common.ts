import type { Checker } from './checker.js';
import { dnsLabel, exportToProblems, fqdn, ipOrCidr, namespaceName, wildcardHost } from './names.js';

/**
 * Semantic checks shared by several kinds (Istio's validateDestination,
 * validateExportTo, validateGatewayNames, ...).
 */

export interface DestinationLike {
  host: string;
  subset?: string;
  port?: { number?: number };
}

/** A route/mirror destination: a host that is not `*`, an optional subset name. */
export function checkDestination(d: DestinationLike, at: Checker): void {
  if (d.host === '*') at.at('host').error('"*" is not a valid destination host; name a service');
  else at.at('host').check(wildcardHost(d.host));
  if (d.subset !== undefined) at.at('subset').check(dnsLabel(d.subset, 'subset name'));
}

export function checkExportTo(
  list: readonly string[] | undefined,
  namespace: string,
  at: Checker,
  allowNone = false,
): void {
  if (!list) return;
  for (const problem of exportToProblems(list, namespace, allowNone)) at.at('exportTo').error(problem);
}

/** Gateway references in a VirtualService: `mesh`, `name`, `namespace/name`. */
export function checkGatewayRefs(refs: readonly string[] | undefined, at: Checker): void {
  for (const [i, ref] of (refs ?? []).entries()) {
    const here = at.at(i);
    if (ref === 'mesh') continue;
    const slash = ref.indexOf('/');
    if (slash < 0) {
      if (ref.includes('.')) {
        const [name, ns] = ref.split('.');
        here.warn(`"${ref}" uses the legacy gateway.namespace form; prefer "${ns}/${name}"`);
      }
      here.check(fqdn(ref));
      continue;
    }
    const ns = ref.slice(0, slash);
    const name = ref.slice(slash + 1);
    if (!ns || !name) {
      here.error(`"${ref}": namespace and gateway name must not be empty`);
      continue;
    }
    here.check(dnsLabel(ns, 'namespace'));
    here.check(dnsLabel(name, 'gateway name'));
  }
}

export function checkSourceNamespace(value: string | undefined, at: Checker): void {
  if (value !== undefined) at.check(namespaceName(value));
}

export function checkSubnets(list: readonly string[] | undefined, at: Checker): void {
  for (const [i, s] of (list ?? []).entries()) at.at(i).check(ipOrCidr(s));
}

/** Weights: with more than one destination they must add up to 100 (a single destination may omit its weight). */
export function checkWeights(route: readonly { weight?: number }[], at: Checker): void {
  if (route.length < 2) return;
  const total = route.reduce((sum, d) => sum + (d.weight ?? 0), 0);
  if (total !== 100) {
    const listed = route.map((d) => d.weight ?? 0).join(' + ');
    at.error(`weights of a route with several destinations must add up to 100, got ${listed} = ${total}`);
  }
}

/** Istio's protocol names (case-insensitive), for ports of Gateways, ServiceEntries and Sidecars. */
export const PROTOCOLS = [
  'HTTP',
  'HTTPS',
  'HTTP2',
  'GRPC',
  'GRPC-WEB',
  'TCP',
  'TLS',
  'UDP',
  'MONGO',
  'REDIS',
  'MYSQL',
  'HTTP_PROXY',
];

export function protocolProblem(protocol: string | undefined): string | undefined {
  if (protocol === undefined || protocol === '') return undefined;
  if (PROTOCOLS.includes(protocol.toUpperCase())) return undefined;
  return `unsupported protocol "${protocol}"; use one of ${PROTOCOLS.join(', ')}`;
}

export function isHttpProtocol(protocol: string | undefined): boolean {
  return ['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY'].includes((protocol ?? '').toUpperCase());
}

export function isTlsProtocol(protocol: string | undefined): boolean {
  return ['HTTPS', 'TLS'].includes((protocol ?? '').toUpperCase());
}

/** An empty selector selects everything, which is rarely meant (Istio warns). */
export function checkSelectorNotEmpty(
  labels: Record<string, string> | undefined,
  at: Checker,
  what: string,
): void {
  if (labels !== undefined && Object.keys(labels).length === 0) {
    at.warn(`the selector has no labels, so this ${what} applies to every workload in the namespace`);
  }
}
