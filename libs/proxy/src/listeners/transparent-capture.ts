import type net from 'node:net';
import { type OriginalDestination as KernelDestination, originalDestination } from '@mizzen/original-dst';
import type { ListenerConfig } from '../config/listener.js';
import type { OriginalDestination } from '../upstream/cluster-manager.js';
import type { VirtualListenerLookup } from './http-proxy-capture.js';
import { ChainedListenerRuntime, type RuntimeDeps } from './runtimes.js';

const ORIGINAL_DST_FILTER =
  'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst';

/** Where a connection was going before iptables redirected it (SO_ORIGINAL_DST). */
export type OriginalDestinationResolver = (socket: net.Socket) => KernelDestination;

/**
 * A bound listener whose connections arrive through iptables REDIRECT: Istio's
 * `virtualOutbound` (15001, `use_original_dst`) and `virtualInbound` (15006,
 * the `original_dst` listener filter).
 */
export function capturesOriginalDst(config: ListenerConfig): boolean {
  if (!config.bindToPort) return false;
  if (config.useOriginalDst) return true;
  return (config.json.listener_filters ?? []).some((f) => f.typed_config?.['@type'] === ORIGINAL_DST_FILTER);
}

/**
 * Transparent capture, as Envoy does it. Each connection's original
 * destination comes from the kernel (SO_ORIGINAL_DST); then
 * - with `use_original_dst`, the connection is handed to the listener for
 *   that destination — `address:port` exactly, else `0.0.0.0:port` — which
 *   picks its filter chain as if the connection had been made to it;
 * - otherwise, or when no such listener exists, this listener's own filter
 *   chains take it, matched against the original destination (so
 *   `destination_port` chains dispatch inbound traffic by the port the
 *   client called, and PassthroughCluster/BlackHoleCluster catch the rest).
 * ORIGINAL_DST clusters connect to the recovered address. Connections to the
 * capture port itself are closed: handing them on would loop back here
 * (Istio gives both capture listeners a BlackHoleCluster chain for that).
 */
export class TransparentCaptureRuntime extends ChainedListenerRuntime {
  constructor(
    config: ListenerConfig,
    private readonly runtimeDeps: RuntimeDeps,
    private readonly lookup: VirtualListenerLookup,
    private readonly resolve: OriginalDestinationResolver = originalDestination,
  ) {
    super(config, runtimeDeps);
  }

  override accept(socket: net.Socket): void {
    let kernel: KernelDestination;
    try {
      kernel = this.resolve(socket);
    } catch (err) {
      this.runtimeDeps.logger.warn(
        { listener: this.config.name, err: (err as Error).message },
        'cannot recover the original destination; closing the connection',
      );
      socket.destroy();
      return;
    }
    const dst: OriginalDestination = { host: kernel.address, port: kernel.port };
    if (dst.port === socket.localPort) {
      this.runtimeDeps.logger.debug(
        { listener: this.config.name, destination: `${dst.host}:${dst.port}`, redirected: kernel.redirected },
        'connection to the capture port itself; closing it',
      );
      socket.destroy();
      return;
    }
    const target = this.config.useOriginalDst ? this.handOverTarget(dst) : undefined;
    if (target) target.accept(socket, dst);
    else super.accept(socket, dst);
  }

  /**
   * The listener Envoy would hand this connection to. An inbound capture
   * listener hands over only to inbound listeners (never to the outbound
   * `0.0.0.0:port` listener of a port the pod also calls), an outbound one
   * only to outbound ones.
   */
  private handOverTarget(dst: OriginalDestination): ChainedListenerRuntime | undefined {
    const target = this.lookup.virtualFor(dst.host, dst.port);
    if (!target || target === this) return undefined;
    const inbound = (c: ListenerConfig) => c.direction === 'INBOUND';
    return inbound(target.config) === inbound(this.config) ? target : undefined;
  }
}
