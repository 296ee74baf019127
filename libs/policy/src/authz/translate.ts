import type { ConfigResource } from '@mizzen/api';
import type { PolicyIssue } from '../common/errors.js';
import { resourceId, type ScopeOptions, type Workload } from '../common/scope.js';
import {
  EXT_AUTHZ_HTTP_TYPE,
  EXT_AUTHZ_NETWORK_TYPE,
  FilterNames,
  type HttpFilterJson,
  type HttpRbacJson,
  type NetworkFilterJson,
  type NetworkRbacJson,
  RBAC_HTTP_TYPE,
  RBAC_NETWORK_TYPE,
  type RbacAction,
  type RbacPolicyJson,
  type RbacRulesJson,
} from '../envoy/types.js';
import {
  type BuiltExtAuthz,
  buildExtensionProviders,
  defaultServiceResolver,
  EXT_AUTHZ_MATCH_PREFIX,
  EXT_AUTHZ_SHADOW_STAT_PREFIX,
  type MeshConfig,
  type ServiceResolver,
} from './ext-authz-config.js';
import { type GenerationNote, RuleModel, UnknownConditionError } from './model.js';
import {
  type AuthorizationPolicyResource,
  isDryRun,
  type SelectedAuthorizationPolicies,
  selectAuthorizationPolicies,
} from './select.js';

/**
 * AuthorizationPolicy → Envoy filters, Istio's
 * pilot/pkg/security/authz/builder: for HTTP, CUSTOM (an RBAC filter in
 * shadow mode that marks matching requests, then ext_authz), AUDIT, DENY and
 * ALLOW RBAC filters in that order; the same for TCP with the network
 * filters. Dry-run policies go to shadow_rules.
 */

export interface AuthzTranslateOptions extends ScopeOptions {
  /** Mesh config `extensionProviders` that CUSTOM policies name. */
  meshConfig?: MeshConfig;
  /** How an authorizer's `service` becomes a host and an Envoy cluster. Default: `ns/name` → `name.ns.svc.cluster.local`. */
  resolveService?: ServiceResolver;
}

export interface AuthorizationFilters {
  /** HTTP filters for the HTTP connection manager, in order, to go before the router. */
  http: HttpFilterJson[];
  /** Network filters for a TCP filter chain, in order, to go before tcp_proxy. */
  tcp: NetworkFilterJson[];
  /** What was skipped or widened, and why (deduplicated). */
  issues: PolicyIssue[];
}

export const RBAC_TCP_STAT_PREFIX = 'tcp.';
export const SHADOW_ALLOW_STAT_PREFIX = 'istio_dry_run_allow_';
export const SHADOW_DENY_STAT_PREFIX = 'istio_dry_run_deny_';
const BAD_CUSTOM_SUFFIX = '-deny-due-to-bad-CUSTOM-action';

const MATCH_NEVER: RbacPolicyJson = {
  permissions: [{ not_rule: { any: true } }],
  principals: [{ not_id: { any: true } }],
};

/** `ns[foo]-policy[bar]-rule[0]`, prefixed `istio-ext-authz-` for CUSTOM. */
export function rbacPolicyName(namespace: string, name: string, rule: number, custom = false): string {
  return `${custom ? `${EXT_AUTHZ_MATCH_PREFIX}-` : ''}ns[${namespace}]-policy[${name}]-rule[${rule}]`;
}

interface Built {
  rules?: RbacRulesJson;
  shadow?: RbacRulesJson;
  providers: string[];
}

class Builder {
  private readonly issues = new Map<string, PolicyIssue>();
  private readonly extensions: Map<string, BuiltExtAuthz | { errors: string[] }>;

  constructor(
    private readonly selected: SelectedAuthorizationPolicies,
    opts: AuthzTranslateOptions,
  ) {
    for (const i of selected.issues) this.note(i);
    this.extensions = buildExtensionProviders(
      opts.meshConfig,
      opts.resolveService ?? defaultServiceResolver(),
    );
  }

  allIssues(): PolicyIssue[] {
    return [...this.issues.values()];
  }

  private note(issue: PolicyIssue): void {
    this.issues.set(`${issue.resource}|${issue.field}|${issue.message}`, issue);
  }

  /** Istio's Builder.build: one RBAC config (and its shadow twin) for a set of policies of one action. */
  private build(
    policies: readonly AuthorizationPolicyResource[],
    action: RbacAction,
    forTCP: boolean,
    custom: boolean,
  ): Built | undefined {
    if (policies.length === 0) return undefined;
    const rules: RbacRulesJson = { ...(action === 'ALLOW' ? {} : { action }), policies: {} };
    const shadow: RbacRulesJson = { ...(action === 'ALLOW' ? {} : { action }), policies: {} };
    let hasEnforce = false;
    let hasDryRun = false;
    const providers: string[] = [];
    const label = custom ? 'CUSTOM' : action === 'LOG' ? 'AUDIT' : action;

    for (const p of policies) {
      const id = resourceId(p);
      const issues: PolicyIssue[] = [];
      const dryRun = isDryRun(p, issues);
      for (const i of issues) this.note(i);
      if (custom) {
        providers.push(p.spec.provider?.name ?? '');
        if (!p.spec.provider?.name) {
          this.note({
            severity: 'error',
            resource: id,
            field: 'spec.provider.name',
            message: 'a CUSTOM policy needs provider.name (an extension provider in mesh config)',
          });
        }
      }
      if (custom && dryRun) {
        this.note({
          severity: 'warning',
          resource: id,
          field: 'metadata.annotations["istio.io/dry-run"]',
          message: 'dry-run is not supported with action CUSTOM; the policy is ignored',
        });
      }
      const target = dryRun ? shadow : rules;
      if (dryRun) hasDryRun = true;
      else hasEnforce = true;
      const { namespace, name } = p.metadata;
      const specRules = p.spec.rules ?? [];
      specRules.forEach((rule, i) => {
        const policyName = rbacPolicyName(namespace, name, i, custom);
        if (rule === null || rule === undefined) {
          this.note({
            severity: 'error',
            resource: id,
            field: `spec.rules[${i}]`,
            message: 'rule is null; skipped',
          });
          return;
        }
        let model: RuleModel;
        try {
          model = RuleModel.of(rule);
        } catch (err) {
          if (!(err instanceof UnknownConditionError)) throw err;
          this.note({
            severity: 'error',
            resource: id,
            field: `spec.rules[${i}].${err.field}`,
            message: `${err.message}; the rule is skipped`,
          });
          return;
        }
        const notes: GenerationNote[] = [];
        const generated = model.generate(forTCP, custom ? 'DENY' : action, namespace, notes);
        for (const n of notes) this.note(this.noteIssue(id, i, n, label));
        if (generated) target.policies![policyName] = generated;
      });
      if (specRules.length === 0) target.policies![rbacPolicyName(namespace, name, 0, custom)] = MATCH_NEVER;
    }
    return {
      ...(hasEnforce ? { rules } : {}),
      ...(hasDryRun ? { shadow } : {}),
      providers,
    };
  }

  private noteIssue(id: string, rule: number, n: GenerationNote, label: string): PolicyIssue {
    const field = `spec.rules[${rule}].${n.field}`;
    if (n.httpOnly) {
      return {
        severity: 'warning',
        resource: id,
        field,
        message: n.ruleSkipped
          ? `${n.message}: on a TCP filter chain this ALLOW rule is skipped (it matches nothing)`
          : `${n.message}: ignored on a TCP filter chain, so this ${label} rule matches more`,
      };
    }
    return {
      severity: 'error',
      resource: id,
      field,
      message: n.ruleSkipped
        ? `${n.message}; the ALLOW rule is skipped`
        : `${n.message}; the value is ignored, so this ${label} rule matches more`,
    };
  }

  private extAuthzFor(
    built: Built,
    policies: readonly AuthorizationPolicyResource[],
  ): BuiltExtAuthz | undefined {
    const distinct = [...new Set(built.providers)];
    const ids = policies.map(resourceId).join(', ');
    if (distinct.length > 1) {
      this.note({
        severity: 'error',
        message: `all CUSTOM policies of a workload must use the same extension provider, found ${distinct
          .map((d) => `"${d}"`)
          .join(', ')} (${ids}); requests matching their rules are denied`,
      });
      return undefined;
    }
    const name = distinct[0] ?? '';
    const ext = this.extensions.get(name);
    if (!ext) {
      const available = [...this.extensions.keys()];
      this.note({
        severity: 'error',
        message: `extension provider "${name}" used by ${ids} is not defined in mesh config (available: ${
          available.length ? available.join(', ') : 'none'
        }); requests matching their rules are denied`,
      });
      return undefined;
    }
    if ('errors' in ext) {
      this.note({
        severity: 'error',
        message: `extension provider "${name}" used by ${ids} is invalid: ${ext.errors.join('; ')}; requests matching their rules are denied`,
      });
      return undefined;
    }
    return ext;
  }

  private badCustomDeny(rules: RbacRulesJson): RbacRulesJson {
    const policies: Record<string, RbacPolicyJson> = {};
    for (const [k, v] of Object.entries(rules.policies ?? {})) policies[`${k}${BAD_CUSTOM_SUFFIX}`] = v;
    return { action: 'DENY', policies };
  }

  http(): HttpFilterJson[] {
    const out: HttpFilterJson[] = [];
    const { custom, audit, deny, allow } = this.selected;
    const c = this.build(custom, 'DENY', false, true);
    if (c?.rules) {
      const ext = this.extAuthzFor(c, custom);
      if (!ext) out.push(httpRbac({ rules: this.badCustomDeny(c.rules) }));
      else {
        out.push(httpRbac({ shadow_rules: c.rules, shadow_rules_stat_prefix: EXT_AUTHZ_SHADOW_STAT_PREFIX }));
        out.push({
          name: FilterNames.httpExtAuthz,
          typed_config: { '@type': EXT_AUTHZ_HTTP_TYPE, ...ext.http },
        });
      }
    }
    for (const [policies, action] of [
      [audit, 'LOG'],
      [deny, 'DENY'],
      [allow, 'ALLOW'],
    ] as const) {
      const b = this.build(policies, action, false, false);
      if (!b) continue;
      out.push(
        httpRbac({
          ...(b.rules ? { rules: b.rules } : {}),
          ...(b.shadow ? { shadow_rules: b.shadow } : {}),
          ...shadowPrefix(b.shadow),
        }),
      );
    }
    return out;
  }

  tcp(): NetworkFilterJson[] {
    const out: NetworkFilterJson[] = [];
    const { custom, audit, deny, allow } = this.selected;
    const c = this.build(custom, 'DENY', true, true);
    if (c?.rules) {
      const ext = this.extAuthzFor(c, custom);
      if (!ext)
        out.push(networkRbac({ rules: this.badCustomDeny(c.rules), stat_prefix: RBAC_TCP_STAT_PREFIX }));
      else if (!ext.tcp) {
        this.note({
          severity: 'warning',
          message: `the HTTP extension provider "${c.providers[0]}" cannot check TCP connections; CUSTOM policies do not apply on TCP filter chains`,
        });
      } else {
        out.push(
          networkRbac({
            shadow_rules: c.rules,
            stat_prefix: RBAC_TCP_STAT_PREFIX,
            shadow_rules_stat_prefix: EXT_AUTHZ_SHADOW_STAT_PREFIX,
          }),
        );
        out.push({
          name: FilterNames.networkExtAuthz,
          typed_config: { '@type': EXT_AUTHZ_NETWORK_TYPE, ...ext.tcp },
        });
      }
    }
    for (const [policies, action] of [
      [audit, 'LOG'],
      [deny, 'DENY'],
      [allow, 'ALLOW'],
    ] as const) {
      const b = this.build(policies, action, true, false);
      if (!b) continue;
      out.push(
        networkRbac({
          ...(b.rules ? { rules: b.rules } : {}),
          stat_prefix: RBAC_TCP_STAT_PREFIX,
          ...(b.shadow ? { shadow_rules: b.shadow } : {}),
          ...shadowPrefix(b.shadow),
        }),
      );
    }
    return out;
  }
}

/** Istio's shadowRuleStatPrefix; with no shadow rules Istio reads the nil config's action (ALLOW). */
function shadowPrefix(shadow: RbacRulesJson | undefined): { shadow_rules_stat_prefix?: string } {
  const action = shadow?.action ?? 'ALLOW';
  if (action === 'ALLOW') return { shadow_rules_stat_prefix: SHADOW_ALLOW_STAT_PREFIX };
  if (action === 'DENY') return { shadow_rules_stat_prefix: SHADOW_DENY_STAT_PREFIX };
  return {};
}

function httpRbac(config: HttpRbacJson): HttpFilterJson {
  return { name: FilterNames.httpRbac, typed_config: { '@type': RBAC_HTTP_TYPE, ...config } };
}

function networkRbac(config: NetworkRbacJson): NetworkFilterJson {
  return { name: FilterNames.networkRbac, typed_config: { '@type': RBAC_NETWORK_TYPE, ...config } };
}

/** Translates already selected policies into the HTTP and TCP authorization filters of one workload. */
export function translateAuthorizationPolicies(
  selected: SelectedAuthorizationPolicies,
  opts: AuthzTranslateOptions = {},
): AuthorizationFilters {
  const b = new Builder(selected, opts);
  const http = b.http();
  const tcp = b.tcp();
  return { http, tcp, issues: b.allIssues() };
}

/** Selection and translation in one step: what pilot calls per proxy. */
export function buildAuthorizationFilters(
  resources: readonly ConfigResource[],
  workload: Workload,
  opts: AuthzTranslateOptions = {},
): AuthorizationFilters {
  return translateAuthorizationPolicies(selectAuthorizationPolicies(resources, workload, opts), opts);
}
