import type { ConfigResource, Server } from '@mizzen/api';
import type { AnalysisContext } from '../context.js';
import { hostsOverlap, labelsMatch, selectorText, splitServerHost } from '../hosts.js';
import { type AnalysisMessage, fullName, msg, originOf } from '../messages.js';

interface PlacedServer {
  gateway: ConfigResource<'Gateway'>;
  server: Server;
}

function overlapping(a: PlacedServer, b: PlacedServer): boolean {
  return a.server.hosts.some((ha) =>
    b.server.hosts.some((hb) =>
      hostsOverlap(
        splitServerHost(ha, a.gateway.metadata.namespace).host,
        splitServerHost(hb, b.gateway.metadata.namespace).host,
      ),
    ),
  );
}

/**
 * IST0145 ConflictingGateways: servers of different Gateways with the same
 * workload selector and port whose hosts overlap. Reported on each Gateway,
 * naming the others.
 */
export function analyzeConflictingGateways(ctx: AnalysisContext): AnalysisMessage[] {
  const groups = new Map<string, PlacedServer[]>();
  for (const gateway of ctx.of('Gateway'))
    for (const server of gateway.spec.servers ?? []) {
      const key = `${selectorText(gateway.spec.selector ?? {})}~${server.port.number}`;
      groups.set(key, [...(groups.get(key) ?? []), { gateway, server }]);
    }
  const out: AnalysisMessage[] = [];
  for (const servers of groups.values())
    for (const s of servers) {
      const others = servers
        .filter((o) => o.gateway !== s.gateway && overlapping(s, o))
        .map((o) => fullName(o.gateway));
      if (others.length === 0) continue;
      out.push(
        msg.conflictingGateways(
          originOf(s.gateway),
          [...new Set(others)],
          selectorText(s.gateway.spec.selector ?? {}),
          s.server.port.number,
          s.server.hosts,
        ),
      );
    }
  return out;
}

/**
 * IST0101 ReferencedResourceNotFound for a server's credentialName (or
 * credentialNames) no TLS credential has. A gateway reads credentials from
 * its own namespace: that of the workloads it selects, else the Gateway's,
 * and in the local mesh istio-system, where `mizzen create secret` keeps them.
 */
export function analyzeGatewayCredentials(ctx: AnalysisContext): AnalysisMessage[] {
  const credentials = ctx.input.credentials;
  if (!credentials) return [];
  const out: AnalysisMessage[] = [];
  for (const gateway of ctx.of('Gateway')) {
    const selected = (ctx.input.workloads ?? []).filter((w) => labelsMatch(gateway.spec.selector, w.labels));
    const namespaces = new Set([
      gateway.metadata.namespace,
      ctx.settings.rootNamespace ?? 'istio-system',
      ...selected.map((w) => w.namespace),
    ]);
    for (const server of gateway.spec.servers ?? []) {
      const tls = server.tls;
      const names = tls?.credentialName ? [tls.credentialName] : (tls?.credentialNames ?? []);
      for (const name of names)
        if (![...namespaces].some((ns) => credentials.has(`${ns}/${name}`)))
          out.push(msg.referencedResourceNotFound(originOf(gateway), 'credentialName', name));
    }
  }
  return out;
}
