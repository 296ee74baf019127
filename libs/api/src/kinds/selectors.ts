import type { Checker } from '../validation/checker.js';
import { checkSelectorNotEmpty } from '../validation/common.js';
import { labels, obj, str } from '../validation/schema.js';

/** istio.type.v1beta1.WorkloadSelector: picks workloads by labels (security policies, DestinationRule). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
}

/** A Kubernetes resource a policy attaches to (Service, ServiceEntry, or a Gateway API Gateway). */
export interface PolicyTargetReference {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export const labelSelectorSchema = () => obj({ matchLabels: labels().optional() });

export const targetRefSchema = () =>
  obj({ group: str().optional(), kind: str(), name: str(), namespace: str().optional() });

const ALLOWED_TARGETS = [
  { group: '', kind: 'Service' },
  { group: 'networking.istio.io', kind: 'ServiceEntry' },
  { group: 'gateway.networking.k8s.io', kind: 'Gateway' },
];

function checkTargetRef(ref: PolicyTargetReference, at: Checker): void {
  if (ref.name === '') at.at('name').error('must not be empty');
  if (ref.namespace !== undefined && ref.namespace !== '') {
    at.at('namespace').error('must not be set: a policy can only target resources in its own namespace');
  }
  const group = ref.group === 'core' ? '' : (ref.group ?? '');
  if (!ALLOWED_TARGETS.some((t) => t.group === group && t.kind === ref.kind)) {
    const allowed = ALLOWED_TARGETS.map((t) => (t.group ? `${t.group}/${t.kind}` : t.kind)).join(', ');
    at.error(`cannot target ${group ? `${group}/` : ''}${ref.kind}; a policy can target ${allowed}`);
  }
}

/** Istio's validateOneOfSelectorType + workload selector + targetRef checks for security policies. */
export function checkPolicyTargets(
  spec: { selector?: LabelSelector; targetRef?: PolicyTargetReference; targetRefs?: PolicyTargetReference[] },
  at: Checker,
  what: string,
): void {
  const set = [
    spec.selector && 'selector',
    spec.targetRef && 'targetRef',
    spec.targetRefs?.length && 'targetRefs',
  ].filter((s): s is string => typeof s === 'string');
  if (set.length > 1)
    at.error(`only one of selector, targetRef or targetRefs may be set, found ${set.join(' and ')}`);
  if (spec.selector) checkSelectorNotEmpty(spec.selector.matchLabels ?? {}, at.at('selector'), what);
  if (spec.targetRef) checkTargetRef(spec.targetRef, at.at('targetRef'));
  for (const [i, ref] of (spec.targetRefs ?? []).entries()) checkTargetRef(ref, at.at('targetRefs', i));
}
