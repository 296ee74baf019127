import type { AuthorizationRule } from '@mizzen/api';
import { istioCidrRange } from '../common/ip.js';
import {
  FilterNames,
  type PermissionJson,
  type PrincipalJson,
  type RbacAction,
  type RbacPolicyJson,
  URI_TEMPLATE_TYPE,
} from '../envoy/types.js';
import {
  containsPathTemplate,
  headerMatcher,
  hostMatcher,
  metadataListMatcher,
  metadataStringMatcher,
  pathMatcher,
  regexMatcher,
  SPIFFE_PREFIX,
  sanitizePathTemplate,
  stringMatcher,
  stringMatcherWithPrefix,
} from './istio-matchers.js';

/**
 * One AuthorizationPolicy rule as Envoy RBAC permissions and principals,
 * Istio's pilot/pkg/security/authz/model: every `from` becomes a principal
 * and every `to` a permission (each AND-ed with the `when` conditions that
 * belong on that side), values of a field are OR-ed, not-values are a NOT of
 * an OR, and fields are AND-ed. Request-authentication attributes are matched
 * on the `istio_authn` dynamic metadata.
 */

const ISTIO_AUTHN = FilterNames.istioAuthn;

/** A value a generator cannot turn into a matcher; what happens next depends on the action (see checkError). */
export class GenerateError extends Error {
  constructor(
    message: string,
    readonly httpOnly = false,
  ) {
    super(message);
  }
}

type Side = 'permission' | 'principal';

interface Generator {
  side: Side;
  /** Only meaningful on HTTP; on a TCP filter chain the value cannot be generated. */
  httpOnly: boolean;
  build(key: string, value: string, policyNamespace: string): PermissionJson | PrincipalJson;
}

const permission = (
  httpOnly: boolean,
  build: (key: string, value: string, ns: string) => PermissionJson,
): Generator => ({
  side: 'permission',
  httpOnly,
  build,
});
const principal = (
  httpOnly: boolean,
  build: (key: string, value: string, ns: string) => PrincipalJson,
): Generator => ({
  side: 'principal',
  httpOnly,
  build,
});

function cidr(value: string) {
  try {
    return istioCidrRange(value);
  } catch (err) {
    throw new GenerateError((err as Error).message);
  }
}

function port(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) > 65535) {
    throw new GenerateError(`invalid port "${value}": must be a number between 0 and 65535`);
  }
  return Number(value);
}

function authenticated(m: PrincipalJson['authenticated']): PrincipalJson {
  return { authenticated: m };
}

/** `[name]` → `name`. */
export function extractNameInBrackets(s: string): string {
  if (!s.startsWith('[') || !s.endsWith(']'))
    throw new GenerateError(`expecting format [<NAME>], but found ${s}`);
  return s.slice(1, -1);
}

/** `[a][b]` → [a, b]; `[a.b]` → [a.b] (Istio's extractNameInNestedBrackets). */
export function extractNameInNestedBrackets(s: string): string[] {
  const findEnd = (begin: number): number => {
    if (begin >= s.length || s[begin] !== '[') return -1;
    for (let i = begin + 1; i < s.length; i++) {
      if (s[i] === '[') return -1;
      if (s[i] === ']') return i;
    }
    return -1;
  };
  const claims: string[] = [];
  for (let begin = 0; begin < s.length; ) {
    const end = findEnd(begin);
    if (end === -1) return [extractNameInBrackets(s)];
    claims.push(s.slice(begin + 1, end));
    begin = end + 1;
  }
  return claims;
}

/** Istio's serviceAccountRegex: `sa` or `ns/sa`, matched anywhere a SPIFFE id may carry extra segments. */
export function serviceAccountRegex(defaultNamespace: string, value: string): string {
  const slash = value.indexOf('/');
  const ns = slash < 0 ? defaultNamespace : value.slice(0, slash);
  const sa = slash < 0 ? value : value.slice(slash + 1);
  return `spiffe://.+/ns/${ns}/(.+/|)sa/${sa}(/.+)?`;
}

const G = {
  destIP: permission(false, (_k, v) => ({ destination_ip: cidr(v) })),
  destPort: permission(false, (_k, v) => ({ destination_port: port(v) })),
  connSNI: permission(false, (_k, v) => ({ requested_server_name: stringMatcher(v) })),
  envoyFilter: permission(false, (key, v) => {
    // experimental.envoy.filters.a.b[c] → filter envoy.filters.a.b, key c.
    const stripped = key.replace(/^experimental\./, '').replace(/\]$/, '');
    const open = stripped.indexOf('[');
    if (open < 0) throw new GenerateError(`invalid key: ${key}`);
    const filter = stripped.slice(0, open);
    const field = stripped.slice(open + 1);
    if (v.startsWith('[') && v.endsWith(']')) {
      return { metadata: metadataListMatcher(filter, [field], stringMatcher(v.replace(/^\[+|\]+$/g, ''))) };
    }
    return { metadata: metadataStringMatcher(filter, field, stringMatcher(v)) };
  }),
  host: permission(true, (_k, v) => ({ header: hostMatcher(':authority', v) })),
  method: permission(true, (_k, v) => ({ header: headerMatcher(':method', v) })),
  path: permission(true, (_k, v) => {
    if (containsPathTemplate(v)) {
      return {
        uri_template: {
          name: 'uri-template',
          typed_config: { '@type': URI_TEMPLATE_TYPE, path_template: sanitizePathTemplate(v) },
        },
      };
    }
    return { url_path: pathMatcher(v) };
  }),
  srcIP: principal(false, (_k, v) => ({ direct_remote_ip: cidr(v) })),
  remoteIP: principal(false, (_k, v) => ({ remote_ip: cidr(v) })),
  srcNamespace: principal(false, (_k, v) =>
    authenticated({ principal_name: regexMatcher(`.*/ns/${v.replaceAll('*', '.*')}/.*`) }),
  ),
  srcServiceAccount: principal(false, (_k, v, ns) =>
    authenticated({ principal_name: regexMatcher(serviceAccountRegex(ns, v)) }),
  ),
  srcPrincipal: principal(false, (_k, v) =>
    authenticated({ principal_name: stringMatcherWithPrefix(v, SPIFFE_PREFIX) }),
  ),
  requestPrincipal: principal(true, (_k, v) => ({
    metadata: metadataStringMatcher(ISTIO_AUTHN, 'request.auth.principal', stringMatcher(v)),
  })),
  requestAudiences: principal(true, (_k, v) => ({
    metadata: metadataStringMatcher(ISTIO_AUTHN, 'request.auth.audiences', stringMatcher(v)),
  })),
  requestPresenter: principal(true, (_k, v) => ({
    metadata: metadataStringMatcher(ISTIO_AUTHN, 'request.auth.presenter', stringMatcher(v)),
  })),
  requestHeader: principal(true, (key, v) => ({
    header: headerMatcher(extractNameInBrackets(key.slice('request.headers'.length)), v),
  })),
  requestClaims: principal(true, (key, v) => {
    const claims = extractNameInNestedBrackets(key.slice('request.auth.claims'.length));
    return {
      metadata: metadataListMatcher(ISTIO_AUTHN, ['request.auth.claims', ...claims], stringMatcher(v)),
    };
  }),
} satisfies Record<string, Generator>;

/** The `when` keys Istio understands, each with where it lands (permission or principal). */
function generatorForCondition(key: string): Generator | undefined {
  switch (key) {
    case 'destination.ip':
      return G.destIP;
    case 'destination.port':
      return G.destPort;
    case 'connection.sni':
      return G.connSNI;
    case 'source.ip':
      return G.srcIP;
    case 'remote.ip':
      return G.remoteIP;
    case 'source.namespace':
      return G.srcNamespace;
    case 'source.serviceAccount':
      return G.srcServiceAccount;
    case 'source.principal':
      return G.srcPrincipal;
    case 'request.auth.principal':
      return G.requestPrincipal;
    case 'request.auth.audiences':
      return G.requestAudiences;
    case 'request.auth.presenter':
      return G.requestPresenter;
  }
  if (key.startsWith('experimental.envoy.filters.')) return G.envoyFilter;
  if (key.startsWith('request.headers')) return G.requestHeader;
  if (key.startsWith('request.auth.claims')) return G.requestClaims;
  return undefined;
}

export const KNOWN_CONDITION_KEYS = [
  'request.headers[<name>]',
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.serviceAccount',
  'source.principal',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'request.auth.claims[<name>]…',
  'destination.ip',
  'destination.port',
  'connection.sni',
  'experimental.envoy.filters.<filter>[<key>]',
];

interface RuleEntry {
  key: string;
  values: readonly string[];
  notValues: readonly string[];
  gen: Generator;
  /** Field paths (relative to the rule) for issue messages. */
  valuesField: string;
  notValuesField: string;
}

/** A problem met while generating; the builder decides whether it skips the rule or a value. */
export interface GenerationNote {
  field: string;
  message: string;
  httpOnly: boolean;
  /** True when the whole rule was dropped (ALLOW), false when only the value was ignored. */
  ruleSkipped: boolean;
}

export class UnknownConditionError extends Error {
  constructor(
    readonly field: string,
    readonly key: string,
  ) {
    super(`unknown condition key "${key}"; supported keys are ${KNOWN_CONDITION_KEYS.join(', ')}`);
  }
}

export class RuleModel {
  private constructor(
    private readonly permissions: RuleEntry[][],
    private readonly principals: RuleEntry[][],
  ) {}

  /** Istio's model.New. Throws UnknownConditionError for a `when` key Istio does not know. */
  static of(rule: AuthorizationRule): RuleModel {
    const basePermission: RuleEntry[] = [];
    const basePrincipal: RuleEntry[] = [];
    (rule.when ?? []).forEach((c, j) => {
      const gen = generatorForCondition(c.key);
      if (!gen) throw new UnknownConditionError(`when[${j}].key`, c.key);
      const entry = entryOf(c.key, c.values, c.notValues, gen, `when[${j}].values`, `when[${j}].notValues`);
      if (!entry) return;
      (gen.side === 'permission' ? basePermission : basePrincipal).push(entry);
    });

    const principals: RuleEntry[][] = [];
    (rule.from ?? []).forEach((from, j) => {
      const s = from.source ?? {};
      const at = `from[${j}].source`;
      // Istio inserts each at the front, so the final order is the reverse of this list.
      const front = [
        entryOf('source.ip', s.ipBlocks, s.notIpBlocks, G.srcIP, `${at}.ipBlocks`, `${at}.notIpBlocks`),
        entryOf(
          'remote.ip',
          s.remoteIpBlocks,
          s.notRemoteIpBlocks,
          G.remoteIP,
          `${at}.remoteIpBlocks`,
          `${at}.notRemoteIpBlocks`,
        ),
        entryOf(
          'source.namespace',
          s.namespaces,
          s.notNamespaces,
          G.srcNamespace,
          `${at}.namespaces`,
          `${at}.notNamespaces`,
        ),
        entryOf(
          'source.serviceAccount',
          s.serviceAccounts,
          s.notServiceAccounts,
          G.srcServiceAccount,
          `${at}.serviceAccounts`,
          `${at}.notServiceAccounts`,
        ),
        entryOf(
          'request.auth.principal',
          s.requestPrincipals,
          s.notRequestPrincipals,
          G.requestPrincipal,
          `${at}.requestPrincipals`,
          `${at}.notRequestPrincipals`,
        ),
        entryOf(
          'source.principal',
          s.principals,
          s.notPrincipals,
          G.srcPrincipal,
          `${at}.principals`,
          `${at}.notPrincipals`,
        ),
      ].filter((e): e is RuleEntry => e !== undefined);
      principals.push([...front.reverse(), ...basePrincipal]);
    });
    if (!rule.from?.length) principals.push([...basePrincipal]);

    const permissions: RuleEntry[][] = [];
    (rule.to ?? []).forEach((to, j) => {
      const o = to.operation ?? {};
      const at = `to[${j}].operation`;
      const front = [
        entryOf('destination.port', o.ports, o.notPorts, G.destPort, `${at}.ports`, `${at}.notPorts`),
        entryOf('path', o.paths, o.notPaths, G.path, `${at}.paths`, `${at}.notPaths`),
        entryOf(':method', o.methods, o.notMethods, G.method, `${at}.methods`, `${at}.notMethods`),
        entryOf(':authority', o.hosts, o.notHosts, G.host, `${at}.hosts`, `${at}.notHosts`),
      ].filter((e): e is RuleEntry => e !== undefined);
      permissions.push([...front.reverse(), ...basePermission]);
    });
    if (!rule.to?.length) permissions.push([...basePermission]);

    return new RuleModel(permissions, principals);
  }

  /**
   * Istio's Model.Generate. For ALLOW, a value that cannot be generated (a bad
   * CIDR, an HTTP-only field on TCP) drops the whole rule: the policy grants
   * less. For DENY, AUDIT and CUSTOM only that value is ignored: the policy
   * catches more. Returns undefined when the rule is dropped.
   */
  generate(
    forTCP: boolean,
    action: RbacAction,
    policyNamespace: string,
    notes: GenerationNote[],
  ): RbacPolicyJson | undefined {
    const ctx: GenContext = { forTCP, action, policyNamespace, notes };
    try {
      const permissions = this.permissions.map((list) => ({
        and_rules: { rules: orAny(list.flatMap((e) => generateEntry(e, ctx) as PermissionJson[])) },
      }));
      const principals = this.principals.map((list) => ({
        and_ids: { ids: orAnyPrincipal(list.flatMap((e) => generateEntry(e, ctx) as PrincipalJson[])) },
      }));
      return { permissions, principals };
    } catch (err) {
      if (err instanceof SkipRule) return undefined;
      throw err;
    }
  }
}

class SkipRule extends Error {}

interface GenContext {
  forTCP: boolean;
  action: RbacAction;
  policyNamespace: string;
  notes: GenerationNote[];
}

function entryOf(
  key: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  gen: Generator,
  valuesField: string,
  notValuesField: string,
): RuleEntry | undefined {
  if (!values?.length && !notValues?.length) return undefined;
  return { key, values: values ?? [], notValues: notValues ?? [], gen, valuesField, notValuesField };
}

function orAny(and: PermissionJson[]): PermissionJson[] {
  return and.length ? and : [{ any: true }];
}

function orAnyPrincipal(and: PrincipalJson[]): PrincipalJson[] {
  return and.length ? and : [{ any: true }];
}

function generateValues(
  e: RuleEntry,
  values: readonly string[],
  field: string,
  ctx: GenContext,
): (PermissionJson | PrincipalJson)[] {
  const out: (PermissionJson | PrincipalJson)[] = [];
  values.forEach((value, i) => {
    try {
      if (ctx.forTCP && e.gen.httpOnly) throw new GenerateError(`"${e.key}" is HTTP only`, true);
      out.push(e.gen.build(e.key, value, ctx.policyNamespace));
    } catch (err) {
      if (!(err instanceof GenerateError)) throw err;
      const ruleSkipped = ctx.action === 'ALLOW';
      ctx.notes.push({ field: `${field}[${i}]`, message: err.message, httpOnly: err.httpOnly, ruleSkipped });
      // ALLOW: fail the rule (grant less). DENY/AUDIT/CUSTOM: ignore the value (catch more).
      if (ruleSkipped) throw new SkipRule();
    }
  });
  return out;
}

function generateEntry(e: RuleEntry, ctx: GenContext): (PermissionJson | PrincipalJson)[] {
  const out: (PermissionJson | PrincipalJson)[] = [];
  const perm = e.gen.side === 'permission';
  const or = generateValues(e, e.values, e.valuesField, ctx);
  if (or.length) out.push(perm ? { or_rules: { rules: or as PermissionJson[] } } : { or_ids: { ids: or } });
  const notOr = generateValues(e, e.notValues, e.notValuesField, ctx);
  if (notOr.length) {
    out.push(
      perm
        ? { not_rule: { or_rules: { rules: notOr as PermissionJson[] } } }
        : { not_id: { or_ids: { ids: notOr as PrincipalJson[] } } },
    );
  }
  return out;
}
