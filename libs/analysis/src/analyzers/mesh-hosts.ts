import type { ConfigResource } from '@mizzen/api';
import type { AnalysisContext } from '../context.js';
import { resolveShortName } from '../hosts.js';
import { type AnalysisMessage, fullName, msg, originOf } from '../messages.js';

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
 * the oldest and ignores the others. Reported on each of them.
 */
export function analyzeMeshHosts(ctx: AnalysisContext): AnalysisMessage[] {
  const byHost = new Map<string, ConfigResource<'VirtualService'>[]>();
  for (const vs of ctx.of('VirtualService')) {
    const gateways = vs.spec.gateways ?? [];
    if (gateways.length && !gateways.includes('mesh')) continue;
    for (const h of vs.spec.hosts ?? []) {
      const host = resolveShortName(h, vs.metadata.namespace, ctx.settings.domainSuffix);
      byHost.set(host, [...(byHost.get(host) ?? []), vs]);
    }
  }
  const out: AnalysisMessage[] = [];
  const scope = (vs: ConfigResource<'VirtualService'>) =>
    exportedTo(vs.spec.exportTo ?? ctx.settings.defaultVirtualServiceExportTo ?? [], vs.metadata.namespace);
  for (const [host, list] of byHost) {
    const conflicting = list.filter((vs) =>
      list.some((other) => other !== vs && overlap(scope(vs), scope(other))),
    );
    if (conflicting.length < 2) continue;
    const names = conflicting.map(fullName);
    for (const vs of conflicting)
      out.push(msg.conflictingMeshGatewayVirtualServiceHosts(originOf(vs), names, host));
  }
  return out;
}
