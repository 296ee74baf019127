import type { V1EndpointSlice, V1Namespace, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { type PodLike, workloadName } from '@mizzen/inject';
import { type Protocol, resolveProtocol } from '../model/protocol.js';
import { NETWORK_LABEL } from '../registry/build.js';
import {
  type Endpoint,
  type Registry,
  type Service,
  type ServicePort,
  type ServiceTarget,
  serviceTargetsAt,
} from '../registry/model.js';

/** Istio's annotation limiting where a Service is visible. */
export const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';
/** Istio's pod label overriding the locality of a workload (`region.zone.subzone`). */
export const LOCALITY_LABEL = 'istio-locality';
export const REGION_LABEL = 'topology.kubernetes.io/region';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const SUBZONE_LABEL = 'topology.istio.io/subzone';
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

function networkOf(network: string | undefined): { network?: string } {
  return network ? { network } : {};
}

/** What the registry is built from: the informers' caches at one moment. */
export interface KubeObjects {
  services: readonly V1Service[];
  endpointSlices: readonly V1EndpointSlice[];
  pods: readonly V1Pod[];
  nodes: readonly V1Node[];
  namespaces: readonly V1Namespace[];
}

/** `appProtocol` (incl. Kubernetes' `kubernetes.io/h2c` and `kubernetes.io/ws`), then the port name, as Istio decides. */
export function servicePortProtocol(appProtocol: string | undefined, name: string | undefined): Protocol {
  if (appProtocol === 'kubernetes.io/h2c') return 'HTTP2';
  if (appProtocol === 'kubernetes.io/ws' || appProtocol === 'kubernetes.io/wss') return 'HTTP';
  return resolveProtocol(appProtocol, name);
}

/** `region/zone/subzone` from the pod's `istio-locality` label, else its node's topology labels. */
export function localityOf(pod: V1Pod | undefined, node: V1Node | undefined): string | undefined {
  const override = pod?.metadata?.labels?.[LOCALITY_LABEL];
  if (override) return override.split('.').join('/');
  const labels = node?.metadata?.labels ?? {};
  const region = labels[REGION_LABEL];
  if (!region) return undefined;
  const parts = [region, labels[ZONE_LABEL] ?? '', labels[SUBZONE_LABEL] ?? ''];
  while (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  return parts.join('/');
}

function portName(name: string | undefined, port: number): string {
  return name && name !== '' ? name : `port-${port}`;
}

class KubeRegistry implements Registry {
  constructor(
    private readonly byHost: Map<string, Service>,
    private readonly eps: Map<string, Endpoint[]>,
    /** The service ports of each pod by its IP, from the Services selecting it (ready or not). */
    private readonly targetsByIp: Map<string, ServiceTarget[]> = new Map(),
  ) {}

  /**
   * As Istio's Kubernetes controller finds a proxy's service targets: the pod
   * at that IP and the Services that select it, whether or not the pod is
   * ready yet (its EndpointSlice entries may not serve); else the endpoints.
   */
  serviceTargets(address: string): readonly ServiceTarget[] {
    return this.targetsByIp.get(address) ?? serviceTargetsAt(this, address);
  }

  services(): readonly Service[] {
    return [...this.byHost.values()];
  }

  service(hostname: string): Service | undefined {
    return this.byHost.get(hostname);
  }

  endpoints(hostname: string, port: number): readonly Endpoint[] {
    return this.eps.get(`${hostname}:${port}`) ?? [];
  }
}

/**
 * The service registry Istio builds from Kubernetes: every Service becomes
 * `<name>.<namespace>.svc.<domain>` with its ports (protocol from appProtocol
 * or the port name), and its endpoints come from EndpointSlices — ready ones
 * healthy, not-ready but still serving ones unhealthy, terminating ones that
 * no longer serve left out. The pod behind an endpoint gives labels (which
 * DestinationRule subsets select), the service account (identity) and, through
 * its node, the locality.
 */
export function buildKubeRegistry(objects: KubeObjects, domainSuffix = 'cluster.local'): Registry {
  const podsByKey = new Map<string, V1Pod>();
  const podsByIp = new Map<string, V1Pod>();
  for (const pod of objects.pods) {
    const ns = pod.metadata?.namespace ?? 'default';
    podsByKey.set(`${ns}/${pod.metadata?.name}`, pod);
    if (pod.spec?.hostNetwork) continue;
    for (const ip of pod.status?.podIPs ?? []) if (ip.ip) podsByIp.set(ip.ip, pod);
    if (pod.status?.podIP) podsByIp.set(pod.status.podIP, pod);
  }
  // Istio's network of a pod: its own topology.istio.io/network label, else its namespace's.
  const namespaceNetworks = new Map<string, string>();
  for (const n of objects.namespaces) {
    const network = n.metadata?.labels?.[NETWORK_LABEL];
    if (n.metadata?.name && network) namespaceNetworks.set(n.metadata.name, network);
  }
  const nodes = new Map<string, V1Node>();
  for (const node of objects.nodes) if (node.metadata?.name) nodes.set(node.metadata.name, node);

  const byHost = new Map<string, Service>();
  const byKey = new Map<string, { service: Service; k8s: V1Service }>();
  for (const svc of objects.services) {
    const name = svc.metadata?.name;
    const ns = svc.metadata?.namespace ?? 'default';
    if (!name) continue;
    const hostname = `${name}.${ns}.svc.${domainSuffix}`;
    const ports: ServicePort[] = (svc.spec?.ports ?? [])
      .filter((p) => (p.protocol ?? 'TCP') !== 'UDP')
      .map((p) => ({
        name: portName(p.name, p.port),
        port: p.port,
        protocol: servicePortProtocol(p.appProtocol, p.name),
        ...(typeof p.targetPort === 'number' ? { targetPort: p.targetPort } : {}),
      }));
    const exportTo = svc.metadata?.annotations?.[EXPORT_TO_ANNOTATION]
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const external = svc.spec?.type === 'ExternalName';
    const clusterIps = (svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])).filter(
      (ip) => ip && ip !== 'None',
    );
    const service: Service = {
      hostname,
      namespace: ns,
      ports,
      resolution: external ? 'DNS' : 'STATIC',
      location: 'MESH_INTERNAL',
      addresses: clusterIps,
      exportTo: exportTo ?? [],
      origin: `Kubernetes Service ${ns}/${name}`,
      ...(svc.metadata?.labels ? { labels: { ...svc.metadata.labels } } : {}),
    };
    byHost.set(hostname, service);
    byKey.set(`${ns}/${name}`, { service, k8s: svc });
  }

  const eps = new Map<string, Endpoint[]>();
  for (const { service, k8s } of byKey.values()) {
    if (k8s.spec?.type !== 'ExternalName' || !k8s.spec.externalName) continue;
    for (const p of service.ports) {
      eps.set(`${service.hostname}:${p.port}`, [
        {
          address: k8s.spec.externalName,
          port: p.port,
          servicePortName: p.name,
          labels: {},
          healthy: true,
          origin: `Kubernetes Service ${service.namespace}/${k8s.metadata?.name} externalName`,
        },
      ]);
    }
  }

  const slices = [...objects.endpointSlices].sort((a, b) =>
    `${a.metadata?.namespace}/${a.metadata?.name}` < `${b.metadata?.namespace}/${b.metadata?.name}` ? -1 : 1,
  );
  for (const slice of slices) {
    const ns = slice.metadata?.namespace ?? 'default';
    const svcName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svcName) continue;
    const entry = byKey.get(`${ns}/${svcName}`);
    if (!entry || entry.k8s.spec?.type === 'ExternalName') continue;
    if (slice.addressType === 'FQDN') continue;
    for (const sp of entry.k8s.spec?.ports ?? []) {
      if ((sp.protocol ?? 'TCP') === 'UDP') continue;
      const wanted = sp.name ?? '';
      const slicePort = (slice.ports ?? []).find((p) => (p.name ?? '') === wanted);
      if (!slicePort?.port) continue;
      const key = `${entry.service.hostname}:${sp.port}`;
      const list = eps.get(key) ?? [];
      for (const ep of slice.endpoints ?? []) {
        const c = ep.conditions ?? {};
        const ready = c.ready ?? true;
        const serving = c.serving ?? ready;
        if (!ready && (c.terminating ?? false) && !serving) continue;
        if (!ready && !serving) continue;
        const ref = ep.targetRef;
        for (const address of ep.addresses ?? []) {
          // The same endpoint may sit in two slices while the controller moves it: keep one.
          if (list.some((e) => e.address === address && e.port === slicePort.port)) continue;
          const pod =
            ref?.kind === 'Pod' ? podsByKey.get(`${ref.namespace ?? ns}/${ref.name}`) : podsByIp.get(address);
          const nodeName = ep.nodeName ?? pod?.spec?.nodeName;
          const locality =
            localityOf(pod, nodeName ? nodes.get(nodeName) : undefined) ??
            (ep.zone ? `${regionOfZone(nodes, ep.zone) ?? ''}/${ep.zone}` : undefined);
          list.push({
            address,
            port: slicePort.port,
            servicePortName: portName(sp.name, sp.port),
            labels: { ...(pod?.metadata?.labels ?? {}) },
            ...(pod?.spec?.serviceAccountName ? { serviceAccount: pod.spec.serviceAccountName } : {}),
            ...(pod
              ? { workload: { name: workloadName(pod as PodLike), namespace: pod.metadata?.namespace ?? ns } }
              : {}),
            ...(locality ? { locality } : {}),
            ...networkOf(
              pod?.metadata?.labels?.[NETWORK_LABEL] ?? namespaceNetworks.get(pod?.metadata?.namespace ?? ns),
            ),
            healthy: ready,
            origin: pod
              ? `Pod ${pod.metadata?.namespace}/${pod.metadata?.name}`
              : `EndpointSlice ${ns}/${slice.metadata?.name}`,
          });
        }
      }
      eps.set(key, list);
    }
  }
  const targetsByIp = new Map<string, ServiceTarget[]>();
  for (const [ip, pod] of podsByIp) {
    const targets = workloadServicePorts(pod, objects.services, domainSuffix).map((t) => ({
      hostname: t.service,
      name: t.name,
      port: t.port,
      targetPort: t.targetPort,
      protocol: t.protocol,
    }));
    targetsByIp.set(ip, targets);
  }
  return new KubeRegistry(byHost, eps, targetsByIp);
}

function regionOfZone(nodes: Map<string, V1Node>, zone: string): string | undefined {
  for (const n of nodes.values()) {
    if (n.metadata?.labels?.[ZONE_LABEL] === zone) return n.metadata.labels[REGION_LABEL];
  }
  return undefined;
}

/** One port a pod serves for a Service that selects it: what an inbound listener for it needs. */
export interface WorkloadServicePort {
  /** `<svc>.<ns>.svc.<domain>` */
  service: string;
  /** The Service port's name (`port-<n>` when unnamed). */
  name: string;
  /** The Service port. */
  port: number;
  /** The container port traffic arrives on (a named targetPort resolved through the pod's containers). */
  targetPort: number;
  protocol: Protocol;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/**
 * The service ports a pod serves, as Istio finds a sidecar's service targets:
 * every Service in the pod's namespace whose selector matches the pod's
 * labels, each port with its targetPort resolved (a name through the pod's
 * container ports; no targetPort means the Service port). UDP ports are left
 * out, as the registry leaves them out.
 */
export function workloadServicePorts(
  pod: V1Pod,
  services: readonly V1Service[],
  domainSuffix = 'cluster.local',
): WorkloadServicePort[] {
  const ns = pod.metadata?.namespace ?? 'default';
  const labels = pod.metadata?.labels ?? {};
  const containerPorts = (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
  const out: WorkloadServicePort[] = [];
  for (const svc of services) {
    if ((svc.metadata?.namespace ?? 'default') !== ns || svc.spec?.type === 'ExternalName') continue;
    if (!selects(svc.spec?.selector, labels)) continue;
    for (const p of svc.spec?.ports ?? []) {
      if ((p.protocol ?? 'TCP') === 'UDP') continue;
      let targetPort: number | undefined;
      if (p.targetPort === undefined) targetPort = p.port;
      else if (typeof p.targetPort === 'number') targetPort = p.targetPort;
      else if (/^\d+$/.test(p.targetPort)) targetPort = Number(p.targetPort);
      else targetPort = containerPorts.find((c) => c.name === p.targetPort)?.containerPort;
      if (targetPort === undefined) continue;
      out.push({
        service: `${svc.metadata?.name}.${ns}.svc.${domainSuffix}`,
        name: portName(p.name, p.port),
        port: p.port,
        targetPort,
        protocol: servicePortProtocol(p.appProtocol, p.name),
      });
    }
  }
  return out.sort((a, b) => (a.service === b.service ? a.port - b.port : a.service < b.service ? -1 : 1));
}
