import type net from 'node:net';
import { setTcpKeepalive, type TcpKeepalive } from '@mizzen/original-dst';

export type { TcpKeepalive };

/**
 * The cluster's upstream_connection_options on a freshly connected upstream
 * socket: TCP keepalive with its idle time, probe interval and probe count
 * (setsockopt through the native addon; Node alone sets only the idle time).
 * Throws when the kernel refuses, so the caller fails the connection rather
 * than run it without the keepalive the config asked for.
 */
export function applyUpstreamSocketOptions(socket: net.Socket, keepalive: TcpKeepalive | undefined): void {
  if (keepalive) setTcpKeepalive(socket, keepalive);
}
