import { analyze, formatMessage } from '@mizzen/analysis';
import type { ConfigResource, DestinationRuleSpec, GatewaySpec, VirtualServiceSpec } from '@mizzen/api';
import { type CredentialSource, NO_CREDENTIALS } from '../credentials/source.js';
import { byCreation } from '../model/ordering.js';
import type { ProxyInfo } from '../model/proxy.js';
import {
  hostMatches,
  isVisible,
  labelsMatch,
  type Registry,
  resolveShortName,
  type Service,
} from '../registry/model.js';
import { mergeDelegates } from './delegates.js';
import type { MeshConfig } from './mesh-config.js';
import {
  buildSidecarScope,
  type SidecarResource,
  type SidecarScope,
  selectSidecar,
  vsDestinationHosts,
} from './sidecar-scope.js';

export type VirtualServiceResource = ConfigResource<'VirtualService'>;
export type DestinationRuleResource = ConfigResource<'DestinationRule'>;
export type GatewayResource = ConfigResource<'Gateway'>;

/** The name a VirtualService uses for sidecars in its `gateways` list. */
export const MESH_GATEWAY = 'mesh';

/** `gw` or `ns/gw` in a VirtualService's gateways list, resolved to `ns/gw`. */
export function resolveGatewayRef(ref: string, vsNamespace: string): string {
  if (ref === MESH_GATEWAY) return ref;
  return ref.includes('/') ? ref : `${vsNamespace}/${ref}`;
}

/** The last config analyzed and what the analyzers said, in istioctl's words. */
const analyzed = new WeakMap<readonly ConfigResource[], { mesh: MeshConfig; messages: readonly string[] }>();

/**
 * What the analyzers say about a config. They read the config and mesh
 * settings alone, so a push for a registry change (endpoints coming and
 * going, the common case) reuses the messages of the config in force: pilot
 * replaces its resource list whenever the config changes.
 */
export function analyzerMessages(resources: readonly ConfigResource[], mesh: MeshConfig): readonly string[] {
  const cached = analyzed.get(resources);
  if (cached?.mesh === mesh) return cached.messages;
  const messages = analyze({ resources, settings: mesh }).map(formatMessage);
  analyzed.set(resources, { mesh, messages });
  return messages;
}

/**
 * Everything translation needs, computed once per config or registry change
 * and then shared read-only by every proxy's build (Istio's PushContext).
 */
export class PushContext {
  /** VirtualServices with hosts, oldest first, delegates merged into their roots (delegates themselves left out). */
  readonly virtualServices: readonly VirtualServiceResource[];
  readonly destinationRules: readonly DestinationRuleResource[];
  readonly gateways: readonly GatewayResource[];
  readonly sidecars: readonly SidecarResource[];
  /** What translation skipped or widened for some proxy (a CUSTOM policy naming no provider…), for pilot's log. */
  readonly warnings = new Set<string>();
  /** Sidecar scopes by workload namespace and labels: computed once per push, shared by every proxy alike. */
  private readonly scopes = new Map<string, { scope: SidecarScope; imported: Set<VirtualServiceResource> }>();

  constructor(
    readonly version: number,
    readonly resources: readonly ConfigResource[],
    readonly registry: Registry,
    readonly mesh: MeshConfig,
    /** The mesh root bundle (PEM) proxies must trust, once pilot has it. */
    readonly rootCert?: string,
    /** Where `credentialName`s are found (Kubernetes Secrets, or the local credential store). */
    readonly credentials: CredentialSource = NO_CREDENTIALS,
  ) {
    this.virtualServices = mergeDelegates(
      resources.filter((r): r is VirtualServiceResource => r.kind === 'VirtualService').sort(byCreation),
      {
        domainSuffix: mesh.domainSuffix,
        defaultExportTo: mesh.defaultVirtualServiceExportTo ?? ['*'],
        warn: (w) => this.warnings.add(w),
      },
    );
    this.destinationRules = resources
      .filter((r): r is DestinationRuleResource => r.kind === 'DestinationRule')
      .sort(byCreation);
    this.gateways = resources.filter((r): r is GatewayResource => r.kind === 'Gateway').sort(byCreation);
    this.sidecars = resources.filter((r): r is SidecarResource => r.kind === 'Sidecar').sort(byCreation);
    // What Istio's analyzers say about the config (a subset no rule defines, hosts two claim for sidecars,
    // several namespace-wide Sidecars…), in istioctl's words: the same module `mizzen analyze` runs.
    for (const m of analyzerMessages(resources, mesh)) this.warnings.add(m);
  }

  /** exportTo of a VirtualService, DestinationRule or service, the mesh default when it sets none. */
  exportTo(kind: 'VirtualService' | 'DestinationRule' | 'Service', list: readonly string[] | undefined) {
    if (list?.length) return list;
    const fallback =
      kind === 'VirtualService'
        ? this.mesh.defaultVirtualServiceExportTo
        : kind === 'DestinationRule'
          ? this.mesh.defaultDestinationRuleExportTo
          : this.mesh.defaultServiceExportTo;
    return fallback ?? ['*'];
  }

  /** Services exported to a namespace, sorted by hostname for stable output. */
  visibleServices(namespace: string): Service[] {
    return this.registry
      .services()
      .filter((s) => isVisible(this.exportTo('Service', s.exportTo), s.namespace, namespace))
      .sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
  }

  /**
   * Services this proxy gets clusters for, sorted by hostname: those exported
   * to its namespace, narrowed for sidecars by the Sidecar resource in force.
   */
  servicesFor(proxy: ProxyInfo): Service[] {
    if (proxy.type === 'router') return this.visibleServices(proxy.namespace);
    return this.sidecarScope(proxy).services;
  }

  /** Is a VirtualService exported to a namespace? */
  vsVisible(vs: VirtualServiceResource, namespace: string): boolean {
    const spec = vs.spec as VirtualServiceSpec;
    return isVisible(this.exportTo('VirtualService', spec.exportTo), vs.metadata.namespace, namespace);
  }

  /**
   * What a sidecar sees (Istio's SidecarScope): the Sidecar resource that
   * applies to it (by workloadSelector, else its namespace's, else the root
   * namespace's), the services and VirtualServices each egress listener
   * imports, and its outbound traffic policy.
   */
  sidecarScope(proxy: ProxyInfo): SidecarScope {
    return this.scopeEntry(proxy).scope;
  }

  private scopeEntry(proxy: ProxyInfo) {
    const labels = Object.entries(proxy.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const key = `${proxy.namespace}\n${JSON.stringify(labels)}`;
    let entry = this.scopes.get(key);
    if (!entry) {
      const sidecar = selectSidecar(this.sidecars, proxy, this.mesh.rootNamespace, (w) =>
        this.warnings.add(w),
      );
      const scope = buildSidecarScope(sidecar, proxy, {
        services: this.visibleServices(proxy.namespace),
        virtualServices: this.virtualServices.filter(
          (vs) => this.vsGateways(vs).includes(MESH_GATEWAY) && this.vsVisible(vs, proxy.namespace),
        ),
        vsHosts: (vs) => this.vsHosts(vs),
        vsDestinations: (vs) =>
          vsDestinationHosts(vs.spec as VirtualServiceSpec).map((h) =>
            resolveShortName(h, vs.metadata.namespace, this.mesh.domainSuffix),
          ),
        meshPolicy: this.mesh.outboundTrafficPolicy,
      });
      entry = { scope, imported: new Set(scope.egress.flatMap((l) => l.virtualServices)) };
      this.scopes.set(key, entry);
    }
    return entry;
  }

  /** VirtualService hosts resolved to FQDNs (short names are relative to the VirtualService's namespace). */
  vsHosts(vs: VirtualServiceResource): string[] {
    return ((vs.spec as VirtualServiceSpec).hosts ?? []).map((h) =>
      resolveShortName(h, vs.metadata.namespace, this.mesh.domainSuffix),
    );
  }

  /** The gateways (`ns/name` or `mesh`) a VirtualService applies to. */
  vsGateways(vs: VirtualServiceResource): string[] {
    const gws = (vs.spec as VirtualServiceSpec).gateways ?? [];
    if (gws.length === 0) return [MESH_GATEWAY];
    return gws.map((g) => resolveGatewayRef(g, vs.metadata.namespace));
  }

  /**
   * The VirtualService that routes `hostname` for a proxy bound to `gateway`:
   * an exact host beats a wildcard, older beats newer (Istio's rule).
   */
  virtualServiceFor(
    proxy: ProxyInfo,
    hostname: string,
    gateway = MESH_GATEWAY,
  ): VirtualServiceResource | undefined {
    let wildcard: VirtualServiceResource | undefined;
    // A sidecar sees only the VirtualServices its Sidecar's egress hosts import.
    const imported =
      gateway === MESH_GATEWAY && proxy.type === 'sidecar' ? this.scopeEntry(proxy).imported : undefined;
    for (const vs of this.virtualServices) {
      if (!this.vsVisible(vs, proxy.namespace)) continue;
      if (imported && !imported.has(vs)) continue;
      if (!this.vsGateways(vs).includes(gateway)) continue;
      const hosts = this.vsHosts(vs);
      if (hosts.includes(hostname)) return vs;
      if (!wildcard && hosts.some((h) => h.includes('*') && hostMatches(h, hostname))) wildcard = vs;
    }
    return wildcard;
  }

  /** VirtualServices bound to a gateway (`ns/name`), oldest first. */
  virtualServicesForGateway(gateway: string): VirtualServiceResource[] {
    return this.virtualServices.filter((vs) => this.vsGateways(vs).includes(gateway));
  }

  /**
   * The DestinationRule for a host as seen from a proxy: its own namespace
   * first, then the service's, then the root namespace; exact host before
   * wildcard.
   */
  destinationRuleFor(proxy: ProxyInfo, service: Service): DestinationRuleResource | undefined {
    const order = [proxy.namespace, service.namespace, this.mesh.rootNamespace];
    const candidates = this.destinationRules.filter((dr) => {
      const spec = dr.spec as DestinationRuleSpec;
      if (!isVisible(this.exportTo('DestinationRule', spec.exportTo), dr.metadata.namespace, proxy.namespace))
        return false;
      const host = resolveShortName(spec.host, dr.metadata.namespace, this.mesh.domainSuffix);
      return hostMatches(host, service.hostname);
    });
    for (const ns of order) {
      const inNs = candidates.filter((dr) => dr.metadata.namespace === ns);
      const exact = inNs.find(
        (dr) =>
          resolveShortName((dr.spec as DestinationRuleSpec).host, ns, this.mesh.domainSuffix) ===
          service.hostname,
      );
      if (exact) return exact;
      if (inNs[0]) return inNs[0];
    }
    return undefined;
  }

  /** Gateways whose selector picks this proxy (by labels). */
  gatewaysFor(proxy: ProxyInfo): GatewayResource[] {
    return this.gateways.filter((gw) => {
      const selector = (gw.spec as GatewaySpec).selector as Record<string, string> | undefined;
      return (
        selector !== undefined && Object.keys(selector).length > 0 && labelsMatch(selector, proxy.labels)
      );
    });
  }
}
