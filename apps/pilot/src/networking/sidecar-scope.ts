import { destinations, formatMessage, msg, originOf } from '@mizzen/analysis';
import type {
  CaptureMode,
  ConfigResource,
  ConnectionPoolSettings,
  Destination,
  IstioIngressListener,
  ServerTLSSettings,
  SidecarPort,
  SidecarSpec,
  VirtualServiceSpec,
} from '@mizzen/api';
import { UNIX_PREFIX } from '../model/names.js';
import { type Protocol, resolveProtocol } from '../model/protocol.js';
import { bindAddress, type ProxyInfo } from '../model/proxy.js';

import { labelsMatch, type Service } from '../registry/model.js';

export type SidecarResource = ConfigResource<'Sidecar'>;

/** One `namespace/host` entry of a Sidecar egress listener, `.` already replaced by the workload's namespace. */
export interface ImportedHost {
  /** A namespace, `*` (any) or `~` (none). */
  namespace: string;
  /** `*`, `*.suffix` or an FQDN. */
  host: string;
}

/** One egress listener of a proxy's scope: what it imports and, when it names a port, where it listens. */
export interface EgressListenerScope {
  port?: SidecarPort & { number: number };
  bind?: string;
  /** A `bind: unix://…` listener (port 0): the socket's path, `@name` in the abstract namespace. */
  unixSocket?: string;
  captureMode?: CaptureMode;
  hosts: ImportedHost[];
  /** The services it imports (only those exported to the workload's namespace). */
  services: Service[];
  /** The mesh VirtualServices it imports (visible ones whose namespace and hosts an entry names). */
  virtualServices: readonly ConfigResource<'VirtualService'>[];
}

/**
 * What a sidecar may see and how it treats the rest (Istio's SidecarScope):
 * from the Sidecar resource that applies to the workload, or everything
 * visible when none does.
 */
export interface SidecarScope {
  /** The Sidecar resource in force; undefined is Istio's implicit default (`*\/*`, mesh policy). */
  sidecar?: SidecarResource;
  egress: EgressListenerScope[];
  /** Every service the proxy gets clusters for: those its listeners import plus their VirtualServices' destinations. */
  services: Service[];
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Where ALLOW_ANY sends traffic for unknown destinations instead of passing it through. */
  egressProxy?: Destination;
  /** The Sidecar's ingress listeners (empty: inbound follows the workload's ports). */
  ingress: IstioIngressListener[];
  inboundConnectionPool?: ConnectionPoolSettings;
}

/**
 * Istio's host.Name.Matches: do two possibly wildcarded hosts overlap?
 * (`*` matches everything, `*.a.com` matches `b.a.com`.)
 */
export function hostsIntersect(a: string, b: string): boolean {
  const wa = a.startsWith('*');
  const wb = b.startsWith('*');
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (wa && wb)
    return x.length < y.length ? y.slice(1).endsWith(x.slice(1)) : x.slice(1).endsWith(y.slice(1));
  if (wa) return y.endsWith(x.slice(1));
  if (wb) return x.endsWith(y.slice(1));
  return x === y;
}

function hasSelector(sc: SidecarResource): boolean {
  return Object.keys((sc.spec as SidecarSpec).workloadSelector?.labels ?? {}).length > 0;
}

/**
 * The Sidecar that applies to a workload, with Istio's precedence: one in
 * its namespace whose workloadSelector picks it, else its namespace's
 * Sidecar without a selector, else the root namespace's Sidecar without a
 * selector (the mesh-wide default). Oldest first at every step.
 */
export function selectSidecar(
  sidecars: readonly SidecarResource[],
  proxy: Pick<ProxyInfo, 'namespace' | 'labels' | 'workloadName'>,
  rootNamespace: string,
  warn: (message: string) => void,
): SidecarResource | undefined {
  const inNamespace = sidecars.filter((s) => s.metadata.namespace === proxy.namespace);
  const selecting = inNamespace.filter(
    (s) =>
      hasSelector(s) &&
      labelsMatch((s.spec as SidecarSpec).workloadSelector?.labels as Record<string, string>, proxy.labels),
  );
  // Istio's IST0110, for this workload; the oldest Sidecar applies meanwhile.
  if (selecting.length > 1) {
    for (const s of selecting)
      warn(
        formatMessage(
          msg.conflictingSidecarWorkloadSelectors(
            originOf(s),
            selecting.map(name),
            proxy.namespace,
            proxy.workloadName,
          ),
        ),
      );
  }
  if (selecting[0]) return selecting[0];
  const namespaceWide = inNamespace.filter((s) => !hasSelector(s));
  if (namespaceWide[0]) return namespaceWide[0];
  return sidecars.find((s) => s.metadata.namespace === rootNamespace && !hasSelector(s));
}

function name(r: ConfigResource): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}

/** `ns/host` entries as Istio reads them: `.` is the workload's own namespace. */
export function parseImportedHosts(hosts: readonly string[], workloadNamespace: string): ImportedHost[] {
  return hosts.map((h) => {
    const slash = h.indexOf('/');
    const ns = slash < 0 ? '*' : h.slice(0, slash);
    const host = slash < 0 ? h : h.slice(slash + 1);
    return { namespace: ns === '.' ? workloadNamespace : ns, host };
  });
}

/** Does an egress listener import a service (Istio's selectServices: by the service's namespace and hostname)? */
export function importsService(hosts: readonly ImportedHost[], service: Service): boolean {
  return hosts.some(
    (h) =>
      (h.namespace === '*' || h.namespace === service.namespace) && hostsIntersect(h.host, service.hostname),
  );
}

/**
 * Does an egress listener import a VirtualService (Istio's
 * SelectVirtualServices: by the VirtualService's namespace, and one of its
 * hosts, as FQDNs, matching)?
 */
export function importsVirtualService(
  hosts: readonly ImportedHost[],
  vsNamespace: string,
  vsHosts: readonly string[],
): boolean {
  return hosts.some(
    (h) =>
      (h.namespace === '*' || h.namespace === vsNamespace) && vsHosts.some((v) => hostsIntersect(h.host, v)),
  );
}

/** Inputs the scope is computed from, as the push context provides them for one proxy. */
export interface ScopeInputs {
  /** Services exported to the workload's namespace. */
  services: readonly Service[];
  /** Mesh VirtualServices exported to the workload's namespace (delegates already merged). */
  virtualServices: readonly ConfigResource<'VirtualService'>[];
  /** A VirtualService's hosts as FQDNs. */
  vsHosts: (vs: ConfigResource<'VirtualService'>) => string[];
  /** A VirtualService's route, mirror and delegate destinations, as FQDNs. */
  vsDestinations: (vs: ConfigResource<'VirtualService'>) => string[];
  meshPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

/** A proxy's scope under a Sidecar resource (or Istio's implicit default without one). */
export function buildSidecarScope(
  sidecar: SidecarResource | undefined,
  proxy: Pick<ProxyInfo, 'namespace'>,
  inputs: ScopeInputs,
): SidecarScope {
  const spec = (sidecar?.spec ?? {}) as SidecarSpec;
  const listeners = spec.egress?.length ? spec.egress : [{ hosts: ['*/*'] }];
  const egress: EgressListenerScope[] = listeners.map((l) => {
    const hosts = parseImportedHosts(l.hosts, proxy.namespace);
    const unix = l.port && !l.port.number && l.bind?.startsWith(UNIX_PREFIX);
    return {
      ...(l.port ? { port: { ...l.port, number: l.port.number ?? 0 } } : {}),
      ...(l.bind !== undefined ? { bind: l.bind } : {}),
      ...(unix ? { unixSocket: l.bind!.slice(UNIX_PREFIX.length) } : {}),
      ...(l.captureMode !== undefined ? { captureMode: l.captureMode } : {}),
      hosts,
      services: inputs.services.filter((s) => importsService(hosts, s)),
      virtualServices: inputs.virtualServices.filter((vs) =>
        importsVirtualService(hosts, vs.metadata.namespace, inputs.vsHosts(vs)),
      ),
    };
  });
  // Clusters: what the listeners import, plus whatever their VirtualServices route to (no listener for those).
  const byHost = new Map<string, Service>();
  for (const l of egress) for (const s of l.services) byHost.set(s.hostname, s);
  const visible = new Map(inputs.services.map((s) => [s.hostname, s]));
  const policy = spec.outboundTrafficPolicy;
  const extra = [
    ...egress.flatMap((l) => l.virtualServices.flatMap((vs) => inputs.vsDestinations(vs))),
    ...(policy?.egressProxy ? [policy.egressProxy.host] : []),
  ];
  for (const host of extra) {
    const s = visible.get(host);
    if (s && !byHost.has(host)) byHost.set(host, s);
  }
  const services = [...byHost.values()].sort((a, b) =>
    a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0,
  );
  const mode = policy?.mode ?? inputs.meshPolicy;
  return {
    ...(sidecar ? { sidecar } : {}),
    egress,
    services,
    outboundTrafficPolicy: mode,
    ...(mode === 'ALLOW_ANY' && policy?.egressProxy ? { egressProxy: policy.egressProxy } : {}),
    ingress: spec.ingress ?? [],
    ...(spec.inboundConnectionPool ? { inboundConnectionPool: spec.inboundConnectionPool } : {}),
  };
}

/** Does the proxy's VirtualService lookup consider this one (is it imported by some egress listener)? */
export function scopeImports(scope: SidecarScope, vs: ConfigResource<'VirtualService'>): boolean {
  return scope.egress.some((l) => l.virtualServices.includes(vs));
}

export function vsDestinationHosts(spec: VirtualServiceSpec): string[] {
  return destinations(spec).map((d) => d.host);
}

/** One inbound port of a sidecar: where it listens, what it forwards to, and how. */
export interface InboundPort {
  /** The workload port traffic arrives for: the inbound cluster's name, what policies' `ports` name. */
  port: number;
  /** The service port (the inbound virtual host's name). */
  servicePort: number;
  /** Where the proxy listens (local mode: its own port per workload port). */
  address: string;
  listenPort: number;
  protocol: Protocol;
  /** Where the workload takes the traffic (Sidecar ingress `defaultEndpoint`): an address, or a Unix socket. */
  endpoint: InboundEndpoint;
  /** TLS the sidecar terminates for callers from outside the mesh (Sidecar ingress `tls`), instead of mesh mTLS. */
  tls?: ServerTLSSettings;
  connectionPool?: ConnectionPoolSettings;
  /** A Sidecar ingress listener with `captureMode: NONE`: a bound listener even when iptables captures the rest. */
  bind?: boolean;
}

/**
 * A sidecar's inbound ports. Without Sidecar ingress listeners, one per
 * workload port, delivered to 127.0.0.1 on the app's port. With them
 * (Istio's rule), exactly the listed ones: `port` is the port traffic
 * arrives on (a workload port with that target or service port keeps its
 * local-mode listener; any other port is listened on as is), delivered to
 * `defaultEndpoint` (`127.0.0.1:P`/`[::1]:P` for loopback, `0.0.0.0:P`/`[::]:P`
 * for the instance IP), terminating `tls` when set.
 */
export function inboundPorts(proxy: ProxyInfo, scope: SidecarScope | undefined): InboundPort[] {
  const ingress = scope?.ingress ?? [];
  if (ingress.length === 0) {
    return proxy.ports.map((p) => ({
      port: p.targetPort,
      servicePort: p.port,
      address: bindAddress(proxy),
      listenPort: p.listenPort,
      protocol: p.protocol,
      endpoint: { address: '127.0.0.1', port: p.targetPort },
      ...(scope?.inboundConnectionPool ? { connectionPool: scope.inboundConnectionPool } : {}),
    }));
  }
  const out: InboundPort[] = [];
  for (const l of ingress) {
    const n = l.port.number ?? 0;
    const workload = proxy.ports.find((p) => p.targetPort === n) ?? proxy.ports.find((p) => p.port === n);
    const endpoint = ingressEndpoint(l.defaultEndpoint, proxy, workload?.targetPort ?? n);
    const pool = l.connectionPool ?? scope?.inboundConnectionPool;
    out.push({
      port: n,
      servicePort: workload?.port ?? n,
      address: l.bind ?? bindAddress(proxy),
      listenPort: workload?.listenPort ?? n,
      protocol: l.port.protocol
        ? resolveProtocol(l.port.protocol, l.port.name)
        : (workload?.protocol ?? resolveProtocol(undefined, l.port.name)),
      endpoint,
      ...(l.tls ? { tls: l.tls } : {}),
      ...(pool ? { connectionPool: pool } : {}),
      ...(l.captureMode === 'NONE' ? { bind: true } : {}),
    });
  }
  return out;
}

/** Where an inbound port delivers: an IP and port, or (`pipe`) a Unix socket's path and port 0. */
export interface InboundEndpoint {
  address: string;
  port: number;
  pipe?: boolean;
}

/** `defaultEndpoint` as an endpoint: loopback, the instance IP, or a Unix socket (`unix:///path`, `unix://@name`). */
function ingressEndpoint(value: string | undefined, proxy: ProxyInfo, fallbackPort: number): InboundEndpoint {
  if (value === undefined || value === '') return { address: '127.0.0.1', port: fallbackPort };
  if (value.startsWith(UNIX_PREFIX)) return { address: value.slice(UNIX_PREFIX.length), port: 0, pipe: true };
  const m = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(value);
  const host = m?.[1] ?? '127.0.0.1';
  const port = Number(m?.[2] ?? fallbackPort);
  if (host === '0.0.0.0' || host === '[::]') return { address: proxy.ip, port };
  if (host === '[::1]') return { address: '::1', port };
  return { address: '127.0.0.1', port };
}
