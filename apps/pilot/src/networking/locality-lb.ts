import type { LocalityLoadBalancerSetting } from '@mizzen/api';
import type { Locality, ProxyInfo } from '../model/proxy.js';
import type { Endpoint } from '../registry/model.js';
import type { Json } from './envoy.js';
import type { PushContext } from './push-context.js';
import type { EffectivePolicy } from './traffic-policy.js';

export type { Locality };

/** Kubernetes' and Istio's topology labels, which failoverPriority may name. */
export const REGION_LABEL = 'topology.kubernetes.io/region';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const SUBZONE_LABEL = 'topology.istio.io/subzone';

/** `region/zone/subzone` (any part may be missing) as a Locality; undefined when empty. */
export function parseLocality(value: string | undefined): Locality | undefined {
  if (!value) return undefined;
  const [region = '', zone = '', subZone = ''] = value.split('/');
  if (!region && !zone && !subZone) return undefined;
  return { region, zone, subZone };
}

function fromEnvoy(l: Json | undefined): Locality {
  return {
    region: String(l?.region ?? ''),
    zone: String(l?.zone ?? ''),
    subZone: String(l?.sub_zone ?? ''),
  };
}

/**
 * The proxy's own locality: what its node says (Envoy's Node.locality, set by
 * `--locality`), else — as Istio does — the locality of the workload the
 * proxy runs beside (an endpoint in the registry at the proxy's address).
 */
export function proxyLocality(push: PushContext, proxy: ProxyInfo): Locality | undefined {
  if (proxy.locality) return proxy.locality;
  let byIp = cache.get(push);
  if (!byIp) {
    byIp = new Map();
    for (const service of push.registry.services()) {
      for (const port of service.ports) {
        for (const e of push.registry.endpoints(service.hostname, port.port)) {
          if (e.locality && !byIp.has(e.address)) byIp.set(e.address, e.locality);
        }
      }
    }
    cache.set(push, byIp);
  }
  // Local mode runs every workload on 127.0.0.1: an address says nothing there.
  if (proxy.captureMode === 'proxy') return undefined;
  return parseLocality(byIp.get(proxy.ip));
}

const cache = new WeakMap<PushContext, Map<string, string>>();

/** The topology labels of a locality (Istio adds them to proxy and endpoint labels). */
function topologyLabels(l: Locality | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (l?.region) out[REGION_LABEL] = l.region;
  if (l?.zone) out[ZONE_LABEL] = l.zone;
  if (l?.subZone) out[SUBZONE_LABEL] = l.subZone;
  return out;
}

/** Istio's LocalityMatch: a rule locality (`region/zone/subzone`, `*` for any) against a locality. */
export function localityMatch(l: Locality | undefined, rule: string): boolean {
  const [region = '', zone = '', subZone = ''] = rule.split('/');
  const regionMatch = region === '*' || (l?.region ?? '') === region;
  const zoneMatch = zone === '*' || zone === '' || (l?.zone ?? '') === zone;
  const subZoneMatch = subZone === '*' || subZone === '' || (l?.subZone ?? '') === subZone;
  return regionMatch && zoneMatch && subZoneMatch;
}

/** Istio's LbPriority: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere. */
function lbPriority(proxy: Locality | undefined, endpoints: Locality): number {
  if ((proxy?.region ?? '') !== endpoints.region) return 3;
  if ((proxy?.zone ?? '') !== endpoints.zone) return 2;
  if ((proxy?.subZone ?? '') !== endpoints.subZone) return 1;
  return 0;
}

/**
 * Istio's GetLocalityLbSetting: the DestinationRule's setting unless it says
 * `enabled: false`; without one, the mesh's (enabled unless the mesh turns it
 * off), which gives failover by proximity whenever outlier detection is on.
 */
export function effectiveLocalitySetting(
  rule: LocalityLoadBalancerSetting | undefined,
  mesh: LocalityLoadBalancerSetting | undefined = { enabled: true },
): LocalityLoadBalancerSetting | undefined {
  if (rule) return rule.enabled === false ? undefined : rule;
  if (mesh.enabled === false) return undefined;
  return mesh;
}

/**
 * The cluster side of locality load balancing (Istio's
 * applyLocalityLoadBalancer): locality-weighted balancing when the setting
 * distributes, or fails over by explicit rules or priority labels with
 * outlier detection on (without it Envoy would never see a level fail).
 */
export function applyLocalityLbToCluster(
  cluster: Json,
  policy: EffectivePolicy,
  mesh?: LocalityLoadBalancerSetting,
): void {
  const setting = effectiveLocalitySetting(policy.loadBalancer?.localityLbSetting, mesh);
  if (!setting) return;
  const failover = policy.outlierDetection !== undefined;
  if (
    setting.distribute?.length ||
    (failover && (setting.failover?.length || setting.failoverPriority?.length))
  ) {
    const common = (cluster.common_lb_config as Json | undefined) ?? {};
    common.locality_weighted_lb_config = {};
    cluster.common_lb_config = common;
  }
}

/**
 * The endpoint side, for one proxy (Istio's ApplyLocalityLoadBalancer): with
 * `distribute`, the first rule whose `from` matches the proxy sets each
 * locality's weight (localities no `to` names get no endpoints); otherwise,
 * with outlier detection, priorities — by failoverPriority labels (the
 * proxy's and each endpoint's, topology labels included), then by proximity
 * (same subzone 0, zone 1, region 2, elsewhere 3, a region `failover` does
 * not name 4) — renumbered from 0 without gaps.
 *
 * `groups[i]` are the endpoints of `cla.endpoints[i]`.
 */
export function applyLocalityLbToEndpoints(
  cla: Json,
  groups: readonly (readonly Endpoint[])[],
  proxy: { locality?: Locality; labels: Record<string, string> },
  policy: EffectivePolicy,
  mesh?: LocalityLoadBalancerSetting,
): void {
  const setting = effectiveLocalitySetting(policy.loadBalancer?.localityLbSetting, mesh);
  if (!setting) return;
  const localities = cla.endpoints as Json[];
  if (setting.distribute?.length) {
    applyLocalityWeights(localities, proxy.locality, setting.distribute);
    return;
  }
  if (policy.outlierDetection === undefined) return;
  if (setting.failoverPriority?.length) {
    const labels = { ...topologyLabels(proxy.locality), ...proxy.labels };
    const split = applyFailoverPriorities(localities, groups, labels, setting.failoverPriority);
    if (split) cla.endpoints = split;
    if (!setting.failover?.length) return;
  }
  applyLocalityFailover(cla.endpoints as Json[], proxy.locality, setting.failover ?? []);
}

function applyLocalityWeights(
  localities: Json[],
  proxy: Locality | undefined,
  distribute: NonNullable<LocalityLoadBalancerSetting['distribute']>,
): void {
  const rule = distribute.find((d) => localityMatch(proxy, d.from ?? ''));
  if (!rule) return;
  const unmatched = new Set(localities.keys());
  for (const [to, weight] of Object.entries(rule.to ?? {})) {
    const original = new Map<number, number>();
    let total = 0;
    localities.forEach((l, i) => {
      if (!unmatched.has(i) || !localityMatch(fromEnvoy(l.locality as Json), to)) return;
      unmatched.delete(i);
      const w = (l.load_balancing_weight as number | undefined) ?? 1;
      original.set(i, w);
      total += w;
    });
    // A wildcard matching several localities shares the weight among them by their own weights.
    for (const [i, w] of original) {
      const share = (w * weight) / total;
      if (share > 0) localities[i]!.load_balancing_weight = Math.ceil(share);
    }
  }
  for (const i of unmatched) localities[i]!.lb_endpoints = [];
}

function renumber(localities: Json[]): void {
  const used = [...new Set(localities.map((l) => (l.priority as number | undefined) ?? 0))].sort(
    (a, b) => a - b,
  );
  for (const l of localities) {
    const p = used.indexOf((l.priority as number | undefined) ?? 0);
    if (p > 0) l.priority = p;
    else delete l.priority;
  }
}

function applyLocalityFailover(
  localities: Json[],
  proxy: Locality | undefined,
  failover: NonNullable<LocalityLoadBalancerSetting['failover']>,
): void {
  for (const l of localities) {
    const loc = fromEnvoy(l.locality as Json);
    let priority = lbPriority(proxy, loc);
    if (priority === 3) {
      const rule = failover.find((f) => f.from === (proxy?.region ?? ''));
      if (rule && loc.region !== rule.to) priority = 4;
    }
    // Levels already set by failoverPriority stay apart: five proximity levels within each.
    l.priority = ((l.priority as number | undefined) ?? 0) * 5 + priority;
  }
  renumber(localities);
}

/** `label` or `label=value` (the value the proxy is taken to have). */
function priorityLabels(entries: readonly string[]): { name: string; value?: string }[] {
  return entries.map((e) => {
    const [name = '', value] = e.split('=');
    return value === undefined ? { name } : { name, value };
  });
}

function applyFailoverPriorities(
  localities: Json[],
  groups: readonly (readonly Endpoint[])[],
  proxyLabels: Record<string, string>,
  entries: readonly string[],
): Json[] | undefined {
  if (Object.keys(proxyLabels).length === 0 || groups.length === 0) return undefined;
  const labels = priorityLabels(entries);
  const lowest = labels.length;
  const out: Json[] = [];
  localities.forEach((l, g) => {
    const eps = groups[g] ?? [];
    const byPriority = new Map<number, number[]>();
    eps.forEach((e, i) => {
      const endpointLabels = { ...topologyLabels(parseLocality(e.locality)), ...e.labels };
      let priority = 0;
      for (const [j, label] of labels.entries()) {
        const want = label.value ?? proxyLabels[label.name];
        if (want !== endpointLabels[label.name]) {
          priority = lowest - j;
          break;
        }
      }
      const list = byPriority.get(priority) ?? [];
      list.push(i);
      byPriority.set(priority, list);
    });
    const lbEndpoints = l.lb_endpoints as Json[];
    for (const [priority, indexes] of [...byPriority.entries()].sort(([a], [b]) => a - b)) {
      const members = indexes.map((i) => lbEndpoints[i]!);
      out.push({
        ...l,
        lb_endpoints: members,
        load_balancing_weight: members.reduce(
          (s, m) => s + ((m.load_balancing_weight as number | undefined) ?? 1),
          0,
        ),
        priority,
      });
    }
  });
  renumber(out);
  return out;
}
