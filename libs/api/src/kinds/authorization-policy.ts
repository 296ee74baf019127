import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import { ipOrCidr } from '../validation/names.js';
import { obj, str, strings } from '../validation/schema.js';
import type { KindValidation } from './context.js';
import {
  checkPolicyTargets,
  type LabelSelector,
  labelSelectorSchema,
  type PolicyTargetReference,
  targetRefSchema,
} from './selectors.js';

// ---------------------------------------------------------------------------
// Types: security.istio.io AuthorizationPolicy (v1 == v1beta1).
// ---------------------------------------------------------------------------

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface Source {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
}

export interface Operation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

export interface Condition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface RuleFrom {
  source?: Source;
}

export interface RuleTo {
  operation?: Operation;
}

export interface AuthorizationRule {
  from?: RuleFrom[];
  to?: RuleTo[];
  when?: Condition[];
}

/** The external authorizer (an extension provider in the mesh config) a CUSTOM policy delegates to. */
export interface ExtensionProvider {
  name?: string;
}

export interface AuthorizationPolicySpec {
  selector?: LabelSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  rules?: AuthorizationRule[];
  action?: AuthorizationAction;
  provider?: ExtensionProvider;
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
  'serviceAccounts',
  'notServiceAccounts',
] as const;

const OPERATION_FIELDS = [
  'hosts',
  'notHosts',
  'ports',
  'notPorts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
] as const;

const listFields = <K extends string>(fields: readonly K[]) =>
  obj(
    Object.fromEntries(fields.map((f) => [f, strings().optional()])) as Record<
      K,
      z.ZodOptional<z.ZodArray<z.ZodString>>
    >,
  );

export const authorizationPolicySchema = obj({
  selector: labelSelectorSchema().optional(),
  targetRef: targetRefSchema().optional(),
  targetRefs: z.array(targetRefSchema()).optional(),
  rules: z
    .array(
      obj({
        from: z.array(obj({ source: listFields(SOURCE_FIELDS).optional() })).optional(),
        to: z.array(obj({ operation: listFields(OPERATION_FIELDS).optional() })).optional(),
        when: z
          .array(obj({ key: str(), values: strings().optional(), notValues: strings().optional() }))
          .optional(),
      }),
    )
    .optional(),
  action: z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']).optional(),
  provider: obj({ name: str().optional() }).optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateAuthorizationPolicy)
// ---------------------------------------------------------------------------

/** Condition keys Istio understands (`request.headers[...]` and `request.auth.claims[...]` take a name). */
const CONDITION_KEYS = [
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.ip',
  'destination.port',
  'connection.sni',
];
const IP_KEYS = ['source.ip', 'remote.ip', 'destination.ip'];

function checkAuthorizationPolicy(spec: AuthorizationPolicySpec, at: Checker): void {
  checkPolicyTargets(spec, at, 'AuthorizationPolicy');
  const action = spec.action ?? 'ALLOW';
  if (action === 'CUSTOM') {
    if (spec.rules === undefined) {
      at.at('rules').error(
        'a CUSTOM policy without rules never applies; add an empty rule `{}` to apply it to every request',
      );
    } else if (!spec.provider?.name) {
      at.at('provider', 'name').error('a CUSTOM policy needs provider.name (the extension provider to call)');
    }
  } else if (spec.provider !== undefined) {
    at.at('provider').error(`provider is only allowed with action CUSTOM, not ${action}`);
  }
  if (action === 'DENY' && spec.rules === undefined) {
    at.at('rules').error(
      'a DENY policy without rules never applies; add an empty rule `{}` to deny every request',
    );
  }

  for (const [i, rule] of (spec.rules ?? []).entries()) {
    const here = at.at('rules', i);
    if (rule.from !== undefined && rule.from.length === 0)
      here.at('from').error('if set, it must not be empty');
    if (rule.to !== undefined && rule.to.length === 0) here.at('to').error('if set, it must not be empty');
    for (const [j, from] of (rule.from ?? []).entries()) {
      const src = from.source;
      const f = here.at('from', j, 'source');
      if (!src) {
        here.at('from', j).error('required field "source" is missing');
        continue;
      }
      if (SOURCE_FIELDS.every((k) => !src[k]?.length)) f.error('a source must set at least one field');
      for (const k of SOURCE_FIELDS) checkValues(src[k], f.at(k));
      for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) {
        for (const [n, ip] of (src[k] ?? []).entries()) f.at(k, n).check(ipOrCidr(ip));
      }
      if (action === 'CUSTOM') {
        for (const k of [
          'namespaces',
          'notNamespaces',
          'principals',
          'notPrincipals',
          'requestPrincipals',
          'notRequestPrincipals',
        ] as const) {
          if (src[k]?.length) f.at(k).error('is not supported with action CUSTOM');
        }
      }
    }
    for (const [j, to] of (rule.to ?? []).entries()) {
      const op = to.operation;
      const o = here.at('to', j, 'operation');
      if (!op) {
        here.at('to', j).error('required field "operation" is missing');
        continue;
      }
      if (OPERATION_FIELDS.every((k) => !op[k]?.length)) o.error('an operation must set at least one field');
      for (const k of OPERATION_FIELDS) checkValues(op[k], o.at(k));
      for (const k of ['ports', 'notPorts'] as const) {
        for (const [n, p] of (op[k] ?? []).entries()) {
          if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)
            o.at(k, n).error(`"${p}" is not a port number between 1 and 65535`);
        }
      }
    }
    for (const [j, c] of (rule.when ?? []).entries()) checkCondition(c, here.at('when', j), action);
  }
}

function checkValues(values: string[] | undefined, at: Checker): void {
  for (const [i, v] of (values ?? []).entries()) if (v === '') at.at(i).error('empty values are not allowed');
}

function checkCondition(c: Condition, at: Checker, action: AuthorizationAction): void {
  if (c.key === '') {
    at.at('key').error('must not be empty');
    return;
  }
  const known =
    CONDITION_KEYS.includes(c.key) ||
    /^request\.headers\[[^\]]+\]$/.test(c.key) ||
    /^request\.auth\.claims\[[^\]]+\](\[[^\]]+\])*$/.test(c.key) ||
    c.key.startsWith('experimental.envoy.filters.');
  if (!known) at.at('key').error(`unknown condition key "${c.key}"`);
  if (!c.values?.length && !c.notValues?.length) at.error(`set values or notValues for key "${c.key}"`);
  for (const field of ['values', 'notValues'] as const) {
    for (const [i, v] of (c[field] ?? []).entries()) {
      if (IP_KEYS.includes(c.key)) at.at(field, i).check(ipOrCidr(v));
      if (c.key === 'destination.port' && (!/^\d+$/.test(v) || Number(v) > 65535)) {
        at.at(field, i).error(`"${v}" is not a port number`);
      }
    }
  }
  if (
    action === 'CUSTOM' &&
    (c.key === 'source.namespace' || c.key === 'source.principal' || c.key.startsWith('request.auth.'))
  ) {
    at.at('key').error(`"${c.key}" is not supported with action CUSTOM`);
  }
}

export const authorizationPolicy: KindValidation<AuthorizationPolicySpec> = {
  schema: authorizationPolicySchema,
  check: checkAuthorizationPolicy,
};
