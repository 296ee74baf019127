import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import { checkSelectorNotEmpty } from '../validation/common.js';
import { dnsLabel, headerName } from '../validation/names.js';
import { bool, headerMatches, int, obj, rules, str, stringMatch } from '../validation/schema.js';
import type { KindValidation } from './context.js';
import {
  type LabelSelector,
  labelSelectorSchema,
  type PolicyTargetReference,
  targetRefSchema,
} from './selectors.js';
import type { StringMatch } from './virtual-service.js';

// ---------------------------------------------------------------------------
// Types: policy.mizzen.io RateLimitPolicy (v1alpha1) — Mizzen's own kind.
//
// Shaped like Istio's policies (selector or targetRefs, enums in capitals)
// and, for the counting part, like Envoy's rate limit actions and the Lyft
// rate limit service's config, which Istio users already write by hand in
// EnvoyFilters: descriptors build the counter key, a limit is requests per
// unit.
// ---------------------------------------------------------------------------

/** GLOBAL: one counter shared by every proxy (Redis, or memory in a single process). LOCAL: a token bucket in each proxy. */
export type RateLimitMode = 'GLOBAL' | 'LOCAL';

/** What happens when the shared counters cannot be reached: let requests through (ALLOW) or answer 429 (DENY). */
export type RateLimitFailureMode = 'ALLOW' | 'DENY';

export type RateLimitUnit = 'SECOND' | 'MINUTE' | 'HOUR' | 'DAY';

export const RATE_LIMIT_UNITS: readonly RateLimitUnit[] = ['SECOND', 'MINUTE', 'HOUR', 'DAY'];

/**
 * One part of a counter's key. Exactly one field is set; the others are
 * `{}`-style markers like Envoy's `remote_address: {}`.
 */
export interface RateLimitDescriptor {
  /** The value of a request header. Without the header the rule does not count the request, unless `skipIfAbsent`. */
  requestHeader?: { name: string; skipIfAbsent?: boolean };
  /** The request path without its query string. */
  path?: Record<string, never>;
  /** The request method. */
  method?: Record<string, never>;
  /** The caller's SPIFFE identity from mutual TLS; plaintext requests are not counted by the rule. */
  sourcePrincipal?: Record<string, never>;
  /** The client's IP address as the proxy determines it (the peer at a gateway). */
  remoteAddress?: Record<string, never>;
  /** The name of the route the request matched. */
  route?: Record<string, never>;
}

export const DESCRIPTOR_KINDS = [
  'requestHeader',
  'path',
  'method',
  'sourcePrincipal',
  'remoteAddress',
  'route',
] as const satisfies readonly (keyof RateLimitDescriptor)[];

/** Which requests a rule counts: every condition set must hold (Istio's HTTPMatchRequest fields). */
export interface RateLimitMatch {
  uri?: StringMatch;
  method?: StringMatch;
  headers?: Record<string, StringMatch>;
}

export interface RateLimitAmount {
  requests: number;
  unit: RateLimitUnit;
}

export interface RateLimitRule {
  /** Names the rule in metrics and logs; `rule-<index>` when absent. */
  name?: string;
  match?: RateLimitMatch;
  /** One counter per distinct combination of these values; none: one counter for every matching request. */
  descriptors?: RateLimitDescriptor[];
  limit: RateLimitAmount;
}

export interface RateLimitPolicySpec {
  /** Workloads (or gateways, by their labels such as `istio: ingressgateway`) in the policy's namespace. */
  selector?: LabelSelector;
  /** Istio Gateways (networking.istio.io) in the policy's namespace: the proxies they select, on their servers' ports. */
  targetRefs?: PolicyTargetReference[];
  mode?: RateLimitMode;
  failureMode?: RateLimitFailureMode;
  /** Count and report (metrics, logs, headers), never reject. */
  shadow?: boolean;
  rules: RateLimitRule[];
}

/** A rule's name as metrics and counters use it. */
export function rateLimitRuleName(rule: RateLimitRule, index: number): string {
  return rule.name ?? `rule-${index}`;
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const marker = () => obj({});

const descriptorSchema = () =>
  obj({
    requestHeader: obj({
      name: rules(str(), (n) => headerName(n)),
      skipIfAbsent: bool().optional(),
    }).optional(),
    path: marker().optional(),
    method: marker().optional(),
    sourcePrincipal: marker().optional(),
    remoteAddress: marker().optional(),
    route: marker().optional(),
  });

export const rateLimitPolicySchema = obj({
  selector: labelSelectorSchema().optional(),
  targetRefs: z.array(targetRefSchema()).optional(),
  mode: z.enum(['GLOBAL', 'LOCAL']).optional(),
  failureMode: z.enum(['ALLOW', 'DENY']).optional(),
  shadow: bool().optional(),
  rules: z.array(
    obj({
      name: str().optional(),
      match: obj({
        uri: stringMatch().optional(),
        method: stringMatch().optional(),
        headers: headerMatches().optional(),
      }).optional(),
      descriptors: z.array(descriptorSchema()).optional(),
      limit: obj({
        // uint32, as Envoy's requests_per_unit and token bucket sizes are.
        requests: int(1, 4_294_967_295),
        unit: z.enum(['SECOND', 'MINUTE', 'HOUR', 'DAY']),
      }),
    }),
  ),
});

// ---------------------------------------------------------------------------
// Semantic checks
// ---------------------------------------------------------------------------

const GATEWAY_GROUP = 'networking.istio.io';

function checkTargets(spec: RateLimitPolicySpec, at: Checker): void {
  const refs = spec.targetRefs;
  if (spec.selector && refs?.length) at.error('only one of selector or targetRefs may be set, found both');
  if (!spec.selector && !refs?.length) {
    at.error(
      'a rate limit policy must say what it protects: set selector.matchLabels (workloads, or a gateway by its labels) or targetRefs (a Gateway)',
    );
  }
  if (spec.selector) checkSelectorNotEmpty(spec.selector.matchLabels ?? {}, at.at('selector'), 'policy');
  if (refs && refs.length === 0) at.at('targetRefs').error('if set, it must list at least one Gateway');
  for (const [i, ref] of (refs ?? []).entries()) {
    const here = at.at('targetRefs', i);
    const group = ref.group ?? GATEWAY_GROUP;
    if (ref.kind !== 'Gateway' || group !== GATEWAY_GROUP) {
      here.error(
        `cannot target ${ref.group ? `${ref.group}/` : ''}${ref.kind}; a RateLimitPolicy targets a ${GATEWAY_GROUP}/Gateway (use selector for workloads)`,
      );
    }
    here.at('name').check(dnsLabel(ref.name, 'gateway name'));
    if (ref.namespace !== undefined && ref.namespace !== '') {
      here.at('namespace').error('must not be set: a policy can only target Gateways in its own namespace');
    }
  }
}

function checkDescriptors(rule: RateLimitRule, mode: RateLimitMode, at: Checker): void {
  const list = rule.descriptors ?? [];
  if (mode === 'LOCAL' && list.length > 0) {
    at.error(
      'descriptors need mode GLOBAL: a LOCAL token bucket counts every matching request of the proxy in one bucket (use match to choose which requests)',
    );
    return;
  }
  const seen = new Map<string, number>();
  for (const [i, d] of list.entries()) {
    const here = at.at(i);
    const set = DESCRIPTOR_KINDS.filter((k) => d[k] !== undefined);
    if (set.length !== 1) {
      here.error(
        set.length === 0
          ? `a descriptor sets one of ${DESCRIPTOR_KINDS.join(', ')}, found none`
          : `a descriptor sets exactly one of ${DESCRIPTOR_KINDS.join(', ')}, found ${set.join(' and ')}`,
      );
      continue;
    }
    if (d.requestHeader?.name.startsWith('@')) {
      here
        .at('requestHeader', 'name')
        .error(`"${d.requestHeader.name}" is not a request header; JWT claims cannot key a rate limit`);
      continue;
    }
    const identity = d.requestHeader ? `requestHeader ${d.requestHeader.name.toLowerCase()}` : set[0]!;
    const first = seen.get(identity);
    if (first !== undefined) here.error(`${identity} is already descriptor ${first}; list it once`);
    else seen.set(identity, i);
  }
}

function checkRateLimitPolicy(spec: RateLimitPolicySpec, at: Checker): void {
  checkTargets(spec, at);
  const mode = spec.mode ?? 'GLOBAL';
  if (mode === 'LOCAL' && spec.failureMode !== undefined) {
    at.at('failureMode').warn('has no effect with mode LOCAL: a token bucket in the proxy cannot fail');
  }
  if (spec.rules.length === 0) at.at('rules').error('must list at least one rule');
  const names = new Map<string, number>();
  for (const [i, rule] of spec.rules.entries()) {
    const here = at.at('rules', i);
    if (rule.name !== undefined) here.at('name').check(dnsLabel(rule.name, 'rule name'));
    const name = rateLimitRuleName(rule, i);
    const first = names.get(name);
    if (first !== undefined) here.at('name').error(`"${name}" is already the name of rule ${first}`);
    else names.set(name, i);
    if (rule.match && Object.keys(rule.match).length === 0) {
      here.at('match').warn('an empty match counts every request; leave match out to say so');
    }
    checkDescriptors(rule, mode, here.at('descriptors'));
  }
}

export const rateLimitPolicy: KindValidation<RateLimitPolicySpec> = {
  schema: rateLimitPolicySchema,
  check: checkRateLimitPolicy,
};
