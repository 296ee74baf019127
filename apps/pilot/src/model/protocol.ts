/**
 * Application protocol of a service port, chosen as Istio does: explicit
 * `protocol`/`appProtocol`, else the port name's prefix (`http-web`,
 * `grpc`, `tcp-db`), else unknown (sniffed by the proxy).
 */
export type Protocol =
  | 'HTTP'
  | 'HTTP2'
  | 'HTTPS'
  | 'GRPC'
  | 'GRPC-WEB'
  | 'TCP'
  | 'TLS'
  | 'MONGO'
  | 'REDIS'
  | 'MYSQL'
  | 'UNKNOWN';

const KNOWN: Record<string, Protocol> = {
  http: 'HTTP',
  http2: 'HTTP2',
  https: 'HTTPS',
  grpc: 'GRPC',
  'grpc-web': 'GRPC-WEB',
  tcp: 'TCP',
  tls: 'TLS',
  mongo: 'MONGO',
  redis: 'REDIS',
  mysql: 'MYSQL',
  h2c: 'HTTP2',
};

export function parseProtocol(value: string | undefined): Protocol | undefined {
  if (!value) return undefined;
  return KNOWN[value.toLowerCase()];
}

export function protocolFromPortName(name: string | undefined): Protocol {
  if (!name) return 'UNKNOWN';
  const lower = name.toLowerCase();
  const exact = KNOWN[lower];
  if (exact) return exact;
  // grpc-web must win over grpc: compare longest prefixes first.
  const prefixes = Object.keys(KNOWN).sort((a, b) => b.length - a.length);
  for (const p of prefixes) if (lower.startsWith(`${p}-`)) return KNOWN[p]!;
  return 'UNKNOWN';
}

export function resolveProtocol(explicit: string | undefined, portName: string | undefined): Protocol {
  return parseProtocol(explicit) ?? protocolFromPortName(portName);
}

/** Protocols routed by an HTTP connection manager (L7). */
export function isHttpProtocol(p: Protocol): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-WEB';
}
