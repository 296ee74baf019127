import { hostsOverlap, splitServerHost } from '@mizzen/analysis';
import type { GatewaySpec, Server, ServerTLSSettings } from '@mizzen/api';

export { hostsOverlap, splitServerHost };

import type { ProxyInfo } from '../model/proxy.js';
import { meshTlsEnabled } from './mtls.js';
import type { GatewayResource, PushContext } from './push-context.js';

/**
 * How a Gateway server is served, as Istio's gateway builder decides:
 * plaintext HTTP routed by Host; HTTPS terminated and routed; TLS terminated
 * then proxied as TCP; TLS passed through by SNI (by VirtualService tls
 * routes, or — AUTO_PASSTHROUGH, the east-west gateway — to the cluster the
 * mesh SNI names); plain TCP.
 */
export type ServerKind =
  | 'http'
  | 'https'
  | 'tls-terminate'
  | 'tls-passthrough'
  | 'tls-auto-passthrough'
  | 'tcp';

/** What one listening port speaks: one plaintext HTTP connection manager, SNI-selected TLS chains, or one TCP proxy. */
export type PortFamily = 'http' | 'tls' | 'tcp';

export interface GatewayServer {
  gateway: GatewayResource;
  /** `namespace/name`, as VirtualServices' `gateways:` name it. */
  gatewayName: string;
  server: Server;
  /** `servers[i]` in the Gateway, for messages. */
  index: number;
  kind: ServerKind;
  /** The port the proxy listens on (the Service → container port map applied). */
  listenPort: number;
  /** For TLS kinds: the SNI names its filter chain matches (none: any name). */
  sniHosts: string[];
}

/** A server left closed, or one that overlaps another Gateway (Istio's analyzer IST0145), and why. */
export interface ServerNotice {
  gateway: string;
  server: string;
  port: number;
  listenPort: number;
  opened: boolean;
  message: string;
}

export interface GatewayPlan {
  servers: GatewayServer[];
  notices: ServerNotice[];
}

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);
const TCP_PROTOCOLS = new Set(['TCP', 'MONGO', 'REDIS', 'MYSQL']);
const TERMINATING = new Set(['SIMPLE', 'MUTUAL', 'OPTIONAL_MUTUAL', 'ISTIO_MUTUAL']);

function familyOf(kind: ServerKind): PortFamily {
  return kind === 'http' ? 'http' : kind === 'tcp' ? 'tcp' : 'tls';
}

/** The kind of a server, or why it cannot be served. */
function kindOf(server: Server): ServerKind | { problem: string } {
  const protocol = server.port.protocol.toUpperCase();
  const mode = server.tls?.mode ?? 'PASSTHROUGH';
  if (mode === 'AUTO_PASSTHROUGH' && server.tls)
    return protocol === 'TLS'
      ? 'tls-auto-passthrough'
      : {
          problem: `tls mode AUTO_PASSTHROUGH needs protocol TLS (the mesh's mTLS passed through), got ${protocol}`,
        };
  if (HTTP_PROTOCOLS.has(protocol)) {
    // Validation allows only httpsRedirect on a plaintext HTTP server; anything terminating makes it HTTPS.
    return server.tls && TERMINATING.has(mode) ? 'https' : 'http';
  }
  if (protocol === 'HTTPS') return TERMINATING.has(mode) ? 'https' : 'tls-passthrough';
  if (protocol === 'TLS') return TERMINATING.has(mode) ? 'tls-terminate' : 'tls-passthrough';
  if (TCP_PROTOCOLS.has(protocol)) return 'tcp';
  return { problem: `protocol ${protocol} is not served by gateways` };
}

/** The SNI names a TLS server's chain matches: its hosts, or none (any name) when one of them is `*`. */
function sniHostsOf(server: Server, gatewayNamespace: string): string[] {
  const hosts = server.hosts.map((h) => splitServerHost(h, gatewayNamespace).host);
  return hosts.includes('*') ? [] : [...new Set(hosts)].sort();
}

function serverLabel(s: { server: Server; index: number }): string {
  return s.server.name ?? s.server.port.name ?? `servers[${s.index}]`;
}

/**
 * The credentials a terminating server serves its certificates from
 * (credentialName, or Istio's credentialNames: an RSA and an ECDSA one); SDS
 * serves each as `kubernetes://NAME`. None: certificate files on the gateway.
 */
export function serverCredentials(tls: ServerTLSSettings | undefined): string[] {
  if (tls?.credentialName) return [tls.credentialName];
  return [...(tls?.credentialNames ?? [])];
}

/** Why a terminating server's certificates (and client CA) cannot be served, if they cannot. */
function tlsProblem(push: PushContext, proxy: ProxyInfo, tls: ServerTLSSettings): string | undefined {
  const mode = tls.mode ?? 'PASSTHROUGH';
  if (mode === 'ISTIO_MUTUAL') {
    return meshTlsEnabled(push, proxy)
      ? undefined
      : 'tls mode ISTIO_MUTUAL needs the gateway’s workload certificate (start it with --ca-address) and the mesh root';
  }
  const credentials = serverCredentials(tls);
  // Certificate files live on the gateway's filesystem: the gateway reads them, and keeps the server closed (saying why in its log) while it cannot.
  if (credentials.length === 0) return undefined;
  const found = credentials.map((c) => ({ name: c, lookup: push.credentials.resolve(proxy.namespace, c) }));
  for (const { lookup } of found) if ('problem' in lookup) return lookup.problem;
  if (mode !== 'MUTUAL' && mode !== 'OPTIONAL_MUTUAL') return undefined;
  // The client CA: caCertCredentialName's, else the first credential's; either may hold only a CA, or keep it in a `<name>-cacert` one.
  const ca = push.credentials.resolveCa(proxy.namespace, tls.caCertCredentialName ?? found[0]!.name);
  return 'problem' in ca ? `tls mode ${mode} needs a CA to verify clients: ${ca.problem}` : undefined;
}

/**
 * Decides which servers of the Gateways selecting this proxy are served, and
 * on which port: oldest Gateway first, each port speaking one family (HTTP,
 * TLS or TCP) as the first server on it decides; a TLS server whose SNI names
 * another already claimed on that port, a server whose certificate is missing
 * or unusable, and a protocol gateways do not serve are left closed with the
 * reason. Overlapping plaintext HTTP hosts from different Gateways are served
 * (routes merge, as in Istio) and flagged, as Istio's analyzer does.
 */
export function planGateway(push: PushContext, proxy: ProxyInfo): GatewayPlan {
  const servers: GatewayServer[] = [];
  const notices: ServerNotice[] = [];
  const families = new Map<number, { family: PortFamily; by: string }>();
  for (const gateway of push.gatewaysFor(proxy)) {
    const gatewayName = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
    for (const [index, server] of ((gateway.spec as GatewaySpec).servers ?? []).entries()) {
      const listenPort = proxy.gatewayPorts[server.port.number] ?? server.port.number;
      const label = serverLabel({ server, index });
      const where = `Gateway ${gatewayName} server ${label} (port ${server.port.number})`;
      const notice = (message: string, opened = false) =>
        notices.push({
          gateway: gatewayName,
          server: label,
          port: server.port.number,
          listenPort,
          opened,
          message,
        });
      const kind = kindOf(server);
      if (typeof kind !== 'string') {
        notice(`${where} not opened: ${kind.problem}`);
        continue;
      }
      const family = familyOf(kind);
      const claimed = families.get(listenPort);
      if (claimed && claimed.family !== family) {
        notice(
          `${where} not opened: port ${listenPort} already serves ${claimed.family.toUpperCase()} for ${claimed.by}; one port speaks one protocol`,
        );
        continue;
      }
      if (kind === 'https' || kind === 'tls-terminate') {
        const problem = server.tls ? tlsProblem(push, proxy, server.tls) : undefined;
        if (problem) {
          notice(`${where} not opened: ${problem}`);
          continue;
        }
      }
      const sniHosts = family === 'tls' ? sniHostsOf(server, gateway.metadata.namespace) : [];
      const candidate: GatewayServer = { gateway, gatewayName, server, index, kind, listenPort, sniHosts };
      const clash = conflictWith(candidate, servers);
      if (clash && family !== 'http') {
        notice(
          `${where} not opened: conflicts with Gateway ${clash.other.gatewayName} server ${serverLabel(clash.other)} on port ${server.port.number} for ${clash.host} (IST0145 ConflictingGateways)`,
        );
        continue;
      }
      if (clash) {
        notice(
          `${where} overlaps Gateway ${clash.other.gatewayName} server ${serverLabel(clash.other)} on port ${server.port.number} for host ${clash.host}; their routes are merged (IST0145 ConflictingGateways)`,
          true,
        );
      }
      if (!claimed) families.set(listenPort, { family, by: `Gateway ${gatewayName} server ${label}` });
      servers.push(candidate);
    }
  }
  return { servers, notices };
}

/** The earlier server (of another Gateway for HTTP; any for TLS and TCP) that claims the same port and host. */
function conflictWith(
  s: GatewayServer,
  earlier: readonly GatewayServer[],
): { other: GatewayServer; host: string } | undefined {
  for (const other of earlier) {
    if (other.listenPort !== s.listenPort) continue;
    if (s.kind === 'tcp') return { other, host: 'any host (TCP cannot tell hosts apart)' };
    if (s.kind === 'http') {
      if (other.gatewayName === s.gatewayName) continue;
      for (const a of s.server.hosts)
        for (const b of other.server.hosts) {
          const ha = splitServerHost(a, s.gateway.metadata.namespace).host;
          const hb = splitServerHost(b, other.gateway.metadata.namespace).host;
          if (ha === hb || (ha !== '*' && hb !== '*' && hostsOverlap(ha, hb))) return { other, host: ha };
        }
      continue;
    }
    // TLS: two chains may not match the same SNI name; "any name" is one name too.
    if (s.sniHosts.length === 0 && other.sniHosts.length === 0) return { other, host: 'any SNI name' };
    const same = s.sniHosts.find((h) => other.sniHosts.includes(h));
    if (same) return { other, host: same };
  }
  return undefined;
}
