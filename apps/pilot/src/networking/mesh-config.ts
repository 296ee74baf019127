import type { LocalityLoadBalancerSetting, TCPKeepalive } from '@mizzen/api';
import type { ExtensionProvider as AuthzExtensionProvider } from '@mizzen/policy';
import type { GatewayTopology } from './gateway-topology.js';
import type { MeshNetworks } from './mesh-networks.js';
import { DEFAULT_MESH_TELEMETRY, type MeshTelemetry } from './telemetry.js';

export type { AuthzExtensionProvider };

/** Mesh-wide settings (Istio's MeshConfig subset that pilot acts on). */
export interface MeshConfig {
  trustDomain: string;
  domainSuffix: string;
  /** Where mesh-wide policies live (Istio's `istio-system`). */
  rootNamespace: string;
  /** What sidecars do with destinations not in the registry. */
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Default upstream connect timeout (Istio: 10s). */
  connectTimeout: string;
  /** Extension providers, default providers, tracing and access-log defaults. */
  telemetry?: MeshTelemetry;
  /** `defaultConfig.gatewayTopology`: trusted proxies, XFCC and PROXY protocol in front of gateways. */
  gatewayTopology?: GatewayTopology;
  /**
   * MeshConfig `localityLbSetting`: what DestinationRules without their own
   * use (Istio's default when unset: enabled, failover by proximity).
   */
  localityLbSetting?: LocalityLoadBalancerSetting;
  /** `extensionProviders` with envoyExtAuthzHttp/Grpc: what CUSTOM AuthorizationPolicies name. */
  authorizers?: AuthzExtensionProvider[];
  /**
   * `h2UpgradePolicy`: UPGRADE speaks HTTP/2 to every host of an HTTP port
   * (Istio), DO_NOT_UPGRADE never upgrades. Unset, Mizzen's sidecars speak
   * HTTP/2 to hosts that run a sidecar and HTTP/1.1 to the rest.
   */
  h2UpgradePolicy?: 'UPGRADE' | 'DO_NOT_UPGRADE';
  /**
   * MeshConfig `tcpKeepalive`: keepalive for every upstream connection the
   * proxies make (outbound, inbound and passthrough clusters); a
   * DestinationRule's own `connectionPool.tcp.tcpKeepalive` replaces it field by field.
   */
  tcpKeepalive?: TCPKeepalive;
  /** `defaultServiceExportTo`: exportTo of services (ServiceEntries, Kubernetes Services) that set none (Istio: `*`). */
  defaultServiceExportTo?: string[];
  /** `defaultVirtualServiceExportTo`: exportTo of VirtualServices that set none (Istio: `*`). */
  defaultVirtualServiceExportTo?: string[];
  /**
   * Istio's MeshNetworks (`pilot --mesh-networks FILE`, or the `meshNetworks`
   * key of the `istio` ConfigMap): which endpoints are on which network and
   * the gateways other networks reach them through.
   */
  meshNetworks?: MeshNetworks;
  /** `defaultDestinationRuleExportTo`: exportTo of DestinationRules that set none (Istio: `*`). */
  defaultDestinationRuleExportTo?: string[];
}

export const DEFAULT_MESH_CONFIG: MeshConfig = {
  trustDomain: 'cluster.local',
  domainSuffix: 'cluster.local',
  rootNamespace: 'istio-system',
  outboundTrafficPolicy: 'ALLOW_ANY',
  connectTimeout: '10s',
  telemetry: DEFAULT_MESH_TELEMETRY,
};
