import { fail } from '../common/errors.js';
import {
  EXT_AUTHZ_HTTP_TYPE,
  EXT_AUTHZ_NETWORK_TYPE,
  type ExtAuthzJson,
  FilterNames,
  type HttpFilterJson,
  type HttpRbacJson,
  type NetworkExtAuthzJson,
  type NetworkFilterJson,
  type NetworkRbacJson,
  RBAC_HTTP_TYPE,
  RBAC_NETWORK_TYPE,
  type RbacAction,
} from '../envoy/types.js';
import { type EvalContext, evalContextOf, initialMetadata, type RequestAttributes } from './attributes.js';
import {
  applyUpstreamEdits,
  type CompiledExtAuthz,
  compileExtAuthz,
  type ExtAuthzOutcome,
} from './ext-authz.js';
import { EXT_AUTHZ_SHADOW_STAT_PREFIX } from './ext-authz-config.js';
import type { HeaderEdit } from './header-edits.js';
import { RbacEngine } from './rbac-engine.js';

/**
 * A compiled list of authorization filters (RBAC and ext_authz, HTTP or
 * network), evaluated per request in order the way Envoy runs them: the
 * first filter that denies ends the chain; shadow rules are evaluated and
 * reported but never enforced; an ext_authz filter whose metadata matcher
 * selects the request hands the decision to the caller (the check is I/O).
 */

/** Types of the filters a chain understands. */
export const AUTHZ_FILTER_TYPES: ReadonlySet<string> = new Set([
  RBAC_HTTP_TYPE,
  RBAC_NETWORK_TYPE,
  EXT_AUTHZ_HTTP_TYPE,
  EXT_AUTHZ_NETWORK_TYPE,
]);

/** True for the filters an {@link AuthzChain} runs (pick them out of an HCM's http_filters). */
export function isAuthzFilter(f: { typed_config?: { '@type'?: string } }): boolean {
  return AUTHZ_FILTER_TYPES.has(f.typed_config?.['@type'] ?? '');
}

/** One shadow-rules evaluation (dry-run, or the CUSTOM trigger), reported separately from the verdict. */
export interface ShadowResult {
  /** `dry-run` for istio.io/dry-run policies, `ext-authz` for the RBAC filter that selects CUSTOM checks. */
  kind: 'dry-run' | 'ext-authz';
  action: RbacAction;
  /** What the shadow engine would have decided. */
  allowed: boolean;
  /** The shadow policy that matched, if any. */
  policy?: string;
  statPrefix: string;
}

interface DecisionBase {
  shadow: ShadowResult[];
  /** AUDIT policies that matched (Envoy's access_log_hint). */
  audited: string[];
  /** The dynamic metadata the filters wrote (shadow results, access-log hint), by namespace. */
  metadata: Record<string, Record<string, unknown>>;
}

export interface AllowDecision extends DecisionBase {
  verdict: 'allow';
  /** The ALLOW policy that admitted the request, when there were ALLOW policies. */
  policy?: string;
  /** Edits of the response an allowing external authorizer asked for. */
  responseHeaders: HeaderEdit[];
}

export interface DenyDecision extends DecisionBase {
  verdict: 'deny';
  deniedBy: 'rbac' | 'ext_authz';
  /** The DENY policy that matched (none when an ALLOW filter found no match). */
  policy?: string;
  action?: RbacAction;
  /** What an HTTP client gets: 403 `RBAC: access denied`, or the authorizer's answer. TCP: close the connection. */
  status: number;
  body: string;
  headers: [string, string][];
  /** Denied because the external authorizer could not be asked or failed (Envoy's `ext_authz_error`). */
  extAuthzError?: boolean;
}

export interface ExtAuthzCheck {
  authorizer: CompiledExtAuthz;
  /** The ext_authz filter's name (its per-route config is found by it). */
  filterName: string;
  /** The CUSTOM policy (shadow policy id) that selected the request. */
  policy: string;
}

export interface CheckDecision extends DecisionBase {
  verdict: 'check';
  check: ExtAuthzCheck;
  /** Continues the chain with the authorizer's outcome (use `authorizer.interpretResponse/onError`). */
  resume(outcome: ExtAuthzOutcome): AuthzDecision;
}

export type AuthzDecision = AllowDecision | DenyDecision | CheckDecision;

export const RBAC_ACCESS_DENIED = 'RBAC: access denied';

type Step =
  | {
      kind: 'rbac';
      namespace: string;
      enforce?: RbacEngine;
      shadow?: RbacEngine;
      shadowPrefix: string;
    }
  | {
      kind: 'ext_authz';
      authorizer: CompiledExtAuthz;
      filterName: string;
      rbacNamespace: string;
      /** Where the authorizer's dynamic metadata goes. */
      namespace: string;
    };

export class AuthzChain {
  private constructor(private readonly steps: readonly Step[]) {}

  /** True when there is nothing to evaluate. */
  get empty(): boolean {
    return this.steps.length === 0;
  }

  /** The external authorizers this chain may ask (so a proxy can refuse what it cannot call). */
  authorizers(): CompiledExtAuthz[] {
    return this.steps.flatMap((s) => (s.kind === 'ext_authz' ? [s.authorizer] : []));
  }

  static compile(
    filters: readonly (HttpFilterJson | NetworkFilterJson)[],
    where = 'authorization',
  ): AuthzChain {
    const steps = filters.map((f, i): Step => {
      const at = `${where}[${i}] (${f.name})`;
      const { '@type': type, ...config } = f.typed_config ?? { '@type': '' };
      switch (type) {
        case RBAC_HTTP_TYPE:
        case RBAC_NETWORK_TYPE: {
          const c = config as HttpRbacJson | NetworkRbacJson;
          return {
            kind: 'rbac',
            namespace: type === RBAC_HTTP_TYPE ? FilterNames.httpRbac : FilterNames.networkRbac,
            enforce: c.rules ? RbacEngine.compile(c.rules, `${at}.rules`) : undefined,
            shadow: c.shadow_rules ? RbacEngine.compile(c.shadow_rules, `${at}.shadow_rules`) : undefined,
            shadowPrefix: c.shadow_rules_stat_prefix ?? '',
          };
        }
        case EXT_AUTHZ_HTTP_TYPE:
        case EXT_AUTHZ_NETWORK_TYPE:
          return {
            kind: 'ext_authz',
            authorizer: compileExtAuthz(config as unknown as ExtAuthzJson | NetworkExtAuthzJson, at),
            filterName: f.name,
            rbacNamespace: type === EXT_AUTHZ_HTTP_TYPE ? FilterNames.httpRbac : FilterNames.networkRbac,
            namespace: type === EXT_AUTHZ_HTTP_TYPE ? FilterNames.httpExtAuthz : FilterNames.networkExtAuthz,
          };
        default:
          return fail(at, `${String(type)} is not an authorization filter`);
      }
    });
    return new AuthzChain(steps);
  }

  /** Runs the chain for one request or connection. */
  evaluate(attrs: RequestAttributes): AuthzDecision {
    const metadata = initialMetadata(attrs);
    const base: DecisionBase = { shadow: [], audited: [], metadata: {} };
    return this.run(0, attrs, evalContextOf(attrs, metadata), base, metadata, []);
  }

  private run(
    from: number,
    attrs: RequestAttributes,
    ctx: EvalContext,
    base: DecisionBase,
    metadata: Record<string, Record<string, unknown>>,
    responseHeaders: HeaderEdit[],
  ): AuthzDecision {
    let allowPolicy: string | undefined;
    for (let i = from; i < this.steps.length; i++) {
      const step = this.steps[i]!;
      if (step.kind === 'ext_authz') {
        if (!step.authorizer.enabled(metadata)) continue;
        const policyKey = `${EXT_AUTHZ_SHADOW_STAT_PREFIX}shadow_effective_policy_id`;
        const policy = String(metadata[step.rbacNamespace]?.[policyKey] ?? '');
        const snapshot = {
          ...base,
          shadow: [...base.shadow],
          audited: [...base.audited],
          metadata: { ...base.metadata },
        };
        return {
          ...snapshot,
          verdict: 'check',
          check: { authorizer: step.authorizer, filterName: step.filterName, policy },
          resume: (outcome) => {
            // What the authorizer returned as dynamic metadata is the ext_authz filter's, for later filters and logs.
            if (outcome.metadata) setMetadata(metadata, snapshot.metadata, step.namespace, outcome.metadata);
            if (!outcome.allowed) {
              return {
                ...snapshot,
                verdict: 'deny',
                deniedBy: 'ext_authz',
                policy,
                status: outcome.status,
                body: outcome.body,
                headers: outcome.headers.map(([k, v]) => [k, v]),
                ...(outcome.error ? { extAuthzError: true } : {}),
              };
            }
            const next = attrs.http ? { ...attrs, http: applyUpstreamEdits(attrs.http, outcome) } : attrs;
            const nextCtx = next === attrs ? ctx : evalContextOf(next, metadata);
            return this.run(i + 1, next, nextCtx, snapshot, metadata, [
              ...responseHeaders,
              ...outcome.responseHeaders,
            ]);
          },
        };
      }
      if (step.shadow) {
        const r = step.shadow.evaluate(ctx);
        setMetadata(metadata, base.metadata, step.namespace, {
          [`${step.shadowPrefix}shadow_engine_result`]: r.allowed ? 'allowed' : 'denied',
          ...(r.policy !== undefined ? { [`${step.shadowPrefix}shadow_effective_policy_id`]: r.policy } : {}),
        });
        base.shadow.push({
          kind: step.shadowPrefix === EXT_AUTHZ_SHADOW_STAT_PREFIX ? 'ext-authz' : 'dry-run',
          action: step.shadow.action,
          allowed: r.allowed,
          ...(r.policy !== undefined ? { policy: r.policy } : {}),
          statPrefix: step.shadowPrefix,
        });
      }
      if (!step.enforce) continue;
      const r = step.enforce.evaluate(ctx);
      if (step.enforce.action === 'LOG') {
        if (r.policy !== undefined) {
          base.audited.push(r.policy);
          setMetadata(metadata, base.metadata, 'envoy.common', { access_log_hint: true });
        }
        continue;
      }
      if (!r.allowed) {
        return {
          ...base,
          verdict: 'deny',
          deniedBy: 'rbac',
          action: step.enforce.action,
          ...(r.policy !== undefined ? { policy: r.policy } : {}),
          status: 403,
          body: RBAC_ACCESS_DENIED,
          headers: [],
        };
      }
      if (step.enforce.action === 'ALLOW') allowPolicy = r.policy;
    }
    return {
      ...base,
      verdict: 'allow',
      ...(allowPolicy !== undefined ? { policy: allowPolicy } : {}),
      responseHeaders,
    };
  }
}

/** Writes fields into a metadata namespace, both in the request's metadata and in what the decision reports. */
function setMetadata(
  metadata: Record<string, Record<string, unknown>>,
  reported: Record<string, Record<string, unknown>>,
  namespace: string,
  fields: Record<string, unknown>,
): void {
  metadata[namespace] = { ...metadata[namespace], ...fields };
  reported[namespace] = { ...reported[namespace], ...fields };
}
