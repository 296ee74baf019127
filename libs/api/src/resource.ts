import type { AuthorizationPolicySpec } from './kinds/authorization-policy.js';
import type { DestinationRuleSpec } from './kinds/destination-rule.js';
import type { GatewaySpec } from './kinds/gateway.js';
import type { PeerAuthenticationSpec } from './kinds/peer-authentication.js';
import type { RateLimitPolicySpec } from './kinds/rate-limit-policy.js';
import type { RequestAuthenticationSpec } from './kinds/request-authentication.js';
import type { ServiceEntrySpec } from './kinds/service-entry.js';
import type { SidecarSpec } from './kinds/sidecar.js';
import type { TelemetrySpec } from './kinds/telemetry.js';
import type { VirtualServiceSpec } from './kinds/virtual-service.js';
import type { WorkloadEntrySpec } from './kinds/workload-entry.js';

/** The spec type of each Istio kind Mizzen understands. */
export interface SpecByKind {
  VirtualService: VirtualServiceSpec;
  DestinationRule: DestinationRuleSpec;
  Gateway: GatewaySpec;
  ServiceEntry: ServiceEntrySpec;
  WorkloadEntry: WorkloadEntrySpec;
  Sidecar: SidecarSpec;
  PeerAuthentication: PeerAuthenticationSpec;
  AuthorizationPolicy: AuthorizationPolicySpec;
  RequestAuthentication: RequestAuthenticationSpec;
  Telemetry: TelemetrySpec;
  RateLimitPolicy: RateLimitPolicySpec;
}

export type Kind = keyof SpecByKind;

export type SpecFor<K extends Kind> = SpecByKind[K];

/** Kubernetes object metadata, as far as Mizzen keeps it. */
export interface ObjectMeta {
  name: string;
  /** Always set: `default` when the YAML omits it, as Kubernetes does. */
  namespace: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** RFC 3339; set by the store on create. Orders VirtualServices and DestinationRules like Istio. */
  creationTimestamp?: string;
  resourceVersion?: string;
  generation?: number;
}

/**
 * One Istio resource. `ConfigResource` (no argument) is the union over every
 * kind, so checking `r.kind` narrows `r.spec`.
 */
export type ConfigResource<K extends Kind = Kind> = K extends Kind
  ? {
      apiVersion: string;
      kind: K;
      metadata: ObjectMeta;
      spec: SpecFor<K>;
    }
  : never;

export type Group = 'networking.istio.io' | 'security.istio.io' | 'telemetry.istio.io' | 'policy.mizzen.io';

export interface KindInfo {
  kind: Kind;
  group: Group;
  /** Served versions, newest first. */
  versions: readonly string[];
  plural: string;
  shortNames: readonly string[];
}

const NETWORKING_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'] as const;
const SECURITY_VERSIONS = ['v1', 'v1beta1'] as const;
const TELEMETRY_VERSIONS = ['v1', 'v1alpha1'] as const;

/** Every kind with its API group, versions and kubectl names. */
export const KINDS: Readonly<Record<Kind, KindInfo>> = {
  VirtualService: networking('VirtualService', 'virtualservices', ['vs']),
  DestinationRule: networking('DestinationRule', 'destinationrules', ['dr']),
  Gateway: networking('Gateway', 'gateways', ['gw']),
  ServiceEntry: networking('ServiceEntry', 'serviceentries', ['se']),
  WorkloadEntry: networking('WorkloadEntry', 'workloadentries', ['we']),
  Sidecar: networking('Sidecar', 'sidecars', []),
  PeerAuthentication: security('PeerAuthentication', 'peerauthentications', ['pa']),
  AuthorizationPolicy: security('AuthorizationPolicy', 'authorizationpolicies', ['ap']),
  RequestAuthentication: security('RequestAuthentication', 'requestauthentications', ['ra']),
  Telemetry: {
    kind: 'Telemetry',
    group: 'telemetry.istio.io',
    versions: TELEMETRY_VERSIONS,
    plural: 'telemetries',
    shortNames: ['telemetry'],
  },
  // Mizzen's own kind: Istio leaves global rate limiting to EnvoyFilters and a separate service.
  RateLimitPolicy: {
    kind: 'RateLimitPolicy',
    group: 'policy.mizzen.io',
    versions: ['v1alpha1'],
    plural: 'ratelimitpolicies',
    shortNames: ['rlp'],
  },
};

function networking(kind: Kind, plural: string, shortNames: string[]): KindInfo {
  return { kind, group: 'networking.istio.io', versions: NETWORKING_VERSIONS, plural, shortNames };
}

function security(kind: Kind, plural: string, shortNames: string[]): KindInfo {
  return { kind, group: 'security.istio.io', versions: SECURITY_VERSIONS, plural, shortNames };
}

export const KIND_NAMES = Object.keys(KINDS) as Kind[];

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && Object.hasOwn(KINDS, value);
}

/** The `apiVersion` values a kind accepts, like `networking.istio.io/v1`. */
export function apiVersionsFor(kind: Kind): string[] {
  const info = KINDS[kind];
  return info.versions.map((v) => `${info.group}/${v}`);
}

/**
 * A kind from a kubectl-style name, case-insensitively: `VirtualService`,
 * `virtualservices`, `vs`, `virtualservice.networking.istio.io`,
 * `virtualservices.v1.networking.istio.io`. Undefined when unknown.
 */
export function resolveKind(name: string): Kind | undefined {
  const lower = name.trim().toLowerCase();
  const dot = lower.indexOf('.');
  const resource = dot < 0 ? lower : lower.slice(0, dot);
  const qualifier = dot < 0 ? undefined : lower.slice(dot + 1);
  for (const info of Object.values(KINDS)) {
    const names = [info.kind.toLowerCase(), info.plural, ...info.shortNames];
    if (!names.includes(resource)) continue;
    if (qualifier === undefined || qualifier === info.group) return info.kind;
    const v = qualifier.indexOf('.');
    if (v > 0 && info.versions.includes(qualifier.slice(0, v)) && qualifier.slice(v + 1) === info.group)
      return info.kind;
  }
  return undefined;
}

/** `Kind/namespace/name`: the identity of a resource across sources. */
export function configKey(r: { kind: string; metadata: { namespace: string; name: string } }): string {
  return `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}
