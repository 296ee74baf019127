import fs from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type AddressFamily = 'IPv4' | 'IPv6';

/** Where a connection was going before iptables redirected it to us. */
export interface OriginalDestination {
  address: string;
  port: number;
  family: AddressFamily;
  /**
   * False when the kernel has no NAT record for the connection (it reached
   * the socket directly): address and port are then the local address, as
   * Envoy's original_dst filter leaves them.
   */
  redirected: boolean;
}

/** A lookup that failed: the socket is gone, is not a socket, or the addon could not load. */
export class OriginalDestinationError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'OriginalDestinationError';
  }
}

/** TCP keepalive settings of a socket, in seconds and probes (the kernel's TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT). */
export interface TcpKeepalive {
  /** Idle time before the first probe. */
  time?: number;
  /** Time between probes. */
  interval?: number;
  /** Unanswered probes before the connection is dropped. */
  probes?: number;
}

interface Addon {
  getOriginalDestination(fd: number): OriginalDestination;
  setTcpKeepalive(fd: number, options: TcpKeepalive): void;
  getTcpKeepalive(fd: number): Required<TcpKeepalive> & { enabled: boolean };
}

const NAME = 'original_dst.node';
let addon: Addon | undefined;
let addonFile: string | undefined;

/** The addon sits next to this file in dist/; from the sources (tests) it is in dist/ or node-gyp's build/. */
function loadAddon(): Addon {
  if (addon) return addon;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    path.join(here, NAME),
    path.join(here, '..', 'dist', NAME),
    path.join(here, '..', 'build', 'Release', NAME),
  ];
  const file = candidates.find((c) => fs.existsSync(c));
  if (!file) {
    throw new OriginalDestinationError(
      `the @mizzen/original-dst native addon is not built (no ${NAME} in ${path.join(here)}); ` +
        'run `npx nx run @mizzen/original-dst:build`',
      'ENOADDON',
    );
  }
  try {
    addon = createRequire(import.meta.url)(file) as Addon;
    addonFile = file;
  } catch (err) {
    throw new OriginalDestinationError(
      `the @mizzen/original-dst native addon (${file}) failed to load: ${(err as Error).message}`,
      'ENOADDON',
    );
  }
  return addon;
}

/**
 * Loads the native addon now rather than at the first captured connection,
 * and returns the file it loaded: a proxy in iptables capture mode checks at
 * start that it can recover original destinations (an image without the
 * addon fails there, in one sentence, instead of on the first connection).
 * Throws OriginalDestinationError (code ENOADDON) when it is missing or broken.
 */
export function loadOriginalDestinationAddon(): string {
  loadAddon();
  return addonFile!;
}

/**
 * The original destination of the connection on file descriptor `fd`
 * (getsockopt SO_ORIGINAL_DST, or IP6T_SO_ORIGINAL_DST for IPv6).
 */
export function getOriginalDestination(fd: number): OriginalDestination {
  return call((a) => a.getOriginalDestination(fd));
}

/** Calls the addon, turning its system-call errors into OriginalDestinationError (argument errors stay as they are). */
function call<T>(fn: (a: Addon) => T): T {
  const a = loadAddon();
  try {
    return fn(a);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e instanceof TypeError || e instanceof RangeError) throw e;
    throw new OriginalDestinationError(e.message, e.code);
  }
}

/** True when the native addon loads (socket options beyond Node's can be set). */
export function nativeSocketOptionsAvailable(): boolean {
  try {
    loadAddon();
    return true;
  } catch {
    return false;
  }
}

/**
 * Turns TCP keepalive on for a connected socket and sets the idle time,
 * probe interval and probe count that are given (the rest keep the kernel's
 * defaults), as Envoy's tcp_keepalive does. Node's setKeepAlive reaches only
 * the idle time.
 */
export function setTcpKeepalive(socket: net.Socket, options: TcpKeepalive): void {
  const fd = socketFd(socket);
  call((a) => a.setTcpKeepalive(fd, options));
}

/** The keepalive settings the kernel holds for a socket (getsockopt), for checks and diagnostics. */
export function tcpKeepalive(socket: net.Socket): Required<TcpKeepalive> & { enabled: boolean } {
  const fd = socketFd(socket);
  return call((a) => a.getTcpKeepalive(fd));
}

/** The file descriptor under a connected net.Socket (libuv's TCP handle). */
export function socketFd(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } | null })._handle;
  if (!handle) throw new OriginalDestinationError('the socket is closed (it has no handle)', 'ENOTCONN');
  const fd = handle.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new OriginalDestinationError(
      'the socket has no file descriptor (not a TCP socket on Linux, or already closed)',
      'EBADF',
    );
  }
  return fd;
}

/** The original destination of an accepted connection. */
export function originalDestination(socket: net.Socket): OriginalDestination {
  return getOriginalDestination(socketFd(socket));
}
