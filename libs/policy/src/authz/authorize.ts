import type { ConfigResource } from '@mizzen/api';
import { type PolicyIssue, throwOnErrors } from '../common/errors.js';
import type { Workload } from '../common/scope.js';
import type { RequestAttributes } from './attributes.js';
import { AuthzChain, type AuthzDecision, type ExtAuthzCheck } from './chain.js';
import type { ExtAuthzOutcome } from './ext-authz.js';
import { type AuthzTranslateOptions, buildAuthorizationFilters } from './translate.js';

export interface AuthorizeOptions extends AuthzTranslateOptions {
  /**
   * Answers CUSTOM checks synchronously (tests, in-process authorizers).
   * Without it, a request a CUSTOM policy selects comes back as verdict `check`.
   */
  extAuthz?: (check: ExtAuthzCheck) => ExtAuthzOutcome;
  /** Throw a PolicyError when a selected policy is invalid (default true). */
  rejectInvalid?: boolean;
}

export type AuthorizeResult = AuthzDecision & {
  /** Warnings (and, with rejectInvalid false, errors) met while selecting and translating. */
  issues: PolicyIssue[];
};

/**
 * Select + translate + evaluate in one call: which of `resources` apply to
 * `workload`, the Envoy filters Istio would build for them (HTTP filters for
 * a request with `http`, network filters otherwise), and the verdict for
 * this request. Compiles on every call; the data plane compiles once with
 * {@link AuthzChain} instead.
 */
export function authorize(
  resources: readonly ConfigResource[],
  workload: Workload,
  request: RequestAttributes,
  opts: AuthorizeOptions = {},
): AuthorizeResult {
  const built = buildAuthorizationFilters(resources, workload, opts);
  if (opts.rejectInvalid !== false) throwOnErrors(built.issues, 'invalid AuthorizationPolicy');
  const chain = AuthzChain.compile(request.http ? built.http : built.tcp);
  let decision = chain.evaluate(request);
  while (decision.verdict === 'check' && opts.extAuthz) {
    decision = decision.resume(opts.extAuthz(decision.check));
  }
  return Object.assign(decision, { issues: built.issues });
}
