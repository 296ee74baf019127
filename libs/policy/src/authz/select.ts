import type { ConfigResource } from '@mizzen/api';
import type { PolicyIssue } from '../common/errors.js';
import {
  parseGoBool,
  resourceId,
  resourcesInScope,
  type ScopeOptions,
  shouldAttachPolicy,
  targetingProblems,
  type Workload,
} from '../common/scope.js';

export type AuthorizationPolicyResource = ConfigResource<'AuthorizationPolicy'>;

/** The annotation that evaluates a policy without enforcing it. */
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

/** The AuthorizationPolicies that apply to one workload, by action, in Istio's creation order. */
export interface SelectedAuthorizationPolicies {
  custom: AuthorizationPolicyResource[];
  deny: AuthorizationPolicyResource[];
  allow: AuthorizationPolicyResource[];
  audit: AuthorizationPolicyResource[];
  /** Policies that were skipped because they are invalid (both selector and targetRefs, …). */
  issues: PolicyIssue[];
}

/**
 * Istio's AuthorizationPolicies.ListAuthorizationPolicies: policies in the
 * workload's namespace and in the root namespace (mesh-wide), attached by
 * selector or targetRefs. Other kinds in `resources` are ignored.
 */
export function selectAuthorizationPolicies(
  resources: readonly ConfigResource[],
  workload: Workload,
  opts: ScopeOptions = {},
): SelectedAuthorizationPolicies {
  const out: SelectedAuthorizationPolicies = { custom: [], deny: [], allow: [], audit: [], issues: [] };
  for (const r of resourcesInScope(resources, 'AuthorizationPolicy', workload, opts)) {
    const problems = targetingProblems(r, r.spec);
    if (problems.length) {
      out.issues.push(...problems);
      continue;
    }
    if (!shouldAttachPolicy(r.metadata.namespace, r.spec, workload, opts)) continue;
    switch (r.spec.action ?? 'ALLOW') {
      case 'ALLOW':
        out.allow.push(r);
        break;
      case 'DENY':
        out.deny.push(r);
        break;
      case 'AUDIT':
        out.audit.push(r);
        break;
      case 'CUSTOM':
        out.custom.push(r);
        break;
      default:
        out.issues.push({
          severity: 'error',
          resource: resourceId(r),
          field: 'spec.action',
          message: `unknown action "${String(r.spec.action)}"; the policy is ignored`,
        });
    }
  }
  return out;
}

/** Whether the policy carries `istio.io/dry-run: "true"`; a value that is not a boolean is reported and means false. */
export function isDryRun(r: AuthorizationPolicyResource, issues?: PolicyIssue[]): boolean {
  const value = r.metadata.annotations?.[DRY_RUN_ANNOTATION];
  if (value === undefined) return false;
  const parsed = parseGoBool(value);
  if (parsed === undefined) {
    issues?.push({
      severity: 'error',
      resource: resourceId(r),
      field: `metadata.annotations["${DRY_RUN_ANNOTATION}"]`,
      message: `failed to parse "${value}" as a boolean; the policy is enforced`,
    });
    return false;
  }
  return parsed;
}
