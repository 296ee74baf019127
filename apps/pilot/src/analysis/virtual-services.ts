import type { ConfigResource, Destination, DestinationRuleSpec, VirtualServiceSpec } from '@mizzen/api';
import { byCreation } from '../model/ordering.js';
import { hostMatches, isVisible, resolveShortName } from '../registry/model.js';

/** One of Istio's analyzer messages about VirtualServices, for `mizzen apply` and pilot's log. */
export interface AnalyzerMessage {
  code: 'IST0101' | 'IST0109';
  /** `VirtualService namespace/name` of each resource the message is about. */
  resources: string[];
  /** IST0101: the host whose subset is missing (a change to its DestinationRules concerns the message too). */
  host?: string;
  message: string;
}

export interface AnalysisSettings {
  domainSuffix: string;
  /** The mesh's exportTo for resources that set none (defaultVirtualServiceExportTo…). */
  defaultVirtualServiceExportTo?: readonly string[];
  defaultDestinationRuleExportTo?: readonly string[];
}

type Resource = ConfigResource;
const ref = (r: Resource) => `${r.metadata.namespace}/${r.metadata.name}`;

/** Every destination a VirtualService sends to or mirrors to, with where it appears. */
function destinations(spec: VirtualServiceSpec): { at: string; dest: Destination }[] {
  const out: { at: string; dest: Destination }[] = [];
  for (const [i, r] of (spec.http ?? []).entries()) {
    for (const [j, d] of (r.route ?? []).entries())
      out.push({ at: `http[${i}].route[${j}]`, dest: d.destination });
    if (r.mirror) out.push({ at: `http[${i}].mirror`, dest: r.mirror });
    for (const [j, m] of (r.mirrors ?? []).entries())
      out.push({ at: `http[${i}].mirrors[${j}]`, dest: m.destination });
  }
  for (const kind of ['tcp', 'tls'] as const) {
    for (const [i, r] of (spec[kind] ?? []).entries())
      for (const [j, d] of (r.route ?? []).entries())
        out.push({ at: `${kind}[${i}].route[${j}]`, dest: d.destination });
  }
  return out;
}

/**
 * IST0101 ReferencedResourceNotFound: a route to a subset that no
 * DestinationRule visible to the VirtualService defines for the host.
 * Such requests get 503 (no cluster) until one does.
 */
function undefinedSubsets(
  virtualServices: readonly Resource[],
  rules: readonly Resource[],
  settings: AnalysisSettings,
): AnalyzerMessage[] {
  const out: AnalyzerMessage[] = [];
  for (const vs of virtualServices) {
    const ns = vs.metadata.namespace;
    for (const { at, dest } of destinations(vs.spec as VirtualServiceSpec)) {
      if (!dest.subset) continue;
      const host = resolveShortName(dest.host, ns, settings.domainSuffix);
      const defined = rules.some((dr) => {
        const spec = dr.spec as DestinationRuleSpec;
        const exportTo = spec.exportTo?.length
          ? spec.exportTo
          : (settings.defaultDestinationRuleExportTo ?? []);
        if (!isVisible(exportTo, dr.metadata.namespace, ns)) return false;
        const drHost = resolveShortName(spec.host, dr.metadata.namespace, settings.domainSuffix);
        return hostMatches(drHost, host) && (spec.subsets ?? []).some((s) => s.name === dest.subset);
      });
      if (defined) continue;
      out.push({
        code: 'IST0101',
        resources: [`VirtualService ${ref(vs)}`],
        host,
        message: `VirtualService ${ref(vs)} ${at} routes to subset "${dest.subset}" of ${host}, which no DestinationRule defines (IST0101 ReferencedResourceNotFound): those requests get 503 until one does`,
      });
    }
  }
  return out;
}

/** The namespaces a resource is exported to (`*`: all). */
function exportedTo(exportTo: readonly string[], namespace: string): Set<string> {
  return new Set(exportTo.length ? exportTo.map((e) => (e === '.' ? namespace : e)) : ['*']);
}

function overlap(a: Set<string>, b: Set<string>): boolean {
  if (a.has('*') || b.has('*')) return true;
  for (const n of a) if (b.has(n)) return true;
  return false;
}

/**
 * IST0109 ConflictingMeshGatewayVirtualServiceHosts: several VirtualServices
 * for sidecars (the `mesh` gateway) define the same host where both are
 * visible. Istio merges VirtualServices only at gateways; a sidecar takes
 * the oldest and ignores the others.
 */
function conflictingMeshHosts(
  virtualServices: readonly Resource[],
  settings: AnalysisSettings,
): AnalyzerMessage[] {
  const byHost = new Map<string, Resource[]>();
  for (const vs of [...virtualServices].sort(byCreation)) {
    const spec = vs.spec as VirtualServiceSpec;
    const gateways = spec.gateways ?? [];
    if (gateways.length && !gateways.includes('mesh')) continue;
    for (const h of spec.hosts ?? []) {
      const host = resolveShortName(h, vs.metadata.namespace, settings.domainSuffix);
      byHost.set(host, [...(byHost.get(host) ?? []), vs]);
    }
  }
  const out: AnalyzerMessage[] = [];
  for (const [host, list] of byHost) {
    if (list.length < 2) continue;
    const scope = (vs: Resource) =>
      exportedTo(
        (vs.spec as VirtualServiceSpec).exportTo ?? settings.defaultVirtualServiceExportTo ?? [],
        vs.metadata.namespace,
      );
    const conflicting = list.filter((vs) =>
      list.some((other) => other !== vs && overlap(scope(vs), scope(other))),
    );
    if (conflicting.length < 2) continue;
    const names = conflicting.map(ref);
    out.push({
      code: 'IST0109',
      resources: conflicting.map((vs) => `VirtualService ${ref(vs)}`),
      message: `VirtualServices ${names.join(', ')} all define host ${host} for sidecars (the mesh gateway); sidecars use only ${names[0]} (the oldest) — merge them into one VirtualService (IST0109 ConflictingMeshGatewayVirtualServiceHosts)`,
    });
  }
  return out;
}

/** Istio's analyzer messages about the VirtualServices in a set of resources. */
export function analyzeVirtualServices(
  resources: readonly ConfigResource[],
  settings: AnalysisSettings,
): AnalyzerMessage[] {
  const virtualServices = resources.filter((r) => r.kind === 'VirtualService');
  const rules = resources.filter((r) => r.kind === 'DestinationRule');
  return [
    ...undefinedSubsets(virtualServices, rules, settings),
    ...conflictingMeshHosts(virtualServices, settings),
  ];
}
