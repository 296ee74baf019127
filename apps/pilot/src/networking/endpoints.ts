import type { DestinationRuleSpec } from '@mizzen/api';
import { canonicalRevision, canonicalService } from '@mizzen/telemetry';
import { type ResourceSet, TypeUrl } from '@mizzen/xds';
import { outboundClusterName } from '../model/names.js';
import type { ProxyInfo } from '../model/proxy.js';
import { type Endpoint, labelsMatch, type Service } from '../registry/model.js';
import { credentialSecrets, sdsSecretNames } from './credential-secrets.js';
import { endpointAddress, type Json } from './envoy.js';
import { applyLocalityLbToEndpoints, proxyLocality } from './locality-lb.js';
import { meshSni, meshTlsEnabled, rootSecret } from './mtls.js';
import { networkTopology, sameNetwork, splitHorizon } from './networks.js';
import type { PushContext } from './push-context.js';
import { type EffectivePolicy, effectivePolicy } from './traffic-policy.js';

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
        endpoint: { address: endpointAddress(e) },
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
  const topology = networkTopology(push);
  const network = topology.proxyNetwork(proxy);
  const mtls = meshTlsEnabled(push, proxy);
  /** The endpoints grouped by locality, weighted and prioritised by the cluster's locality load balancing. */
  const assignment = (name: string, endpoints: readonly Endpoint[], policy: EffectivePolicy) => {
    const { cla, groups } = groupedAssignment(name, endpoints, push.mesh.trustDomain);
    applyLocalityLbToEndpoints(cla, groups, self, policy, push.mesh.localityLbSetting);
    return cla;
  };
  for (const service of push.servicesFor(proxy)) {
    const rule = push.destinationRuleFor(proxy, service)?.spec as DestinationRuleSpec | undefined;
    for (const port of service.ports) {
      const all = push.registry.endpoints(service.hostname, port.port);
      for (const subset of [undefined, ...(rule?.subsets ?? [])]) {
        const selector = (subset?.labels ?? {}) as Record<string, string>;
        const picked = subset ? all.filter((e) => labelsMatch(selector, e.labels)) : all;
        const policy = effectivePolicy(rule, subset?.name, port.port);
        const name = outboundClusterName(port.port, subset?.name, service.hostname);
        if (edsClusterNames.has(name)) {
          const reachable = crossesNetworks(mtls, service, policy.tls?.mode);
          out.push(assignment(name, splitHorizon(picked, topology, network, reachable), policy));
        }
        // An east-west gateway's SNI-DNAT clusters: the endpoints on its own network only, never another gateway.
        const dnat = meshSni(port.port, subset?.name, service.hostname);
        if (edsClusterNames.has(dnat)) {
          const own = picked.filter((e) => e.address !== '' && sameNetwork(topology.networkOf(e), network));
          out.push(assignment(dnat, own, policy));
        }
      }
    }
  }
  return out;
}

/**
 * Whether a cluster's endpoints on another network can be reached through
 * its gateway: only over the mesh's mTLS, whose SNI the gateway routes by —
 * the proxy has a workload certificate, the service is in the mesh, and the
 * cluster originates Istio mTLS (auto mTLS to endpoints with a sidecar, or
 * ISTIO_MUTUAL to any), as Istio's split horizon decides.
 */
function crossesNetworks(
  mtls: boolean,
  service: Service,
  tlsMode: string | undefined,
): (e: Endpoint) => boolean {
  if (!mtls || service.location === 'MESH_EXTERNAL') return () => false;
  if (tlsMode === 'ISTIO_MUTUAL') return () => true;
  if (tlsMode !== undefined) return () => false;
  return (e) => e.labels[TLS_MODE_LABEL] === 'istio';
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
