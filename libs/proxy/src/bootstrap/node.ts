import type { XdsNode } from '@mizzen/xds';
import type { CaptureMode } from '../listeners/listener-manager.js';

/** Istio's proxy version this proxy speaks for (what pilot and tools expect in ISTIO_VERSION). */
export const ISTIO_COMPAT_VERSION = '1.24.0';
export const MIZZEN_VERSION = '0.1.0';

/** A port the workload serves: `http:9080:19080:15006` = name, service port, app port, sidecar inbound port. */
export interface WorkloadPortSpec {
  name: string;
  port: number;
  targetPort: number;
  listenPort: number;
  protocol?: string;
}

export interface SidecarIdentity {
  /** The pod (or process) name: the node id's POD part. */
  workload: string;
  /**
   * The workload the pod belongs to (a Deployment's name; Istio's
   * ISTIO_META_WORKLOAD_NAME), reported as source_workload/destination_workload;
   * `workload` when unset.
   */
  workloadName?: string;
  namespace: string;
  serviceAccount: string;
  /** The service the workload serves (local mode auto-registration). */
  service?: string;
  labels: Record<string, string>;
  ip: string;
  ports: WorkloadPortSpec[];
  outboundPort?: number;
  adminPort: number;
  healthPort: number;
  /** Where `/stats/prometheus` listens (pilot lists it as `ports.stats`; collectors scrape it). */
  statsPort?: number;
  domainSuffix?: string;
  /** The sidecar gets a workload certificate from citadel and so takes part in mutual TLS. */
  mtls?: boolean;
  /** How traffic reaches the sidecar (pilot binds listeners on 0.0.0.0 for iptables capture). */
  captureMode?: CaptureMode;
  /** Where the workload runs (`--locality`): pilot orders endpoints by it for locality load balancing. */
  locality?: XdsNode['locality'];
  /** The network it runs on (`--network`, ISTIO_META_NETWORK): other networks reach it through their gateway. */
  network?: string;
}

export interface GatewayIdentity {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  ip: string;
  /** Service port → port the gateway really listens on (80 → 8080). */
  portMap: Record<number, number>;
  adminPort: number;
  healthPort: number;
  /** Where `/stats/prometheus` listens (pilot lists it as `ports.stats`; collectors scrape it). */
  statsPort?: number;
  serviceAccount?: string;
  domainSuffix?: string;
  mtls?: boolean;
  /**
   * The service the gateway is, for sidecars to route to (Istio's
   * `istio-egressgateway` Service): pilot registers it with a port per
   * port-map entry, named and typed as Istio's gateway Services name them.
   */
  service?: string;
  /** Istio's ProxyConfig for this gateway (the `proxy.istio.io/config` annotation): gatewayTopology… */
  proxyConfig?: Record<string, unknown>;
  /** Where the gateway runs (`--locality`): pilot orders endpoints by it for locality load balancing. */
  locality?: XdsNode['locality'];
  /** The network it runs on (`--network`): an east-west gateway forwards only to endpoints on it. */
  network?: string;
}

/**
 * The name and protocol of a gateway Service port, as Istio's charts name
 * them: 443 and 8443 carry HTTPS (sidecars pass TLS through by SNI), 15443
 * TLS, 31400 TCP, anything else HTTP/2 (sidecars speak h2c to the gateway).
 */
export function gatewayServicePort(port: number): { name: string; protocol: string } {
  const [base, protocol, canonical] =
    port === 443 || port === 8443
      ? ['https', 'HTTPS', 443]
      : port === 15443
        ? ['tls', 'TLS', 15443]
        : port === 31400
          ? ['tcp', 'TCP', 31400]
          : ['http2', 'HTTP2', 80];
  return { name: port === canonical ? base : `${base}-${port}`, protocol };
}

/** `TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`, Istio's node id form. */
export function nodeId(
  type: 'sidecar' | 'router',
  ip: string,
  pod: string,
  namespace: string,
  domainSuffix = 'cluster.local',
): string {
  return `${type}~${ip}~${pod}.${namespace}~${namespace}.svc.${domainSuffix}`;
}

function common(
  namespace: string,
  labels: Record<string, string>,
  ip: string,
  workload: string,
  network: string | undefined,
) {
  return {
    NAMESPACE: namespace,
    // Istio's agent copies ISTIO_META_NETWORK here: pilot decides by it which endpoints are local.
    ...(network ? { NETWORK: network } : {}),
    LABELS: labels,
    INSTANCE_IPS: ip,
    WORKLOAD_NAME: workload,
    CLUSTER_ID: 'Kubernetes',
    ISTIO_VERSION: ISTIO_COMPAT_VERSION,
    // Local mode: applications reach the proxy as an HTTP proxy; listeners bind the instance IP only.
    MIZZEN_CAPTURE_MODE: 'proxy',
  };
}

export function sidecarNode(s: SidecarIdentity): XdsNode {
  const metadata: Record<string, unknown> = {
    // A workload whose sidecar has a mesh certificate carries Istio's tlsMode label: peers then speak mTLS (and HTTP/2) to it.
    ...common(
      s.namespace,
      s.mtls ? { 'security.istio.io/tlsMode': 'istio', ...s.labels } : s.labels,
      s.ip,
      s.workloadName ?? s.workload,
      s.network,
    ),
    ...(s.mtls ? { MIZZEN_WORKLOAD_CERTS: true } : {}),
    SERVICE_ACCOUNT: s.serviceAccount,
    MIZZEN_PORTS: s.ports.map((p) => ({ ...p })),
    MIZZEN_ADMIN_PORT: s.adminPort,
    MIZZEN_HEALTH_PORT: s.healthPort,
    ...(s.statsPort ? { MIZZEN_STATS_PORT: s.statsPort } : {}),
  };
  if (s.service) metadata.MIZZEN_SERVICE = s.service;
  if (s.outboundPort) metadata.MIZZEN_OUTBOUND_PORT = s.outboundPort;
  if (s.captureMode === 'iptables') metadata.MIZZEN_CAPTURE_MODE = 'iptables';
  return {
    id: nodeId('sidecar', s.ip, s.workload, s.namespace, s.domainSuffix),
    cluster: `${s.service ?? s.workload}.${s.namespace}`,
    ...(s.locality ? { locality: s.locality } : {}),
    metadata,
    user_agent_name: 'mizzen',
    user_agent_version: MIZZEN_VERSION,
  };
}

export function gatewayNode(g: GatewayIdentity): XdsNode {
  const metadata: Record<string, unknown> = {
    ...common(g.namespace, g.labels, g.ip, g.name, g.network),
    MIZZEN_GATEWAY_PORTS: Object.fromEntries(Object.entries(g.portMap).map(([k, v]) => [k, v])),
    ...(g.mtls ? { MIZZEN_WORKLOAD_CERTS: true } : {}),
    MIZZEN_ADMIN_PORT: g.adminPort,
    MIZZEN_HEALTH_PORT: g.healthPort,
    ...(g.statsPort ? { MIZZEN_STATS_PORT: g.statsPort } : {}),
  };
  if (g.serviceAccount) metadata.SERVICE_ACCOUNT = g.serviceAccount;
  if (g.service) {
    metadata.MIZZEN_SERVICE = g.service;
    metadata.MIZZEN_PORTS = Object.entries(g.portMap).map(([port, listen]) => ({
      ...gatewayServicePort(Number(port)),
      port: Number(port),
      targetPort: listen,
      listenPort: listen,
    }));
  }
  if (g.proxyConfig) metadata.PROXY_CONFIG = g.proxyConfig;
  return {
    id: nodeId('router', g.ip, g.name, g.namespace, g.domainSuffix),
    cluster: `${g.name}.${g.namespace}`,
    ...(g.locality ? { locality: g.locality } : {}),
    metadata,
    user_agent_name: 'mizzen',
    user_agent_version: MIZZEN_VERSION,
  };
}
