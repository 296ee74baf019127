import type { XdsNode } from '@mizzen/xds';
import { type Protocol, resolveProtocol } from './protocol.js';

export type ProxyType = 'sidecar' | 'router';

/** One port a sidecar's workload serves: the service port, the app's port, and where the sidecar listens for it. */
export interface WorkloadPort {
  name: string;
  port: number;
  targetPort: number;
  protocol: Protocol;
  /** The sidecar's inbound listener for this port (local mode: one per port). */
  listenPort: number;
}

/** Where a workload runs (Envoy's Node.locality; Istio's `region/zone/subzone`). */
export interface Locality {
  region: string;
  zone: string;
  subZone: string;
}

/** What pilot knows about a connected proxy, read from its Envoy node. */
export interface ProxyInfo {
  id: string;
  type: ProxyType;
  ip: string;
  podName: string;
  namespace: string;
  /** Proxyless gRPC client (`GENERATOR: grpc`): gets `host:port` listeners with an API listener. */
  proxyless: boolean;
  labels: Record<string, string>;
  serviceAccount?: string;
  workloadName: string;
  /** The service a sidecar auto-registers under (local mode). */
  service?: string;
  ports: WorkloadPort[];
  /** Local mode: listeners bind the instance IP; applications use the sidecar as an HTTP proxy. */
  captureMode: 'proxy' | 'iptables' | 'none';
  outboundPort?: number;
  adminPort?: number;
  healthPort?: number;
  /** Where the proxy serves `/stats/prometheus` (15020 in a pod). */
  statsPort?: number;
  /** Gateways: Service port → container port (80 → 8080). */
  gatewayPorts: Record<number, number>;
  istioVersion?: string;
  /** The proxy has a workload certificate (it can take part in mutual TLS). */
  hasCerts: boolean;
  /** The node's locality (`--locality`), when it has one. */
  locality?: Locality;
  /** The network it runs on: its node's `NETWORK` (Istio's agent fills it from ISTIO_META_NETWORK). */
  network?: string;
  metadata: Record<string, unknown>;
}

export class ProxyNodeError extends Error {}

/** Parses Istio's node id form `TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`. */
export function parseNodeId(id: string): { type: ProxyType; ip: string; podName: string; namespace: string } {
  const parts = id.split('~');
  if (parts.length !== 4) {
    throw new ProxyNodeError(
      `node id "${id}" is not of the form TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`,
    );
  }
  const [type, ip, podDotNs, domain] = parts as [string, string, string, string];
  if (type !== 'sidecar' && type !== 'router') {
    throw new ProxyNodeError(`node id "${id}" has type "${type}"; expected sidecar or router`);
  }
  const dot = podDotNs.lastIndexOf('.');
  const podName = dot > 0 ? podDotNs.slice(0, dot) : podDotNs;
  const namespace = dot > 0 ? podDotNs.slice(dot + 1) : (domain.split('.')[0] ?? 'default');
  return { type, ip, podName, namespace };
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined;
}

function jsonish<T>(v: unknown): T | undefined {
  if (typeof v === 'string') {
    try {
      return JSON.parse(v) as T;
    } catch {
      return undefined;
    }
  }
  return v as T | undefined;
}

function stringMap(v: unknown): Record<string, string> {
  const obj = jsonish<Record<string, unknown>>(v);
  if (!obj || typeof obj !== 'object') return {};
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj)) if (val !== undefined && val !== null) out[k] = String(val);
  return out;
}

/** Builds the proxy model from its node (id + metadata), validating what pilot relies on. */
export function proxyFromNode(node: XdsNode): ProxyInfo {
  const parsed = parseNodeId(node.id);
  const md = node.metadata ?? {};
  const namespace = str(md.NAMESPACE) ?? parsed.namespace;
  const ports: WorkloadPort[] = [];
  const rawPorts = jsonish<unknown[]>(md.MIZZEN_PORTS) ?? [];
  if (!Array.isArray(rawPorts)) throw new ProxyNodeError(`node ${node.id}: MIZZEN_PORTS must be a list`);
  for (const [i, p] of rawPorts.entries()) {
    const entry = p as Record<string, unknown>;
    const port = num(entry.port);
    const targetPort = num(entry.targetPort) ?? port;
    const listenPort = num(entry.listenPort);
    const name = str(entry.name) ?? `port-${port}`;
    if (!port || !targetPort || !listenPort) {
      throw new ProxyNodeError(`node ${node.id}: MIZZEN_PORTS[${i}] needs port, targetPort and listenPort`);
    }
    ports.push({ name, port, targetPort, listenPort, protocol: resolveProtocol(str(entry.protocol), name) });
  }
  const gatewayPorts: Record<number, number> = {};
  const rawMap = jsonish<Record<string, unknown>>(md.MIZZEN_GATEWAY_PORTS) ?? {};
  for (const [k, v] of Object.entries(rawMap)) {
    const from = num(k);
    const to = num(v);
    if (from && to) gatewayPorts[from] = to;
  }
  const ips = str(md.INSTANCE_IPS)?.split(',').filter(Boolean);
  const loc = node.locality;
  const locality =
    loc && (loc.region || loc.zone || loc.sub_zone)
      ? { region: loc.region ?? '', zone: loc.zone ?? '', subZone: loc.sub_zone ?? '' }
      : undefined;
  const capture = str(md.MIZZEN_CAPTURE_MODE);
  return {
    id: node.id,
    type: parsed.type,
    ip: ips?.[0] ?? parsed.ip,
    podName: parsed.podName,
    namespace,
    proxyless: str(md.GENERATOR) === 'grpc',
    labels: stringMap(md.LABELS),
    serviceAccount: str(md.SERVICE_ACCOUNT),
    workloadName: str(md.WORKLOAD_NAME) ?? parsed.podName,
    service: str(md.MIZZEN_SERVICE),
    ports,
    captureMode: capture === 'proxy' || capture === 'iptables' ? capture : 'none',
    outboundPort: num(md.MIZZEN_OUTBOUND_PORT),
    adminPort: num(md.MIZZEN_ADMIN_PORT),
    healthPort: num(md.MIZZEN_HEALTH_PORT),
    statsPort: num(md.MIZZEN_STATS_PORT),
    gatewayPorts,
    istioVersion: str(md.ISTIO_VERSION),
    hasCerts: md.MIZZEN_WORKLOAD_CERTS === true || md.MIZZEN_WORKLOAD_CERTS === 'true',
    ...(locality ? { locality } : {}),
    ...(str(md.NETWORK) ? { network: str(md.NETWORK) } : {}),
    metadata: md,
  };
}

/** The address listeners bind: the instance IP in local mode (never expose the mesh beyond it), else all. */
export function bindAddress(proxy: ProxyInfo): string {
  return proxy.captureMode === 'proxy' ? proxy.ip : '0.0.0.0';
}
