import type { ConfigResource, ServiceEntrySpec, WorkloadEntrySpec } from '@mizzen/api';
import { UNIX_PREFIX } from '../model/names.js';
import { byCreation } from '../model/ordering.js';
import { resolveProtocol } from '../model/protocol.js';
import {
  type Endpoint,
  type Location,
  labelsMatch,
  type Registry,
  type Resolution,
  type Service,
  type ServicePort,
  type ServiceTarget,
  serviceTargetsAt,
} from './model.js';

/** Annotations pilot writes on WorkloadEntries it creates for connecting sidecars (auto-registration). */
export const AUTO_REGISTERED_LABEL = 'mizzen.io/auto-registered';
export const SERVICE_ANNOTATION = 'mizzen.io/service';
export const PORTS_ANNOTATION = 'mizzen.io/ports';

type WorkloadEntryResource = ConfigResource<'WorkloadEntry'>;
type ServiceEntryResource = ConfigResource<'ServiceEntry'>;

class StaticRegistry implements Registry {
  constructor(
    private readonly byHost: Map<string, Service>,
    private readonly eps: Map<string, Endpoint[]>,
  ) {}

  services(): readonly Service[] {
    return [...this.byHost.values()];
  }

  service(hostname: string): Service | undefined {
    return this.byHost.get(hostname);
  }

  endpoints(hostname: string, port: number): readonly Endpoint[] {
    return this.eps.get(`${hostname}:${port}`) ?? [];
  }

  serviceTargets(address: string): readonly ServiceTarget[] {
    return serviceTargetsAt(this, address);
  }
}

/** Istio's label naming the workload a WorkloadEntry belongs to (auto-registration sets it). */
export const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';

/** A WorkloadEntry's workload, as Istio names it: its workload-name label, else the entry's own name. */
function workloadOfEntry(we: WorkloadEntryResource): { name: string; namespace: string } {
  const labels = { ...((we.spec.labels ?? {}) as Record<string, string>), ...(we.metadata.labels ?? {}) };
  return { name: labels[WORKLOAD_NAME_LABEL] || we.metadata.name, namespace: we.metadata.namespace };
}

/** Istio's label naming the network a workload (or a gateway Service) is on. */
export const NETWORK_LABEL = 'topology.istio.io/network';

function endpointFromWorkload(
  spec: WorkloadEntrySpec,
  port: ServicePort,
  origin: string,
  workload: { name: string; namespace: string },
  entryLabels: Record<string, string> = {},
): Endpoint | undefined {
  const labels = { ...((spec.labels ?? {}) as Record<string, string>) };
  const network = spec.network || labels[NETWORK_LABEL] || entryLabels[NETWORK_LABEL] || undefined;
  // Without an address an entry is reachable only through its network's gateway (Istio's address-less WorkloadEntry).
  if (!spec.address && !network) return undefined;
  const ports = (spec.ports ?? {}) as Record<string, number>;
  // A `unix://` address is a Unix domain socket on the node (Istio: STATIC entries, one port): a pipe endpoint.
  const unix = spec.address?.startsWith(UNIX_PREFIX) === true;
  return {
    address: unix ? spec.address!.slice(UNIX_PREFIX.length) : (spec.address ?? ''),
    port: unix ? 0 : (ports[port.name] ?? port.targetPort ?? port.port),
    ...(unix ? { pipe: true } : {}),
    servicePortName: port.name,
    labels,
    serviceAccount: spec.serviceAccount,
    workload,
    locality: spec.locality,
    ...(network ? { network } : {}),
    weight: spec.weight,
    healthy: true,
    origin,
  };
}

/**
 * Builds the registry Istio builds for workloads outside Kubernetes:
 * ServiceEntries define services; their endpoints are inline or the
 * WorkloadEntries their `workloadSelector` picks (in the same namespace).
 * Sidecars that auto-registered under a service no ServiceEntry defines get
 * an implicit `<service>.<namespace>.svc.<domain>` service.
 */
export function buildRegistry(
  resources: readonly ConfigResource[],
  domainSuffix = 'cluster.local',
): Registry {
  const serviceEntries = resources
    .filter((r): r is ServiceEntryResource => r.kind === 'ServiceEntry')
    .sort(byCreation);
  const workloadEntries = resources
    .filter((r): r is WorkloadEntryResource => r.kind === 'WorkloadEntry')
    .sort(byCreation);

  const byHost = new Map<string, Service>();
  const eps = new Map<string, Endpoint[]>();
  const add = (service: Service, endpointsFor: (port: ServicePort) => Endpoint[]) => {
    byHost.set(service.hostname, service);
    for (const port of service.ports) eps.set(`${service.hostname}:${port.port}`, endpointsFor(port));
  };

  for (const se of serviceEntries) {
    const spec = se.spec as ServiceEntrySpec;
    const ns = se.metadata.namespace;
    const ports: ServicePort[] = (spec.ports ?? []).map((p) => ({
      name: p.name ?? `port-${p.number}`,
      port: p.number,
      protocol: resolveProtocol(p.protocol, p.name),
      targetPort: p.targetPort,
    }));
    const selector = spec.workloadSelector?.labels as Record<string, string> | undefined;
    for (const host of spec.hosts ?? []) {
      if (byHost.has(host)) continue; // the oldest ServiceEntry for a host wins, as in Istio
      const service: Service = {
        hostname: host,
        namespace: ns,
        ports,
        resolution: (spec.resolution ?? 'NONE') as Resolution,
        location: (spec.location ?? 'MESH_EXTERNAL') as Location,
        addresses: spec.addresses ?? [],
        exportTo: spec.exportTo ?? [],
        origin: `ServiceEntry ${ns}/${se.metadata.name}`,
        ...(se.metadata.labels ? { labels: { ...se.metadata.labels } } : {}),
      };
      add(service, (port) => {
        if (selector) {
          return workloadEntries
            .filter(
              (we) =>
                we.metadata.namespace === ns &&
                labelsMatch(selector, (we.spec.labels ?? {}) as Record<string, string>),
            )
            .map((we) =>
              endpointFromWorkload(
                we.spec as WorkloadEntrySpec,
                port,
                `WorkloadEntry ${ns}/${we.metadata.name}`,
                workloadOfEntry(we),
                we.metadata.labels,
              ),
            )
            .filter((e): e is Endpoint => e !== undefined);
        }
        return (spec.endpoints ?? [])
          .map((e, i) =>
            endpointFromWorkload(
              e as WorkloadEntrySpec,
              port,
              `ServiceEntry ${ns}/${se.metadata.name} endpoint ${i}`,
              // Inline endpoints belong to no workload of their own: Istio names them by their ServiceEntry.
              { name: se.metadata.name, namespace: ns },
            ),
          )
          .filter((e): e is Endpoint => e !== undefined);
      });
    }
  }

  // Implicit services for auto-registered sidecars whose service no ServiceEntry defines.
  const implicit = new Map<
    string,
    { namespace: string; ports: ServicePort[]; workloads: WorkloadEntryResource[] }
  >();
  for (const we of workloadEntries) {
    const svc = we.metadata.annotations?.[SERVICE_ANNOTATION];
    if (!svc) continue;
    const host = `${svc}.${we.metadata.namespace}.svc.${domainSuffix}`;
    if (byHost.has(host)) continue;
    let entry = implicit.get(host);
    if (!entry) {
      entry = { namespace: we.metadata.namespace, ports: [], workloads: [] };
      implicit.set(host, entry);
    }
    entry.workloads.push(we);
    for (const p of parsePortsAnnotation(we.metadata.annotations?.[PORTS_ANNOTATION])) {
      if (!entry.ports.some((x) => x.port === p.port)) entry.ports.push(p);
    }
  }
  for (const [host, entry] of implicit) {
    add(
      {
        hostname: host,
        namespace: entry.namespace,
        ports: entry.ports,
        resolution: 'STATIC',
        location: 'MESH_INTERNAL',
        addresses: [],
        exportTo: [],
        origin: 'auto-registration',
      },
      (port) =>
        entry.workloads
          .map((we) =>
            endpointFromWorkload(
              we.spec as WorkloadEntrySpec,
              port,
              `WorkloadEntry ${we.metadata.namespace}/${we.metadata.name}`,
              workloadOfEntry(we),
              we.metadata.labels,
            ),
          )
          .filter((e): e is Endpoint => e !== undefined),
    );
  }
  return new StaticRegistry(byHost, eps);
}

export function parsePortsAnnotation(value: string | undefined): ServicePort[] {
  if (!value) return [];
  try {
    const list = JSON.parse(value) as { name: string; port: number; protocol?: string }[];
    return list.map((p) => ({ name: p.name, port: p.port, protocol: resolveProtocol(p.protocol, p.name) }));
  } catch {
    return [];
  }
}
