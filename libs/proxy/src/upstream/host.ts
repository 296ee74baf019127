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
}

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
): UpstreamHost {
  return { key: hostKey(address, port), address, port, weight, healthy, locality, sidecar, transportMatch };
}
