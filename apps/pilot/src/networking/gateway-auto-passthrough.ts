import type { DestinationRuleSpec } from '@mizzen/api';
import type { ProxyInfo } from '../model/proxy.js';
import { hostMatches } from '../registry/model.js';
import { sniDnatCluster } from './clusters.js';
import { type Json, tcpProxy } from './envoy.js';
import { type GatewayServer, splitServerHost } from './gateway-servers.js';
import type { PushContext } from './push-context.js';

/** One cluster an AUTO_PASSTHROUGH server forwards to: its SNI-DNAT cluster, named by the SNI it answers. */
interface AutoPassthroughTarget {
  sni: string;
  cluster: Json;
}

/**
 * What an AUTO_PASSTHROUGH server (Istio's east-west gateway) forwards: for
 * every service this gateway sees whose host one of the server's hosts
 * admits (`*.local`, `ns/host`), every port and DestinationRule subset, the
 * SNI-DNAT cluster named as Istio's mesh SNI, `outbound_.<port>_.<subset>_.<host>`.
 */
function autoPassthroughTargets(
  push: PushContext,
  proxy: ProxyInfo,
  s: GatewayServer,
): AutoPassthroughTarget[] {
  // A server's chains and the gateway's clusters both need its targets. planGateway makes new server
  // objects for every build (one proxy, one push), so a server is a safe key for that build's targets.
  let targets = targetsByServer.get(s);
  if (!targets) {
    targets = collectTargets(push, proxy, s);
    targetsByServer.set(s, targets);
  }
  return targets;
}

const targetsByServer = new WeakMap<GatewayServer, AutoPassthroughTarget[]>();

function collectTargets(push: PushContext, proxy: ProxyInfo, s: GatewayServer): AutoPassthroughTarget[] {
  const serverHosts = s.server.hosts.map((h) => splitServerHost(h, s.gateway.metadata.namespace));
  const out: AutoPassthroughTarget[] = [];
  for (const service of push.servicesFor(proxy)) {
    const admitted = serverHosts.some(
      (h) =>
        (h.namespace === '*' || h.namespace === service.namespace) && hostMatches(h.host, service.hostname),
    );
    if (!admitted) continue;
    const dr = push.destinationRuleFor(proxy, service);
    const rule = dr?.spec as DestinationRuleSpec | undefined;
    for (const port of service.ports)
      for (const subset of [undefined, ...(rule?.subsets ?? [])]) {
        const cluster = sniDnatCluster(push, proxy, service, port, subset, dr);
        if (cluster) out.push({ sni: cluster.name as string, cluster });
      }
  }
  return out;
}

/**
 * The filter chains of an AUTO_PASSTHROUGH server, as Istio emits them: one
 * per SNI-DNAT cluster, matching exactly that SNI and proxying the still
 * encrypted connection to that cluster. A connection whose SNI names no
 * cluster matches no chain and is closed. `claimed` keeps a name to the
 * first server on the port that serves it.
 */
export function autoPassthroughChains(
  push: PushContext,
  proxy: ProxyInfo,
  s: GatewayServer,
  claimed: Set<string>,
): Json[] {
  const chains: Json[] = [];
  for (const { sni } of autoPassthroughTargets(push, proxy, s)) {
    if (claimed.has(sni)) continue;
    claimed.add(sni);
    chains.push({ name: sni, filter_chain_match: { server_names: [sni] }, filters: [tcpProxy(sni, sni)] });
  }
  return chains;
}

/** The SNI-DNAT clusters every AUTO_PASSTHROUGH server of the gateway forwards to (each once). */
export function autoPassthroughClusters(
  push: PushContext,
  proxy: ProxyInfo,
  servers: readonly GatewayServer[],
): Json[] {
  const byName = new Map<string, Json>();
  for (const s of servers) {
    if (s.kind !== 'tls-auto-passthrough') continue;
    for (const { sni, cluster } of autoPassthroughTargets(push, proxy, s))
      if (!byName.has(sni)) byName.set(sni, cluster);
  }
  return [...byName.values()];
}
