import type { Destination, VirtualServiceSpec } from '@mizzen/api';
import type { AnalysisContext } from '../context.js';
import { hostMatches, isVisible, resolveShortName } from '../hosts.js';
import { type AnalysisMessage, msg, originOf } from '../messages.js';

/** Every destination a VirtualService sends to or mirrors to. */
export function destinations(spec: VirtualServiceSpec): Destination[] {
  const out: Destination[] = [];
  for (const r of spec.http ?? []) {
    for (const d of r.route ?? []) out.push(d.destination);
    if (r.mirror) out.push(r.mirror);
    for (const m of r.mirrors ?? []) out.push(m.destination);
  }
  for (const r of [...(spec.tcp ?? []), ...(spec.tls ?? [])])
    for (const d of r.route ?? []) out.push(d.destination);
  return out;
}

/** Is a subset of `host` defined by a DestinationRule visible from `namespace`? */
function subsetDefined(ctx: AnalysisContext, host: string, subset: string, namespace: string): boolean {
  const { settings } = ctx;
  return ctx.of('DestinationRule').some((dr) => {
    const spec = dr.spec;
    const exportTo = spec.exportTo?.length ? spec.exportTo : (settings.defaultDestinationRuleExportTo ?? []);
    if (!isVisible(exportTo, dr.metadata.namespace, namespace)) return false;
    const drHost = resolveShortName(spec.host, dr.metadata.namespace, settings.domainSuffix);
    return hostMatches(drHost, host) && (spec.subsets ?? []).some((s) => s.name === subset);
  });
}

/** Every host the mesh knows: the given services and the ServiceEntries' hosts (which may be wildcards). */
function knownHosts(ctx: AnalysisContext): string[] {
  const entries = ctx
    .of('ServiceEntry')
    .flatMap((se) =>
      se.spec.hosts.map((h) => resolveShortName(h, se.metadata.namespace, ctx.settings.domainSuffix)),
    );
  return [...(ctx.input.services ?? []).map((s) => s.hostname), ...entries];
}

/**
 * IST0101 ReferencedResourceNotFound for a VirtualService's destinations: a
 * subset no DestinationRule visible to it defines (those requests get 503),
 * and — when the services are known — a host no service or ServiceEntry has.
 */
export function analyzeDestinations(ctx: AnalysisContext): AnalysisMessage[] {
  const out: AnalysisMessage[] = [];
  const hosts = ctx.input.services ? knownHosts(ctx) : undefined;
  for (const vs of ctx.of('VirtualService')) {
    const ns = vs.metadata.namespace;
    const seen = new Set<string>();
    for (const dest of destinations(vs.spec)) {
      const host = resolveShortName(dest.host, ns, ctx.settings.domainSuffix);
      if (hosts && !hosts.some((h) => hostMatches(h, host)) && !seen.has(dest.host)) {
        seen.add(dest.host);
        out.push(msg.referencedResourceNotFound(originOf(vs), 'host', dest.host));
        continue;
      }
      if (dest.subset && !subsetDefined(ctx, host, dest.subset, ns))
        out.push(
          msg.referencedResourceNotFound(
            originOf(vs),
            'host+subset in destinationrule',
            `${dest.host}+${dest.subset}`,
            host,
          ),
        );
    }
  }
  return out;
}
