import type { DestinationRuleSpec } from '@mizzen/api';
import { canonicalRevision, canonicalService } from '@mizzen/telemetry';
import { type ResourceSet, TypeUrl } from '@mizzen/xds';
import { outboundClusterName } from '../model/names.js';
import type { ProxyInfo } from '../model/proxy.js';
import { type Endpoint, labelsMatch } from '../registry/model.js';
import { credentialSecrets, sdsSecretNames } from './credential-secrets.js';
import { type Json, socketAddress } from './envoy.js';
import { applyLocalityLbToEndpoints, proxyLocality } from './locality-lb.js';
import { meshTlsEnabled, rootSecret } from './mtls.js';
import type { PushContext } from './push-context.js';
import { effectivePolicy } from './traffic-policy.js';

/** The label Istio's injector puts on workloads that run a sidecar. */
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

function locality(value: string | undefined): Json {
  if (!value) return {};
  const [region, zone, subZone] = value.split('/');
  return { region: region ?? '', zone: zone ?? '', sub_zone: subZone ?? '' };
}

/** Istio's cluster id, as `CLUSTER_ID` defaults to it. */
const CLUSTER_ID = 'Kubernetes';

/**
 * Istio's endpoint metadata under `filter_metadata.istio`: `workload` as
 * `<name>;<namespace>;<canonical service>;<canonical revision>;<cluster>`
 * (what Envoy's stats fall back to for a peer that sent no metadata), and
 * pilot's own `labels` and `principal` (the SPIFFE identity it runs as, by
 * which the server side of a TCP connection knows its caller).
 */
function istioEndpointMetadata(e: Endpoint, trustDomain: string): Json {
  if (!e.workload) return { labels: e.labels };
  const w = { workload: e.workload.name, labels: e.labels };
  const ns = e.workload.namespace;
  return {
    workload: [e.workload.name, ns, canonicalService(w), canonicalRevision(w), CLUSTER_ID].join(';'),
    labels: e.labels,
    ...(e.serviceAccount ? { principal: `spiffe://${trustDomain}/ns/${ns}/sa/${e.serviceAccount}` } : {}),
  };
}

/** The assignment and, per locality group (same order), the endpoints it holds. */
function groupedAssignment(
  clusterName: string,
  endpoints: readonly Endpoint[],
  trustDomain: string,
): { cla: Json; groups: Endpoint[][] } {
  const groups = new Map<string, Endpoint[]>();
  for (const e of endpoints) {
    const key = e.locality ?? '';
    const list = groups.get(key) ?? [];
    list.push(e);
    groups.set(key, list);
  }
  const cla = {
    cluster_name: clusterName,
    endpoints: [...groups.entries()].map(([loc, list]) => ({
      locality: locality(loc || undefined),
      load_balancing_weight: list.reduce((sum, e) => sum + (e.weight ?? 1), 0),
      lb_endpoints: list.map((e) => ({
        endpoint: { address: socketAddress(e.address, e.port) },
        health_status: e.healthy ? 'HEALTHY' : 'UNHEALTHY',
        load_balancing_weight: e.weight ?? 1,
        metadata: {
          filter_metadata: {
            istio: istioEndpointMetadata(e, trustDomain),
            // Istio's marker for "this endpoint has a sidecar": proxies upgrade to HTTP/2 (and, with security, mTLS).
            ...(e.labels[TLS_MODE_LABEL] === 'istio'
              ? { 'envoy.transport_socket_match': { tlsMode: 'istio' } }
              : {}),
          },
        },
      })),
    })),
  };
  return { cla, groups: [...groups.values()] };
}

/**
 * A ClusterLoadAssignment for every EDS cluster the proxy has (the service
 * port and each subset), with the cluster's locality load balancing applied
 * as seen from this proxy: weights by `distribute`, priorities by failover.
 */
export function buildEndpoints(
  push: PushContext,
  proxy: ProxyInfo,
  edsClusterNames: ReadonlySet<string>,
): Json[] {
  const out: Json[] = [];
  const self = { locality: proxyLocality(push, proxy), labels: proxy.labels };
  const assignment = (
    name: string,
    endpoints: readonly Endpoint[],
    rule: DestinationRuleSpec | undefined,
    subset: string | undefined,
    port: number,
  ) => {
    const { cla, groups } = groupedAssignment(name, endpoints, push.mesh.trustDomain);
    const policy = effectivePolicy(rule, subset, port);
    applyLocalityLbToEndpoints(cla, groups, self, policy, push.mesh.localityLbSetting);
    return cla;
  };
  for (const service of push.servicesFor(proxy)) {
    const rule = push.destinationRuleFor(proxy, service)?.spec as DestinationRuleSpec | undefined;
    for (const port of service.ports) {
      const all = push.registry.endpoints(service.hostname, port.port);
      const base = outboundClusterName(port.port, undefined, service.hostname);
      if (edsClusterNames.has(base)) out.push(assignment(base, all, rule, undefined, port.port));
      for (const subset of rule?.subsets ?? []) {
        const name = outboundClusterName(port.port, subset.name, service.hostname);
        if (!edsClusterNames.has(name)) continue;
        const selector = (subset.labels ?? {}) as Record<string, string>;
        out.push(
          assignment(
            name,
            all.filter((e) => labelsMatch(selector, e.labels)),
            rule,
            subset.name,
            port.port,
          ),
        );
      }
    }
  }
  return out;
}

/** A proxy's full resource set: the given listeners, routes and clusters, plus endpoints for every EDS cluster. */
export function resourceSet(
  push: PushContext,
  proxy: ProxyInfo,
  parts: { listeners: Json[]; routes: Json[]; clusters: Json[] },
): ResourceSet {
  const eds = new Set(parts.clusters.filter((c) => c.type === 'EDS').map((c) => c.name as string));
  return {
    [TypeUrl.Cluster]: parts.clusters,
    [TypeUrl.ClusterLoadAssignment]: buildEndpoints(push, proxy, eds),
    [TypeUrl.Listener]: parts.listeners,
    [TypeUrl.RouteConfiguration]: parts.routes,
    // The mesh roots, for proxies that do mTLS (SDS; the workload certificate comes from the proxy's own agent),
    // and the credentials (gateway certificates, TLS origination) the listeners and clusters name.
    [TypeUrl.Secret]: [
      ...(meshTlsEnabled(push, proxy) ? [rootSecret(push.rootCert!)] : []),
      ...credentialSecrets(push, proxy, sdsSecretNames([...parts.listeners, ...parts.clusters])),
    ],
  };
}
