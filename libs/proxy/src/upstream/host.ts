import type { EndpointIdentity } from '../observe/peer-metadata.js';

/** One upstream address a request can be sent to. */
export interface UpstreamHost {
  /** `address:port` (IPv6 in brackets): identifies the host across clusters and its connection pool. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly healthy: boolean;
  readonly locality: string;
  /** A sidecar answers for this host: proxies talk HTTP/2 to it. */
  readonly sidecar: boolean;
  /** Endpoint metadata that selects the transport (TLS or plain) for this host. */
  readonly transportMatch: Readonly<Record<string, string>>;
  /** The EDS priority of its locality group (0 is the highest). */
  readonly priority: number;
  /** Its locality group's load_balancing_weight (0 when unset), for locality-weighted balancing. */
  readonly localityWeight: number;
  /** Its ClusterLoadAssignment's overprovisioning factor, in percent (Envoy's default 140). */
  readonly overprovisioningFactor: number;
  /** The workload behind it, as pilot's endpoint metadata names it (telemetry's peer for TCP). */
  readonly identity?: EndpointIdentity;
}

/** Where a host sits in its cluster's load assignment. */
export interface HostPlacement {
  priority?: number;
  localityWeight?: number;
  overprovisioningFactor?: number;
}

/** Envoy's default overprovisioning factor: a priority level counts as fully available at 1/1.4 healthy. */
export const DEFAULT_OVERPROVISIONING_FACTOR = 140;

export function hostKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function makeHost(
  address: string,
  port: number,
  weight = 1,
  healthy = true,
  locality = '',
  sidecar = false,
  transportMatch: Readonly<Record<string, string>> = {},
  placement: HostPlacement = {},
  identity?: EndpointIdentity,
): UpstreamHost {
  return {
    key: hostKey(address, port),
    address,
    port,
    weight,
    healthy,
    locality,
    sidecar,
    transportMatch,
    priority: placement.priority ?? 0,
    localityWeight: placement.localityWeight ?? 0,
    overprovisioningFactor: placement.overprovisioningFactor ?? DEFAULT_OVERPROVISIONING_FACTOR,
    ...(identity ? { identity } : {}),
  };
}
