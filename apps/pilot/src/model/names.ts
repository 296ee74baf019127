/** Istio's naming habits for xDS resources, so tooling and muscle memory carry over. */

export type TrafficDirection = 'outbound' | 'inbound';

/** `outbound|9080|v1|reviews.default.svc.cluster.local` */
export function outboundClusterName(port: number, subset: string | undefined, host: string): string {
  return `outbound|${port}|${subset ?? ''}|${host}`;
}

/** `inbound|9080||` — the cluster that delivers to the workload's own port. */
export function inboundClusterName(targetPort: number): string {
  return `inbound|${targetPort}||`;
}

/**
 * The config path Istio puts in a resource's `filter_metadata.istio.config`
 * (`/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews`):
 * which DestinationRule or VirtualService made it, for `proxy-config`'s columns.
 */
export function istioConfigPath(
  kind: 'destination-rule' | 'virtual-service',
  namespace: string,
  name: string,
): string {
  return `/apis/networking.istio.io/v1/namespaces/${namespace}/${kind}/${name}`;
}

export function parseClusterName(
  name: string,
): { direction: TrafficDirection; port: number; subset: string; host: string } | undefined {
  const parts = name.split('|');
  if (parts.length !== 4) return undefined;
  const [direction, port, subset, host] = parts as [string, string, string, string];
  if (direction !== 'outbound' && direction !== 'inbound') return undefined;
  return { direction, port: Number(port), subset, host };
}

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
export const VIRTUAL_OUTBOUND = 'virtualOutbound';
/** iptables capture: the listener every redirected inbound connection reaches, and its port (Istio's proxyInboundListenPort). */
export const VIRTUAL_INBOUND = 'virtualInbound';
export const VIRTUAL_INBOUND_PORT = 15006;
/** Inbound traffic to ports no service declares: to the original destination, from 127.0.0.6. */
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughCluster';

/** Sidecars: one outbound listener (not bound) and one route table per service port. */
export function outboundListenerName(port: number): string {
  return `0.0.0.0_${port}`;
}

export function outboundRouteName(port: number): string {
  return String(port);
}

export function inboundListenerName(ip: string, listenPort: number): string {
  return `inbound_${ip}_${listenPort}`;
}

/** Gateways: `http.8080` route tables, as Istio names them. */
export function gatewayRouteName(port: number): string {
  return `http.${port}`;
}

/** Proxyless gRPC: listeners and route tables are named by `host:port`. */
export function grpcListenerName(host: string, port: number): string {
  return `${host}:${port}`;
}

/** Istio's prefix for a Unix domain socket address (`unix:///path`, `unix://@abstract`). */
export const UNIX_PREFIX = 'unix://';
