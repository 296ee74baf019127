import type { Protocol } from '../model/protocol.js';

// Istio's host, visibility and label rules are shared with the analyzers (and `mizzen analyze`).
export { hostMatches, isVisible, labelsMatch, resolveShortName } from '@mizzen/analysis';

export type Resolution = 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
export type Location = 'MESH_EXTERNAL' | 'MESH_INTERNAL';

export interface ServicePort {
  name: string;
  port: number;
  protocol: Protocol;
  /** Default port on endpoints that do not name one (ServiceEntry `targetPort`). */
  targetPort?: number;
}

/** A service in the mesh registry, from a ServiceEntry or an auto-registered sidecar. */
export interface Service {
  hostname: string;
  namespace: string;
  ports: ServicePort[];
  resolution: Resolution;
  location: Location;
  addresses: string[];
  /** Namespaces that may see it: '*' (all), '.' (its own namespace), '~' (none), or names; empty: the mesh default. */
  exportTo: string[];
  /** Where it came from, for debugging (`ServiceEntry default/reviews` or `auto-registration`). */
  origin: string;
  /** The Service's (ServiceEntry's) own labels: `topology.istio.io/network` makes it a network's gateway. */
  labels?: Record<string, string>;
}

/** One address serving a service port: a workload's IP and the port it listens on for that service port. */
export interface Endpoint {
  /** An IP address, or a Unix socket's path when `pipe`. */
  address: string;
  /** 0 for a pipe. */
  port: number;
  /** A Unix domain socket endpoint (a ServiceEntry endpoint `address: unix:///path`). */
  pipe?: boolean;
  servicePortName: string;
  labels: Record<string, string>;
  serviceAccount?: string;
  /** The workload it belongs to (a Deployment's name, a WorkloadEntry's) and its namespace: Istio's endpoint metadata. */
  workload?: { name: string; namespace: string };
  /** `region/zone/subzone` */
  locality?: string;
  /**
   * The network it sits on (Istio's `topology.istio.io/network`), when its
   * source says: a WorkloadEntry's `network` or label, a pod's or its
   * namespace's label. Unset, MeshConfig `meshNetworks` may still place it.
   */
  network?: string;
  weight?: number;
  healthy: boolean;
  /** `WorkloadEntry default/reviews-v1` or `ServiceEntry default/httpbin endpoint 0` */
  origin: string;
}

export interface ServiceWithEndpoints {
  service: Service;
  /** By service port number. */
  endpoints: Map<number, Endpoint[]>;
}

/**
 * One port a workload serves for a service (Istio's ServiceTarget): what the
 * inbound side of a sidecar in iptables capture mode is built from.
 */
export interface ServiceTarget {
  hostname: string;
  /** The service port's name and number. */
  name: string;
  port: number;
  /** The port the workload listens on: redirected connections arrive with it as their destination port. */
  targetPort: number;
  protocol: Protocol;
}

/** An immutable view of every service and endpoint, rebuilt when config or registrations change. */
export interface Registry {
  services(): readonly Service[];
  service(hostname: string): Service | undefined;
  endpoints(hostname: string, port: number): readonly Endpoint[];
  /** The service ports the workload at `address` serves (Istio finds a proxy's service targets by its IP). */
  serviceTargets(address: string): readonly ServiceTarget[];
}

/** Service targets found among a registry's endpoints: every service port with an endpoint at `address`. */
export function serviceTargetsAt(
  registry: Pick<Registry, 'services' | 'endpoints'>,
  address: string,
): ServiceTarget[] {
  const out: ServiceTarget[] = [];
  for (const service of registry.services()) {
    for (const port of service.ports) {
      for (const e of registry.endpoints(service.hostname, port.port)) {
        if (e.address !== address) continue;
        if (out.some((t) => t.hostname === service.hostname && t.targetPort === e.port)) continue;
        out.push({
          hostname: service.hostname,
          name: port.name,
          port: port.port,
          targetPort: e.port,
          protocol: port.protocol,
        });
      }
    }
  }
  return sortTargets(out);
}

/** Stable order: by hostname, then service port, then target port. */
export function sortTargets(list: ServiceTarget[]): ServiceTarget[] {
  return list.sort((a, b) =>
    a.hostname !== b.hostname
      ? a.hostname < b.hostname
        ? -1
        : 1
      : a.port !== b.port
        ? a.port - b.port
        : a.targetPort - b.targetPort,
  );
}
