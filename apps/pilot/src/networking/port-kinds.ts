import { isHttpProtocol, type Protocol } from '../model/protocol.js';

export type PortKind = 'http' | 'sniff' | 'tls' | 'tcp';

/** How a port's protocol is served: routed HTTP, sniffed (HTTP or TCP by the first bytes), TLS by SNI, or TCP. */
export function kindOf(protocol: Protocol): PortKind {
  if (isHttpProtocol(protocol)) return 'http';
  if (protocol === 'UNKNOWN') return 'sniff';
  if (protocol === 'TLS' || protocol === 'HTTPS') return 'tls';
  return 'tcp';
}

/** Which kind wins when services of several kinds share a port. */
export const KIND_PRECEDENCE: PortKind[] = ['http', 'sniff', 'tls', 'tcp'];

const HTTP_INSPECTOR_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';

export const HTTP_INSPECTOR = {
  name: 'envoy.filters.listener.http_inspector',
  typed_config: { '@type': HTTP_INSPECTOR_TYPE },
};

/** Istio's listener filters for a port whose protocol is decided by the first bytes. */
export const SNIFFING_FILTERS = [HTTP_INSPECTOR];

/** The filter chain match of a sniffed port's HTTP chain. */
export const HTTP_ALPN = { application_protocols: ['http/1.1', 'h2c'] };
