import net from 'node:net';
import type { DestinationRuleSpec, Subset } from '@mizzen/api';
import {
  BLACKHOLE_CLUSTER,
  INBOUND_PASSTHROUGH_CLUSTER,
  inboundClusterName,
  istioConfigPath,
  outboundClusterName,
  PASSTHROUGH_CLUSTER,
} from '../model/names.js';
import type { Protocol } from '../model/protocol.js';
import type { ProxyInfo } from '../model/proxy.js';
import type { Service, ServicePort } from '../registry/model.js';
import { ADS_CONFIG_SOURCE, endpointAddress, type Json, socketAddress } from './envoy.js';
import { applyClusterTls, meshSni } from './mtls.js';
import type { DestinationRuleResource, PushContext } from './push-context.js';
import { inboundPorts } from './sidecar-scope.js';
import {
  applyPolicyToCluster,
  applyProxyProtocol,
  applyTcpKeepalive,
  effectivePolicy,
  portUpstreamProtocol,
  setUpstreamProtocol,
} from './traffic-policy.js';

/** The port's own protocol (no upgrade): for clusters to the workload's app and the passthrough ones. */
function applyProtocol(cluster: Json, protocol: Protocol): void {
  const upstream = portUpstreamProtocol(protocol);
  if (upstream !== 'http1') setUpstreamProtocol(cluster, upstream);
}

/** Istio's cluster metadata: the service, the subset, and (`config`) the DestinationRule that shaped it. */
function istioMetadata(
  service: Service,
  subset: string | undefined,
  dr: DestinationRuleResource | undefined,
): Json {
  const short = service.hostname.split('.')[0];
  return {
    filter_metadata: {
      istio: {
        ...(dr
          ? { config: istioConfigPath('destination-rule', dr.metadata.namespace, dr.metadata.name) }
          : {}),
        services: [{ host: service.hostname, name: short, namespace: service.namespace }],
        ...(subset ? { subset } : {}),
      },
    },
  };
}

function outboundCluster(
  push: PushContext,
  proxy: ProxyInfo,
  service: Service,
  port: ServicePort,
  subset: Subset | undefined,
  dr: DestinationRuleResource | undefined,
): Json {
  const rule = dr?.spec as DestinationRuleSpec | undefined;
  const name = outboundClusterName(port.port, subset?.name, service.hostname);
  const cluster: Json = {
    name,
    connect_timeout: push.mesh.connectTimeout,
    lb_policy: 'ROUND_ROBIN',
    metadata: istioMetadata(service, subset?.name, dr),
  };
  switch (service.resolution) {
    case 'DNS':
    case 'DNS_ROUND_ROBIN': {
      cluster.type = service.resolution === 'DNS' ? 'STRICT_DNS' : 'LOGICAL_DNS';
      cluster.dns_lookup_family = 'V4_PREFERRED';
      // Address-less entries sit behind another network's gateway: a DNS cluster has nothing to resolve for them.
      const endpoints = push.registry.endpoints(service.hostname, port.port).filter((e) => e.address !== '');
      const targets = endpoints.length
        ? endpoints.map((e) => ({ address: e.address, port: e.port }))
        : [{ address: service.hostname, port: port.targetPort ?? port.port }];
      cluster.load_assignment = {
        cluster_name: name,
        endpoints: [
          { lb_endpoints: targets.map((t) => ({ endpoint: { address: socketAddress(t.address, t.port) } })) },
        ],
      };
      break;
    }
    case 'NONE':
      if (push.registry.endpoints(service.hostname, port.port).length === 0) {
        // Istio's NONE resolution: forward to wherever the caller was going.
        cluster.type = 'ORIGINAL_DST';
        cluster.lb_policy = 'CLUSTER_PROVIDED';
        break;
      }
      cluster.type = 'EDS';
      cluster.eds_cluster_config = { eds_config: ADS_CONFIG_SOURCE, service_name: name };
      break;
    default:
      cluster.type = 'EDS';
      cluster.eds_cluster_config = { eds_config: ADS_CONFIG_SOURCE, service_name: name };
  }
  const policy = effectivePolicy(rule, subset?.name, port.port);
  applyPolicyToCluster(cluster, policy, {
    portProtocol: port.protocol,
    meshH2Upgrade: push.mesh.h2UpgradePolicy,
    meshLocalityLb: push.mesh.localityLbSetting,
    meshTcpKeepalive: push.mesh.tcpKeepalive,
    proxyless: proxy.proxyless,
  });
  if (cluster.type !== 'ORIGINAL_DST')
    applyClusterTls(push, proxy, cluster, service, port, subset?.name, policy.tls);
  applyProxyProtocol(cluster, policy.proxyProtocol);
  if (cluster.type === 'ORIGINAL_DST') cluster.lb_policy = 'CLUSTER_PROVIDED';
  return cluster;
}

/**
 * Istio's SNI-DNAT cluster at an east-west gateway (`outbound_.9080_.v1_.reviews…`):
 * the outbound cluster's endpoints and load balancing, but plain TCP with no
 * TLS of its own — what it carries is the caller's mTLS, passed through
 * unopened to the workload's sidecar. EDS services only: an SNI names a
 * mesh service with endpoints pilot knows.
 */
export function sniDnatCluster(
  push: PushContext,
  proxy: ProxyInfo,
  service: Service,
  port: ServicePort,
  subset: Subset | undefined,
  dr: DestinationRuleResource | undefined,
): Json | undefined {
  const cluster = outboundCluster(push, proxy, service, { ...port, protocol: 'TCP' }, subset, dr);
  if (cluster.type !== 'EDS') return undefined;
  const name = meshSni(port.port, subset?.name, service.hostname);
  delete cluster.transport_socket;
  delete cluster.transport_socket_matches;
  delete cluster.filters;
  return { ...cluster, name, eds_cluster_config: { eds_config: ADS_CONFIG_SOURCE, service_name: name } };
}

/** Outbound clusters for every visible service port, plus one per DestinationRule subset. */
export function buildOutboundClusters(push: PushContext, proxy: ProxyInfo): Json[] {
  const clusters: Json[] = [];
  for (const service of push.servicesFor(proxy)) {
    const dr = push.destinationRuleFor(proxy, service);
    const rule = dr?.spec as DestinationRuleSpec | undefined;
    for (const port of service.ports) {
      clusters.push(outboundCluster(push, proxy, service, port, undefined, dr));
      for (const subset of rule?.subsets ?? [])
        clusters.push(outboundCluster(push, proxy, service, port, subset, dr));
    }
  }
  return clusters;
}

/**
 * The local address Istio's inbound clusters connect from in iptables mode:
 * 127.0.0.6 (::6), which the capture rules let through instead of sending the
 * connection back to the proxy's own inbound port.
 */
function inboundBindConfig(proxy: ProxyInfo): Json {
  return { source_address: { address: net.isIPv6(proxy.ip) ? '::6' : '127.0.0.6', port_value: 0 } };
}

/**
 * Clusters that deliver inbound traffic to the workload: one per inbound
 * port, with the Sidecar's inbound connection pool when it sets one. Local
 * mode delivers to the app's port on 127.0.0.1. In iptables mode, as Istio
 * does, to where the connection was going (ORIGINAL_DST: the pod's own
 * address and the port the caller dialled) from 127.0.0.6, so the app must
 * listen on the pod IP or 0.0.0.0 as in any Istio pod. A Sidecar ingress
 * listener's defaultEndpoint is used as given (from 127.0.0.6 in iptables
 * mode unless it is a loopback address).
 */
export function buildInboundClusters(push: PushContext, proxy: ProxyInfo): Json[] {
  const seen = new Set<number>();
  const clusters: Json[] = [];
  const scope = push.sidecarScope(proxy);
  const captured = proxy.captureMode === 'iptables';
  for (const port of inboundPorts(proxy, scope)) {
    if (seen.has(port.port)) continue;
    seen.add(port.port);
    const name = inboundClusterName(port.port);
    let cluster: Json;
    if (captured && scope.ingress.length === 0) {
      cluster = {
        name,
        type: 'ORIGINAL_DST',
        connect_timeout: push.mesh.connectTimeout,
        lb_policy: 'CLUSTER_PROVIDED',
        upstream_bind_config: inboundBindConfig(proxy),
      };
    } else {
      cluster = {
        name,
        type: 'STATIC',
        connect_timeout: push.mesh.connectTimeout,
        lb_policy: 'ROUND_ROBIN',
        load_assignment: {
          cluster_name: name,
          endpoints: [
            {
              lb_endpoints: [{ endpoint: { address: endpointAddress(port.endpoint) } }],
            },
          ],
        },
      };
      if (captured && !port.endpoint.pipe && !isLoopback(port.endpoint.address))
        cluster.upstream_bind_config = inboundBindConfig(proxy);
    }
    // Inbound, the app gets its port's protocol (no upgrade); the Sidecar's connection pool may follow the client's.
    if (port.connectionPool)
      applyPolicyToCluster(
        cluster,
        { connectionPool: port.connectionPool },
        { portProtocol: port.protocol, inbound: true, meshTcpKeepalive: push.mesh.tcpKeepalive },
      );
    else {
      applyProtocol(cluster, port.protocol);
      applyTcpKeepalive(cluster, push.mesh.tcpKeepalive, undefined);
    }
    clusters.push(cluster);
  }
  return clusters;
}

function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

/**
 * Istio's catch-all clusters: pass through to the original destination, or
 * drop; in iptables mode also InboundPassthroughCluster, which delivers
 * inbound traffic to ports no service declares from 127.0.0.6.
 */
export function buildPassthroughClusters(push: PushContext, proxy?: ProxyInfo): Json[] {
  const inbound =
    proxy?.captureMode === 'iptables'
      ? [
          {
            name: INBOUND_PASSTHROUGH_CLUSTER,
            type: 'ORIGINAL_DST',
            lb_policy: 'CLUSTER_PROVIDED',
            connect_timeout: push.mesh.connectTimeout,
            upstream_bind_config: inboundBindConfig(proxy),
          },
        ]
      : [];
  for (const c of inbound) applyProtocol(c, 'UNKNOWN');
  const passthrough: Json = {
    name: PASSTHROUGH_CLUSTER,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: push.mesh.connectTimeout,
  };
  // Istio's passthrough clusters take the mesh's connection pool defaults (its keepalive); the black hole connects nowhere.
  for (const c of [...inbound, passthrough]) applyTcpKeepalive(c, push.mesh.tcpKeepalive, undefined);
  return [
    ...inbound,
    passthrough,
    { name: BLACKHOLE_CLUSTER, type: 'STATIC', connect_timeout: push.mesh.connectTimeout },
  ];
}
