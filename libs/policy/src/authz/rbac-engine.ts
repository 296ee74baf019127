import { fail } from '../common/errors.js';
import type { RbacAction, RbacRulesJson } from '../envoy/types.js';
import type { EvalContext } from './attributes.js';
import { compilePermission, compilePrincipal, type Predicate, some } from './matchers.js';

/**
 * Envoy's RBAC engine (source/extensions/filters/common/rbac): a policy
 * matches when any of its permissions and any of its principals match; an
 * ALLOW engine allows a request some policy matches, a DENY engine denies it,
 * a LOG engine always allows and flags it for the access log. Policies are
 * tried in name order (Envoy keeps them in a sorted map), so the reported
 * policy is the first matching name.
 */

export interface RbacEngineResult {
  /** The engine's verdict (always true for LOG). */
  allowed: boolean;
  /** The first matching policy, by name (Envoy's effective policy id). */
  policy?: string;
}

export class RbacEngine {
  private constructor(
    readonly action: RbacAction,
    private readonly policies: readonly (readonly [string, Predicate, Predicate])[],
  ) {}

  /** Compiles envoy.config.rbac.v3.RBAC once; throws a PolicyError naming the field it cannot run. */
  static compile(rules: RbacRulesJson, where: string): RbacEngine {
    const action = rules.action ?? 'ALLOW';
    if (action !== 'ALLOW' && action !== 'DENY' && action !== 'LOG')
      fail(`${where}.action`, `unknown action ${action}`);
    const names = Object.keys(rules.policies ?? {}).sort();
    const policies = names.map((name) => {
      const p = rules.policies![name]!;
      const at = `${where}.policies[${JSON.stringify(name)}]`;
      if (p.condition !== undefined || p.checked_condition !== undefined) {
        fail(at, 'CEL conditions are not supported by this proxy');
      }
      if (!p.permissions?.length) fail(`${at}.permissions`, 'needs at least one permission');
      if (!p.principals?.length) fail(`${at}.principals`, 'needs at least one principal');
      const perm = some(p.permissions.map((x, i) => compilePermission(x, `${at}.permissions[${i}]`)));
      const princ = some(p.principals.map((x, i) => compilePrincipal(x, `${at}.principals[${i}]`)));
      return [name, perm, princ] as const;
    });
    return new RbacEngine(action, policies);
  }

  /** The first policy (by name) whose permissions and principals both match. */
  match(ctx: EvalContext): string | undefined {
    for (const [name, perm, princ] of this.policies) if (perm(ctx) && princ(ctx)) return name;
    return undefined;
  }

  evaluate(ctx: EvalContext): RbacEngineResult {
    const policy = this.match(ctx);
    switch (this.action) {
      case 'ALLOW':
        return { allowed: policy !== undefined, policy };
      case 'DENY':
        return { allowed: policy === undefined, policy };
      default:
        return { allowed: true, policy };
    }
  }
}
