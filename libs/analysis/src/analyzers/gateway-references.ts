import type { AnalysisContext } from '../context.js';
import { hostsOverlap, splitServerHost } from '../hosts.js';
import { type AnalysisMessage, fullName, msg, originOf } from '../messages.js';

/** `bookinfo-gateway` or `istio-system/ingress` in a VirtualService → namespace and name. */
function gatewayRef(entry: string, namespace: string): { namespace: string; name: string } {
  const slash = entry.indexOf('/');
  return slash < 0
    ? { namespace, name: entry }
    : { namespace: entry.slice(0, slash), name: entry.slice(slash + 1) };
}

/**
 * IST0101 ReferencedResourceNotFound for a gateway a VirtualService (or one
 * of its routes) names that does not exist, and IST0132
 * VirtualServiceHostNotFoundInGateway when none of its hosts is one the
 * gateway's servers accept for its namespace: that gateway never routes to it.
 */
export function analyzeGatewayReferences(ctx: AnalysisContext): AnalysisMessage[] {
  const out: AnalysisMessage[] = [];
  for (const vs of ctx.of('VirtualService')) {
    const ns = vs.metadata.namespace;
    const routeGateways = (vs.spec.http ?? []).flatMap((r) =>
      (r.match ?? []).flatMap((m) => m.gateways ?? []),
    );
    const named = [...new Set([...(vs.spec.gateways ?? []), ...routeGateways])].filter((g) => g !== 'mesh');
    for (const entry of named) {
      const ref = gatewayRef(entry, ns);
      const gateway = ctx.find('Gateway', ref.namespace, ref.name);
      if (!gateway) {
        out.push(msg.referencedResourceNotFound(originOf(vs), 'gateway', entry));
        continue;
      }
      // Only the VirtualService's own gateways bind its hosts; a route's match.gateways only narrows them.
      if (!(vs.spec.gateways ?? []).includes(entry)) continue;
      const hosts = vs.spec.hosts ?? [];
      const accepted = (gateway.spec.servers ?? []).some((server) =>
        server.hosts.some((entryHost) => {
          const { namespace, host } = splitServerHost(entryHost, gateway.metadata.namespace);
          return (namespace === '*' || namespace === ns) && hosts.some((h) => hostsOverlap(host, h));
        }),
      );
      if (!accepted && hosts.length)
        out.push(
          msg.virtualServiceHostNotFoundInGateway(originOf(vs), hosts, fullName(vs), fullName(gateway)),
        );
    }
  }
  return out;
}
