import type { Json } from '../config-dump.js';

/** An envoy.config.core.v3.Address: a socket's IP and port, or a Unix socket's path (which has no port). */
export interface EnvoyAddress {
  address: string;
  port?: number;
}

/** What istioctl's `--address` and `--port` select on. */
export interface AddressFilter {
  address?: string;
  port?: number;
}

export function envoyAddress(a: unknown): EnvoyAddress {
  const socket = (a as Json | undefined)?.socket_address as Json | undefined;
  if (socket) return { address: String(socket.address ?? ''), port: Number(socket.port_value ?? 0) };
  const pipe = (a as Json | undefined)?.pipe as Json | undefined;
  return { address: String(pipe?.path ?? '') };
}

/** `10.0.0.7:9080`, `[fd00::7]:9080`, or `unix:///var/run/app.sock`. */
export function formatAddress({ address, port }: EnvoyAddress): string {
  if (port === undefined) return `unix://${address}`;
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}
