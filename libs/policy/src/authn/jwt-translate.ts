import { type ConfigResource, type JWTRule, parseDuration } from '@mizzen/api';
import { envoyDuration } from '../common/duration.js';
import type { PolicyIssue } from '../common/errors.js';
import {
  resourceId,
  resourcesInScope,
  type ScopeOptions,
  shouldAttachPolicy,
  targetingProblems,
  type Workload,
} from '../common/scope.js';
import {
  FilterNames,
  type HttpFilterJson,
  JWT_AUTHN_TYPE,
  type JwtAuthenticationJson,
  type JwtProviderJson,
  type JwtRequirementJson,
} from '../envoy/types.js';

/**
 * RequestAuthentication → Envoy's jwt_authn filter, as Istio builds it
 * (pilot/pkg/security/authn: convertToEnvoyJwtConfig): one provider per JWT
 * rule (sorted by issuer, named `origins-<i>`), and a requirement that lets a
 * request without a token through but rejects an invalid one. Authorization
 * (requestPrincipals) then decides about requests without a token.
 */

export type RequestAuthenticationResource = ConfigResource<'RequestAuthentication'>;

export interface JwtTranslateOptions extends ScopeOptions {
  /** Envoy cluster for a JWKS host and port. Default Istio's `outbound|<port>||<host>`. */
  resolveJwksCluster?: (host: string, port: number) => string | undefined;
  /** Recompute the route after JWT claims were copied to headers (Istio: gateways only). */
  clearRouteCache?: boolean;
}

export interface JwtAuthnTranslation {
  /** The HTTP filter to put before authorization; absent when no RequestAuthentication applies. */
  filter?: HttpFilterJson;
  issues: PolicyIssue[];
}

/** Istio's GetJwtPoliciesForWorkload: policies of the workload's and the root namespace, by selector or targetRefs. */
export function selectRequestAuthentications(
  resources: readonly ConfigResource[],
  workload: Workload,
  opts: ScopeOptions = {},
): { policies: RequestAuthenticationResource[]; issues: PolicyIssue[] } {
  const policies: RequestAuthenticationResource[] = [];
  const issues: PolicyIssue[] = [];
  for (const r of resourcesInScope(resources, 'RequestAuthentication', workload, opts)) {
    const problems = targetingProblems(r, r.spec);
    if (problems.length) {
      issues.push(...problems);
      continue;
    }
    if (shouldAttachPolicy(r.metadata.namespace, r.spec, workload, opts)) policies.push(r);
  }
  return { policies, issues };
}

/** Claims always treated as space-delimited lists in the payload metadata (Istio adds these two). */
const DEFAULT_SPACE_DELIMITED_CLAIMS = ['permission', 'scope'];

function spaceDelimitedClaims(extra: readonly string[] | undefined): string[] {
  return [...new Set([...(extra ?? []), ...DEFAULT_SPACE_DELIMITED_CLAIMS])].sort();
}

function jwksUriParts(uri: string): { host: string; port: number } | undefined {
  try {
    const u = new URL(uri);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
  } catch {
    return undefined;
  }
}

/** Translates the RequestAuthentications that apply to a workload into one jwt_authn filter. */
export function translateRequestAuthentications(
  policies: readonly RequestAuthenticationResource[],
  opts: JwtTranslateOptions = {},
): JwtAuthnTranslation {
  const issues: PolicyIssue[] = [];
  const rules: { rule: JWTRule; resource: string; index: number }[] = [];
  for (const p of policies) {
    for (const [index, rule] of (p.spec.jwtRules ?? []).entries())
      rules.push({ rule, resource: resourceId(p), index });
  }
  if (rules.length === 0) return { issues };
  // Istio sorts the rules by issuer (stable) for a deterministic config.
  rules.sort((a, b) =>
    (a.rule.issuer ?? '') < (b.rule.issuer ?? '')
      ? -1
      : (a.rule.issuer ?? '') > (b.rule.issuer ?? '')
        ? 1
        : 0,
  );

  const resolve = opts.resolveJwksCluster ?? ((host: string, port: number) => `outbound|${port}||${host}`);
  const providers: Record<string, JwtProviderJson> = {};
  const inner: JwtRequirementJson[] = [];
  const outer: JwtRequirementJson[] = [];
  let n = 0;
  for (const { rule, resource, index } of rules) {
    const field = `spec.jwtRules[${index}]`;
    if (!rule.issuer) {
      issues.push({
        severity: 'error',
        resource,
        field: `${field}.issuer`,
        message: 'issuer is required; the rule is skipped',
      });
      continue;
    }
    let timeout = '5s';
    if (rule.timeout !== undefined) {
      try {
        timeout = envoyDuration(parseDuration(rule.timeout));
      } catch (err) {
        issues.push({
          severity: 'error',
          resource,
          field: `${field}.timeout`,
          message: `${(err as Error).message}; using 5s`,
        });
      }
    }
    const provider: JwtProviderJson = {
      issuer: rule.issuer,
      ...(rule.audiences?.length ? { audiences: [...rule.audiences] } : {}),
      ...(rule.forwardOriginalToken ? { forward: true } : {}),
      ...(rule.fromHeaders?.length
        ? {
            from_headers: rule.fromHeaders.map((h) => ({
              name: h.name,
              ...(h.prefix ? { value_prefix: h.prefix } : {}),
            })),
          }
        : {}),
      ...(rule.fromParams?.length ? { from_params: [...rule.fromParams] } : {}),
      ...(rule.fromCookies?.length ? { from_cookies: [...rule.fromCookies] } : {}),
      ...(rule.outputPayloadToHeader ? { forward_payload_header: rule.outputPayloadToHeader } : {}),
      payload_in_metadata: rule.issuer,
      normalize_payload_in_metadata: {
        space_delimited_claims: spaceDelimitedClaims(rule.spaceDelimitedClaims),
      },
      ...(rule.outputClaimToHeaders?.length
        ? {
            claim_to_headers: rule.outputClaimToHeaders.map((c) => ({
              header_name: c.header,
              claim_name: c.claim,
            })),
          }
        : {}),
      ...(opts.clearRouteCache ? { clear_route_cache: true } : {}),
    };
    const uri = rule.jwksUri ?? rule.jwks_uri;
    if (rule.jwks !== undefined) {
      provider.local_jwks = { inline_string: rule.jwks };
    } else if (uri) {
      const parts = jwksUriParts(uri);
      const cluster = parts ? resolve(parts.host, parts.port) : undefined;
      if (!parts) {
        issues.push({
          severity: 'error',
          resource,
          field: `${field}.jwksUri`,
          message: `"${uri}" is not an http(s) URL; tokens of this issuer cannot be verified`,
        });
      }
      provider.remote_jwks = {
        http_uri: { uri, ...(cluster ? { cluster } : {}), timeout },
        cache_duration: '300s',
      };
    } else {
      issues.push({
        severity: 'error',
        resource,
        field,
        message:
          'set jwksUri or jwks (OpenID discovery from the issuer is not supported); tokens of this issuer are rejected',
      });
      provider.local_jwks = { inline_string: '{"keys":[]}' };
    }
    const name = `origins-${n++}`;
    providers[name] = provider;
    inner.push({ requires_any: { requirements: [{ provider_name: name }, { allow_missing: {} }] } });
    outer.push({ provider_name: name });
  }
  if (inner.length === 0) return { issues };

  // One provider: {P or allow_missing}. More: any of {P1, P2, …, all of {P1 or missing, P2 or missing, …}},
  // so a token must be valid for its provider, and providers sharing a location still work.
  const requires: JwtRequirementJson =
    inner.length === 1
      ? inner[0]!
      : { requires_any: { requirements: [...outer, { requires_all: { requirements: inner } }] } };
  const config: JwtAuthenticationJson = {
    providers,
    rules: [{ match: { prefix: '/' }, requires }],
    bypass_cors_preflight: true,
  };
  return {
    filter: { name: FilterNames.jwtAuthn, typed_config: { '@type': JWT_AUTHN_TYPE, ...config } },
    issues,
  };
}

/** Selection and translation in one step: what pilot calls per proxy. */
export function buildJwtAuthnFilter(
  resources: readonly ConfigResource[],
  workload: Workload,
  opts: JwtTranslateOptions = {},
): JwtAuthnTranslation {
  const selected = selectRequestAuthentications(resources, workload, opts);
  const translated = translateRequestAuthentications(selected.policies, opts);
  return { ...translated, issues: [...selected.issues, ...translated.issues] };
}
