import type { DestinationRuleSpec, Subset } from '@mizzen/api';
import {
  BLACKHOLE_CLUSTER,
  inboundClusterName,
  outboundClusterName,
  PASSTHROUGH_CLUSTER,
} from '../model/names.js';
import type { Protocol } from '../model/protocol.js';
import type { ProxyInfo } from '../model/proxy.js';
import type { Service, ServicePort } from '../registry/model.js';
import { ADS_CONFIG_SOURCE, type Json, socketAddress } from './envoy.js';
import { applyClusterTls } from './mtls.js';
import type { PushContext } from './push-context.js';
import { inboundPorts } from './sidecar-scope.js';
import { applyPolicyToCluster, effectivePolicy, setUpstreamProtocol } from './traffic-policy.js';

/** gRPC and HTTP/2 ports are spoken over HTTP/2 upstream; ports of unknown protocol follow the downstream. */
function applyProtocol(cluster: Json, protocol: Protocol): void {
  if (protocol === 'GRPC' || protocol === 'HTTP2' || protocol === 'GRPC-WEB')
    setUpstreamProtocol(cluster, 'http2');
  else if (protocol === 'UNKNOWN') setUpstreamProtocol(cluster, 'downstream');
}

function istioMetadata(service: Service, subset?: string): Json {
  const short = service.hostname.split('.')[0];
  return {
    filter_metadata: {
      istio: {
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
  rule: DestinationRuleSpec | undefined,
): Json {
  const name = outboundClusterName(port.port, subset?.name, service.hostname);
  const cluster: Json = {
    name,
    connect_timeout: push.mesh.connectTimeout,
    lb_policy: 'ROUND_ROBIN',
    metadata: istioMetadata(service, subset?.name),
  };
  switch (service.resolution) {
    case 'DNS':
    case 'DNS_ROUND_ROBIN': {
      cluster.type = service.resolution === 'DNS' ? 'STRICT_DNS' : 'LOGICAL_DNS';
      cluster.dns_lookup_family = 'V4_PREFERRED';
      const endpoints = push.registry.endpoints(service.hostname, port.port);
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
  applyProtocol(cluster, port.protocol);
  const policy = effectivePolicy(rule, subset?.name, port.port);
  applyPolicyToCluster(cluster, policy, push.mesh.localityLbSetting);
  if (cluster.type !== 'ORIGINAL_DST')
    applyClusterTls(push, proxy, cluster, service, port.port, subset?.name, policy.tls);
  if (cluster.type === 'ORIGINAL_DST') cluster.lb_policy = 'CLUSTER_PROVIDED';
  return cluster;
}

/** Outbound clusters for every visible service port, plus one per DestinationRule subset. */
export function buildOutboundClusters(push: PushContext, proxy: ProxyInfo): Json[] {
  const clusters: Json[] = [];
  for (const service of push.servicesFor(proxy)) {
    const dr = push.destinationRuleFor(proxy, service);
    const rule = dr?.spec as DestinationRuleSpec | undefined;
    for (const port of service.ports) {
      clusters.push(outboundCluster(push, proxy, service, port, undefined, rule));
      for (const subset of rule?.subsets ?? [])
        clusters.push(outboundCluster(push, proxy, service, port, subset, rule));
    }
  }
  return clusters;
}

/**
 * Clusters that deliver inbound traffic to the workload: one per inbound
 * port, to the app's port on 127.0.0.1 or where a Sidecar ingress
 * listener's defaultEndpoint says, with the Sidecar's inbound connection
 * pool when it sets one.
 */
export function buildInboundClusters(push: PushContext, proxy: ProxyInfo): Json[] {
  const seen = new Set<number>();
  const clusters: Json[] = [];
  for (const port of inboundPorts(proxy, push.sidecarScope(proxy))) {
    if (seen.has(port.port)) continue;
    seen.add(port.port);
    const name = inboundClusterName(port.port);
    const cluster: Json = {
      name,
      type: 'STATIC',
      connect_timeout: push.mesh.connectTimeout,
      lb_policy: 'ROUND_ROBIN',
      load_assignment: {
        cluster_name: name,
        endpoints: [
          {
            lb_endpoints: [
              { endpoint: { address: socketAddress(port.endpoint.address, port.endpoint.port) } },
            ],
          },
        ],
      },
    };
    applyProtocol(cluster, port.protocol);
    if (port.connectionPool) applyPolicyToCluster(cluster, { connectionPool: port.connectionPool });
    clusters.push(cluster);
  }
  return clusters;
}

/** Istio's catch-all clusters: pass through to the original destination, or drop. */
export function buildPassthroughClusters(push: PushContext): Json[] {
  return [
    {
      name: PASSTHROUGH_CLUSTER,
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
      connect_timeout: push.mesh.connectTimeout,
    },
    { name: BLACKHOLE_CLUSTER, type: 'STATIC', connect_timeout: push.mesh.connectTimeout },
  ];
}
