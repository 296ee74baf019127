/**
 * @mizzen/policy — Istio's security policies as pure functions, both halves:
 *
 * - for pilot, translators from Istio resources to Envoy filter configs:
 *   {@link buildAuthorizationFilters} (AuthorizationPolicy → RBAC and
 *   ext_authz filters), {@link buildJwtAuthnFilter} (RequestAuthentication →
 *   jwt_authn) and {@link effectivePeerAuthentication} (PeerAuthentication →
 *   the mTLS mode per port);
 * - for the proxy, evaluators of those configs: {@link AuthzChain} (RBAC and
 *   ext_authz, Envoy semantics) and {@link JwtAuthenticator} (jwt_authn with
 *   jose, remote JWKS with undici).
 */

export { buildJwtAuthnFilter } from './authn/jwt-translate.js';
export { JwtAuthenticator } from './authn/jwt-verifier.js';
export {
  type EffectivePeerAuthentication,
  effectivePeerAuthentication,
  mtlsModeForPort,
} from './authn/peer.js';
export type { HttpRequestAttributes, RequestAttributes, RequestAuth } from './authz/attributes.js';
export {
  AuthzChain,
  type AuthzDecision,
  type CheckDecision,
  isAuthzFilter,
  type ShadowResult,
} from './authz/chain.js';
export {
  type CompiledExtAuthz,
  compileExtAuthzPerRoute,
  EXT_AUTHZ_PER_ROUTE_TYPE,
  type ExtAuthzPerRoute,
  requestBodySettings,
} from './authz/ext-authz.js';
export { type CheckBody, checkBody, type RequestBodySettings } from './authz/ext-authz-body.js';
export {
  type AllowedOutcome,
  allowed,
  type ExtAuthzCheckInput,
  type ExtAuthzOutcome,
} from './authz/ext-authz-check.js';
export {
  defaultServiceResolver,
  type EnvoyExtAuthzGrpcProvider,
  type ExtensionProvider,
} from './authz/ext-authz-config.js';
export { editHeaders, editQuery } from './authz/header-edits.js';
export { buildAuthorizationFilters } from './authz/translate.js';
export { formatIssue } from './common/errors.js';
export { HOP_BY_HOP_HEADERS } from './common/headers.js';
export {
  type CheckRequestJson,
  type CheckResponseJson,
  EXT_AUTHZ_HTTP_TYPE,
  EXT_AUTHZ_NETWORK_TYPE,
  type ExtAuthzPerRouteJson,
  FilterNames,
  type HttpFilterJson,
  type NetworkFilterJson,
  RBAC_HTTP_TYPE,
  RBAC_NETWORK_TYPE,
  URI_TEMPLATE_TYPE,
} from './envoy/types.js';
