import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import { headerName } from '../validation/names.js';
import { bool, duration, obj, str, strings } from '../validation/schema.js';
import type { KindValidation } from './context.js';
import {
  checkPolicyTargets,
  type LabelSelector,
  labelSelectorSchema,
  type PolicyTargetReference,
  targetRefSchema,
} from './selectors.js';

// ---------------------------------------------------------------------------
// Types: security.istio.io RequestAuthentication (v1 == v1beta1).
// ---------------------------------------------------------------------------

/** Where to look for the token: a header, optionally with a prefix such as `Bearer `. */
export interface JWTHeader {
  name: string;
  prefix?: string;
}

export interface ClaimToHeader {
  header: string;
  claim: string;
}

export interface JWTRule {
  issuer?: string;
  audiences?: string[];
  jwksUri?: string;
  /** @deprecated the proto field name; use jwksUri */
  jwks_uri?: string;
  /** An inline JSON Web Key Set. */
  jwks?: string;
  fromHeaders?: JWTHeader[];
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  forwardOriginalToken?: boolean;
  outputClaimToHeaders?: ClaimToHeader[];
  timeout?: string;
  spaceDelimitedClaims?: string[];
}

export interface RequestAuthenticationSpec {
  selector?: LabelSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  jwtRules?: JWTRule[];
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

export const requestAuthenticationSchema = obj({
  selector: labelSelectorSchema().optional(),
  targetRef: targetRefSchema().optional(),
  targetRefs: z.array(targetRefSchema()).optional(),
  jwtRules: z
    .array(
      obj({
        issuer: str().optional(),
        audiences: strings().optional(),
        jwksUri: str().optional(),
        jwks_uri: str().optional(),
        jwks: str().optional(),
        fromHeaders: z.array(obj({ name: str(), prefix: str().optional() })).optional(),
        fromParams: strings().optional(),
        fromCookies: strings().optional(),
        outputPayloadToHeader: str().optional(),
        forwardOriginalToken: bool().optional(),
        outputClaimToHeaders: z.array(obj({ header: str(), claim: str() })).optional(),
        timeout: duration().optional(),
        spaceDelimitedClaims: strings().optional(),
      }),
    )
    .optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateRequestAuthentication)
// ---------------------------------------------------------------------------

function checkRequestAuthentication(spec: RequestAuthenticationSpec, at: Checker): void {
  checkPolicyTargets(spec, at, 'RequestAuthentication');
  const issuers = new Map<string, number>();
  for (const [i, rule] of (spec.jwtRules ?? []).entries()) {
    const here = at.at('jwtRules', i);
    checkJwtRule(rule, here);
    if (rule.issuer) {
      if (issuers.has(rule.issuer))
        here
          .at('issuer')
          .warn(`issuer "${rule.issuer}" is also used by jwtRules[${issuers.get(rule.issuer)}]`);
      else issuers.set(rule.issuer, i);
    }
  }
}

function checkJwtRule(rule: JWTRule, at: Checker): void {
  if (!rule.issuer) at.at('issuer').error('required field "issuer" is missing');
  for (const [i, aud] of (rule.audiences ?? []).entries())
    if (aud === '') at.at('audiences', i).error('must not be empty');

  if (rule.jwks_uri !== undefined) {
    if (rule.jwksUri !== undefined) at.at('jwks_uri').error('only one of jwksUri or jwks_uri may be set');
    else at.at('jwks_uri').warn('"jwks_uri" is the proto field name; use jwksUri');
  }
  const uri = rule.jwksUri ?? rule.jwks_uri;
  const uriField = rule.jwksUri !== undefined ? 'jwksUri' : 'jwks_uri';
  if (uri !== undefined && rule.jwks !== undefined)
    at.at('jwks').error(`only one of jwks or ${uriField} may be set`);
  if (uri !== undefined) at.at(uriField).check(jwksUriProblem(uri));
  if (rule.jwks !== undefined) at.at('jwks').check(jwksProblem(rule.jwks));

  for (const [i, h] of (rule.fromHeaders ?? []).entries())
    if (h.name === '') at.at('fromHeaders', i, 'name').error('must not be empty');
  for (const [i, p] of (rule.fromParams ?? []).entries())
    if (p === '') at.at('fromParams', i).error('must not be empty');
  for (const [i, c] of (rule.fromCookies ?? []).entries())
    if (c === '') at.at('fromCookies', i).error('must not be empty');
  for (const [i, o] of (rule.outputClaimToHeaders ?? []).entries()) {
    const here = at.at('outputClaimToHeaders', i);
    if (o.claim === '') here.at('claim').error('must not be empty');
    if (o.header === '') here.at('header').error('must not be empty');
    else here.at('header').check(headerName(o.header));
  }
}

function jwksUriProblem(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `"${uri}" is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `"${uri}" must be an http:// or https:// URL`;
  return undefined;
}

function jwksProblem(jwks: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(jwks);
  } catch (err) {
    return `is not valid JSON: ${(err as Error).message}`;
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray(keys)) {
    return 'must be a JSON Web Key Set: an object with a "keys" list';
  }
  const bad = keys.findIndex(
    (k) => typeof k !== 'object' || k === null || typeof (k as { kty?: unknown }).kty !== 'string',
  );
  if (bad >= 0) return `keys[${bad}] is not a JSON Web Key (it needs a "kty")`;
  return undefined;
}

export const requestAuthentication: KindValidation<RequestAuthenticationSpec> = {
  schema: requestAuthenticationSchema,
  check: checkRequestAuthentication,
};
