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
 *
 * {@link authorize} does select + translate + evaluate in one call.
 */

export {
  type JwksEvent,
  type JwksFetcher,
  type JwksStatus,
  KeySet,
  RemoteJwks,
  undiciJwksFetcher,
} from './authn/jwks.js';
export type { HeaderBag } from './authn/jwt-extract.js';
export { httpStatusFor, JWT_STATUS_MESSAGES, type JwtStatus } from './authn/jwt-status.js';
export {
  buildJwtAuthnFilter,
  type JwtAuthnTranslation,
  type JwtTranslateOptions,
  type RequestAuthenticationResource,
  selectRequestAuthentications,
  translateRequestAuthentications,
} from './authn/jwt-translate.js';
export {
  compileJwtAuthn,
  JwtAuthenticator,
  type JwtAuthnOptions,
  type JwtAuthnOutcome,
  type JwtAuthnRequest,
} from './authn/jwt-verifier.js';
export {
  type EffectiveMtlsMode,
  type EffectivePeerAuthentication,
  effectivePeerAuthentication,
  mtlsModeForPort,
} from './authn/peer.js';
export {
  claimHeaderValue,
  requestAuthFromPayload,
  requestAuthFromPayloads,
} from './authn/request-auth.js';
export {
  type EvalContext,
  evalContextOf,
  type HttpRequestAttributes,
  headerLookup,
  initialMetadata,
  istioAuthnMetadata,
  istioClaims,
  normalizePrincipal,
  type RequestAttributes,
  type RequestAuth,
} from './authz/attributes.js';
export { type AuthorizeOptions, type AuthorizeResult, authorize } from './authz/authorize.js';
export {
  type AllowDecision,
  AUTHZ_FILTER_TYPES,
  AuthzChain,
  type AuthzDecision,
  type CheckDecision,
  compileAuthzChain,
  type DenyDecision,
  type ExtAuthzCheck,
  isAuthzFilter,
  RBAC_ACCESS_DENIED,
  type ShadowResult,
} from './authz/chain.js';
export {
  applyUpstreamEdits,
  type CompiledExtAuthz,
  compileExtAuthz,
  compileExtAuthzPerRoute,
  EXT_AUTHZ_PER_ROUTE_TYPE,
  type ExtAuthzHttpCheckRequest,
  type ExtAuthzPerRoute,
  FAILURE_MODE_ALLOWED_HEADER,
  requestBodySettings,
} from './authz/ext-authz.js';
export {
  type CheckBody,
  checkBody,
  compileBufferSettings,
  PARTIAL_BODY_HEADER,
  type RequestBodySettings,
  sanitizeUtf8,
} from './authz/ext-authz-body.js';
export {
  type AllowedOutcome,
  allowed,
  buildCheckRequest,
  type ExtAuthzCheckInput,
  type ExtAuthzOutcome,
  type GrpcCheckSettings,
  interpretCheckResponse,
} from './authz/ext-authz-check.js';
export {
  type BuiltExtAuthz,
  buildExtensionProviders,
  defaultServiceResolver,
  type EnvoyExtAuthzGrpcProvider,
  type EnvoyExtAuthzHttpProvider,
  EXT_AUTHZ_MATCH_PREFIX,
  EXT_AUTHZ_SHADOW_STAT_PREFIX,
  type ExtensionProvider,
  type MeshConfig,
  type ServiceResolver,
} from './authz/ext-authz-config.js';
export {
  editedPairs,
  editHeaders,
  editQuery,
  type HeaderAction,
  type HeaderEdit,
  type HeaderPair,
  type HeaderRecord,
} from './authz/header-edits.js';
export { compilePermission, compilePrincipal } from './authz/matchers.js';
export { KNOWN_CONDITION_KEYS } from './authz/model.js';
export { RbacEngine, type RbacEngineResult } from './authz/rbac-engine.js';
export {
  type AuthorizationPolicyResource,
  DRY_RUN_ANNOTATION,
  isDryRun,
  type SelectedAuthorizationPolicies,
  selectAuthorizationPolicies,
} from './authz/select.js';
export {
  type AuthorizationFilters,
  type AuthzTranslateOptions,
  buildAuthorizationFilters,
  RBAC_TCP_STAT_PREFIX,
  rbacPolicyName,
  SHADOW_ALLOW_STAT_PREFIX,
  SHADOW_DENY_STAT_PREFIX,
  translateAuthorizationPolicies,
} from './authz/translate.js';
export { formatIssue, type IssueSeverity, PolicyError, type PolicyIssue } from './common/errors.js';
export { istioCidrRange, parseIp } from './common/ip.js';
export {
  byCreationOrder,
  DEFAULT_ROOT_NAMESPACE,
  GATEWAY_NAME_LABEL,
  type ScopeOptions,
  shouldAttachPolicy,
  type Workload,
  type WorkloadService,
} from './common/scope.js';
export * from './envoy/types.js';
