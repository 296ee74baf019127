import net from 'node:net';
import type { ProxyInfo } from '../model/proxy.js';
import { NETWORK_LABEL } from '../registry/build.js';
import type { Endpoint, Registry } from '../registry/model.js';
import { TLS_MODE_LABEL } from './endpoints.js';
import type { MeshNetworks } from './mesh-networks.js';
import type { PushContext } from './push-context.js';

/** Istio's label on a gateway Service naming the port other networks reach it on (15443 unless set). */
export const GATEWAY_PORT_LABEL = 'networking.istio.io/gatewayPort';
export const DEFAULT_NETWORK_GATEWAY_PORT = 15443;

/** The registry every endpoint pilot knows comes from: Istio's cluster id (`CLUSTER_ID`, `fromRegistry`). */
export const REGISTRY_ID = 'Kubernetes';

/** One address another network's proxies dial to reach a network's workloads (its east-west gateway). */
export interface NetworkGateway {
  network: string;
  address: string;
  port: number;
  locality?: string;
  /** `meshNetworks networks.network2.gateways[0]` or `ServiceEntry istio-system/eastwest`, for debugging. */
  origin: string;
}

/**
 * Which network every endpoint and proxy is on, and the gateways of each
 * network, as Istio's NetworkManager works them out: an endpoint's own
 * network (WorkloadEntry `network`, the `topology.istio.io/network` label),
 * else MeshConfig `meshNetworks` by address range (`fromCidr`) or registry
 * (`fromRegistry`); gateways from `meshNetworks` (`address`, or a
 * `registryServiceName`'s endpoints) and from every service labelled
 * `topology.istio.io/network` that has the gateway port (15443, or its
 * `networking.istio.io/gatewayPort` label) — or whose endpoints on that port
 * carry the label (a gateway's WorkloadEntry). Built once per push.
 */
export class NetworkTopology {
  private readonly ranges: { network: string; blocks: net.BlockList }[] = [];
  private readonly registries = new Map<string, string>();
  private readonly byNetwork = new Map<string, NetworkGateway[]>();
  /** Why a configured gateway gives no address (pilot logs these with the push's warnings). */
  readonly warnings: string[] = [];
  /** False when nothing names a network: every endpoint is then local, as before networks existed. */
  readonly active: boolean;

  constructor(registry: Registry, meshNetworks: MeshNetworks | undefined) {
    let named = false;
    for (const [network, spec] of Object.entries(meshNetworks?.networks ?? {})) {
      named = true;
      for (const from of spec.endpoints) {
        if ('fromRegistry' in from) {
          if (!this.registries.has(from.fromRegistry)) this.registries.set(from.fromRegistry, network);
          continue;
        }
        const [address, bits] = from.fromCidr.split('/') as [string, string];
        const blocks = new net.BlockList();
        blocks.addSubnet(address, Number(bits), net.isIPv6(address) ? 'ipv6' : 'ipv4');
        this.ranges.push({ network, blocks });
      }
      for (const [i, gw] of spec.gateways.entries()) {
        const origin = `meshNetworks networks.${network}.gateways[${i}]`;
        const locality = gw.locality ? { locality: gw.locality } : {};
        if ('address' in gw) {
          this.add({ network, address: gw.address, port: gw.port, origin, ...locality });
          continue;
        }
        const eps = registry
          .endpoints(gw.registryServiceName, gw.port)
          .filter((e) => e.healthy && e.address !== '');
        if (eps.length === 0)
          this.warnings.push(
            `${origin}: service ${gw.registryServiceName} has no ready endpoint on port ${gw.port}; network ${network} is unreachable through it`,
          );
        for (const e of eps) this.add({ network, address: e.address, port: e.port, origin, ...locality });
      }
    }
    for (const service of registry.services()) {
      const gatewayPort = Number(service.labels?.[GATEWAY_PORT_LABEL]) || DEFAULT_NETWORK_GATEWAY_PORT;
      if (!service.ports.some((p) => p.port === gatewayPort)) continue;
      for (const e of registry.endpoints(service.hostname, gatewayPort)) {
        const network = service.labels?.[NETWORK_LABEL] || e.labels[NETWORK_LABEL];
        if (!network || !e.healthy || e.address === '') continue;
        this.add({ network, address: e.address, port: e.port, origin: `${service.origin} (${e.origin})` });
      }
    }
    this.active =
      named ||
      this.byNetwork.size > 0 ||
      registry
        .services()
        .some((s) => s.ports.some((p) => registry.endpoints(s.hostname, p.port).some((e) => e.network)));
  }

  private add(gw: NetworkGateway): void {
    const list = this.byNetwork.get(gw.network) ?? [];
    if (!list.some((g) => g.address === gw.address && g.port === gw.port)) list.push(gw);
    this.byNetwork.set(gw.network, list);
  }

  /** The network of an address by `meshNetworks` (`fromCidr` first, then `fromRegistry`), if any says. */
  private networkOfAddress(address: string): string | undefined {
    if (net.isIP(address)) {
      const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
      const range = this.ranges.find((r) => r.blocks.check(address, family));
      if (range) return range.network;
    }
    return this.registries.get(REGISTRY_ID);
  }

  /** The endpoint's network; '' when nothing places it (it is then reachable from every network, as in Istio). */
  networkOf(e: Endpoint): string {
    return e.network ?? this.networkOfAddress(e.address) ?? '';
  }

  /**
   * The proxy's network: its node's `NETWORK` (ISTIO_META_NETWORK, the
   * agent's `--network`), its `topology.istio.io/network` label, else what
   * `meshNetworks` says of its address.
   */
  proxyNetwork(proxy: ProxyInfo): string {
    return proxy.network || proxy.labels[NETWORK_LABEL] || this.networkOfAddress(proxy.ip) || '';
  }

  gateways(network: string): readonly NetworkGateway[] {
    return this.byNetwork.get(network) ?? [];
  }
}

const topologies = new WeakMap<PushContext, NetworkTopology>();

/** The push's network topology, worked out once and shared by every proxy's build. */
export function networkTopology(push: PushContext): NetworkTopology {
  let topology = topologies.get(push);
  if (!topology) {
    topology = new NetworkTopology(push.registry, push.mesh.meshNetworks);
    for (const w of topology.warnings) push.warnings.add(w);
    topologies.set(push, topology);
  }
  return topology;
}

/** Two networks are the same when they are equal or either is unknown (Istio's IsSameOrEmpty). */
export function sameNetwork(a: string, b: string): boolean {
  return a === '' || b === '' || a === b;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Istio's split-horizon EDS: what a proxy on `proxyNetwork` gets for a
 * cluster. Endpoints on its own network stay; those on another network are
 * replaced by that network's gateways, each weighted by its share of the
 * endpoints behind it (per locality, so locality load balancing still
 * applies); every weight is scaled so the shares stay whole numbers. Only
 * endpoints that speak the mesh's mTLS (`crossable`: a sidecar, and a cluster
 * that originates Istio mTLS) cross networks — the gateway routes by the
 * SNI of that TLS. Endpoints on a network without a gateway are left out.
 */
export function splitHorizon(
  endpoints: readonly Endpoint[],
  topology: NetworkTopology,
  proxyNetwork: string,
  crossable: (e: Endpoint) => boolean,
): Endpoint[] {
  if (!topology.active) return endpoints.filter((e) => e.address !== '');
  const local: Endpoint[] = [];
  // By locality, then network: the summed weight of the remote endpoints each gateway group stands for.
  const remote = new Map<string, Map<string, number>>();
  for (const e of endpoints) {
    const network = topology.networkOf(e);
    if (sameNetwork(network, proxyNetwork)) {
      if (e.address !== '') local.push(e);
      continue;
    }
    if (!e.healthy || !crossable(e) || topology.gateways(network).length === 0) continue;
    const loc = e.locality ?? '';
    const byNetwork = remote.get(loc) ?? new Map<string, number>();
    byNetwork.set(network, (byNetwork.get(network) ?? 0) + (e.weight ?? 1));
    remote.set(loc, byNetwork);
  }
  if (remote.size === 0) return local;
  let scale = 1;
  for (const byNetwork of remote.values())
    for (const network of byNetwork.keys()) {
      const n = topology.gateways(network).length;
      scale = (scale * n) / gcd(scale, n);
    }
  const out = local.map((e) => (scale === 1 ? e : { ...e, weight: (e.weight ?? 1) * scale }));
  for (const [loc, byNetwork] of remote) {
    for (const [network, weight] of byNetwork) {
      const gateways = topology.gateways(network);
      for (const gw of gateways) {
        const locality = gw.locality ?? (loc || undefined);
        out.push({
          address: gw.address,
          port: gw.port,
          servicePortName: '',
          // The client speaks the mesh's mTLS to it (the transport socket match), with the SNI the gateway routes by.
          labels: { [TLS_MODE_LABEL]: 'istio', [NETWORK_LABEL]: network },
          ...(locality ? { locality } : {}),
          weight: (weight * scale) / gateways.length,
          healthy: true,
          network,
          origin: `network ${network} gateway (${gw.origin})`,
        });
      }
    }
  }
  return out;
}
