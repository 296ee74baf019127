import type { EndpointIdentity } from '../observe/peer-metadata.js';

/** One upstream address a request can be sent to. */
export interface UpstreamHost {
  /** `address:port` (IPv6 in brackets), or a Unix socket's path: identifies the host across clusters and its pool. */
  readonly key: string;
  /** An IP address, or (pipe hosts) the Unix socket's path — `@name` for Linux's abstract namespace. */
  readonly address: string;
  /** The TCP port; 0 for a pipe host. */
  readonly port: number;
  /** A Unix domain socket endpoint (Envoy's `pipe` address), reached by path rather than by IP and port. */
  readonly pipe?: boolean;
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
  /** The endpoint is a Unix domain socket (`address` is its path). */
  pipe?: boolean;
  priority?: number;
  localityWeight?: number;
  overprovisioningFactor?: number;
}

/** Envoy's default overprovisioning factor: a priority level counts as fully available at 1/1.4 healthy. */
export const DEFAULT_OVERPROVISIONING_FACTOR = 140;

/** How Envoy writes an address (Address::asString): `ip:port`, `[v6]:port`, or a pipe's path. */
export function hostKey(address: string, port: number, pipe = false): string {
  if (pipe) return address;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The path to hand Node for a pipe address: Envoy's `@name` is Linux's abstract namespace (a leading NUL). */
export function socketPath(pipeAddress: string): string {
  return pipeAddress.startsWith('@') ? `\0${pipeAddress.slice(1)}` : pipeAddress;
}

/** The authority a connection to a host is opened with (a pipe has no host:port of its own). */
export function hostAuthority(host: UpstreamHost): string {
  return host.pipe ? 'localhost' : host.key;
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
    key: hostKey(address, port, placement.pipe),
    address,
    port,
    ...(placement.pipe ? { pipe: true } : {}),
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
