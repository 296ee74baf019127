/**
 * What went wrong with a policy or an Envoy config, said once and clearly.
 *
 * Translators never throw for policy content: they skip what Istio skips and
 * report it as a {@link PolicyIssue}. Compilers of Envoy configs (the RBAC
 * engine, the JWT authenticator) throw {@link PolicyError} naming the field,
 * the way the proxy NACKs a resource it cannot apply.
 */

export type IssueSeverity = 'error' | 'warning';

export interface PolicyIssue {
  severity: IssueSeverity;
  /** `Kind namespace/name` of the resource the issue is about, when there is one. */
  resource?: string;
  /** Field path inside the resource, like `spec.rules[0].when[1].key`. */
  field?: string;
  message: string;
}

export class PolicyError extends Error {
  readonly issues: readonly PolicyIssue[];

  constructor(message: string, issues: readonly PolicyIssue[] = []) {
    super(message);
    this.name = 'PolicyError';
    this.issues = issues;
  }
}

/** `AuthorizationPolicy foo/bar: spec.rules[0].when[0].key: unknown condition key "x"`. */
export function formatIssue(issue: PolicyIssue): string {
  const parts = [issue.resource, issue.field].filter((p): p is string => !!p);
  return parts.length ? `${parts.join(': ')}: ${issue.message}` : issue.message;
}

/** Throws a PolicyError for a config that cannot be compiled, naming where. */
export function fail(where: string, reason: string): never {
  throw new PolicyError(`${where}: ${reason}`);
}

/** Throws one PolicyError listing every error-severity issue, if there is any. */
export function throwOnErrors(issues: readonly PolicyIssue[], what: string): void {
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length === 0) return;
  const lines = errors.map(formatIssue);
  const message =
    lines.length === 1
      ? `${what}: ${lines[0]}`
      : `${what}: ${lines.length} problems:\n  ${lines.join('\n  ')}`;
  throw new PolicyError(message, errors);
}
