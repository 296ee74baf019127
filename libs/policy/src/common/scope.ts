import type { ConfigResource, Kind, LabelSelector, PolicyTargetReference } from '@mizzen/api';
import type { PolicyIssue } from './errors.js';

/**
 * Which security policies apply to a workload, as Istio decides it
 * (pilot/pkg/model/policyattachment.go): policies from the workload's
 * namespace and from the root namespace; `selector` for ordinary workloads,
 * `targetRefs` for Gateway API gateways and waypoints.
 */

export const DEFAULT_ROOT_NAMESPACE = 'istio-system';
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
const DEPRECATED_GATEWAY_NAME_LABEL = 'istio.io/gateway-name';
export const WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';

/** A Service (registry Kubernetes) or ServiceEntry (registry External) the workload is part of. */
export interface WorkloadService {
  name: string;
  namespace: string;
  registry?: 'Kubernetes' | 'External';
}

/** The proxy a policy set is computed for. */
export interface Workload {
  namespace: string;
  labels?: Readonly<Record<string, string>>;
  /** A waypoint proxy: never selected by labels, attached to by Service/ServiceEntry/GatewayClass targetRefs. */
  isWaypoint?: boolean;
  /** Services this workload backs (targetRef kind Service / ServiceEntry, waypoints only, as Istio). */
  services?: readonly WorkloadService[];
}

export interface ScopeOptions {
  /** Istio's root namespace: its policies apply mesh-wide. Default `istio-system`. */
  rootNamespace?: string;
  /**
   * Gateway API gateways with a policy that has no targetRefs fall back to its selector
   * (Istio's ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY, default true).
   */
  selectorBasedGatewayPolicy?: boolean;
}

export interface TargetablePolicySpec {
  selector?: LabelSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
}

/** `AuthorizationPolicy ns/name`. */
export function resourceId(r: { kind: string; metadata: { namespace: string; name: string } }): string {
  return `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`;
}

/** Istio's creation order: oldest first, then by name, then namespace (a missing timestamp is oldest). */
export function byCreationOrder(
  a: { metadata: { name: string; namespace: string; creationTimestamp?: string } },
  b: { metadata: { name: string; namespace: string; creationTimestamp?: string } },
): number {
  const ta = a.metadata.creationTimestamp ? Date.parse(a.metadata.creationTimestamp) : 0;
  const tb = b.metadata.creationTimestamp ? Date.parse(b.metadata.creationTimestamp) : 0;
  const na = Number.isNaN(ta) ? 0 : ta;
  const nb = Number.isNaN(tb) ? 0 : tb;
  if (na !== nb) return na < nb ? -1 : 1;
  if (a.metadata.name !== b.metadata.name) return a.metadata.name < b.metadata.name ? -1 : 1;
  if (a.metadata.namespace !== b.metadata.namespace)
    return a.metadata.namespace < b.metadata.namespace ? -1 : 1;
  return 0;
}

/** targetRefs, or the legacy single targetRef. */
export function targetRefsOf(spec: TargetablePolicySpec): PolicyTargetReference[] {
  if (spec.targetRefs?.length) return spec.targetRefs;
  return spec.targetRef ? [spec.targetRef] : [];
}

/** Label selector match: every selector label present with the same value (no selector matches all). */
export function selectorMatches(
  selector: LabelSelector | undefined,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const want = selector?.matchLabels ?? {};
  return Object.entries(want).every(([k, v]) => labels?.[k] === v);
}

function canonicalGroup(group: string | undefined): string {
  return group === undefined || group === 'core' ? '' : group;
}

function matchesGroupKind(ref: PolicyTargetReference, group: string, kind: string): boolean {
  return canonicalGroup(ref.group) === group && ref.kind === kind;
}

function gatewayNameOf(labels: Readonly<Record<string, string>> | undefined): string | undefined {
  return labels?.[GATEWAY_NAME_LABEL] ?? labels?.[DEPRECATED_GATEWAY_NAME_LABEL];
}

/** Istio's WorkloadPolicyMatcher.ShouldAttachPolicy. */
export function shouldAttachPolicy(
  policyNamespace: string,
  spec: TargetablePolicySpec,
  workload: Workload,
  opts: ScopeOptions = {},
): boolean {
  const rootNamespace = opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const gatewayName = gatewayNameOf(workload.labels);
  const isGatewayApi = gatewayName !== undefined || workload.isWaypoint === true;
  const refs = targetRefsOf(spec);

  // Ordinary workloads (sidecars, Istio gateways): selector only; a targetRef'd policy never attaches.
  if (!isGatewayApi) return refs.length === 0 && selectorMatches(spec.selector, workload.labels);

  if (refs.length === 0) {
    if (workload.isWaypoint || opts.selectorBasedGatewayPolicy === false) return false;
    return selectorMatches(spec.selector, workload.labels);
  }

  for (const ref of refs) {
    if (workload.isWaypoint && matchesGroupKind(ref, '', 'Service')) {
      const hit = (workload.services ?? []).some(
        (s) =>
          s.name === ref.name &&
          s.namespace === policyNamespace &&
          (s.registry ?? 'Kubernetes') === 'Kubernetes',
      );
      if (hit) return true;
    }
    if (workload.isWaypoint && matchesGroupKind(ref, 'networking.istio.io', 'ServiceEntry')) {
      const hit = (workload.services ?? []).some(
        (s) => s.name === ref.name && s.namespace === policyNamespace && s.registry === 'External',
      );
      if (hit) return true;
    }
    if (
      policyNamespace === rootNamespace &&
      workload.isWaypoint &&
      matchesGroupKind(ref, 'gateway.networking.k8s.io', 'GatewayClass') &&
      ref.name === WAYPOINT_GATEWAY_CLASS
    ) {
      return true;
    }
    if (workload.namespace !== policyNamespace) continue;
    if (ref.namespace && ref.namespace !== workload.namespace) continue;
    if (matchesGroupKind(ref, 'gateway.networking.k8s.io', 'Gateway') && ref.name === gatewayName)
      return true;
  }
  return false;
}

/** Problems that make a policy's attachment ambiguous; such a policy is skipped. */
export function targetingProblems(r: ConfigResource, spec: TargetablePolicySpec): PolicyIssue[] {
  const set = [
    spec.selector && 'selector',
    spec.targetRef && 'targetRef',
    spec.targetRefs?.length && 'targetRefs',
  ].filter((s): s is string => typeof s === 'string');
  if (set.length <= 1) return [];
  return [
    {
      severity: 'error',
      resource: resourceId(r),
      field: 'spec',
      message: `only one of selector, targetRef or targetRefs may be set, found ${set.join(' and ')}; the policy is ignored`,
    },
  ];
}

/** Resources of `kind` from the workload's namespace and the root namespace, in Istio's creation order. */
export function resourcesInScope<K extends Kind>(
  resources: readonly ConfigResource[],
  kind: K,
  workload: Workload,
  opts: ScopeOptions = {},
): ConfigResource<K>[] {
  const rootNamespace = opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  return resources
    .filter(
      (r): r is ConfigResource<K> =>
        r.kind === kind &&
        (r.metadata.namespace === workload.namespace || r.metadata.namespace === rootNamespace),
    )
    .sort(byCreationOrder);
}

/** Go's strconv.ParseBool; undefined when the text is not a boolean. */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}
